"""C code export (rnnfast/exporters/c.py): every generated model is compiled with gcc -Wall -Wextra -Werror
-std=c99 -O2 (and the stricter warnings embedded builds turn on: -pedantic -Wconversion ...), its own test
program must pass (exit 0: run and step agree with rnnfast within the tolerance written in it), and the outputs
it prints must match the float64 reference (rnnfast/reference.py) within assert_close.

All models are exported and compiled once per session, in parallel, and each case then checks its own results.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import assert_close, random_layer
from pipeline_builders import reference_pipeline, run_chain

import rnnfast
from rnnfast.errors import FormatError
from rnnfast.exporters.c import export_c
from rnnfast.exporters.onnx import export_onnx
from rnnfast.layers import ACTIVATION_PARAMS, Activation
from rnnfast.pipeline import DenseStage, EmbeddingStage, Pipeline, RecurrentStage

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
# -pedantic and the rest: what embedded builds turn on.
GCC = ["gcc", "-Wall", "-Wextra", "-Werror", "-std=c99", "-O2",
       "-pedantic", "-Wdouble-promotion", "-Wconversion", "-Wshadow", "-Wstrict-prototypes"]
TORCH = os.path.join(os.path.dirname(__file__), "data", "torch")
KERAS = os.path.join(os.path.dirname(__file__), "data", "keras")
KERAS_PIPELINES = ["k3_gru_reset_after_False", "k3_gru_reset_after_True", "k3_seed_bidirectional", "k3_seed_char_lstm",
                   "k3_seed_deep_bidirectional", "k3_seed_imdb_embedding_simplernn", "k3_seed_masked_middle",
                   "k3_seed_mnist_simplernn", "k3_seed_stacked_lstm", "k3_use_bias_false", "keras1_bidirectional_gpu",
                   "keras1_sequential", "keras2_cudnn"]
ONNX_ROUND_TRIP = ["gru_bidir_stack", "lstm_peep_clip", "dense_between_stages", "gru_lbr_clip_reverse"]
# alpha/beta where the activation reads them, picked so the functions stay tame over a few steps
ACT_PARAMS = {"Affine": (0.5, 0.1), "LeakyRelu": (0.1, 0.0), "ThresholdedRelu": (0.2, 0.0),
              "ScaledTanh": (1.5, 0.7), "HardSigmoid": (0.2, 0.5), "Elu": (0.8, 0.0)}


def _stack(*layers, **kw):
    return RecurrentStage(list(layers), **kw)


def random_cases(rng) -> dict:
    r = lambda *a, **k: random_layer(rng, *a, **k)
    dense = lambda o, i, act="linear", bias=True: DenseStage(rng.standard_normal((o, i)) * 0.5,
                                                             rng.standard_normal(o) * 0.1 if bias else None, act)
    cases = {
        "rnn_tanh": Pipeline([_stack(r("rnn", input_size=3, hidden_size=5))]),
        "rnn_relu_clip": Pipeline([_stack(r("rnn", input_size=3, hidden_size=5, activations="Relu", clip=0.5))]),
        "gru": Pipeline([_stack(r("gru", input_size=4, hidden_size=6))]),
        "gru_lbr": Pipeline([_stack(r("gru", input_size=4, hidden_size=6, linear_before_reset=True))]),
        "gru_lbr_clip_reverse": Pipeline([_stack(r("gru", "reverse", 4, 5, linear_before_reset=True, clip=0.4))]),
        "lstm": Pipeline([_stack(r("lstm", input_size=4, hidden_size=8))]),
        "lstm_peep_clip": Pipeline([_stack(r("lstm", input_size=4, hidden_size=7, peepholes=True, clip=0.3))]),
        "lstm_input_forget": Pipeline([_stack(r("lstm", input_size=4, hidden_size=6, input_forget=True))]),
        "lstm_proj": Pipeline([_stack(r("lstm", input_size=4, hidden_size=9, proj_size=5))]),
        "lstm_bidir_proj_peep": Pipeline([_stack(r("lstm", "bidirectional", 3, 6, proj_size=4, peepholes=True))]),
        "rnn_bidir": Pipeline([_stack(r("rnn", "bidirectional", 3, 4))]),
        "gru_bidir_stack": Pipeline([_stack(r("gru", "bidirectional", 3, 5), r("gru", "bidirectional", 10, 4,
                                                                               linear_before_reset=True))]),
        "stack_mixed_cells": Pipeline([_stack(r("lstm", input_size=3, hidden_size=6), r("gru", input_size=6,
                                                                                        hidden_size=5),
                                              r("rnn", input_size=5, hidden_size=4))]),
        "emb_mask_bidir_final_softmax": Pipeline([
            EmbeddingStage(rng.standard_normal((11, 5)), mask_zero=True),
            _stack(r("lstm", "bidirectional", 5, 6), r("gru", "forward", 12, 7), return_sequences=False),
            dense(3, 7, "softmax")]),
        "emb_mask_zero_output_seq": Pipeline([
            EmbeddingStage(rng.standard_normal((9, 4)), mask_zero=True),
            _stack(r("gru", "bidirectional", 4, 5), mask_zero_output=True), dense(2, 10, "sigmoid")]),
        "emb_mask_forward_steps": Pipeline([
            EmbeddingStage(rng.standard_normal((7, 3)), mask_zero=True),
            _stack(r("lstm", input_size=3, hidden_size=5), return_sequences=False), dense(4, 5, "relu", bias=False)]),
        "emb_no_mask_dense_heads": Pipeline([
            EmbeddingStage(rng.standard_normal((6, 3))), _stack(r("rnn", input_size=3, hidden_size=5)),
            dense(4, 5, "tanh"), dense(3, 4, "linear")]),
        "dense_between_stages": Pipeline([
            dense(5, 3, "relu"), _stack(r("gru", input_size=5, hidden_size=4)), dense(6, 4, "tanh"),
            _stack(r("lstm", "bidirectional", 6, 3), return_sequences=False), dense(2, 6, "softmax")]),
        "batch_first_final": Pipeline([_stack(r("lstm", input_size=3, hidden_size=4), return_sequences=False),
                                       dense(2, 4)], batch_first=True),
    }
    for name, (alpha_on, beta_on) in ACTIVATION_PARAMS.items():
        a, b = ACT_PARAMS.get(name, (0.0, 0.0))
        act = Activation(name, a if alpha_on else 0.0, b if beta_on else 0.0)
        # every slot of an LSTM (gates f, cell g, output h), but exp of exp overflows within a few steps
        layer = random_layer(rng, "lstm", input_size=3, hidden_size=4)
        tanh = Activation("Tanh")
        layer.activations = ((act, tanh, tanh) if name == "Exp" else (act, act, act),)
        cases[f"act_{name}"] = Pipeline([_stack(layer)])
    return cases


def torch_cases() -> dict:
    """The torch fixtures through Model.to_pipeline, each with its own recorded input."""
    cases = {}
    for f in sorted(os.listdir(TORCH)):
        if not f.endswith(".npz"):
            continue
        name = f[:-4]
        with np.load(os.path.join(TORCH, f), allow_pickle=False) as z:
            options = json.loads(str(z["load_options"]))
            x = z["input"]
        (path,) = [os.path.join(TORCH, g) for g in os.listdir(TORCH) if g.startswith(name + ".") and g != f]
        p = rnnfast.load(path, **options).to_pipeline()
        if x.ndim == (1 if p.takes_ids else 2):  # unbatched: a pipeline always has a batch axis
            x = x[:, None] if not p.batch_first else x[None]
        cases[f"torch_{name}"] = (p, x)
    return cases


def keras_cases() -> dict:
    """One file per Keras model that fits a pipeline (the same models in other containers add nothing here)."""
    manifest = {c["npz"][:-4]: c for m in sorted(glob.glob(os.path.join(KERAS, "manifest_*.json")))
                for c in json.load(open(m))}
    cases = {}
    for name in KERAS_PIPELINES:
        c = manifest[name]
        with np.load(os.path.join(KERAS, c["npz"])) as z:
            x = z["x0"]
        cases[f"keras_{name}"] = (rnnfast.load(os.path.join(KERAS, c["file"])).to_pipeline(), x)
    return cases


def onnx_cases(random: dict) -> dict:
    """Random pipelines written as ONNX by export_onnx and read back through the ONNX importer."""
    return {f"onnx_{k}": (rnnfast.load(export_onnx(random[k]).SerializeToString()).to_pipeline(), None)
            for k in ONNX_ROUND_TRIP}


def quantized_cases(rng) -> dict:
    """Models whose outputs stay in [-1, 1] (tanh-bounded h, squashing heads), for the error bounds of
    assert_close(int8=True) and (half=True); each runs 20 steps."""
    r = lambda *a, **k: random_layer(rng, *a, **k)
    return {
        "lstm": Pipeline([_stack(r("lstm", "bidirectional", 4, 16), r("lstm", "forward", 32, 16))]),
        "lstm_proj_peep": Pipeline([_stack(r("lstm", input_size=4, hidden_size=16, proj_size=8, peepholes=True))]),
        "gru": Pipeline([_stack(r("gru", input_size=4, hidden_size=16))]),
        "gru_lbr": Pipeline([_stack(r("gru", "reverse", 4, 16, linear_before_reset=True))]),
        "rnn": Pipeline([_stack(r("rnn", input_size=4, hidden_size=16))]),
        "emb_dense": Pipeline([EmbeddingStage(rng.standard_normal((12, 4)), mask_zero=True),
                               _stack(r("gru", input_size=4, hidden_size=16), return_sequences=False),
                               DenseStage(rng.uniform(-0.25, 0.25, (5, 16)), rng.standard_normal(5) * 0.1, "softmax")]),
    }


QUANT_NAMES = [f"{q}_{k}" for q in ("int8", "fp16") for k in sorted(quantized_cases(np.random.default_rng(0)))]


def _build(tmp, name, p, x=None, quantize=None):
    out = export_c(p, os.path.join(tmp, name), prefix=name, test_input=x, quantize=quantize,
                   test_seq_len=20 if quantize else 6)
    exe = os.path.join(tmp, name, "test")
    cc = subprocess.run(GCC + ["-o", exe, out.source, out.test, "-lm"], capture_output=True, text=True)
    if cc.returncode:
        return out, cc
    return out, subprocess.run([exe], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("export_c"))
    random = random_cases(np.random.default_rng(7))
    cases = {k: (p, None) for k, p in random.items()}
    cases.update(torch_cases())
    cases.update(keras_cases())
    cases.update(onnx_cases(random))
    with ThreadPoolExecutor(2) as pool:
        futures = {k: pool.submit(_build, tmp, k, p, x) for k, (p, x) in cases.items()}
        quantized = quantized_cases(np.random.default_rng(11))
        for q in ("int8", "fp16"):
            for k, p in quantized.items():
                futures[f"{q}_{k}"] = pool.submit(_build, tmp, f"{q}_{k}", p, None, q)
                cases[f"{q}_{k}"] = (p, None)
        return {k: (cases[k][0],) + f.result() for k, f in futures.items()}


CASE_NAMES = (sorted(random_cases(np.random.default_rng(7)))
              + sorted("torch_" + f[:-4] for f in os.listdir(TORCH) if f.endswith(".npz"))
              + [f"keras_{k}" for k in KERAS_PIPELINES] + [f"onnx_{k}" for k in ONNX_ROUND_TRIP])


@pytest.mark.parametrize("name", CASE_NAMES)
def test_generated_code_matches_reference(built, name):
    p, out, proc = built[name]
    assert proc.returncode == 0, f"{name}: {proc.args}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    printed = np.array(proc.stdout.split(), np.float64)
    x = out.test_input  # [n_seq, seq_len, ...]
    want = reference_pipeline(p, np.swapaxes(x, 0, 1), time_major=True)
    if want.ndim == 3:
        want = np.swapaxes(want, 0, 1)
    assert printed.size == want.size
    assert_close(printed.reshape(want.shape), want, what=name)
    assert_close(out.expected, want, what=f"{name}: rnnfast's own run")
    assert out.has_step == all(l.direction == "forward" for s in p.stages if isinstance(s, RecurrentStage)
                               for l in s.layers)


@pytest.mark.parametrize("name", QUANT_NAMES)
def test_quantized_weights_stay_within_their_bound(built, name):
    """int8 (per-output-row symmetric scales, float accumulation) and fp16 storage (float32 compute): the compiled
    test program holds the code to rnnfast's run with the stored weights (exit 0); against the float32 model the
    outputs move by less than assert_close's int8 / half bounds (their derivation is in tests/conftest.py)."""
    p, out, proc = built[name]
    assert proc.returncode == 0, f"{name}: {proc.args}\n{proc.stderr[-4000:]}"
    printed = np.array(proc.stdout.split(), np.float32).reshape(out.expected.shape)
    assert_close(printed, out.expected, long=True, what=f"{name}: against the stored weights")
    x = np.swapaxes(out.test_input, 0, 1)
    full = run_chain(p, x)
    full = np.swapaxes(full, 0, 1) if full.ndim == 3 else full
    quant = name.split("_")[0]
    assert_close(printed, full, int8=quant == "int8", half=quant == "fp16", what=f"{name}: against float32")
    assert np.abs(printed - full).max() > 0, "quantized weights changed nothing: were they quantized at all?"
    source = open(out.source).read()
    assert ("static const int8_t" if quant == "int8" else "static const uint16_t") in source


