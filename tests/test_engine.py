"""The C engine itself: every kernel table against the scalar reference table, thread-count invariance,
streaming against whole-sequence runs, the vectorized activations against float64, and argument checks.

Semantics against onnxruntime and the float64 reference live in test_onnx_*.py and test_reference.py;
this file pins down the properties DESIGN.md promises of the engine.
"""
import itertools
import math
import subprocess
import sys

import numpy as np
import pytest

from conftest import assert_close, package_env, random_layer
from rnnfast import _core, engine
from rnnfast.engine import ACTIVATION_CODES, CompiledStack
from rnnfast.errors import InstructionSetError

HIDDEN_TAILS = [1, 7, 8, 15, 16, 17, 33, 64]  # every remainder of the 16-unit blocks and 8-lane vectors
OTHER_ISAS = [isa for isa in _core.isa_supported() if isa != "ref"]


@pytest.fixture
def isa():
    """Restore the kernel table chosen at import after a test that switches it."""
    before = _core.isa_selected()
    yield _core.isa_select
    _core.isa_select(before)


def run_with(layer_or_layers, x, isa_name=None, n_threads=1, **kw):
    stack = CompiledStack(layer_or_layers if isinstance(layer_or_layers, list) else [layer_or_layers])
    if isa_name:
        _core.isa_select(isa_name)
    return stack.run(x, n_threads=n_threads, **kw)


def outputs_equal(a, b):
    ya, ha, ca = a
    yb, hb, cb = b
    same = np.array_equal(ya, yb) and all(np.array_equal(p, q) for p, q in zip(ha, hb))
    return same and all((p is None and q is None) or np.array_equal(p, q) for p, q in zip(ca, cb))


CONFIGS = [
    dict(cell="rnn"), dict(cell="rnn", activations="Relu"),
    dict(cell="gru", linear_before_reset=True), dict(cell="gru", linear_before_reset=False),
    dict(cell="lstm"), dict(cell="lstm", peepholes=True), dict(cell="lstm", input_forget=True),
    dict(cell="lstm", clip=0.5), dict(cell="gru", clip=0.5, linear_before_reset=True),
    dict(cell="lstm", proj_size=5),
]


@pytest.mark.skipif(not OTHER_ISAS, reason="no SIMD kernel table runs on this CPU")
@pytest.mark.parametrize("other", OTHER_ISAS)
@pytest.mark.parametrize("hidden", HIDDEN_TAILS)
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_simd_tables_match_the_reference_table(isa, other, hidden, config):
    rng = np.random.default_rng(hidden)
    direction = "bidirectional" if hidden % 2 else "forward"
    layer = random_layer(rng, direction=direction, input_size=5, hidden_size=hidden, **config)
    x = rng.standard_normal((6, 3, 5)).astype(np.float32)
    lens = np.array([6, 0, 4], np.int32)
    ref = run_with(layer, x, "ref", sequence_lens=lens)
    got = run_with(layer, x, other, sequence_lens=lens)
    for g, r in zip([got[0]] + got[1] + got[2], [ref[0]] + ref[1] + ref[2]):
        if r is not None:
            assert_close(g, r)


ROWS_CONFIGS = [
    dict(cell="rnn"), dict(cell="gru", linear_before_reset=True), dict(cell="lstm"),
    dict(cell="lstm", peepholes=True), dict(cell="lstm", input_forget=True),
    dict(cell="lstm", peepholes=True, input_forget=True, clip=0.5), dict(cell="gru", linear_before_reset=True, clip=0.5),
]


