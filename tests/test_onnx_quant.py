"""com.microsoft.DynamicQuantizeLSTM (rnnfast/importers/onnx/quant.py) against onnxruntime.

rnnfast dequantizes the weights and runs the float LSTM; onnxruntime also rounds the activations to uint8 on
the fly. So the exact comparison (the suite's assert_close) is against onnxruntime running the same graph with
the node replaced by an ai.onnx LSTM on the dequantized weights, and the comparison with onnxruntime's own
quantized kernel is bounded by that activation rounding (see its test's docstring)."""
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import rnnfast
from conftest import assert_close

DATA = os.path.join(os.path.dirname(__file__), "data", "onnx")
QUANT_FILES = ["lstm_quant.int8", "lstm_quant.int8_per_channel", "lstm_quant.int8_reduce_range"]


def ort_run(model, feeds):
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)


def dequantize(inits, q_name, s_name, z_name):
    """float64 (q - zero_point) * scale, the scale and zero point per direction [D] or per column [D, 4H]."""
    q, s, z = inits[q_name], inits[s_name], inits[z_name]
    s = s[:, None, None] if s.ndim == 1 else s[:, None, :]
    z = z[:, None, None] if z.ndim == 1 else z[:, None, :]
    return (q.astype(np.float64) - z) * s


def dequantized_float_model(proto):
    """The same graph with every DynamicQuantizeLSTM replaced by an LSTM on w = (q - zero_point) * scale,
    transposed back to the ai.onnx layout [D, 4H, input]."""
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type != "DynamicQuantizeLSTM":
            continue
        ins = list(node.input) + [""] * (12 - len(node.input))
        for q_name, s_name, z_name in ((ins[1], ins[8], ins[9]), (ins[2], ins[10], ins[11])):
            w = dequantize(inits, q_name, s_name, z_name).astype(np.float32).transpose(0, 2, 1)
            proto.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w), q_name + "_float"))
        new = helper.make_node("LSTM", [ins[0], ins[1] + "_float", ins[2] + "_float"] + ins[3:8], list(node.output),
                               name=node.name)
        new.attribute.extend(node.attribute)
        node.CopyFrom(new)
    return proto


@pytest.mark.parametrize("stem", QUANT_FILES)
def test_exported_quantized_model_equals_its_dequantized_float_model(stem):
    proto = onnx.load(os.path.join(DATA, stem + ".onnx"))
    assert any(n.op_type == "DynamicQuantizeLSTM" and n.domain == "com.microsoft" for n in proto.graph.node)
    model = rnnfast.load(os.path.join(DATA, stem + ".onnx"))
    reference = dequantized_float_model(proto)
    with np.load(os.path.join(DATA, stem + ".npz")) as z:
        for case in (0, 1):
            x = z[f"case{case}.in.x"]
            assert_close(model.run(x)[0], ort_run(reference, {"x": x})[0], what=f"{stem} case{case}")


def quant_lstm(attrs=None, w_dtype=np.int8, per_channel=False, drop=(), change=None, D=1, I=3, H=4, int8_max=127):
    """One DynamicQuantizeLSTM node with quantized weights of its own; `drop` empties inputs by name, `change`
    replaces initializers, int8_max=63 makes 7-bit weights as reduce_range does. Returns (model, x)."""
    rng = np.random.default_rng(3)
    lo, hi = (-int8_max, int8_max + 1) if w_dtype == np.int8 else (0, 256)
    cols = (D, 4 * H) if per_channel else (D,)
    zp = np.zeros(cols, w_dtype) if w_dtype == np.int8 else np.full(cols, 128, w_dtype)
    t = {"W": rng.integers(lo, hi, (D, I, 4 * H)).astype(w_dtype),
         "R": rng.integers(lo, hi, (D, H, 4 * H)).astype(w_dtype),
         "B": rng.uniform(-0.1, 0.1, (D, 8 * H)).astype(np.float32),
         "W_scale": rng.uniform(0.002, 0.004, cols).astype(np.float32), "W_zero_point": zp,
         "R_scale": rng.uniform(0.002, 0.004, cols).astype(np.float32), "R_zero_point": zp}
    t.update(change or {})
    names = ["x", "W", "R", "B", "", "", "", "", "W_scale", "W_zero_point", "R_scale", "R_zero_point"]
    names = ["" if n in drop else n for n in names]
    node = helper.make_node("DynamicQuantizeLSTM", names, ["Y", "Y_h", "Y_c"], domain="com.microsoft", name="qlstm",
                            hidden_size=H, **(attrs or {}))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", "B", I])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("Y", "Y_h", "Y_c")],
                              [numpy_helper.from_array(v, k) for k, v in t.items() if k not in drop])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    return model, rng.standard_normal((5, 2, I)).astype(np.float32)


