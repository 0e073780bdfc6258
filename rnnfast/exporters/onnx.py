"""Export a Pipeline (or any Model that converts to one, see Model.to_pipeline) to ONNX, standard operators only.

The graph reads `input` and writes `output` in the pipeline's layout; inside it is time-major:
- batch_first: a Transpose of the input (ids [B, T] or floats [B, T, F]) and of a sequence output.
- EmbeddingStage: Gather(table, ids); ids are int64.
- RecurrentStage: one RNN / GRU / LSTM node per layer. rnnfast's canonical form is ONNX's, so W, R, B = [Wb, Rb]
  and P (peepholes) are written as they are, with activations (and alpha/beta), clip, input_forget and
  linear_before_reset as attributes. Between stacked layers Y [T, D, B, P] becomes [T, B, D*P]: Squeeze(axis 1)
  for one direction, Transpose(0, 2, 1, 3) + Reshape([0, 0, -1]) for two. return_sequences=False takes the last
  layer's Y_h [D, B, P] -> Transpose(1, 0, 2) + Reshape([0, -1]) = [B, D*P], directions concatenated.
- DenseStage: MatMul(W^T) [+ Add(b)] [+ Relu / Tanh / Sigmoid / Softmax(axis -1)].

LSTM with projection (proj_size > 0) has no ONNX operator; exporters/onnx_projection.py writes each direction as
a Scan over time (its docstring gives the body).

Keras masks (EmbeddingStage.mask_zero): ONNX recurrent nodes have no per-step mask, only sequence_lens, which
equals the mask only when every row's padding is at its end. That depends on the data, so it must be asserted
with `assume_suffix_padding=True`; then sequence_lens = the number of non-zero ids per row (Equal, Not, Cast,
ReduceSum), and where Keras repeats a row's last output over its padding (mask_zero_output False) the forward
directions' Y is filled with Y_h there (Where). Without the flag a masked pipeline is refused. With it, an input
with a 0 id before a non-zero one gives a different answer than the source model: the flag is the caller's
promise. A row of padding only has length 0, where onnxruntime's recurrent kernels are unreliable (garbage or an
abort, see the ONNX importer's notes); rnnfast gives zeros. Activations that ONNX recurrent nodes cannot express (Keras' selu, swish, gelu, exponential) are refused.
"""
from __future__ import annotations

import numpy as np

from ..errors import FormatError
from ..importers.onnx.recurrent import DEFAULT_ALPHA, DEFAULT_BETA
from ..pipeline import DenseStage, EmbeddingStage, Pipeline, RecurrentStage
from ._onnx_graph import GraphWriter
from ._output import write_bytes

MIN_OPSET = 13  # Squeeze / Unsqueeze / ReduceSum take their axes as an input from 13 on
DEFAULT_OPSET = 17
OP_TYPES = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}
NOT_IN_ONNX = ("Selu", "Swish", "Gelu", "Exp")
DENSE_OPS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}


def export_onnx(source, path=None, opset: int = DEFAULT_OPSET, assume_suffix_padding: bool = False):
    """Write `source` (a Pipeline or a rnnfast Model) as an ONNX model to `path` (str, PathLike, binary file
    object, or None) and return the onnx.ModelProto. FormatError names whatever has no ONNX form."""
    p = source if isinstance(source, Pipeline) else source.to_pipeline()
    proto = to_model_proto(p, opset, assume_suffix_padding)
    if path is not None:
        write_bytes(proto.SerializeToString(), path)
    return proto


def to_model_proto(p: Pipeline, opset: int = DEFAULT_OPSET, assume_suffix_padding: bool = False):
    from onnx import TensorProto, defs, helper

    where = p.source or p.name or "pipeline"
    if not MIN_OPSET <= opset <= defs.onnx_opset_version():
        raise ValueError(f"{where}: opset {opset} is not supported; expected {MIN_OPSET} to "
                         f"{defs.onnx_opset_version()}")
    _check(p, where, assume_suffix_padding)
    g = GraphWriter()
    x = "input"
    if p.batch_first:
        x = g.op("Transpose", [x], perm=[1, 0] if p.takes_ids else [1, 0, 2])
    lens = pad = None
    for stage in p.stages:
        if isinstance(stage, EmbeddingStage):
            if stage.mask_zero:
                pad = g.op("Equal", [x, g.ints(0)], "padding")
                valid = g.op("Cast", [g.op("Not", [pad])], to=TensorProto.INT32)
                lens = g.op("ReduceSum", [valid, g.ints([0])], "sequence_lens", keepdims=0)
            x = g.op("Gather", [g.const(stage.table, "embedding"), x], "embedded")
        elif isinstance(stage, RecurrentStage):
            x = _stack(g, stage, x, lens, pad)
            if not stage.return_sequences:
                lens = pad = None
        else:
            x = _dense(g, stage, x)
    if p.batch_first and p.returns_sequence:
        x = g.op("Transpose", [x], perm=[1, 0, 2])
    g.nodes.append(helper.make_node("Identity", [x], ["output"], name="output"))
    seq = ["batch", "seq_len"] if p.batch_first else ["seq_len", "batch"]
    inp = (helper.make_tensor_value_info("input", TensorProto.INT64, seq) if p.takes_ids
           else helper.make_tensor_value_info("input", TensorProto.FLOAT, seq + [p.input_size]))
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT,
                                        (seq if p.returns_sequence else ["batch"]) + [p.output_size])
    graph = helper.make_graph(g.nodes, p.name or "rnnfast_pipeline", [inp], [out], g.inits)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="rnnfast")
    model.ir_version = helper.find_min_ir_version_for(opsets)  # the oldest runtime that knows the opset reads it
    return model


