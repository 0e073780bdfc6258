"""Model.quantize(scope="all"): the MatMul / Gemm / Conv / ConvTranspose weights stored as int8 (one scale per output
channel) or float16 too, weight-only. The quantized model computes what the float64 ONNX reference (onnx.reference)
computes with the weights the rule's own functions dequantize; .rnnf 2, .npz and .safetensors store the quantized
values and reload to the same numbers; what cannot hold them (a chain, export-c) refuses by name."""
import pickle

import numpy as np
import pytest
from conftest import assert_close

import rnnfast
from rnnfast import rnnf_spec as spec
from rnnfast.errors import FormatError
from rnnfast.exporters.rnnf_graph import graph_to_bytes
from rnnfast.graph.quantized import weight_constants
from rnnfast.importers.rnnf_graph import load_rnnf_graph_model
from rnnfast.quantize import dequantize_channels, quantize_channels

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

DTYPES = ["int8", "float16"]


def _weights(rng):
    u = lambda *s: rng.uniform(-1, 1, s).astype(np.float32)
    # MatMul B [K, N] (channels: columns), Gemm B [N, K] with transB (channels: rows), biases, a shared constant
    return {"W1": u(6, 5), "b1": u(5), "W2": u(4, 5), "c2": u(4), "S": u(4, 4)}


