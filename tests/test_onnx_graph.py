"""Graphs around recurrent nodes as exporters write them (glue ops, zero initial states computed from the input's
shape, weights fed at run time), against onnxruntime, at two batch sizes and sequence lengths each."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import rnnfast
from conftest import assert_close
from onnx_builders import recurrent_model

from rnnfast.layers import N_GATES

H, I = 4, 3


def ort_run(data, feeds):
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)


def f32(rng, *shape):
    return rng.uniform(-0.6, 0.6, shape).astype(np.float32)


def model_bytes(nodes, inits, outputs, opset, x_shape=("T", "B", I)):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x_shape))],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()


def check_against_onnxruntime(data, rng, sizes=((5, 1), (3, 4)), batch_first=False):
    model = rnnfast.load(data)
    for T, B in sizes:
        x = f32(rng, B, T, I) if batch_first else f32(rng, T, B, I)
        got, want = model.run(x), ort_run(data, {"X": x})
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_close(g, w, what=f"T={T} B={B}")


def batch_size_nodes(opset):
    """[B] from X's shape as torch's exporters compute it: Shape -> Gather(1) -> Unsqueeze, or Shape(start, end)."""
    if opset >= 15:
        return [helper.make_node("Shape", ["X"], ["batch"], start=1, end=2)], []
    axes = numpy_helper.from_array(np.array([0], np.int64), "axes0")
    unsqueeze = (helper.make_node("Unsqueeze", ["b_scalar", "axes0"], ["batch"]) if opset >= 13
                 else helper.make_node("Unsqueeze", ["b_scalar"], ["batch"], axes=[0]))
    return [helper.make_node("Shape", ["X"], ["shape"]),
            helper.make_node("Gather", ["shape", "one"], ["b_scalar"], axis=0), unsqueeze], \
        [numpy_helper.from_array(np.array(1, np.int64), "one")] + ([axes] if opset >= 13 else [])


@pytest.mark.parametrize("opset", [11, 13, 15])
@pytest.mark.parametrize("fill", ["Expand", "ConstantOfShape"])
def test_zero_initial_state_from_the_input_shape(opset, fill):
    """torch.onnx.export without h0/c0: initial_h = Expand(0, Concat([D], [B], [H])) (or ConstantOfShape)."""
    rng = np.random.default_rng(1)
    D = 2
    nodes, inits = batch_size_nodes(opset)
    inits += [numpy_helper.from_array(a, n) for n, a in [
        ("W", f32(rng, D, 4 * H, I)), ("R", f32(rng, D, 4 * H, H)), ("B", f32(rng, D, 8 * H)),
        ("dirs", np.array([D], np.int64)), ("hidden", np.array([H], np.int64))]]
    nodes.append(helper.make_node("Concat", ["dirs", "batch", "hidden"], ["state_shape"], axis=0))
    if fill == "Expand":
        nodes.append(helper.make_node("Constant", [], ["zero"], value_float=0.0))
        nodes.append(helper.make_node("Expand", ["zero", "state_shape"], ["h0"]))
    else:
        nodes.append(helper.make_node("ConstantOfShape", ["state_shape"], ["h0"],
                                      value=numpy_helper.from_array(np.zeros(1, np.float32))))
    nodes.append(helper.make_node("Identity", ["h0"], ["c0"]))
    nodes.append(helper.make_node("LSTM", ["X", "W", "R", "B", "", "h0", "c0"], ["Y", "Y_h", "Y_c"],
                                  hidden_size=H, direction="bidirectional"))
    check_against_onnxruntime(model_bytes(nodes, inits, ["Y", "Y_h", "Y_c"], opset), rng)


@pytest.mark.parametrize("opset", [11, 13])
def test_stacked_layers_joined_by_squeeze_and_batch_first_transposes(opset):
    """batch_first GRU -> RNN as the TorchScript exporter writes it: Transpose in, Squeeze(axis 1) between layers
    (attribute axes before opset 13, an input from 13), Transpose out, a Cast and a Slice on the way."""
    rng = np.random.default_rng(2)
    inits = [numpy_helper.from_array(a, n) for n, a in [
        ("W0", f32(rng, 1, 3 * H, I)), ("R0", f32(rng, 1, 3 * H, H)), ("B0", f32(rng, 1, 6 * H)),
        ("W1", f32(rng, 1, H, H)), ("R1", f32(rng, 1, H, H)), ("B1", f32(rng, 1, 2 * H)),
        ("axis1", np.array([1], np.int64)), ("s0", np.array([1], np.int64)), ("s1", np.array([3], np.int64)),
        ("s2", np.array([2], np.int64))]]
    squeeze = lambda src, dst: (helper.make_node("Squeeze", [src, "axis1"], [dst]) if opset >= 13
                                else helper.make_node("Squeeze", [src], [dst], axes=[1]))
    nodes = [
        helper.make_node("Transpose", ["X"], ["Xt"], perm=[1, 0, 2]),
        helper.make_node("GRU", ["Xt", "W0", "R0", "B0"], ["Y0"], hidden_size=H, linear_before_reset=1),
        squeeze("Y0", "X1"),
        helper.make_node("Cast", ["X1"], ["X1f"], to=TensorProto.FLOAT),
        helper.make_node("RNN", ["X1f", "W1", "R1", "B1"], ["Y1", "H1"], hidden_size=H, activations=["Relu"]),
        squeeze("Y1", "Y1s"),
        helper.make_node("Transpose", ["Y1s"], ["out"], perm=[1, 0, 2]),
        helper.make_node("Slice", ["out", "s0", "s1", "s2"], ["features"]),  # features 1..2 of the last axis
    ]
    data = model_bytes(nodes, inits, ["out", "H1", "features"], opset, x_shape=("B", "T", I))
    check_against_onnxruntime(data, rng, batch_first=True)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_weights_fed_at_run_time(cell):
    """W, R, B (and P) as graph inputs: the layer is built per run from what is fed."""
    rng = np.random.default_rng(3)
    G, D = N_GATES[cell], 2
    for run in range(2):
        inputs = [f32(rng, 5, 2, I), f32(rng, D, G * H, I), f32(rng, D, G * H, H), f32(rng, D, 2 * G * H),
                  np.array([5, 3], np.int32), f32(rng, D, 2, H)]
        if cell == "lstm":
            inputs += [f32(rng, D, 2, H), f32(rng, D, 3 * H)]
        data, feeds = recurrent_model(cell, {"hidden_size": H, "direction": "bidirectional"}, inputs,
                                      3 if cell == "lstm" else 2, constant=())
        assert set(feeds) >= {"W", "R", "B"}
        for g, w in zip(rnnfast.load(data).run(feeds), ort_run(data, feeds)):
            assert_close(g, w, what=f"run {run}")


def test_inference_session_accepts_onnxruntime_arguments():
    """Code written for onnxruntime passes providers / sess_options; the session takes them and runs the same."""
    rng = np.random.default_rng(4)
    arrays = [f32(rng, 4, 3, I), f32(rng, 1, 4 * H, I), f32(rng, 1, 4 * H, H)]
    data, feeds = recurrent_model("lstm", {"hidden_size": H}, arrays, 3)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    sess = rnnfast.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    want = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape, i.type) for i in sess.get_inputs()] == \
        [(i.name, i.shape, i.type) for i in want.get_inputs()]
    assert [o.name for o in sess.get_outputs()] == [o.name for o in want.get_outputs()]
    for names in (None, ["Y_c", "Y"]):
        got, expected = sess.run(names, feeds), want.run(names, feeds)
        assert len(got) == len(expected)
        for g, w in zip(got, expected):
            assert_close(g, w)