@pytest.mark.parametrize("name", QUANT_NAMES)
def test_one_quantization_rule_in_the_engine_rnnf_and_export_c(built, name, tmp_path):
    """rnnfast/quantize.py's one rule: Model.quantize, its .rnnf 2 file and export_c(quantize=...) store the same
    weights (the recurrent matrices; the Dense head stays float32 in all three), so their outputs differ only by
    float32 summation order: the suite's float32 tolerance, not the int8 / half bound."""
    from rnnfast.exporters.rnnf_graph import save_rnnf_graph
    from rnnfast.graph.chain import ChainGraph
    from rnnfast.model import Model

    p, out, proc = built[name]
    assert proc.returncode == 0, f"{name}: {proc.args}\n{proc.stderr[-4000:]}"
    quant = name.split("_")[0]
    printed = np.array(proc.stdout.split(), np.float32).reshape(out.expected.shape)
    model = Model(ChainGraph.of(p)).quantize(quant)
    x = np.swapaxes(out.test_input, 0, 1)
    engine = model.run(x)[0]
    engine = np.swapaxes(engine, 0, 1) if engine.ndim == 3 else engine
    assert_close(printed, engine, what=f"{name}: export-c's C vs Model.quantize")
    save_rnnf_graph(model, tmp_path / "q.rnnf")
    again = rnnfast.load(tmp_path / "q.rnnf").run(x)[0]
    np.testing.assert_array_equal(np.swapaxes(again, 0, 1) if again.ndim == 3 else again, engine)
    source = open(out.source).read()
    if any(isinstance(s, DenseStage) for s in p.stages):
        assert "static const float dense0_w" in source, "the rule keeps Dense weights float32"


