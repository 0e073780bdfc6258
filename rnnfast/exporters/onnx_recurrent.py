"""A recurrent stack of the graph IR (graph/stack.py: a "Recurrent" node whose payload is its layers) as ONNX
operators: one RNN / GRU / LSTM node per layer, in the canonical form rnnfast keeps (ONNX's own: W, R, B = [Wb, Rb]
and P written as they are, activations with alpha/beta, clip, input_forget, linear_before_reset as attributes).

- Between layers Y [T, D, B, P] becomes [T, B, D*P]: Squeeze(axis 1) for one direction, Transpose(0, 2, 1, 3) +
  Reshape([0, 0, -1]) for two. The stack's own Y is written in the layout its node says (attribute _y_layout:
  [T, D, B, P] as ONNX has it, or [T, B, D, P] / [T, B, D*P]).
- Initial states [L*D, B, H] are sliced per layer (rows k*D to (k+1)*D); the stack's final states are the layers'
  Y_h / Y_c concatenated on axis 0, as PyTorch stacks them.
- What those operators cannot say is written as a Scan of standard operators (exporters/onnx_scan.py): an LSTM with
  projection, an activation outside their list (Keras' selu, swish, gelu, exponential), sequence_lens on such a
  layer, and Keras masks.

Keras masks (a bool [T, B] input of the stack): ONNX recurrent nodes have no per-step mask, only sequence_lens, which
equals the mask only when every row's padding is at its end. By default a masked stack is written as Scans that
apply the mask step by step, exactly as Keras and rnnfast do (state kept over a masked step, the last output repeated
or zeros). `assume_suffix_padding=True` writes the RNN / GRU / LSTM operators instead (one node per layer), with
sequence_lens = the number of unmasked steps per row; where Keras repeats a row's last output over its padding
(zero_output_for_mask False) the forward directions' Y is filled with Y_h there (Where). A mask with a gap before a
row's end then gives a different answer than the source model: the flag is the caller's promise. A row of padding
only has length 0, where onnxruntime's recurrent kernels are unreliable (garbage or an abort, see the ONNX importer's
notes); rnnfast gives zeros."""
from __future__ import annotations

import numpy as np

from ..graph.stack import SEQ_DIR_BATCH
from ..importers.onnx.recurrent import DEFAULT_ALPHA, DEFAULT_BETA
from ._onnx_graph import GraphWriter
from .onnx_scan import needs_scan, scan_layer

OP_TYPES = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}


def write_stack(w, node):
    """The IR node `node` (op "Recurrent") into w.g, its outputs under their IR names."""
    g = w.g
    layers = [layer.spec.build_layer(*layer.weights) for layer in node.payload]
    arg = lambda k: w.name(node.inputs[k]) if k < len(node.inputs) and node.inputs[k] else ""
    x, lens, h0, c0, mask = (arg(k) for k in range(5))
    zero_output = bool(node.attrs.get("_mask_zero_output", 0))
    suffix = bool(mask) and w.assume_suffix_padding and not lens
    scanned = any(needs_scan(layer) for layer in layers) or (bool(mask) and not suffix)
    # The layers written as Scan take which steps run (real) and which lie past sequence_lens (pad), [T, B, 1] bool;
    # with none written as Scan neither is made (a graph without unused nodes)
    real = g.op("Unsqueeze", [mask, g.ints([2])], "real") if mask and scanned else None
    pad = _past_lens(g, x, lens) if lens and scanned else None
    if pad is not None:
        real = g.op("And", [real, g.op("Not", [pad])], "real") if mask else g.op("Not", [pad], "real")
    scan_lens = lens
    if suffix:  # the caller's promise: each row's padding is at its end, so for the operators the mask is a length
        lens = g.op("ReduceSum", [g.op("Cast", [mask], to=_onnx_type(np.int32)), g.ints([0])], "sequence_lens",
                    keepdims=0)
    hs, cs, n = [], [], len(layers)
    for k, layer in enumerate(layers):
        d = layer.n_dirs
        h0k = _rows(g, h0, k * d, (k + 1) * d) if h0 and n > 1 else h0
        c0k = _rows(g, c0, k * d, (k + 1) * d) if c0 and n > 1 else c0
        if needs_scan(layer) or (mask and not suffix):
            y, y_h, y_c = scan_layer(g, layer, x, real, pad, scan_lens, h0k, c0k, zero_output or not mask)
        else:
            y, y_h, y_c = recurrent_node(g, layer, x, lens, h0k, c0k)
        hs.append(y_h)
        cs.append(y_c)
        if k < n - 1:
            x = join_directions(g, d, y)
        elif suffix and not zero_output and not needs_scan(layer) and node.outputs[0]:  # Y is written
            y = _repeat_last_output(g, layer, y, y_h, g.op("Not", [mask], "padding"))
    out = node.outputs
    if out[0]:
        if node.attrs.get("_y_layout", SEQ_DIR_BATCH) == SEQ_DIR_BATCH:
            g.emit("Identity", [y], [out[0]])
        elif len(w.graph.values[out[0]].shape) == 3:
            g.emit("Identity", [join_directions(g, layers[-1].n_dirs, y)], [out[0]])
        else:
            g.emit("Transpose", [y], [out[0]], perm=[0, 2, 1, 3])
    for k, parts in ((1, hs), (2, cs)):
        if k < len(out) and out[k]:
            if len(parts) == 1:
                g.emit("Identity", parts, [out[k]])
            else:
                g.emit("Concat", parts, [out[k]], axis=0)


