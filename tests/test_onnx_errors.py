"""Bad ONNX input gets a named error, never a crash or a silent wrong answer."""
import numpy as np
import pytest
from onnx import TensorProto, helper

import rnnfast
from onnx_builders import recurrent_model


def lstm(attrs=None, **shapes):
    rng = np.random.default_rng(0)
    H = 4
    s = {"X": (5, 2, 3), "W": (1, 4 * H, 3), "R": (1, 4 * H, H), "B": (1, 8 * H)} | shapes
    inputs = [None if s[k] is None else rng.standard_normal(s[k]).astype(np.float32) for k in ("X", "W", "R", "B")]
    return recurrent_model("lstm", {"hidden_size": H} | (attrs or {}), inputs, 3)


def test_truncated_file_names_the_file(tmp_path):
    data, _ = lstm()
    path = tmp_path / "model.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(rnnfast.FormatError, match="model.onnx"):
        rnnfast.load(path)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(rnnfast.FormatError, match="nope.onnx"):
        rnnfast.load(tmp_path / "nope.onnx")


@pytest.mark.parametrize("key,shape,match", [("W", (1, 12, 3), "input W has shape \\(1, 12, 3\\), expected \\(1, 16, 3\\)"),
                                             ("R", (1, 16, 5), "input R has shape"),
                                             ("B", (1, 7), "input B has shape \\(1, 7\\), expected \\(1, 32\\)")])
def test_weights_of_the_wrong_shape(key, shape, match):
    data, _ = lstm(**{key: shape})
    with pytest.raises(rnnfast.FormatError, match=match):
        rnnfast.load(data)


def test_missing_weight_is_refused():
    data, _ = lstm(W=None)
    with pytest.raises(rnnfast.FormatError, match="inputs X, W and R are required"):
        rnnfast.load(data)


@pytest.mark.parametrize("attrs,match", [({"activations": ["Sigmoid", "Tanh", "Swoosh"]}, "unknown activation 'Swoosh'"),
                                         ({"activations": ["Sigmoid", "Tanh"]}, "needs 3"),
                                         ({"direction": "sideways"}, "direction 'sideways'"),
                                         ({"layout": 2}, "layout 2"),
                                         ({"frobnicate": 1}, "attribute 'frobnicate'"),
                                         ({"clip": -1.0}, "clip must be positive")])
def test_bad_attributes_are_named(attrs, match):
    data, _ = lstm(attrs)
    with pytest.raises(rnnfast.FormatError, match=match):
        rnnfast.load(data)


def test_unsupported_operator_is_named():
    node = helper.make_node("Gru2000", ["X"], ["Y"], name="mystery")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1])])
    data = helper.make_model(graph).SerializeToString()
    with pytest.raises(rnnfast.FormatError, match="node mystery.*'Gru2000'"):
        rnnfast.load(data)


def test_sequence_lens_out_of_range_names_node_and_range():
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(s).astype(np.float32) for s in [(5, 2, 3), (1, 12, 3), (1, 12, 4), (1, 24)]]
    data, feeds = recurrent_model("gru", {"hidden_size": 4}, inputs + [np.array([2, 6], np.int32)], 2)
    with pytest.raises(ValueError, match="GRU.*sequence_lens values must lie in \\[0, 5\\]"):
        rnnfast.load(data).run(feeds)


@pytest.mark.parametrize("x,match", [(np.zeros((5, 3), np.float32), "has 2 dimensions, expected 3"),
                                     (np.zeros((5, 2, 4), np.float32), "size 4 on axis 2, expected 3"),
                                     (np.zeros((5, 2, 3), np.int64), "dtype int64, expected tensor\\(float\\)")])
def test_bad_x_is_named(x, match):
    data, _ = lstm()
    model = rnnfast.load(data)
    with pytest.raises(ValueError, match=match):
        model.run({"X": x})


def test_inference_session_convention():
    data, feeds = lstm()
    sess = rnnfast.InferenceSession(data)
    assert [i.name for i in sess.get_inputs()] == ["X"]
    assert [o.name for o in sess.get_outputs()] == ["Y", "Y_h", "Y_c"]
    x = np.random.default_rng(1).standard_normal((5, 2, 3)).astype(np.float32)
    y_h, = sess.run(["Y_h"], {"X": x})
    assert np.array_equal(y_h, sess.run(None, {"X": x})[1])
    with pytest.raises(ValueError, match="unknown output name"):
        sess.run(["nope"], {"X": x})
    with pytest.raises(ValueError, match="missing input 'X'"):
        sess.run(None, {})