def test_quantized_storage_is_smaller(tmp_path, rng):
    p = Pipeline([_stack(random_layer(rng, "lstm", input_size=32, hidden_size=64))])
    sizes = {}
    for q in (None, "int8", "fp16"):
        out = export_c(p, str(tmp_path / str(q)), prefix="m", quantize=q)
        obj = str(tmp_path / f"{q}.o")
        subprocess.run(GCC + ["-c", out.source, "-o", obj], check=True)
        sizes[q] = os.path.getsize(obj)
    weights = 4 * 64 * (32 + 64) * 4  # float32 bytes of w_ih and w_hh
    assert sizes[None] - sizes["int8"] > 0.7 * weights and sizes[None] - sizes["fp16"] > 0.45 * weights, sizes


def test_every_kind_of_case_is_covered():
    names = set(CASE_NAMES)
    assert {"gru", "gru_lbr", "lstm_peep_clip", "lstm_input_forget", "lstm_proj", "gru_bidir_stack",
            "emb_mask_bidir_final_softmax"} <= names
    assert {f"act_{a}" for a in ACTIVATION_PARAMS} <= names
    assert sum(n.startswith("torch_") for n in names) >= 25
    assert sum(n.startswith("keras_") for n in names) >= 10 and sum(n.startswith("onnx_") for n in names) >= 4