@pytest.mark.skipif(not OTHER_ISAS, reason="no SIMD kernel table runs on this CPU")
@pytest.mark.parametrize("other", OTHER_ISAS)
@pytest.mark.parametrize("batch", [2, 4, 5, 6, 7, 9, 14])  # every remainder of the 6-row GEMM tiles
@pytest.mark.parametrize("config", ROWS_CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_batch_rows_match_the_reference_table(isa, other, batch, config):
    """Batch > 1 runs rows_step.c: per-block products over every row-tile remainder, and the gate kernels that
    work on several rows at once, over masks that drop the first, the last, neighbouring, alternate and all rows."""
    rng = np.random.default_rng(batch)
    layer = random_layer(rng, input_size=5, hidden_size=33 if batch % 2 else 17, **config)
    x = rng.standard_normal((7, batch, 5)).astype(np.float32)
    mask = rng.random((7, batch)) > 0.4
    mask[1] = False
    mask[2] = np.arange(batch) % 2 == 0
    mask[3] = np.arange(batch) % 2 == 1
    mask[4, 0] = mask[4, -1] = False
    mask[5] = True
    for m in (None, mask):
        ref = run_with(layer, x, "ref", mask=m)
        got = run_with(layer, x, other, mask=m)
        for g, r in zip([got[0]] + got[1] + got[2], [ref[0]] + ref[1] + ref[2]):
            if r is not None:
                assert_close(g, r)


@pytest.mark.parametrize("isa_name", _core.isa_supported())
@pytest.mark.parametrize("hidden", HIDDEN_TAILS)
@pytest.mark.parametrize("config", ROWS_CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_batch_rows_equal_batch_one_runs_to_the_bit(isa, isa_name, hidden, config):
    """rows_step.c (batch > 1, per-block products, the row kernels or the table's block kernels row by row) must
    give each row the bits batch 1 gives it (hoisted projection, block kernels): rows a mask drops keep their state
    and come back, in both directions, in a stack whose layers' input sizes differ from their hidden size."""
    rng = np.random.default_rng(hidden)
    direction = ["forward", "reverse", "bidirectional"][hidden % 3]
    first = random_layer(rng, direction=direction, input_size=5, hidden_size=hidden, **config)
    second = random_layer(rng, direction=direction, input_size=first.n_dirs * hidden, hidden_size=hidden, **config)
    batch, steps = 5, 6
    x = rng.standard_normal((steps, batch, 5)).astype(np.float32)
    mask = rng.random((steps, batch)) > 0.4
    mask[1] = False
    mask[3, 1:3] = False
    mask[:, 2] = mask[:, 2] | (np.arange(steps) % 2 == 0)
    stack = CompiledStack([first, second])
    _core.isa_select(isa_name)
    y, y_h, y_c = stack.run(x, mask=mask, n_threads=1)
    for b in range(batch):
        y1, h1, c1 = stack.run(x[:, b:b + 1], mask=mask[:, b:b + 1], n_threads=1)
        assert np.array_equal(y[:, :, b:b + 1], y1), f"row {b}"
        for layer, (h, h_one, c, c_one) in enumerate(zip(y_h, h1, y_c, c1)):
            assert np.array_equal(h[:, b:b + 1], h_one), f"row {b} layer {layer} h"
            assert (c is None and c_one is None) or np.array_equal(c[:, b:b + 1], c_one), f"row {b} layer {layer} c"


@pytest.mark.parametrize("cell,direction,batch,hidden,extra", [
    (c, d, b, h, e) for (c, d), b, h, e in itertools.product(
        [("lstm", "forward"), ("lstm", "bidirectional"), ("gru", "forward"), ("gru", "reverse"),
         ("rnn", "bidirectional")], [1, 5], [40, 200], [{}, {"mask": True}])
] + [("lstm", "forward", 2, 64, {"proj_size": 24}), ("gru", "forward", 1, 300, {"linear_before_reset": False}),
      ("lstm", "bidirectional", 1, 1024, {}), ("gru", "bidirectional", 3, 1024, {"mask": True})])
def test_thread_count_does_not_change_a_single_bit(cell, direction, batch, hidden, extra):
    """Hidden 1024 (12-16 MiB of recurrent weights a direction, more than any core's L2): a bidirectional layer's
    threads then share each direction in turn instead of taking one each (recurrent.c n_groups)."""
    rng = np.random.default_rng(7)
    extra = dict(extra)
    use_mask = extra.pop("mask", False)
    if cell == "gru":
        extra.setdefault("linear_before_reset", True)
    layer = random_layer(rng, cell=cell, direction=direction, input_size=12, hidden_size=hidden, **extra)
    x = rng.standard_normal((9, batch, 12)).astype(np.float32)
    mask = rng.random((9, batch)) > 0.3 if use_mask else None
    one = run_with(layer, x, n_threads=1, mask=mask)
    two = run_with(layer, x, n_threads=2, mask=mask)
    assert outputs_equal(one, two)


@pytest.mark.parametrize("cell,direction,n_threads,batch", [
    ("lstm", "forward", 2, 21), ("lstm", "reverse", 2, 16), ("lstm", "bidirectional", 3, 24),
    ("gru", "forward", 2, 19), ("rnn", "forward", 3, 30), ("lstm", "forward", 4, 35),
])
def test_batch_split_across_threads_does_not_change_a_single_bit(cell, direction, n_threads, batch):
    """From 8 rows per thread the threads split the batch and step their rows with no barrier between steps
    (recurrent.c): uneven row shares, an odd step count (the h buffer that ends current), masked rows, a stack
    whose second layer reads the first's rows, and the final states must all equal one thread's to the bit."""
    rng = np.random.default_rng(batch)
    kw = dict(cell=cell, direction=direction, hidden_size=37, linear_before_reset=cell == "gru")
    first = random_layer(rng, input_size=12, **kw)
    second = random_layer(rng, input_size=first.n_dirs * 37, **kw)
    x = rng.standard_normal((9, batch, 12)).astype(np.float32)
    mask = rng.random((9, batch)) > 0.3
    for layers in ([first], [first, second]):
        one = run_with(layers, x, n_threads=1, mask=mask)
        many = run_with(layers, x, n_threads=n_threads, mask=mask)
        assert outputs_equal(one, many), f"{len(layers)} layer(s)"


@pytest.mark.parametrize("cell,batch,hidden,extra", [
    ("gru", 2, 96, {}), ("gru", 1, 96, {"lens": True}), ("gru", 5, 64, {"mask": True}),
    ("gru", 2, 96, {"linear_before_reset": False}), ("lstm", 1, 64, {}), ("lstm", 3, 64, {"mask": True}),
    ("lstm", 2, 64, {"proj_size": 24, "lens": True}), ("lstm", 2, 64, {"peepholes": True}), ("rnn", 1, 160, {}),
    ("gru", 2, 96, {"dtype": "int8"}), ("lstm", 1, 64, {"dtype": "float16", "lens": True}),
])
def test_two_layers_side_by_side_do_not_change_a_single_bit(cell, batch, hidden, extra):
    """Two forward layers at a small batch, large enough for two threads to run them side by side (recurrent.c
    pipelines: the second a chunk of steps behind the first, each projecting its inputs a chunk at a time), give one
    thread's bits: outputs and both final states, with initial states, masked steps and rows of other lengths, a
    step count that is no whole number of chunks, and stored int8 or float16 weights. Run three times: the thread
    that takes each layer may change from call to call."""
    rng = np.random.default_rng(hidden + batch)
    extra = dict(extra)
    use_mask, use_lens, dtype = extra.pop("mask", False), extra.pop("lens", False), extra.pop("dtype", None)
    if cell == "gru":
        extra.setdefault("linear_before_reset", True)
    first = random_layer(rng, cell=cell, input_size=64, hidden_size=hidden, **extra)
    second = random_layer(rng, cell=cell, input_size=first.output_size, hidden_size=hidden, **extra)
    layers = [first, second] if dtype is None else [first.with_weight_dtype(dtype), second.with_weight_dtype(dtype)]
    T = 47
    x = rng.standard_normal((T, batch, 64)).astype(np.float32)
    kw = {"mask": rng.random((T, batch)) > 0.3} if use_mask else {}
    if use_lens:
        kw["sequence_lens"] = np.array([T - 13 * b for b in range(batch)], np.int32)
    out = first.output_size
    kw["initial_h"] = [rng.standard_normal((1, batch, out)).astype(np.float32) for _ in range(2)]
    if cell == "lstm":
        kw["initial_c"] = [rng.standard_normal((1, batch, hidden)).astype(np.float32) for _ in range(2)]
    one = run_with(layers, x, n_threads=1, **kw)
    for attempt in range(3):
        assert outputs_equal(one, run_with(layers, x, n_threads=2, **kw)), f"call {attempt}"


def test_stacked_layers_equal_layer_by_layer_runs():
    rng = np.random.default_rng(3)
    first = random_layer(rng, cell="lstm", direction="bidirectional", input_size=6, hidden_size=10)
    second = random_layer(rng, cell="gru", direction="forward", input_size=20, hidden_size=9,
                          linear_before_reset=True)
    x = rng.standard_normal((7, 2, 6)).astype(np.float32)
    y_stack, h_stack, _ = CompiledStack([first, second]).run(x, n_threads=2)
    y1, h1, _ = engine.run_layer(first, x)
    merged = y1.transpose(0, 2, 1, 3).reshape(7, 2, 20)  # [T, D, B, H] -> [T, B, D*H], directions concatenated
    y2, h2, _ = engine.run_layer(second, merged)
    assert np.array_equal(y_stack, y2)
    assert np.array_equal(h_stack[0], h1) and np.array_equal(h_stack[1], h2)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_step_by_step_equals_whole_sequence(cell):
    rng = np.random.default_rng(11)
    layers = [random_layer(rng, cell=cell, input_size=4, hidden_size=19, linear_before_reset=cell == "gru"),
              random_layer(rng, cell=cell, input_size=19, hidden_size=8)]
    stack = CompiledStack(layers)
    x = rng.standard_normal((12, 3, 4)).astype(np.float32)
    y, y_h, _ = stack.run(x, y_layout=engine.Y_SEQ_BATCH_DIR)
    stream = stack.stream(batch=3)
    out = np.empty((3, 8), np.float32)
    for t in range(12):
        stream.step(x[t], out)
        assert np.array_equal(out, y[t]), f"step {t}"
    h0, h1 = stream.get_all([(0, False), (1, False)])
    assert np.array_equal(h0, y_h[0]) and np.array_equal(h1, y_h[1])


def test_stream_refuses_bidirectional_layers():
    layer = random_layer(np.random.default_rng(0), cell="lstm", direction="bidirectional", input_size=3,
                         hidden_size=4)
    stream = CompiledStack([layer]).stream(batch=1)
    with pytest.raises(ValueError, match="not supported"):
        stream.step(np.zeros((1, 3), np.float32), np.zeros((1, 8), np.float32))


ACTIVATION_CASES = [  # name, alpha, beta, float64 definition
    ("Sigmoid", 0, 0, lambda x, a, b: 1 / (1 + np.exp(-x))),
    ("Tanh", 0, 0, lambda x, a, b: np.tanh(x)),
    ("Relu", 0, 0, lambda x, a, b: np.maximum(x, 0)),
    ("Affine", 0.7, -0.2, lambda x, a, b: a * x + b),
    ("LeakyRelu", 0.1, 0, lambda x, a, b: np.where(x >= 0, x, a * x)),
    ("ThresholdedRelu", 0.5, 0, lambda x, a, b: np.where(x > a, x, 0)),
    ("ScaledTanh", 1.5, 0.6, lambda x, a, b: a * np.tanh(b * x)),
    ("HardSigmoid", 0.2, 0.5, lambda x, a, b: np.clip(a * x + b, 0, 1)),
    ("Elu", 1.3, 0, lambda x, a, b: np.where(x >= 0, x, a * np.expm1(np.minimum(x, 0)))),
    ("Softsign", 0, 0, lambda x, a, b: x / (1 + np.abs(x))),
    ("Softplus", 0, 0, lambda x, a, b: np.logaddexp(0, x)),
    ("Selu", 0, 0, lambda x, a, b: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(np.minimum(x, 0)))),
    ("Swish", 0, 0, lambda x, a, b: x / (1 + np.exp(-x))),
    ("Gelu", 0, 0, lambda x, a, b: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))),
    ("Exp", 0, 0, lambda x, a, b: np.exp(x)),
]


