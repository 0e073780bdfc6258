"""int8 and float16 weight storage (rnnfast/quantize.py): the kernels against the float64 reference of the weights
as stored (tight, float32 tolerance), the error of quantization itself against the float32 model (conftest's int8 and
half modes), ISA tables against ref, thread counts, .rnnf round trips, and `rnnfast convert --quantize`."""
import itertools
import struct
from dataclasses import replace

import numpy as np
import pytest
from conftest import assert_close, random_layer
from pipeline_builders import PIPELINE_CASES, random_input, random_pipeline, run_chain
from test_c_rnnf import (RNNF_ERR_FORMAT, RNNF_OK, _run, c_run_matches_python, program,  # noqa: F401 (fixture)
                         readers_agree_on_damaged)

from rnnfast import _core, reference
from rnnfast import rnnf_spec as spec
from rnnfast.engine import CompiledStack
from rnnfast.errors import FormatError
from rnnfast.exporters.rnnf import save_rnnf, to_bytes
from rnnfast.importers.rnnf import load_rnnf
from rnnfast.pipeline import RecurrentStage, quantized_stages
from rnnfast.quantize import dequantized, quantize_int8

HIDDEN_TAILS = [1, 7, 8, 15, 16, 17, 33, 64]
OTHER_ISAS = [isa for isa in _core.isa_supported() if isa != "ref"]
DTYPES = ["int8", "float16"]
CONFIGS = [
    dict(cell="rnn"), dict(cell="gru", linear_before_reset=True), dict(cell="gru", linear_before_reset=False),
    dict(cell="lstm"), dict(cell="lstm", peepholes=True), dict(cell="lstm", proj_size=5),
    dict(cell="lstm", direction="bidirectional"), dict(cell="gru", direction="bidirectional", linear_before_reset=True),
    dict(cell="rnn", direction="reverse"), dict(cell="lstm", direction="bidirectional", proj_size=3),
]
CONFIG_IDS = ["-".join(f"{k}={v}" for k, v in c.items()) for c in CONFIGS]


def quantized_chain(p, dtype):
    """The pipeline with its recurrent weights stored in dtype, as Model.quantize stores them."""
    return replace(p, stages=quantized_stages(p.stages, dtype))


@pytest.fixture
def isa():
    before = _core.isa_selected()
    yield _core.isa_select
    _core.isa_select(before)


def run(layer, x, n_threads=1, **kw):
    return CompiledStack([layer]).run(x, n_threads=n_threads, **kw)


def all_outputs(out):
    y, hs, cs = out
    return [y] + [h for h in hs] + [c for c in cs if c is not None]


def test_int8_rule_is_symmetric_per_row_and_within_half_a_step():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((2, 5, 9)).astype(np.float32)
    w[1, 3] = 0.0  # an all-zero row keeps scale 1 and stays exactly zero
    q, s = quantize_int8(w)
    assert q.dtype == np.int8 and s.shape == (2, 5)
    assert np.all(np.abs(q).max(axis=-1)[w.any(axis=-1)] == 127)
    assert s[1, 3] == 1 and not q[1, 3].any()
    step = s[..., None]
    assert np.all(np.abs(q * step - w) <= step / 2 * (1 + 1e-6))
    assert np.all(np.abs(dequantized(w, "float16") - w) <= np.abs(w) * 2.0 ** -11)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", [1, 7, 17, 33])
@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_kernels_match_float64_reference_of_stored_weights(dtype, hidden, config):
    rng = np.random.default_rng(hidden)
    layer = random_layer(rng, input_size=9, hidden_size=hidden, **config).with_weight_dtype(dtype)
    assert layer.weight_dtype == dtype and layer.qweights["w_hh"][0].dtype == (np.int8 if dtype == "int8" else
                                                                               np.float16)
    x = rng.standard_normal((6, 3, 9)).astype(np.float32)
    lens = np.array([6, 0, 4], np.int32)
    got = run(layer, x, sequence_lens=lens)
    want = reference.run_layer(layer, x, sequence_lens=lens)
    assert_close(got[0], want[0], what="y")
    assert_close(got[1][0], want[1], what="y_h")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", [1, 7, 15, 16])