@pytest.mark.parametrize("w_dtype,per_channel,attrs,D", [
    (np.int8, False, {}, 1), (np.uint8, False, {"direction": "reverse"}, 1),
    (np.int8, True, {"direction": "bidirectional"}, 2), (np.uint8, True, {"clip": 0.5, "input_forget": 1}, 1),
    (np.int8, False, {"activations": ["HardSigmoid", "Tanh", "Relu"]}, 1)])
def test_synthetic_quantized_lstm_equals_its_dequantized_float_model(w_dtype, per_channel, attrs, D):
    model, x = quant_lstm(attrs, w_dtype, per_channel, D=D)
    got = rnnfast.load(model.SerializeToString()).run(x)
    for g, w, name in zip(got, ort_run(dequantized_float_model(model), {"x": x}), ("Y", "Y_h", "Y_c")):
        assert_close(g, w, what=name)


@pytest.mark.parametrize("w_dtype,per_channel,attrs,D", [
    (np.uint8, True, {"direction": "bidirectional"}, 2), (np.int8, False, {"clip": 0.5, "input_forget": 1}, 1)])
def test_quantized_lstm_runs_in_c_and_travels_in_rnnf2(w_dtype, per_channel, attrs, D):
    """The C executor runs the node as its dequantized float LSTM, so .rnnf 2 and the C library carry it too."""
    from rnnfast.exporters.rnnf_graph import graph_to_bytes

    model, x = quant_lstm(attrs, w_dtype, per_channel, D=D)
    loaded = rnnfast.load(model.SerializeToString())
    assert loaded.graph.compiled is not None
    back = rnnfast.load(graph_to_bytes(loaded.graph.compiled, "qlstm.onnx"))
    for g, w, name in zip(back.run(x), ort_run(dequantized_float_model(model), {"x": x}), ("Y", "Y_h", "Y_c")):
        assert_close(g, w, what=name)


@pytest.mark.parametrize("kwargs,match", [
    ({"drop": ("R_scale",)}, "qlstm.*needs inputs .*missing \\['R_scale'\\]"),
    ({"attrs": {"layout": 1}}, "qlstm.*attribute 'layout' is not part of DynamicQuantizeLSTM"),
    ({"attrs": {"direction": "sideways"}}, "qlstm.*direction 'sideways'"),
    ({"attrs": {"activations": ["Sigmoid", "Tanh", "Swoosh"]}}, "qlstm.*unknown activation 'Swoosh'"),
    ({"change": {"W": np.zeros((1, 3, 16), np.float32)}}, "qlstm.*input W must be a 3-D int8 or uint8 tensor"),
    ({"change": {"W_zero_point": np.zeros(1, np.uint8)}}, "qlstm.*W_zero_point has dtype uint8, W has int8"),
    ({"change": {"R_scale": np.ones((1, 5), np.float32)}},
     "qlstm.*R_scale has shape \\(1, 5\\); expected \\(1,\\) per tensor or \\(1, 16\\)"),
    ({"change": {"W_scale": np.ones(1, np.float64)}}, "qlstm.*W_scale has dtype float64, expected float32"),
    ({"change": {"R": np.zeros((1, 4, 12), np.int8)}},
     "qlstm.*input R has shape \\(1, 12, 4\\), expected \\(1, 16, 4\\)")])
def test_bad_quantized_lstm_refused_by_name(kwargs, match):
    model, _ = quant_lstm(**kwargs)
    with pytest.raises(rnnfast.FormatError, match=match):
        rnnfast.load(model.SerializeToString())