NAN_TO_NUMBER = ("Relu", "HardSigmoid", "ThresholdedRelu", "LeakyRelu", "Elu", "Selu")  # max/min/compare forms


def check_activation(name, alpha, beta, exact, x, got, what):
    """got = a kernel's activation of float32 x, against the float64 definition `exact`: the same inf/NaN pattern
    (NaN in gives NaN out, except for the max/min/compare forms), within 2e-7 absolute or 4 float32 ulps relative,
    the bound documented beside the kernels' constants (kernels/approx.h)."""
    x, got = np.asarray(x), np.asarray(got, np.float64)
    nan_in = np.isnan(x)
    assert name in NAN_TO_NUMBER or np.isnan(got[nan_in]).all(), f"{what}: NaN must propagate"
    x, got = x[~nan_in], got[~nan_in]
    if not x.size:
        return
    with np.errstate(over="ignore", invalid="ignore"):
        want = exact(x.astype(np.float64), alpha, beta)
    finite = np.isfinite(want)
    assert np.array_equal(np.isfinite(got), finite), f"{what}: inf/nan pattern differs"
    err = np.abs(got[finite] - want[finite])
    assert np.all(err <= np.maximum(2e-7, 4 * np.finfo(np.float32).eps * np.abs(want[finite]))), \
        f"{what}: max error {err.max():.3g}"


