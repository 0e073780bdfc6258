"""The analysis itself: what it folds, fuses and turns into views shows in the C nodes it hands the executor, and the
results stay onnxruntime's. Each case counts the C nodes of one op kind, so a fusion that stops applying fails."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import rnnfast
from conftest import assert_close
from rnnfast.graph.compile import OP_NAMES as NAMES


def build(nodes, inputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model.SerializeToString()


def c_ops(model) -> list:
    return [NAMES[n[0]] for n in model.graph.compiled.desc["nodes"]]


def agrees(data, feeds):
    got = rnnfast.load(data).run(feeds)
    want = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)
    for g, w in zip(got, want):
        assert_close(g, w)


def const(rng, name, shape):
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def test_conv_batchnorm_relu_is_one_conv_node():
    rng = np.random.default_rng(0)
    inits = [const(rng, "w", (6, 4, 3)), const(rng, "b", (6,)), const(rng, "s", (6,)), const(rng, "t", (6,)),
             const(rng, "m", (6,)), numpy_helper.from_array(rng.uniform(0.5, 2, 6).astype(np.float32), "v")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1]),
             helper.make_node("BatchNormalization", ["c", "s", "t", "m", "v"], ["n"]),
             helper.make_node("Relu", ["n"], ["y"])]
    data = build(nodes, [("x", ["batch", 4, "time"])], inits)
    assert c_ops(rnnfast.load(data)) == ["CONV"]
    agrees(data, {"x": rng.standard_normal((2, 4, 9)).astype(np.float32)})


def test_matmul_bias_sigmoid_is_one_matmul_node():
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Sigmoid", ["a"], ["y"])]
    data = build(nodes, [("x", ["batch", "time", 8])], [const(rng, "w", (8, 5)), const(rng, "b", (5,))])
    assert c_ops(rnnfast.load(data)) == ["MATMUL"]
    agrees(data, {"x": rng.standard_normal((2, 3, 8)).astype(np.float32)})


def test_two_transposes_are_one_and_a_transpose_of_unit_axes_is_a_view():
    rng = np.random.default_rng(2)
    nodes = [helper.make_node("Transpose", ["x"], ["t1"], perm=[1, 0, 2]),
             helper.make_node("Transpose", ["t1"], ["t2"], perm=[0, 2, 1]),
             helper.make_node("Transpose", ["t2"], ["t3"], perm=[1, 0, 2]),  # [time, 1, ...] -> [1, time, ...]
             helper.make_node("Relu", ["t3"], ["y"])]
    data = build(nodes, [("x", [1, "time", 6])])
    ops = c_ops(rnnfast.load(data))
    assert ops.count("TRANSPOSE") == 1 and ops.count("UNARY") == 1, ops
    agrees(data, {"x": rng.standard_normal((1, 5, 6)).astype(np.float32)})


def test_transpose_reshape_transpose_is_one_transpose_when_the_reshape_only_merges_axes():
    """A CRNN's [B, C, F, T] -> [B, T, C, F] -> [B, T, C*F] -> [T, B, C*F] is one Transpose and a view, and so is
    any reshape that merges neighbouring axes (the outer Transpose moves a merged axis as a whole); a reshape that
    splits an axis keeps both Transposes. The results stay onnxruntime's either way."""
    rng = np.random.default_rng(4)
    i64 = lambda name, v: numpy_helper.from_array(np.array(v, np.int64), name)

    def model(shape, perm2):
        nodes = [helper.make_node("Transpose", ["x"], ["t1"], perm=[0, 3, 1, 2]),
                 helper.make_node("Reshape", ["t1", "shape"], ["r"]),
                 helper.make_node("Transpose", ["r"], ["t2"], perm=perm2), helper.make_node("Relu", ["t2"], ["y"])]
        return build(nodes, [("x", ["batch", 4, 5, "time"])], [i64("shape", shape)])

    x = rng.standard_normal((2, 4, 5, 7)).astype(np.float32)
    for shape, perm2, transposes in (([0, 0, 20], [1, 0, 2], 1), ([0, -1, 5], [1, 0, 2], 1),
                                     ([0, 0, 2, 10], [0, 2, 1, 3], 2)):
        data = model(shape, perm2)
        assert c_ops(rnnfast.load(data)).count("TRANSPOSE") == transposes, (shape, perm2)
        agrees(data, {"x": x})


def test_a_transpose_before_a_narrowing_matmul_moves_after_it():
    """Transpose (last axis kept) -> MatMul by a constant [K, N] -> Add -> Sigmoid runs the MatMul (bias and
    activation folded) on the untransposed rows and transposes its N-wide result, when N <= K; a widening MatMul
    keeps the Transpose before it. The results stay onnxruntime's."""
    rng = np.random.default_rng(5)
    for n, order in ((3, ["MATMUL", "TRANSPOSE"]), (9, ["TRANSPOSE", "MATMUL"])):
        nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0, 2]),
                 helper.make_node("MatMul", ["t", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
                 helper.make_node("Sigmoid", ["a"], ["y"])]
        data = build(nodes, [("x", ["time", "batch", 6])], [const(rng, "w", (6, n)), const(rng, "b", (n,))])
        assert c_ops(rnnfast.load(data)) == order, n
        agrees(data, {"x": rng.standard_normal((5, 2, 6)).astype(np.float32)})


def test_shape_arithmetic_is_folded_away():
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as torch exporters write a flatten: no C node computes
    sizes; the Reshape is a view, so only the Relu runs."""
    rng = np.random.default_rng(3)
    i64 = lambda name, v: numpy_helper.from_array(np.array(v, np.int64), name)
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
             helper.make_node("Unsqueeze", ["b", "axes"], ["b1"]),
             helper.make_node("Concat", ["b1", "minus1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["r"]), helper.make_node("Relu", ["r"], ["y"])]
    data = build(nodes, [("x", ["batch", 3, 4])], [i64("zero", 0), i64("axes", [0]), i64("minus1", [-1])])
    assert c_ops(rnnfast.load(data)) == ["UNARY"]
    agrees(data, {"x": rng.standard_normal((2, 3, 4)).astype(np.float32)})


def test_an_if_on_a_constant_is_resolved_at_load():
    then_g = helper.make_graph([helper.make_node("Relu", ["x"], ["o"])], "then", [],
                               [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["o"])], "else", [],
                               [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)])
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)]
    data = build(nodes, [("x", ["n"])], [numpy_helper.from_array(np.array(False), "c")])
    assert c_ops(rnnfast.load(data)) == ["UNARY"]  # the Neg alone; no If node runs
    agrees(data, {"x": np.array([-1.0, 2.0], np.float32)})