@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_quantization_error_against_the_float32_model(dtype, hidden, config):
    rng = np.random.default_rng(100 + hidden)
    layer = random_layer(rng, input_size=6, hidden_size=hidden, **config)
    x = rng.standard_normal((20, 2, 6)).astype(np.float32)
    want = reference.run_layer(layer, x)
    got = run(layer.with_weight_dtype(dtype), x)
    mode = {"int8": dict(int8=True), "float16": dict(half=True)}[dtype]
    assert_close(got[0], want[0], what=f"{dtype} y", **mode)


@pytest.mark.skipif(not OTHER_ISAS, reason="no SIMD kernel table runs on this CPU")
@pytest.mark.parametrize("other", OTHER_ISAS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", HIDDEN_TAILS)
@pytest.mark.parametrize("config", CONFIGS[:6], ids=CONFIG_IDS[:6])
def test_simd_tables_match_the_reference_table(isa, other, dtype, hidden, config):
    rng = np.random.default_rng(hidden)
    layer = random_layer(rng, input_size=5, hidden_size=hidden, **config).with_weight_dtype(dtype)
    x = rng.standard_normal((6, 7, 5)).astype(np.float32)  # 7 rows: the 4-row block and the 1-row tail
    isa("ref")
    ref = run(layer, x)
    isa(other)
    got = run(layer, x)
    for g, r in zip(all_outputs(got), all_outputs(ref)):
        assert_close(g, r)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell,direction,batch,hidden,extra", [
    (c, d, b, h, e) for (c, d), b, h, e in itertools.product(
        [("lstm", "forward"), ("gru", "bidirectional"), ("rnn", "forward")], [1, 5], [40, 200], [{}])
] + [("lstm", "forward", 2, 64, {"proj_size": 24}), ("gru", "forward", 1, 300, {"linear_before_reset": False})])
def test_thread_count_does_not_change_a_single_bit(dtype, cell, direction, batch, hidden, extra):
    rng = np.random.default_rng(7)
    extra = dict(extra)
    if cell == "gru":
        extra.setdefault("linear_before_reset", True)
    layer = random_layer(rng, cell=cell, direction=direction, input_size=12, hidden_size=hidden,
                         **extra).with_weight_dtype(dtype)
    x = rng.standard_normal((9, batch, 12)).astype(np.float32)
    one, two = run(layer, x, n_threads=1), run(layer, x, n_threads=2)
    assert all(np.array_equal(a, b) for a, b in zip(all_outputs(one), all_outputs(two)))


def test_bad_quantized_layers_are_refused_by_name(rng):
    layer = random_layer(rng, cell="gru", hidden_size=4)
    with pytest.raises(ValueError, match="weight dtype 'int4'"):
        layer.with_weight_dtype("int4")
    q = layer.with_weight_dtype("int8")
    with pytest.raises(ValueError, match="already stored as int8"):
        q.with_weight_dtype("float16")
    assert q.with_weight_dtype("int8") is q
    stored = dict(q.qweights)
    stored["w_hh"] = (stored["w_hh"][0], stored["w_hh"][1][:, :3])
    import dataclasses

    with pytest.raises(FormatError, match="w_hh scales have shape"):
        dataclasses.replace(q, qweights=stored)
    with pytest.raises(FormatError, match="w_ih differs from its stored int8 values"):
        dataclasses.replace(q, w_ih=q.w_ih * 2)
    assert dataclasses.replace(q, name="same weights").qweights is q.qweights
    stored["w_hh"] = (stored["w_hh"][0].astype(np.int16), None)
    with pytest.raises(FormatError, match="stored w_hh is int16"):
        dataclasses.replace(q, qweights=stored)


def test_step_equals_run_for_a_quantized_stack(rng):
    first = random_layer(rng, cell="lstm", input_size=5, hidden_size=20, proj_size=7).with_weight_dtype("int8")
    second = random_layer(rng, cell="gru", input_size=7, hidden_size=9,
                          linear_before_reset=True).with_weight_dtype("float16")
    stack = CompiledStack([first, second])
    x = rng.standard_normal((5, 2, 5)).astype(np.float32)
    y = stack.run(x, y_layout=1)[0]
    stream = stack.stream(2)
    steps = np.empty((5, 2, 9), np.float32)
    for t in range(5):
        stream.step(x[t], steps[t])
    assert np.array_equal(steps, y.reshape(steps.shape))