@pytest.mark.parametrize("table", _core.isa_supported())
@pytest.mark.parametrize("name,alpha,beta,exact", ACTIVATION_CASES, ids=[c[0] for c in ACTIVATION_CASES])
def test_activations_against_float64(isa, table, name, alpha, beta, exact):
    isa(table)
    kind = ACTIVATION_CODES[name]
    grid = np.linspace(-20, 20, 40001 if name != "Gelu" else 4001).astype(np.float32)
    specials = np.array([0.0, -0.0, 25.0, -25.0, 1e-8, -1e-8, np.inf, -np.inf], np.float32)
    if name == "Exp":
        grid = grid[grid < 80]
        specials = specials[specials < 80]
    for x in (grid, specials):
        check_activation(name, alpha, beta, exact, x, _core.activation(kind, alpha, beta, x), name)
    nan = np.array([np.nan], np.float32)
    check_activation(name, alpha, beta, exact, nan, _core.activation(kind, alpha, beta, nan), name)


def test_unknown_isa_is_an_error(isa):
    with pytest.raises(InstructionSetError, match=r"RNNFAST_ISA='nonsense' \(compiled: .*, supported here: .*\): "
                                                  r"instruction set not available"):
        _core.isa_select("nonsense")


def test_unsupported_isa_in_the_environment_stops_the_engine_import():
    r = subprocess.run([sys.executable, "-c", "import rnnfast.engine"], capture_output=True, text=True, cwd="/",
                       env=package_env(RNNFAST_ISA="nonsense"))
    assert r.returncode != 0
    assert "rnnfast.errors.InstructionSetError: RNNFAST_ISA='nonsense'" in r.stderr, r.stderr


