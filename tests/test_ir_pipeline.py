"""ONNX models read from the analysed graph IR: as pipelines (rnnfast/graph/to_pipeline.py, importers/onnx/pipeline.py)
and as `rnnfast inspect` / `verify` see them (commands/anatomy.py). tests/test_to_pipeline.py has the exporter glue
forms; here the forms the IR adds (torch.onnx dynamo's), graphs the C executor cannot take (float64, onnxruntime's
quantized LSTM) and the refusals the IR reader words itself."""
import os

import numpy as np
import pytest
from conftest import assert_close, random_layer
from pipeline_builders import run_chain
from onnx import TensorProto, helper, numpy_helper

import rnnfast
from rnnfast.cli import anatomy
from rnnfast.errors import FormatError
from rnnfast.pipeline import RecurrentStage

DATA = os.path.join(os.path.dirname(__file__), "data", "onnx")


def _input(rng, model, p, seq_len=6, batch=3):
    sizes = iter((batch, seq_len) if p.batch_first else (seq_len, batch))
    shape = [d if isinstance(d, int) and d > 0 else next(sizes) for d in model.inputs[0].shape]
    if p.takes_ids:
        return rng.integers(0, p.stages[0].table.shape[0], shape)
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("name", ["bilstm_head.dynamo", "bigru_batch_first.dynamo", "rnn_relu_stacked.ts"])
def test_exporter_forms_the_ir_reads(rng, name):
    """torch.onnx's per-layer state slices and zero-state arithmetic are analysed away: these convert now."""
    model = rnnfast.load(os.path.join(DATA, name + ".onnx"))
    p = model.to_pipeline()
    assert sum(isinstance(s, RecurrentStage) for s in p.stages) == 1
    x = _input(rng, model, p)
    assert_close(run_chain(p, x), model.run(x)[0], what=name)


@pytest.mark.parametrize("variant", ["int8", "int8_per_channel", "int8_reduce_range"])
def test_quantized_lstm_converts_as_its_dequantized_lstm(rng, variant):
    model = rnnfast.load(os.path.join(DATA, f"lstm_quant.{variant}.onnx"))
    assert model.graph.compiled is not None  # the float LSTM on the dequantized weights, in the C executor
    p = model.to_pipeline()
    assert [type(s).__name__ for s in p.stages] == ["RecurrentStage", "DenseStage"]
    x = _input(rng, model, p)
    assert_close(run_chain(p, x), model.run(x)[0], what=variant)


def _chain(nodes, out, cell="lstm", dtype=np.float32, extra=()):
    """x [T, B, 3] -> one forward recurrent node (outputs Y, Y_h, Y_c for an LSTM) -> Squeeze of Y into S -> nodes."""
    rng = np.random.default_rng(0)
    layer = random_layer(rng, cell, "forward", input_size=3, hidden_size=4)
    arrays = [("W", layer.w_ih), ("R", layer.w_hh), ("B", np.concatenate([layer.b_ih, layer.b_hh], 1))]
    inits = [numpy_helper.from_array(a.astype(dtype), n) for n, a in arrays]
    inits += [numpy_helper.from_array(np.array([k], np.int64), f"ax{k}") for k in (0, 1)]
    inits += [numpy_helper.from_array(a, n) for n, a in extra]
    outs = ["Y", "Y_h", "Y_c"] if cell == "lstm" else ["Y", "Y_h"]
    graph = helper.make_graph(
        [helper.make_node(cell.upper(), ["X", "W", "R", "B"], outs, hidden_size=4),
         helper.make_node("Squeeze", ["Y", "ax1"], ["S"])] + nodes, "g",
        [helper.make_tensor_value_info("X", helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), ["T", "N", 3])],
        [helper.make_tensor_value_info(out, TensorProto.UNDEFINED, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]).SerializeToString()


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_graphs_only_the_c_lowering_refuses_still_convert(rng, dtype):
    """float64 / float16 tensors are no C executor's, but the analysis takes them; a chain computes in float32."""
    model = rnnfast.load(_chain([], "S", dtype=dtype))
    assert model.graph.compiled is None
    p = model.to_pipeline()
    x = rng.standard_normal((5, 2, 3)).astype(dtype)
    assert_close(run_chain(p, x), model.run(x)[0].astype(np.float32), what=str(dtype), half=dtype == np.float16)