def test_other_com_microsoft_operators_are_refused_by_name():
    node = helper.make_node("DynamicQuantizeMatMul", ["x", "w"], ["y"], domain="com.microsoft", name="qmm")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.zeros((3, 3), np.int8), "w")])
    with pytest.raises(rnnfast.FormatError, match="qmm.*domain 'com.microsoft' is not supported.*DynamicQuantizeLSTM"):
        rnnfast.load(helper.make_model(graph).SerializeToString())


def one_step_bound(proto, node, x):
    """The activation-rounding bound explained in test_within_onnxruntimes_activation_rounding."""
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    # max over gate columns of ||column||_1, of W [D, input, 4H] and R [D, H, 4H]
    norm_w, norm_r = [np.abs(dequantize(inits, *(node.input[i] for i in idx))).sum(axis=1).max()
                      for idx in ((1, 8, 9), (2, 10, 11))]
    s_x = (max(x.max(), 0) - min(x.min(), 0)) / 255
    return s_x / 2 * norm_w + (2 / 255) / 2 * norm_r


def cases_within_rounding():
    """The reduce_range fixture at both shapes, and synthetic nodes with uint8 or 7-bit int8 weights."""
    out = []
    proto = onnx.load(os.path.join(DATA, "lstm_quant.int8_reduce_range.onnx"))
    node = next(n for n in proto.graph.node if n.op_type == "DynamicQuantizeLSTM")
    proto.graph.output.append(helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, None))
    with np.load(os.path.join(DATA, "lstm_quant.int8_reduce_range.npz")) as z:
        out += [("reduce_range fixture case%d" % c, proto, node, z[f"case{c}.in.x"]) for c in (0, 1)]
    for w_dtype, per_channel, D in ((np.uint8, False, 1), (np.uint8, True, 2), (np.int8, True, 2)):
        model, x = quant_lstm({"direction": "bidirectional"} if D == 2 else {}, w_dtype, per_channel, D=D, I=6,
                              H=16, int8_max=63)
        out.append((f"synthetic {w_dtype.__name__} per_channel={per_channel}", model, model.graph.node[0], x))
    return out


@pytest.mark.parametrize("what,proto,node,x", cases_within_rounding(), ids=lambda v: v if isinstance(v, str) else "")
def test_within_onnxruntimes_activation_rounding(what, proto, node, x):
    """onnxruntime rounds X (one scale for the whole run) and h_t-1 (one scale per step) to uint8, with a step of
    their range / 255, and multiplies integers; rnnfast keeps them in float32, so the two differ by the effect
    of that rounding, which no float32 tolerance describes. The bound: one rounding of X moves a gate's
    pre-activation by at most s_x / 2 * max_j ||W_j||_1, one rounding of h by at most s_h / 2 * max_j ||R_j||_1
    with s_h <= 2 / 255 (|h| < 1); sigmoid and tanh are 1-Lipschitz and the gate products stay in (-1, 1), so a
    step's output moves by at most that sum. Errors carried from earlier steps are damped by the forget gate
    and the sigmoids in these weights, so the outputs are held to that one-step bound, and their mean
    difference to a tenth of it so that a systematic error cannot hide under it.

    Only weights onnxruntime's x86 kernel multiplies exactly are compared: uint8, or int8 within 7 bits
    (quantize_dynamic's reduce_range). With full-range int8 weights its AVX2 u8s8 path (on CPUs without VNNI,
    such as this project's machines) adds pairs of u8*s8 products in saturating int16, so its result depends on
    the CPU; the full-range fixtures are held to the dequantized float model instead (the exact tests above)."""
    bound = one_step_bound(proto, node, x)
    want = ort_run(proto, {"x": x})
    got = rnnfast.InferenceSession(proto.SerializeToString()).run([node.output[0]], {"x": x})[0]
    diff = got.astype(np.float64) - want[[o.name for o in proto.graph.output].index(node.output[0])]
    assert np.abs(diff).max() <= bound, f"{what}: max difference {np.abs(diff).max():.3g} > bound {bound:.3g}"
    assert abs(diff.mean()) <= bound / 10, f"{what}: mean difference {diff.mean():.3g}"