def _check(p: Pipeline, where: str, assume_suffix_padding: bool):
    for stage in p.stages:
        if isinstance(stage, EmbeddingStage) and stage.mask_zero and not assume_suffix_padding:
            raise FormatError(f"{where}: embedding {stage.name!r} has mask_zero (Keras masking). ONNX recurrent "
                              f"nodes take sequence_lens, not a mask, which is the same only when each row's "
                              f"padding (id 0) is all at its end; that depends on your data, so say so with "
                              f"assume_suffix_padding=True to export it")
        if isinstance(stage, RecurrentStage):
            for layer in stage.layers:
                for acts in layer.activations:
                    for a in acts:
                        if a.name in NOT_IN_ONNX:
                            raise FormatError(f"{where}: layer {layer.name!r} uses activation {a.name}, which "
                                              f"ONNX {OP_TYPES[layer.cell]} nodes cannot express")


def _stack(g: GraphWriter, stage: RecurrentStage, x, lens, pad):
    for k, layer in enumerate(stage.layers):
        if layer.proj_size:
            from .onnx_projection import projection_lstm

            y, y_h = projection_lstm(g, layer, x, pad)
        else:
            y, y_h = _recurrent_node(g, layer, x, lens)
        if k == len(stage.layers) - 1:
            if not stage.return_sequences:
                return g.op("Reshape", [g.op("Transpose", [y_h], perm=[1, 0, 2]), g.ints([0, -1])], "final")
            if pad is not None and not stage.mask_zero_output:
                y = _repeat_last_output(g, layer, y, y_h, pad)
        x = join_directions(g, layer.n_dirs, y)
    return x


def join_directions(g: GraphWriter, n_dirs: int, y):
    """Y [T, D, B, P] -> [T, B, D*P]."""
    if n_dirs == 1:
        return g.op("Squeeze", [y, g.ints([1])], "sequence")
    return g.op("Reshape", [g.op("Transpose", [y], perm=[0, 2, 1, 3]), g.ints([0, 0, -1])], "sequence")


def _recurrent_node(g: GraphWriter, layer, x, lens):
    names = [a.name for acts in layer.activations for a in acts]
    attrs = dict(hidden_size=layer.hidden_size, direction=layer.direction, activations=names)
    alphas = [a.alpha for acts in layer.activations for a in acts if a.name in DEFAULT_ALPHA]
    betas = [a.beta for acts in layer.activations for a in acts if a.name in DEFAULT_BETA]
    if alphas:
        attrs["activation_alpha"] = alphas
    if betas:
        attrs["activation_beta"] = betas
    if layer.clip is not None:
        attrs["clip"] = layer.clip
    if layer.input_forget:
        attrs["input_forget"] = 1
    if layer.linear_before_reset:
        attrs["linear_before_reset"] = 1
    inputs = [x, g.const(layer.w_ih, "W"), g.const(layer.w_hh, "R"),
              g.const(np.concatenate([layer.b_ih, layer.b_hh], axis=1), "B"), lens or ""]
    if layer.peepholes is not None:
        inputs += ["", "", g.const(layer.peepholes, "P")]
    while inputs[-1] == "":
        inputs.pop()
    y, y_h = g.op(OP_TYPES[layer.cell], inputs, layer.cell, n_out=2, **attrs)
    return y, y_h


def _repeat_last_output(g: GraphWriter, layer, y, y_h, pad):
    """Keras repeats a row's last output over masked steps. With suffix padding that is Y_h for a forward
    direction; a reverse direction meets the padding first, where Keras and ONNX both give zeros."""
    forward = np.array([1.0, 0.0] if layer.n_dirs == 2 else [0.0 if layer.direction == "reverse" else 1.0])
    if not forward.any():
        return y
    fill = g.op("Mul", [g.op("Unsqueeze", [y_h, g.ints([0])]), g.const(forward.reshape(1, -1, 1, 1))])
    return g.op("Where", [g.op("Unsqueeze", [pad, g.ints([1, 3])]), fill, y], "masked_y")


def _dense(g: GraphWriter, stage: DenseStage, x):
    x = g.op("MatMul", [x, g.const(stage.weight.T, "dense_w")], "dense")
    if stage.bias is not None:
        x = g.op("Add", [x, g.const(stage.bias, "dense_b")], "dense")
    if stage.activation == "softmax":
        return g.op("Softmax", [x], "softmax", axis=-1)
    if stage.activation in DENSE_OPS:
        return g.op(DENSE_OPS[stage.activation], [x])
    return x
