"""Operators around recurrent layers (rnnfast/importers/onnx/ops.py) against onnxruntime, one node at a time,
plus a whole Embedding -> LSTM -> Gemm -> Softmax classifier graph."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import rnnfast
from conftest import assert_close

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4, 5)).astype(np.float32)
POS = np.abs(X) + 0.1
M = RNG.standard_normal((5, 6)).astype(np.float32)
C6 = RNG.standard_normal((6,)).astype(np.float32)
CT_W = RNG.standard_normal((4, 6, 3)).astype(np.float32)  # ConvTranspose weight [C_in, C_out / group, K]

CASES = [  # op, inputs, attributes, opset
    ("MatMul", [X, M], {}, 13), ("Add", [X, X[0]], {}, 13), ("Sub", [X, X], {}, 13), ("Mul", [X, X], {}, 13),
    ("Div", [X, POS], {}, 13), ("Pow", [POS, np.float32(1.7)], {}, 13), ("Sqrt", [POS], {}, 13),
    ("Neg", [X], {}, 13), ("Abs", [X], {}, 13), ("Exp", [X], {}, 13), ("Log", [POS], {}, 13), ("Relu", [X], {}, 13),
    ("LeakyRelu", [X], {"alpha": 0.2}, 13), ("Sigmoid", [X], {}, 13), ("Tanh", [X], {}, 13), ("Erf", [X], {}, 13),
    ("Softmax", [X], {}, 13), ("Softmax", [X], {"axis": 1}, 13), ("Softmax", [X], {}, 11), ("LogSoftmax", [X], {}, 13),
    ("LogSoftmax", [X], {"axis": 1}, 11), ("Clip", [X, np.float32(-0.5), np.float32(0.7)], {}, 13),
    ("Clip", [X], {"min": -0.3, "max": 0.4}, 6), ("Flatten", [X], {"axis": 2}, 13), ("Dropout", [X], {}, 13),
    ("Gemm", [X[0], M, C6], {"alpha": 0.5, "beta": 2.0}, 13),
    ("ReduceMean", [X], {"axes": [1]}, 13), ("ReduceSum", [X, np.array([2], np.int64)], {"keepdims": 0}, 13),
    ("ReduceMax", [X], {}, 13), ("ReduceMean", [X, np.array([0, 2], np.int64)], {}, 18),
    ("LayerNormalization", [X, C6[:5], C6[1:]], {"epsilon": 1e-3}, 17),
    ("BatchNormalization", [X, C6[:4] + 2, C6[1:5], C6[2:6], np.abs(C6[:4]) + 0.5], {}, 15),
    ("Where", [X, X * 2, -X], {}, 13),
    ("Pad", [X, np.array([0, 1, 2, 0, 0, 1], np.int64), np.float32(0.5)], {}, 13),
    ("Pad", [X, np.array([0, 0, 2, 0, 0, 1], np.int64)], {"mode": "reflect"}, 13),
    ("Pad", [X], {"pads": [0, 1, 0, 0, 2, 0], "mode": "edge"}, 2),
    ("Conv", [X, RNG.standard_normal((6, 4, 3)).astype(np.float32), C6], {"pads": [1, 1]}, 13),
    ("Conv", [X, RNG.standard_normal((4, 2, 2)).astype(np.float32)], {"group": 2, "strides": [2], "dilations": [2]}, 13), ("Gemm", [M, X[0], C6[:4]], {"transA": 1, "transB": 1}, 13),
    ("Gelu", [X], {}, 20), ("Gelu", [X], {"approximate": "tanh"}, 20),
    ("ConvTranspose", [X, CT_W, C6], {"strides": [3], "pads": [1, 2], "output_padding": [2]}, 13),
    ("ConvTranspose", [X, CT_W[:, :3]], {"group": 2, "dilations": [2], "strides": [2]}, 13),
    ("ConvTranspose", [X, CT_W, C6], {"auto_pad": "SAME_UPPER", "strides": [2]}, 13),
    ("ConvTranspose", [X, CT_W], {"auto_pad": "SAME_LOWER", "strides": [2], "dilations": [2]}, 13),
    ("ConvTranspose", [X, CT_W], {"auto_pad": "VALID", "strides": [2], "output_padding": [1]}, 13),
    ("ConvTranspose", [X, CT_W], {"output_shape": [12], "strides": [3], "kernel_shape": [3]}, 13),
    ("ConvTranspose", [X, CT_W], {"output_shape": [12], "strides": [3], "auto_pad": "SAME_UPPER"}, 13),
]


def single_node(op, inputs, attrs, opset):
    if op == "Where":  # the condition comes from Equal/Not on the float input, so those are exercised too
        nodes = [helper.make_node("Equal", ["in0", "a"], ["eq"]), helper.make_node("Not", ["eq"], ["cond"]),
                 helper.make_node("Where", ["cond", "a", "b"], ["out"])]
        graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("in0", TensorProto.FLOAT, inputs[0].shape)],
                                  [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
                                  [numpy_helper.from_array(inputs[1], "a"), numpy_helper.from_array(inputs[2], "b")])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()
    names = [f"in{i}" for i in range(len(inputs))]
    graph = helper.make_graph(
        [helper.make_node(op, names, ["out"], **attrs)], "g",
        [helper.make_tensor_value_info(names[0], TensorProto.FLOAT, inputs[0].shape)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in zip(names[1:], inputs[1:])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()


@pytest.mark.parametrize("op,inputs,attrs,opset", CASES, ids=[f"{c[0]}-{c[3]}-{sorted(c[2])}" for c in CASES])
def test_operator_matches_onnxruntime(op, inputs, attrs, opset):
    data = single_node(op, inputs, attrs, opset)
    want = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"in0": inputs[0]})
    got = rnnfast.load(data).run(inputs[0])
    assert_close(got[0], want[0], what=op)


def test_embedding_lstm_dense_softmax_classifier():
    """What a text classifier exported to ONNX looks like: Gather (embedding) -> LSTM -> last step -> Gemm ->
    Softmax, with the batch and sequence axes dynamic."""
    rng = np.random.default_rng(1)
    V, E, H, K = 20, 6, 8, 3
    f = lambda *s: rng.uniform(-0.5, 0.5, s).astype(np.float32)
    inits = {"emb": f(V, E), "W": f(1, 4 * H, E), "R": f(1, 4 * H, H), "B": f(1, 8 * H), "fc_w": f(K, H),
             "fc_b": f(K), "axes0": np.array([0], np.int64)}
    nodes = [
        helper.make_node("Gather", ["emb", "ids"], ["x"]),
        helper.make_node("LSTM", ["x", "W", "R", "B"], ["", "h"], hidden_size=H),
        helper.make_node("Squeeze", ["h", "axes0"], ["h2"]),
        helper.make_node("Gemm", ["h2", "fc_w", "fc_b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"]),
    ]
    graph = helper.make_graph(nodes, "clf", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["T", "B"])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    model = rnnfast.load(data)
    for T, B in [(7, 2), (3, 5)]:
        ids = rng.integers(0, V, (T, B)).astype(np.int64)
        assert_close(model.run(ids)[0], sess.run(None, {"ids": ids})[0])


def test_split_into_parts():
    graph = helper.make_graph(
        [helper.make_node("Split", ["in0", "sizes"], ["a", "b"], axis=2)], "g",
        [helper.make_tensor_value_info("in0", TensorProto.FLOAT, X.shape)],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in "ab"],
        [numpy_helper.from_array(np.array([2, 3], np.int64), "sizes")])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()
    want = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"in0": X})
    for g, w in zip(rnnfast.load(data).run(X), want):
        assert_close(g, w)


def test_if_with_a_recurrent_layer_in_a_branch():
    """An LSTM inside If's then-branch, a plain transform in the else-branch; the branch reads outer names."""
    rng = np.random.default_rng(3)
    H, I = 4, 3
    f = lambda *s: rng.uniform(-0.5, 0.5, s).astype(np.float32)
    then_graph = helper.make_graph(
        [helper.make_node("LSTM", ["x", "W", "R"], ["", "h"], hidden_size=H)], "then", [],
        [helper.make_tensor_value_info("h", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(f(1, 4 * H, I), "W"), numpy_helper.from_array(f(1, 4 * H, H), "R")])
    else_graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["m"], axes=[0]), helper.make_node("Tanh", ["m"], ["t"]),
         helper.make_node("MatMul", ["t", "P"], ["h2"])], "else", [],
        [helper.make_tensor_value_info("h2", TensorProto.FLOAT, None)], [numpy_helper.from_array(f(I, H), "P")])
    graph = helper.make_graph(
        [helper.make_node("If", ["flag"], ["out"], then_branch=then_graph, else_branch=else_graph)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", 2, I]),
         helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    model = rnnfast.load(data)
    x = f(5, 2, I)
    for flag in (True, False):
        feeds = {"x": x, "flag": np.array(flag)}
        want = sess.run(None, feeds)[0]
        got = model.run(feeds)[0]
        assert got.shape == want.shape
        assert_close(got, want)