def _past_lens(g: GraphWriter, x, lens):
    """bool [T, B, 1]: step t of row b lies at or past sequence_lens[b]."""
    steps = g.op("Cast", [g.op("Slice", [g.op("Shape", [x]), g.ints([0]), g.ints([1])])], to=_onnx_type(np.int32))
    t = g.op("Range", [g.const(0, "zero", np.int32), g.op("Squeeze", [steps, g.ints([0])]),
                       g.const(1, "one", np.int32)], "t")
    past = g.op("GreaterOrEqual", [g.op("Unsqueeze", [t, g.ints([1])]), g.op("Unsqueeze", [lens, g.ints([0])])])
    return g.op("Unsqueeze", [past, g.ints([2])], "pad")


def _onnx_type(dtype) -> int:
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _rows(g: GraphWriter, x, start, end):
    return g.op("Slice", [x, g.ints([start]), g.ints([end]), g.ints([0])], "layer_state")


def join_directions(g: GraphWriter, n_dirs: int, y):
    """Y [T, D, B, P] -> [T, B, D*P]."""
    if n_dirs == 1:
        return g.op("Squeeze", [y, g.ints([1])], "sequence")
    return g.op("Reshape", [g.op("Transpose", [y], perm=[0, 2, 1, 3]), g.ints([0, 0, -1])], "sequence")


def recurrent_node(g: GraphWriter, layer, x, lens, h0="", c0=""):
    """One ONNX RNN / GRU / LSTM node: (Y, Y_h, Y_c) names (Y_c None but for an LSTM)."""
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
              g.const(np.concatenate([layer.b_ih, layer.b_hh], axis=1), "B"), lens or "", h0 or ""]
    if layer.cell == "lstm":
        inputs.append(c0 or "")
        if layer.peepholes is not None:
            inputs.append(g.const(layer.peepholes, "P"))
    while inputs[-1] == "":
        inputs.pop()
    outs = g.op(OP_TYPES[layer.cell], inputs, layer.cell, n_out=3 if layer.cell == "lstm" else 2, **attrs)
    return (outs[0], outs[1], outs[2] if layer.cell == "lstm" else None)


def _repeat_last_output(g: GraphWriter, layer, y, y_h, pad):
    """Keras repeats a row's last output over masked steps. With suffix padding that is Y_h for a forward
    direction; a reverse direction meets the padding first, where Keras and ONNX both give zeros."""
    forward = np.array([1.0, 0.0] if layer.n_dirs == 2 else [0.0 if layer.direction == "reverse" else 1.0])
    if not forward.any():
        return y
    fill = g.op("Mul", [g.op("Unsqueeze", [y_h, g.ints([0])]), g.const(forward.reshape(1, -1, 1, 1))])
    return g.op("Where", [g.op("Unsqueeze", [pad, g.ints([1, 3])]), fill, y], "masked_y")
