"""Bad ONNX input gets a named error, never a crash or a silent wrong answer."""
import os
import re

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


def test_feeds_that_match_no_input_name_the_model_file():
    path = os.path.join(os.path.dirname(__file__), "data", "torch", "lstm.pt")
    model = rnnfast.load(path)
    x = np.zeros((2, 1, 5), np.float32)
    with pytest.raises(ValueError, match=r"^" + re.escape(path) + r": unknown input name\(s\) \['Z'\]"):
        model.run({"Z": x})
    with pytest.raises(ValueError, match=r"^" + re.escape(path) + r": got 4 inputs, the model takes at most 3"):
        model.run([x, None, None, x])


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


def conv_transpose(attrs, x_shape=(2, 4, 5), w_shape=(4, 3, 3)):
    w = np.random.default_rng(0).standard_normal(w_shape).astype(np.float32)
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="upsample", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [onnx.numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


@pytest.mark.parametrize("attrs,match", [
    ({"auto_pad": "SAME_MIDDLE"}, "auto_pad='SAME_MIDDLE'"),
    ({"strides": [2, 2]}, "strides=\\[2, 2\\]: only 1-D"),
    ({"output_shape": [2, 3, 12]}, "output_shape=\\[2, 3, 12\\]: only 1-D"),
    ({"output_padding": [2], "strides": [2]}, "output_padding=\\[2\\] must be smaller than the stride 2"),
    ({"pads": [-1, 0]}, "negative pads"),
    ({"group": 0}, "group=0; expected positive")])
def test_conv_transpose_attributes_refused_by_name_at_load(attrs, match):
    with pytest.raises(rnnfast.FormatError, match="upsample.*" + match):
        rnnfast.load(conv_transpose(attrs))


@pytest.mark.parametrize("attrs,x_shape,match", [
    ({}, (2, 4, 5, 5), "upsample.*only 1-D ConvTranspose"),
    ({}, (2, 3, 5), "upsample.*does not fit input channels 3"),
    ({"output_shape": [20]}, (2, 4, 5), "upsample.*output length 20 is longer than the full transposed convolution"),
    ({"kernel_shape": [4]}, (2, 4, 5), "upsample.*kernel_shape \\[4\\] does not match the weight's kernel 3")])
def test_conv_transpose_bad_shapes_at_run_are_named(attrs, x_shape, match):
    model = rnnfast.load(conv_transpose(attrs))
    with pytest.raises(ValueError, match=match):
        model.run(np.zeros(x_shape, np.float32))


def glue_graph(nodes, inputs=("x",), inits=()):
    """A float graph of glue operators, x [2, 3] in and y out; `inits` are (name, array) initializers."""
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3]) for n in inputs],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [onnx.numpy_helper.from_array(a, n) for n, a in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


@pytest.mark.parametrize("nodes,match", [
    ([helper.make_node("Add", ["x", "b"], ["a"], name="n_add"), helper.make_node("Relu", ["a"], ["b"], name="n_relu"),
      helper.make_node("Identity", ["b"], ["y"])], "n_add.*input 'b' is produced by node n_relu.*cycle"),
    ([helper.make_node("Relu", ["a"], ["y"], name="n_late"), helper.make_node("Neg", ["x"], ["a"], name="n_early")],
     "n_late.*input 'a' is produced by the later node n_early.*topological order"),
    ([helper.make_node("Relu", ["nowhere"], ["y"], name="n_dangling")],
     "n_dangling.*input 'nowhere' is not produced by any node.*dangling"),
    ([helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Neg", ["x"], ["a"], name="n_dup"),
      helper.make_node("Identity", ["a"], ["y"])], "n_dup.*output 'a' is produced twice"),
    ([helper.make_node("Relu", ["x"], ["x"], name="n_shadow"), helper.make_node("Identity", ["x"], ["y"])],
     "n_shadow.*output 'x' is produced twice"),
    ([helper.make_node("Relu", ["x"], ["y"], name="n_custom", domain="com.example")],
     "n_custom.*operator domain 'com.example' is not supported"),
    ([helper.make_node("Relu", ["x"], ["a"])], "graph output 'y' is not produced")])
def test_malformed_graphs_are_refused_by_name(nodes, match):
    with pytest.raises(rnnfast.FormatError, match=match):
        rnnfast.load(glue_graph(nodes))


def test_duplicate_initializers_and_graph_inputs_are_refused():
    w = np.ones((3, 3), np.float32)
    node = [helper.make_node("MatMul", ["x", "w"], ["y"])]
    with pytest.raises(rnnfast.FormatError, match="initializer 'w' is defined twice"):
        rnnfast.load(glue_graph(node, inits=[("w", w), ("w", w)]))
    with pytest.raises(rnnfast.FormatError, match="graph input 'x' is defined twice"):
        rnnfast.load(glue_graph(node, inputs=("x", "x"), inits=[("w", w)]))


def test_shape_mismatch_inside_the_graph_at_run_time_names_the_node():
    """The graph input's declared shape is checked first; a mismatch between two computed tensors is caught
    where the operator runs and reported with its node."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="n_matmul")]
    model = rnnfast.load(glue_graph(nodes, inits=[("w", np.ones((3, 4), np.float32))]))
    assert model.run(np.ones((2, 3), np.float32))[0].shape == (2, 4)
    with pytest.raises(ValueError, match="input 'x' has size 5 on axis 1, expected 3"):
        model.run(np.ones((2, 5), np.float32))
    proto = onnx.load_from_string(glue_graph(nodes, inits=[("w", np.ones((3, 4), np.float32))]))
    proto.graph.input[0].type.tensor_type.ClearField("shape")
    with pytest.raises(ValueError, match="n_matmul.*MatMul.*mismatch"):
        rnnfast.load(proto.SerializeToString()).run(np.ones((2, 5), np.float32))


def test_unsupported_opset_domain_import_is_refused_where_used():
    """A model may import other domains (ai.onnx.ml, ...); a node from one rnnfast does not run is named."""
    node = helper.make_node("LabelEncoder", ["x"], ["y"], name="n_ml", domain="ai.onnx.ml")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid("ai.onnx.ml", 3)]).SerializeToString()
    with pytest.raises(rnnfast.FormatError, match="n_ml.*domain 'ai.onnx.ml' is not supported"):
        rnnfast.load(data)


def test_gelu_with_an_unknown_approximation_is_refused_at_load():
    node = helper.make_node("Gelu", ["x"], ["y"], name="act", approximate="sigmoid")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]).SerializeToString()
    with pytest.raises(rnnfast.FormatError, match="act.*Gelu approximate='sigmoid'"):
        rnnfast.load(data)