def test_refused_by_name(tmp_path, rng):
    layer = random_layer(rng, "lstm", input_size=3, hidden_size=4)
    layer.w_hh[0, 1, 2] = np.inf
    with pytest.raises(FormatError, match="l0d0_wh holds inf or nan"):
        export_c(Pipeline([RecurrentStage([layer])]), str(tmp_path))
    ok = Pipeline([RecurrentStage([random_layer(rng, "gru", input_size=3, hidden_size=4)])])
    with pytest.raises(ValueError, match="prefix must be a C identifier"):
        export_c(ok, str(tmp_path), prefix="9lives")
    with pytest.raises(ValueError, match="prefix 'l0d0' makes l0d0_step"):
        export_c(ok, str(tmp_path), prefix="l0d0")
    clipped = random_layer(rng, "rnn", input_size=3, hidden_size=4, clip=np.inf)
    with pytest.raises(FormatError, match="has clip inf"):
        export_c(Pipeline([RecurrentStage([clipped])]), str(tmp_path))
    with pytest.raises(ValueError, match="quantize must be one of"):
        export_c(ok, str(tmp_path), quantize="int4")
    odd = Pipeline([RecurrentStage([random_layer(rng, "gru", input_size=3, hidden_size=4)])])
    odd.stages.append(object())
    with pytest.raises(FormatError, match="does not handle a object stage"):
        export_c(odd, str(tmp_path))


def test_products_vectorize_at_O2(tmp_path, rng):
    """The generated products are written for gcc -O2's vectorizer (no -ffast-math, no -march): unit stride over
    the outputs and trip counts known at compile time. Both of an LSTM step's products must be vectorized."""
    p = Pipeline([_stack(random_layer(rng, "lstm", input_size=8, hidden_size=16))])
    out = export_c(p, str(tmp_path), prefix="m")
    cc = subprocess.run(GCC + ["-fopt-info-vec-optimized", "-c", out.source, "-o", str(tmp_path / "m.o")],
                        capture_output=True, text=True, check=True)
    source = open(out.source).read().splitlines()
    loops = [int(line.split(":")[1]) for line in cc.stderr.splitlines() if "loop vectorized" in line]
    bodies = " ".join(source[n] for n in loops)  # the statement after each vectorized loop header
    assert "l0d0_wx[j][i]" in bodies and "l0d0_wh[j][i]" in bodies, cc.stderr
