"""Inputs with a default, end to end: PyTorch's h0/c0 (zeros when left out) and ONNX inputs backed by an initializer
(its value when left out, onnxruntime's overridable initializers) stay optional through the graph IR, .rnnf 2 (and
the .npz / .safetensors graph containers), Model.run and the ONNX exporter. References: the outputs PyTorch recorded
(tests/data/torch, tools/) and onnxruntime; the C library and export-c are tested in test_c_rnnf_graph.py and
test_export_c_graph.py."""
import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_close
from onnx_builders import lstm_with_initializer_state

import rnnfast
from rnnfast.exporters.onnx import export_onnx
from rnnfast.exporters.rnnf_graph import save_rnnf_graph

ort = pytest.importorskip("onnxruntime")
TORCH = Path(__file__).parent / "data" / "torch"


def torch_model(name):
    with np.load(TORCH / f"{name}.npz") as z:
        rec = {k: z[k] for k in z.files}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # batch_first is assumed (PyTorch's default)
        return rnnfast.load(str(TORCH / f"{name}.pt")), rec


def reloaded(model, suffix):
    buf = io.BytesIO()
    if suffix == ".rnnf":
        save_rnnf_graph(model, buf)
    else:
        from rnnfast.exporters import npz, safetensors

        (npz.save_npz if suffix == ".npz" else safetensors.save_safetensors)(model, buf)
    return rnnfast.load(buf.getvalue()), buf.getvalue()


def test_torch_states_are_optional_inputs():
    model, rec = torch_model("lstm_no_state")
    assert [(i.name, i.optional) for i in model.inputs] == [("input", False), ("h0", True), ("c0", True)]
    for k, n in enumerate(("output", "h_n", "c_n")):
        assert_close(model.run(rec["input"])[k], rec[n], what=f"{n} without states")
    with pytest.raises(ValueError, match="'input' is required"):
        model.run({"h0": np.zeros((1, 3, 8), np.float32)})


@pytest.mark.parametrize("suffix", [".rnnf", ".npz", ".safetensors"])
def test_graph_files_keep_the_defaults(suffix):
    """A written graph takes its states or leaves them out, as the PyTorch model does (two recorded runs)."""
    for name, given in (("lstm_no_state", ()), ("lstm", ("h0", "c0"))):
        model, rec = torch_model(name)
        again, data = reloaded(model, suffix)
        if suffix == ".rnnf":
            assert data[4:8] == b"\x02\x00\x02\x00"  # format 2.2: the first with input defaults
        assert [(i.name, i.optional) for i in again.inputs] == [("input", False), ("h0", True), ("c0", True)]
        outs = again.run({"input": rec["input"]} | {n: rec[n] for n in given})
        for k, n in enumerate(("output", "h_n", "c_n")):
            assert_close(outs[k], rec[n], what=f"{name} {suffix} {n} given {given}")


def test_a_file_without_defaults_is_format_2_0_and_still_loads():
    data = Path(__file__).parent / "data" / "onnx" / "graph" / "stream_gru.ts.onnx"
    model = rnnfast.load(str(data))
    again, raw = reloaded(model, ".rnnf")
    assert raw[4:8] == b"\x02\x00\x00\x00" and not any(i.optional for i in again.inputs)


def test_a_file_with_a_default_and_quantized_constants_is_format_2_2():
    """An initializer-backed h0 and an int8 MatMul weight (Model.quantize(scope="all"), 2.1's feature) in one file:
    2.2; reloaded, h0 stays optional, leaving it out is feeding the initializer, and every run is the quantized
    model's."""
    rng = np.random.default_rng(6)
    h0 = rng.standard_normal((1, 2, 5)).astype(np.float32)
    q = rnnfast.load(lstm_with_initializer_state(h0, head=3)).quantize("int8", scope="all")
    again, data = reloaded(q, ".rnnf")
    assert data[4:8] == b"\x02\x00\x02\x00"
    stored = again.graph.compiled.desc.get("quantized") or {}
    assert [v.dtype for v, _ in stored.values()] == [np.int8]  # the head's weight, as stored
    assert [(i.name, i.optional) for i in again.inputs] == [("X", False), ("h0", True)]
    x = rng.standard_normal((6, 2, 4)).astype(np.float32)
    fed = rng.standard_normal((1, 2, 5)).astype(np.float32)
    for feeds, same in (({"X": x}, {"X": x, "h0": h0}), ({"X": x, "h0": fed}, {"X": x, "h0": fed})):
        want = q.run(same)
        for k, got in enumerate(again.run(feeds)):
            assert np.array_equal(got, want[k]), (k, sorted(feeds))


def ort_run(data, feeds):
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.mark.parametrize("w_as_input", [False, True])
def test_onnx_initializer_backed_state(w_as_input):
    """The initializer is h0 when it is left out; a feed overrides it; weights listed as inputs stay constants."""
    rng = np.random.default_rng(4)
    h0 = rng.standard_normal((1, 2, 5)).astype(np.float32)
    data = lstm_with_initializer_state(h0, w_as_input)
    x = rng.standard_normal((6, 2, 4)).astype(np.float32)
    fed = rng.standard_normal((1, 2, 5)).astype(np.float32)
    model = rnnfast.load(data)
    assert model.graph.unfit_reason is None  # runs in the C executor
    assert [(i.name, i.optional) for i in model.inputs] == [("X", False), ("h0", True)]
    written, _ = reloaded(model, ".rnnf")  # the initializer's value is the file's default
    lifted = export_onnx(written).SerializeToString()
    for feeds in ({"X": x}, {"X": x, "h0": fed}):
        want = ort_run(data, feeds)
        for what, m in (("load", model), (".rnnf 2", written)):
            for k, n in enumerate(("Y", "Y_h")):
                assert_close(m.run(feeds)[k], want[k], what=f"{what} {n} fed {sorted(feeds)}")
        for k, n in enumerate(("Y", "Y_h")):
            assert_close(ort_run(lifted, feeds)[k], want[k], what=f"ONNX of the .rnnf 2 {n} fed {sorted(feeds)}")
    if w_as_input:
        with pytest.raises(ValueError, match="unknown input"):
            model.run({"X": x, "W": np.zeros((1, 20, 4), np.float32)})


def test_onnx_export_writes_the_torch_states_as_overridable_initializers():
    for name, given in (("lstm_no_state", ()), ("lstm", ("h0", "c0"))):
        model, rec = torch_model(name)
        data = export_onnx(model).SerializeToString()
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_overridable_initializers()] == ["h0", "c0"]
        outs = session.run(None, {"input": rec["input"]} | {n: rec[n] for n in given})
        for k, n in enumerate(("output", "h_n", "c_n")):
            assert_close(outs[k], rec[n], what=f"{name} ONNX {n} given {given}")
