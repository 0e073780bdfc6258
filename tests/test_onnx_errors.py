"""Bad ONNX input gets a named error, never a crash or a silent wrong answer."""
import numpy as np
import pytest
import onnx
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
    with pytest.raises(ValueError, match="GRU.*sequence_lens values must lie in \\[0, 0\\]"):
        rnnfast.load(data).run(feeds | {"X": feeds["X"][:0], "sequence_lens": np.array([0, 1], np.int32)})


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


def test_garbage_file_names_the_file(tmp_path):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8)))
    with pytest.raises(rnnfast.FormatError, match="garbage.onnx"):
        rnnfast.load(path)


def test_damaged_files_never_crash():
    """Every truncation and a few hundred seeded byte changes of a small model: loading and running either
    work or raise FormatError / ValueError, never another exception."""
    rng = np.random.default_rng(5)
    inputs = [rng.standard_normal(s).astype(np.float32) for s in [(4, 2, 3), (2, 12, 3), (2, 12, 3), (2, 24)]]
    inputs += [np.array([4, 2], np.int32), np.zeros((2, 2, 3), np.float32), np.zeros((2, 2, 3), np.float32),
               rng.standard_normal((2, 9)).astype(np.float32)]
    data, feeds = recurrent_model("lstm", {"hidden_size": 3, "direction": "bidirectional"}, inputs, 3)
    damaged = [data[:cut] for cut in range(0, len(data), 7)]
    for _ in range(300):
        d = bytearray(data)
        for pos in rng.integers(0, len(d), rng.integers(1, 4)):
            d[pos] = rng.integers(0, 256)
        damaged.append(bytes(d))
    for d in damaged:
        try:
            rnnfast.load(d).run(feeds)
        except ValueError:  # FormatError is one
            pass


def test_truncation_that_drops_the_opset_import_is_refused():
    data, _ = lstm()
    proto = onnx.load_from_string(data)
    del proto.opset_import[:]
    with pytest.raises(rnnfast.FormatError, match="imports no opset"):
        rnnfast.load(proto.SerializeToString())


def test_tensor_whose_bytes_do_not_match_its_shape_names_the_initializer():
    data, _ = lstm()
    proto = onnx.load_from_string(data)
    init = next(t for t in proto.graph.initializer if t.name == "R")
    init.raw_data = init.raw_data[:-8]
    with pytest.raises(rnnfast.FormatError, match="initializer 'R'.*cannot decode"):
        rnnfast.load(proto.SerializeToString())


def test_peepholes_of_the_wrong_shape():
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(s).astype(np.float32) for s in [(5, 2, 3), (1, 16, 3), (1, 16, 4), (1, 32)]]
    data, _ = recurrent_model("lstm", {"hidden_size": 4}, inputs + [None, None, None, np.zeros((1, 8), np.float32)], 3)
    with pytest.raises(rnnfast.FormatError, match="input P has shape \\(1, 8\\), expected \\(1, 12\\)"):
        rnnfast.load(data)


@pytest.mark.parametrize("attrs,opset,match", [
    ({"output_sequence": 1}, 7, "attribute 'output_sequence' is not part of LSTM \\(opset 7\\)"),
    ({"layout": 0}, 7, "attribute 'layout' is not part of LSTM \\(opset 7\\)"),
    ({"output_sequence": 2}, 1, "output_sequence 2; expected 0 or 1"),
    ({"hidden_size": 4.0}, 14, "attribute 'hidden_size' has type FLOAT, expected INT"),
    ({"hidden_size": 0}, 14, "hidden_size 0; expected a positive integer"),
    ({"direction": b"\xff\xfe"}, 14, "attribute 'direction' is not valid UTF-8")])
def test_attributes_are_checked_against_the_opset(attrs, opset, match):
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(s).astype(np.float32) for s in [(5, 2, 3), (1, 16, 3), (1, 16, 4)]]
    data, _ = recurrent_model("lstm", {"hidden_size": 4} | attrs, inputs, 3, opset=opset)
    with pytest.raises(rnnfast.FormatError, match=match):
        rnnfast.load(data)


def test_gru_linear_before_reset_does_not_exist_in_opset_1():
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(s).astype(np.float32) for s in [(5, 2, 3), (1, 12, 3), (1, 12, 4)]]
    data, _ = recurrent_model("gru", {"hidden_size": 4, "linear_before_reset": 1}, inputs, 2, opset=1)
    with pytest.raises(rnnfast.FormatError, match="'linear_before_reset' is not part of GRU \\(opset 1\\)"):
        rnnfast.load(data)


def test_too_many_node_inputs_are_refused():
    node = helper.make_node("RNN", ["X", "W", "R", "", "", "", "extra"], ["Y"], hidden_size=2, name="rnn0")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                                            for n in ("X", "W", "R", "extra")],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]).SerializeToString()
    with pytest.raises(rnnfast.FormatError, match="rnn0.*7 inputs.*at most 6"):
        rnnfast.load(data)


def test_unsupported_cast_is_refused_at_load():
    node = helper.make_node("Cast", ["X"], ["Y"], to=TensorProto.STRING, name="to_text")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("Y", TensorProto.STRING, [2])])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]).SerializeToString()
    with pytest.raises(rnnfast.FormatError, match="to_text.*Cast to ONNX type 8"):
        rnnfast.load(data)


def test_graph_input_of_an_unsupported_type_is_refused_at_load():
    node = helper.make_node("Identity", ["X"], ["Y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.STRING, [2])],
                              [helper.make_tensor_value_info("Y", TensorProto.STRING, [2])])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]).SerializeToString()
    with pytest.raises(rnnfast.FormatError, match="graph input 'X' has ONNX element type 8"):
        rnnfast.load(data)


def test_bad_feeds_through_inference_session_name_the_input():
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(s).astype(np.float32) for s in [(5, 2, 3), (1, 12, 3), (1, 12, 4), (1, 24)]]
    data, feeds = recurrent_model("gru", {"hidden_size": 4}, inputs + [np.array([5, 3], np.int32),
                                                                       np.zeros((1, 2, 4), np.float32)], 2)
    sess = rnnfast.InferenceSession(data)
    cases = [({"Z": feeds["X"]}, "unknown input name\\(s\\) \\['Z'\\]"),
             ({"sequence_lens": feeds["sequence_lens"].astype(np.float32)},
              "input 'sequence_lens' has dtype float32, expected tensor\\(int32\\)"),
             ({"initial_h": np.zeros((1, 3, 4), np.float32)}, "input 'initial_h' has size 3 on axis 1, expected 2"),
             ({"X": feeds["X"][:, :1]}, "input 'X' has size 1 on axis 1, expected 2")]
    for change, match in cases:
        with pytest.raises(ValueError, match=match):
            sess.run(None, feeds | change)
    # With undeclared shapes the node itself checks the states against X.
    proto = onnx.load_from_string(data)
    for value in proto.graph.input:
        value.type.tensor_type.ClearField("shape")
    sess = rnnfast.InferenceSession(proto.SerializeToString())
    with pytest.raises(ValueError, match="GRU.*initial_h.*shape \\(1, 2, 4\\), expected \\(1, 1, 4\\)"):
        sess.run(None, feeds | {"X": feeds["X"][:, :1], "sequence_lens": feeds["sequence_lens"][:1]})