def dense_model(w, dtype=np.float32):
    """x [B, 6] -> MatMul W1 + b1 -> Relu -> Gemm(W2, transB) + c2 -> MatMul S -> [B, 1, 4] * S: S is also read as
    data."""
    t = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    inits = [numpy_helper.from_array(v.astype(dtype), k) for k, v in w.items()]
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "one"))
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["m1"], name="mm1"),
             helper.make_node("Add", ["m1", "b1"], ["a1"], name="add1"),
             helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
             helper.make_node("Gemm", ["r1", "W2", "c2"], ["g2"], transB=1, name="gemm2"),
             helper.make_node("MatMul", ["g2", "S"], ["m3"], name="mm3"),
             helper.make_node("Unsqueeze", ["m3", "one"], ["u3"], name="unsqueeze3"),
             helper.make_node("Mul", ["u3", "S"], ["y"], name="mul3")]
    graph = helper.make_graph(nodes, "dense", [helper.make_tensor_value_info("x", t, ["batch", 6])],
                              [helper.make_tensor_value_info("y", t, ["batch", 4, 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def conv_model(w, dtype=np.float32):
    """x [1, 2, 6, 6] -> Conv 3x3 -> Relu -> reshape to 1-D -> Conv1d -> ConvTranspose (group 1) -> y."""
    t = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    inits = [numpy_helper.from_array(v.astype(dtype), k) for k, v in w.items()]
    inits.append(numpy_helper.from_array(np.array([1, 3, 24], np.int64), "flat"))
    nodes = [helper.make_node("Conv", ["x", "K2", "kb"], ["c1"], pads=[1, 0, 1, 0], name="conv2d"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
             helper.make_node("Reshape", ["r1", "flat"], ["f1"], name="flatten"),
             helper.make_node("Conv", ["f1", "K1"], ["c2"], pads=[1, 1], name="conv1d"),
             helper.make_node("ConvTranspose", ["c2", "KT", "tb"], ["y"], strides=[2], name="deconv")]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", t, [1, 2, 6, 6])],
                              [helper.make_tensor_value_info("y", t, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _conv_weights(rng):
    u = lambda *s: rng.uniform(-1, 1, s).astype(np.float32)
    return {"K2": u(3, 2, 3, 3), "kb": u(3), "K1": u(5, 3, 3), "KT": u(5, 2, 2), "tb": u(2)}


# which initializers the rule stores, and the axis of their output channels (S is read by a Mul too)
DENSE_AXES = {"W1": 1, "W2": 0}
CONV_AXES = {"K2": 0, "K1": 0, "KT": 1}


def _dequantized(w, axes, dtype):
    """The weights as the quantized model computes with them, from the rule's own functions."""
    out = dict(w)
    for k, axis in axes.items():
        out[k] = dequantize_channels(*quantize_channels(w[k], axis, dtype), w[k].shape)
    return out


def _reference(make, w, feeds):
    """float64 onnx.reference run of the model built with these weights."""
    model = make({k: v.astype(np.float64) for k, v in w.items()}, np.float64)
    return ReferenceEvaluator(model).run(None, {k: v.astype(np.float64) for k, v in feeds.items()})


def _stored(model) -> dict:
    desc = model.graph.compiled.desc
    stored = desc.get("quantized") or {}
    return {desc["tensors"][t][5]: v.dtype.name for t, (v, _) in stored.items()}


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_weights_are_stored_and_compute_as_the_reference_on_the_dequantized_weights(dtype, rng):
    w = _weights(rng)
    model = rnnfast.load(dense_model(w).SerializeToString())
    q = model.quantize(dtype, scope="all")
    assert model.graph.compiled.stored_constants == 0  # the float model is left as it was
    stored = _stored(q)
    # Gemm's B is stored as the lowering's [K, N] operand; S, read by a Mul too, stays float32
    assert stored == {"W1": dtype, "gemm2/B": dtype}, stored
    feeds = {"x": rng.standard_normal((3, 6)).astype(np.float32)}
    got = q.run(feeds)[0]
    assert_close(got, _reference(dense_model, _dequantized(w, DENSE_AXES, dtype), feeds)[0], what="quantized")
    assert not np.array_equal(got, model.run(feeds)[0])  # the weights did move
    assert_close(got, model.run(feeds)[0], int8=dtype == "int8", half=dtype == "float16")
    # the default scope leaves a graph without recurrent layers as it was
    assert np.array_equal(model.quantize(dtype).run(feeds)[0], model.run(feeds)[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_weights_2d_1d_and_transposed_are_stored_per_output_channel(dtype, rng):
    w = _conv_weights(rng)
    model = rnnfast.load(conv_model(w).SerializeToString())
    q = model.quantize(dtype, scope="all")
    assert _stored(q) == {k: dtype for k in CONV_AXES}
    feeds = {"x": rng.standard_normal((1, 2, 6, 6)).astype(np.float32)}
    assert_close(q.run(feeds)[0], _reference(conv_model, _dequantized(w, CONV_AXES, dtype), feeds)[0],
                 what="quantized conv")


def test_the_rule_picks_weight_operands_only(rng):
    """weight_constants on the lowered description: MatMul's B by its columns, Conv's W by axis 0,
    ConvTranspose's by axis 1; not a bias, not a constant something else reads too."""
    for make, weights, axes in ((dense_model, _weights(rng), {"W1": 1, "gemm2/B": 1}),
                                (conv_model, _conv_weights(rng), {"K2": 0, "K1": 0, "KT": 1})):
        desc = rnnfast.load(make(weights).SerializeToString()).graph.compiled.desc
        picked = {desc["tensors"][t][5]: a for t, a in weight_constants(desc).items()}
        assert picked == axes


def test_int8_channels_use_quantize_int8s_formula(rng):
    """A channel's scale is max|w| / 127 over that channel's elements, whatever axis holds it."""
    w = rng.standard_normal((3, 4, 5)).astype(np.float32)
    w[:, 2] = 0.0  # an all-zero channel has scale 1
    q, scale = quantize_channels(w, 1, "int8")
    assert q.shape == (3, 4, 5) and q.dtype == np.int8 and scale.shape == (4,)
    want = np.abs(w).max(axis=(0, 2)) / np.float32(127)
    want[2] = 1.0
    assert np.array_equal(scale, want.astype(np.float32))
    assert np.abs(q).max() == 127
    assert np.all(np.abs(dequantize_channels(q, scale, w.shape) - w) <= scale[None, :, None] / 2 + 1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rnnf2_npz_and_safetensors_store_the_quantized_values_and_reload_the_same_numbers(dtype, rng, tmp_path):
    from rnnfast.exporters.npz import save_npz
    from rnnfast.exporters.safetensors import save_safetensors

    w = _weights(rng)
    model = rnnfast.load(dense_model(w).SerializeToString())
    q = model.quantize(dtype, scope="all")
    feeds = {"x": rng.standard_normal((2, 6)).astype(np.float32)}
    want = q.run(feeds)[0]
    data = graph_to_bytes(q.graph.compiled, "dense")
    assert spec.HEADER2.unpack_from(data, 0)[2] == spec.QUANTIZED_CONSTANTS_MINOR
    assert spec.HEADER2.unpack_from(graph_to_bytes(model.graph.compiled, "dense"), 0)[2] == 0  # float: stays 2.0
    reloaded = load_rnnf_graph_model(data, "q.rnnf")
    assert np.array_equal(reloaded.run(feeds)[0], want)
    assert _stored(reloaded) == _stored(q)
    # the float32 model written with the rule applied at write time is the same file
    assert graph_to_bytes(model.graph.compiled, "dense", dtype, "all") == data
    # a reloaded quantized file quantizes no further, and writes the same bytes again
    assert graph_to_bytes(reloaded.graph.compiled, "dense") == data
    for save, name in ((save_npz, "q.npz"), (save_safetensors, "q.safetensors")):
        save(q, tmp_path / name)
        again = rnnfast.load(tmp_path / name)
        assert np.array_equal(again.run(feeds)[0], want), name
        assert _stored(again) == _stored(q), name


def test_a_reloaded_quantized_file_quantizes_again_only_in_its_own_dtype(rng):
    q = rnnfast.load(dense_model(_weights(rng)).SerializeToString()).quantize("int8", scope="all")
    reloaded = load_rnnf_graph_model(graph_to_bytes(q.graph.compiled, "dense"), "q.rnnf")
    x = {"x": np.ones((1, 6), np.float32)}
    assert np.array_equal(reloaded.quantize("int8", "all").run(x)[0], q.run(x)[0])
    with pytest.raises(ValueError, match=r"constant 'W1' is already stored as int8; quantize the float32 model"):
        reloaded.quantize("float16", "all")


def test_what_cannot_hold_quantized_weights_refuses_by_name(rng, tmp_path):
    from rnnfast.exporters.c_graph import export_c_graph

    model = rnnfast.load(dense_model(_weights(rng)).SerializeToString())
    q = model.quantize("int8", scope="all")
    conv = rnnfast.load(conv_model(_conv_weights(rng)).SerializeToString()).quantize("int8", scope="all")
    with pytest.raises(FormatError, match=r"node conv2d \(Conv\) reads the constant 'K2' stored as int8: export-c "
                                          r"has no kernel that reads a quantized CONV weight"):
        export_c_graph(conv, tmp_path / "c", where="conv")
    with pytest.raises(FormatError, match=r"stored quantized .* a chain"):
        q.to_pipeline()
    with pytest.raises(ValueError, match=r"quantization scope 'dense'; expected one of \('recurrent', 'all'\)"):
        model.quantize("int8", scope="dense")


def test_scope_all_on_a_model_without_a_whole_graph_is_refused_by_name():
    from pathlib import Path

    model = rnnfast.load(Path(__file__).parent / "data" / "torch" / "gru_2layer.pt", batch_first=False)
    with pytest.raises(ValueError, match=r"gru_2layer\.pt: quantizing scope 'all' .* not on this model as it was "
                                         r"read: write the model as \.rnnf 2"):
        model.quantize("int8", scope="all")


def test_a_quantized_model_pickles_with_its_scope(rng, tmp_path):
    path = tmp_path / "dense.onnx"
    path.write_bytes(dense_model(_weights(rng)).SerializeToString())
    q = rnnfast.load(path).quantize("int8", scope="all")
    again = pickle.loads(pickle.dumps(q))
    x = {"x": np.ones((2, 6), np.float32)}
    assert np.array_equal(again.run(x)[0], q.run(x)[0]) and _stored(again) == _stored(q)


def test_convert_reports_the_sizes_and_checks_the_quantized_file(rng, tmp_path, capsys):
    from rnnfast.cli import main

    src = tmp_path / "conv.onnx"
    src.write_bytes(conv_model(_conv_weights(rng)).SerializeToString())
    assert main(["convert", str(src), str(tmp_path / "q.rnnf"), "--quantize", "int8", "--quantize-scope", "all"]) == 0
    out = capsys.readouterr().out
    size = (tmp_path / "q.rnnf").stat().st_size
    assert "with int8 (all scope)" in out and f", {size} with int8" in out and "check ok" in out
    before = int(out.split("file size: ")[1].split(" bytes")[0])
    assert before > size
    assert main(["convert", str(src), str(tmp_path / "r.rnnf"), "--quantize-scope", "all"]) != 0
    assert "--quantize-scope all: give --quantize int8 or fp16 too" in capsys.readouterr().err