# ---- .rnnf ----


def _recurrent_layers(p):
    return [l for s in p.stages if isinstance(s, RecurrentStage) for l in s.layers]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(PIPELINE_CASES))
def test_rnnf_round_trip_keeps_the_stored_weights(rng, dtype, case, tmp_path):
    p = quantized_chain(random_pipeline(rng, **PIPELINE_CASES[case]), dtype)
    save_rnnf(p, tmp_path / "m.rnnf")
    data = (tmp_path / "m.rnnf").read_bytes()
    assert spec.HEADER.unpack_from(data, 0)[2] == spec.QUANTIZED_MINOR
    back = load_rnnf(data, "m.rnnf")
    for a, b in zip(_recurrent_layers(p), _recurrent_layers(back), strict=True):
        assert b.weight_dtype == dtype and set(a.qweights) == set(b.qweights)
        for key, (q, s) in a.qweights.items():
            assert b.qweights[key][0].dtype == q.dtype
            np.testing.assert_array_equal(b.qweights[key][0], q)
            if s is not None:
                np.testing.assert_array_equal(b.qweights[key][1], s)
            np.testing.assert_array_equal(getattr(b, key), getattr(a, key))
    x = random_input(rng, p)
    np.testing.assert_array_equal(run_chain(back, x), run_chain(p, x))


def test_float32_files_stay_version_1_0(rng):
    data = to_bytes(random_pipeline(rng, **PIPELINE_CASES[sorted(PIPELINE_CASES)[0]]))
    assert spec.HEADER.unpack_from(data, 0)[2] == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(PIPELINE_CASES))
def test_c_reader_runs_quantized_files(program, rng, dtype, case, tmp_path):
    c_run_matches_python(program, rng, quantized_chain(random_pipeline(rng, **PIPELINE_CASES[case]), dtype), case,
                         tmp_path)


def _blob_records(data):
    h = spec.HEADER.unpack_from(data, 0)
    blobs_at = h[6] + spec.STAGE.size * h[7] + spec.LAYER_SIZE * h[8]
    return blobs_at, [spec.BLOB.unpack_from(data, blobs_at + spec.BLOB.size * i) for i in range(h[9])]