def test_final_states_in_every_spelling(rng):
    """Y_h to [batch, features] by Squeeze of the direction axis, or by Transpose + Reshape, then a dense head."""
    w = rng.standard_normal((4, 2)).astype(np.float32)
    squeezed = _chain([helper.make_node("Squeeze", ["Y_h", "ax0"], ["h"]),
                       helper.make_node("MatMul", ["h", "w"], ["o"])], "o", cell="gru", extra=[("w", w)])
    reshaped = _chain([helper.make_node("Transpose", ["Y_h"], ["t"], perm=[1, 0, 2]),
                       helper.make_node("Reshape", ["t", "shape"], ["h"]),
                       helper.make_node("Gemm", ["h", "w"], ["g"]), helper.make_node("Sigmoid", ["g"], ["o"])], "o",
                      extra=[("w", w), ("shape", np.array([0, -1], np.int64))])
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    for data, act in ((squeezed, "linear"), (reshaped, "sigmoid")):
        model = rnnfast.load(data)
        p = model.to_pipeline()
        assert not p.stages[0].return_sequences and p.stages[-1].activation == act
        assert_close(run_chain(p, x), model.run(x)[0])


@pytest.mark.parametrize("nodes, out, extra, why", [
    # Before, the cell state was taken for the hidden state: a chain returns h, never c.
    ([helper.make_node("Squeeze", ["Y_c", "ax0"], ["c"])], "c", [],
     r"output 'c' does not fit a chain[^:]*: it is an LSTM's final cell state; a chain returns"),
    ([helper.make_node("MatMul", ["S", "w"], ["m"], name="head"), helper.make_node("LeakyRelu", ["m"], ["o"])], "o",
     [("w", np.ones((4, 2), np.float32))],
     r"node head \(MatMul\) does not fit a chain[^:]*: the LeakyRelu after it \(folded into it\) is not an activation "
     r"of a dense stage"),
    ([helper.make_node("Reshape", ["S", "flat"], ["o"], name="flatten")], "o", [("flat", np.array([-1, 4], np.int64))],
     r"node flatten \(Reshape\) does not fit a chain[^:]*: it makes \['N\*T', 4\] of \['T', 'B', 'D\*P'\], "
     r"which is not "
     r"time, batch and features kept apart"),
    ([helper.make_node("Concat", ["Y_h", "Y_c"], ["o"], axis=0)], "o", [],
     r"output 'o' does not fit a chain[^:]*: it is the final states of several layers"),
])
def test_refusals_worded_by_the_ir_reader(nodes, out, extra, why):
    with pytest.raises(FormatError, match=why):
        rnnfast.load(_chain(nodes, out, extra=extra)).to_pipeline()


def test_inspect_reads_the_ir():
    """Layers as the file stores them: a product's folded bias counts with it, a Linear stack.py folds into the first
    layer is said so, and the recurrent layers are the objects the node-by-node path runs (verify names them)."""
    model = rnnfast.load(os.path.join(DATA, "bilstm_head.ts.onnx"))
    rows = anatomy.layers(model)
    assert [(r.kind, r.parameters) for r in rows] == [("LSTM", 10240), ("MatMul", 64 * 4 + 4)]
    run = [layer for kind, step in model.graph.steps if kind == "recurrent" for layer in [step.layer]]
    assert [r.recurrent for r in rows if r.recurrent is not None] == run and rows[0].recurrent is run[0]
    denoiser = rnnfast.load(os.path.join(DATA, "graph", "denoiser.ts.onnx"))
    rows = anatomy.layers(denoiser)
    first = next(r for r in rows if r.recurrent is not None)
    assert first.weights["W"] == [1, 288, 96] and "Linear before it is folded" in first.detail
    # the folded Linear keeps its row: every parameter the file stores is counted once
    assert [(r.name, r.kind, r.parameters) for r in rows][0] == ("/inp/MatMul", "MatMul", 64 * 96 + 96)
    assert sum(r.parameters for r in rows) == (64 * 96 + 96) + (96 * 64 + 64) + 2 * (2 * 288 * 96 + 576)


def test_token_ids_are_found_through_a_transpose(rng):
    """A batch-first embedding model transposes the ids before the Gather: verify's random ids still fit the table."""
    from pipeline_builders import random_pipeline
    from rnnfast.exporters.onnx import export_onnx

    p = random_pipeline(rng, "gru", embedding="plain", batch_first=True)
    model = rnnfast.load(export_onnx(p).SerializeToString())
    assert anatomy.int_input_range(model, "input", 9) == (0, p.stages[0].table.shape[0])