def test_c_layer_checks_stacked_sizes():
    rng = np.random.default_rng(0)
    a = random_layer(rng, cell="lstm", input_size=3, hidden_size=4)
    b = random_layer(rng, cell="lstm", input_size=5, hidden_size=4)
    with pytest.raises(ValueError, match="takes 5 inputs but the layer before gives 4"):
        CompiledStack([a, b])


@pytest.mark.parametrize("bad,match", [
    (dict(x=np.zeros((3, 2), np.float32)), "expected \\[seq_len, batch, 3\\]"),
    (dict(x=np.zeros((3, 2, 4), np.float32)), "expected \\[seq_len, batch, 3\\]"),
    (dict(x=np.zeros((0, 2, 3), np.float32)), "at least 1"),
    (dict(sequence_lens=np.array([1, 4])), "in \\[0, 3\\]"),
    (dict(sequence_lens=np.array([1.0, 2.0])), "must be integers"),
    (dict(initial_h=[np.zeros((1, 3, 4), np.float32)]), "initial_h\\[0\\] has shape"),
    (dict(mask=np.ones((3, 3), bool)), "mask has shape"),
    (dict(x=np.zeros((3, 2, 3), "U1")), "dtype"),
])
def test_bad_arguments_are_named(bad, match):
    layer = random_layer(np.random.default_rng(0), cell="lstm", input_size=3, hidden_size=4)
    args = dict(x=np.zeros((3, 2, 3), np.float32)) | bad
    with pytest.raises(ValueError, match=match):
        CompiledStack([layer]).run(args.pop("x"), **args)