def _named_refusals(p):
    """(damaged file, message fragment) for what a quantized file can get wrong."""
    data = to_bytes(p)
    blobs_at, recs = _blob_records(data)
    out = []
    i8 = next(i for i, r in enumerate(recs) if r[2] == spec.DTYPE_I8)
    scale = recs[i8][8]
    bad = bytearray(data)
    struct.pack_into("<H", bad, 6, 0)
    out.append((bytes(bad), "dtype int8 needs format 1.1"))
    bad = bytearray(data)
    struct.pack_into("<I", bad, blobs_at + spec.BLOB.size * i8 + 40, spec.NONE)
    out.append((bytes(bad), "needs 2 or more axes and another"))
    bad = bytearray(data)
    struct.pack_into("<f", bad, recs[scale][0], float("nan"))
    out.append((bytes(bad), "scales (blob"))
    f32 = next(i for i, r in enumerate(recs) if r[2] == spec.DTYPE_F32 and r[3] == 1 and i != scale)
    bad = bytearray(data)
    struct.pack_into("<QI", bad, blobs_at + spec.BLOB.size * f32 + 8, recs[f32][1] // 2, spec.DTYPE_F16)
    out.append((bytes(bad), "only the recurrent weights"))
    return out


def test_damaged_quantized_files_are_refused_by_name_by_both_readers(program, rng, tmp_path):
    p = quantized_chain(random_pipeline(rng, "lstm", "bidirectional", proj_size=2, n_layers=2), "int8")
    cases = _named_refusals(p)
    mixed = _recurrent_layers(p)[0]
    mixed.qweights["w_hr"] = (mixed.w_hr.astype(np.float16), None)  # behind the layer's back: the writer obeys
    cases.append((to_bytes(p), "w_ih, w_hh and w_hr are stored in different dtypes (w_ih int8, w_hh int8, w_hr "
                               "float16)"))
    files = []
    for k, (bad, fragment) in enumerate(cases):
        with pytest.raises(FormatError) as e:
            load_rnnf(bad, "bad.rnnf")
        assert fragment in str(e.value), (fragment, str(e.value))
        files.append(tmp_path / f"named{k}.rnnf")
        files[-1].write_bytes(bad)
    result = _run(program, "check", *files)
    assert result.returncode == 0, result.stderr[-3000:]
    for line, (_, fragment) in zip(result.stdout.splitlines(), cases, strict=True):
        assert line.startswith(str(RNNF_ERR_FORMAT)) and fragment in line, line


@pytest.mark.parametrize("dtype", DTYPES)
def test_c_and_python_readers_agree_on_damaged_quantized_files(program, rng, dtype, tmp_path):
    p = quantized_chain(random_pipeline(rng, "lstm", "bidirectional", embedding="mask_zero", proj_size=2,
                                          n_layers=2), dtype)
    verdicts, _, _ = readers_agree_on_damaged(program, p, rng, tmp_path)
    assert verdicts.count(RNNF_OK) and verdicts.count(RNNF_ERR_FORMAT) > len(verdicts) // 2


# ---- rnnfast convert --quantize ----

def test_convert_quantize_through_the_cli(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import rnnfast
    from conftest import package_env

    data = Path(__file__).resolve().parent / "data" / "keras"

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "rnnfast", *map(str, args)], capture_output=True, text=True,
                              cwd=tmp_path, env=package_env(), timeout=300)

    ref = np.load(data / "k3_seed_stacked_lstm.npz")
    assert np.abs(ref["y0"]).max() <= 1
    for flag, dtype, mode in (("int8", "int8", dict(int8=True)), ("fp16", "float16", dict(half=True))):
        r = cli("convert", data / "k3_seed_stacked_lstm.keras", f"m_{flag}.rnnf", "--quantize", flag)
        assert r.returncode == 0, r.stderr
        assert "check ok" in r.stdout and f"quantization ({flag}): max abs difference from the float32" in r.stdout
        model = rnnfast.load(tmp_path / f"m_{flag}.rnnf")  # a whole graph (.rnnf 2): the layers its nodes store
        stored = [lay["layer"] for node in model.graph.compiled.desc["nodes"] if node[6] for lay in node[6]]
        assert stored and {l.weight_dtype for l in stored} == {dtype}
        assert_close(model.run(ref["x0"])[0], ref["y0"], what=f"{flag} vs keras", **mode)
    assert (tmp_path / "m_int8.rnnf").stat().st_size < (tmp_path / "m_fp16.rnnf").stat().st_size
    r = cli("convert", data / "k3_seed_stacked_lstm.keras", "w.onnx", "--quantize", "int8")
    assert r.returncode == 2 and "only the whole-graph formats (rnnf, npz, safetensors)" in r.stderr, r.stderr
    assert not (tmp_path / "w.onnx").exists()


# ---- tutorial models: accuracy drop <= 0.5 points ----

@pytest.mark.parametrize("name,score", [
    ("digits_rnn", "argmax"), ("digits_gru", "argmax"), ("digits_bilstm", "argmax"), ("digits_deep_bilstm", "argmax"),
    ("char_lstm", "argmax"), ("sentiment_rnn", "sigmoid"),
])
def test_tutorial_accuracy_drops_at_most_half_a_point(name, score):
    from rnnfast import tutorials

    model, d = tutorials.load(name)

    def accuracy(m):
        pred = m.run(d["x"])[0]
        hit = np.argmax(pred, -1) == d["y_true"] if score == "argmax" else (pred[:, 0] > 0.5) == d["y_true"]
        return float(np.mean(hit))

    base = accuracy(model)
    assert base > 0.9  # a trained model: a drop would show
    for dtype in DTYPES:
        quantized = model.quantize(dtype)
        assert {l.weight_dtype for l in _recurrent_layers(quantized.to_pipeline())} == {dtype}
        assert accuracy(quantized) >= base - 0.005, (name, dtype)
