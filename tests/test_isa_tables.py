"""The AVX-512 kernel table against the AVX2 table, bit for bit.

src_c/kernels/avx512.c gives every lane the operations avx2.c gives it, in the same order: each GEMM output one FMA
chain over k then the bias (the contract of gemm_packed, gemm_offsets and gemm_offsets_pool in kernels.h), the
Winograd transforms "the same bits in every table", the gate and row kernels approx.h's activations with the same
instructions. So a model gives the same bits whichever of the two tables runs it; these tests hold every entry to
that through the engine and the graph executor: recurrent layers of every cell and gate configuration at every
16-unit tail and at batches that reach each row block of the GEMMs (batch 1 and the row kernels), int8 and float16
weights (avx512_q.c against avx2_q.c), the activation entry at every vector tail with NaN and infinities, MatMul
over row and panel counts, and the convolution modes (implicit GEMM, fused 2x2 pooling, Winograd) with NaN and
infinities in the input. Agreement with the float64 reference and onnxruntime is the other tests' job
(test_engine.py and test_engine_vs_reference.py run every supported table; .ci/run runs the graph tests again with
RNNFAST_ISA=avx2)."""
import numpy as np
import pytest

from conftest import random_layer
from rnnfast import _core
from rnnfast.engine import ACTIVATION_CODES, CompiledStack
from test_conv_pool_fused import CASES as POOL_CASES
from test_conv_pool_fused import feeds_of, fused_model
from test_conv_winograd import CASES as WINO_CASES
from test_conv_winograd import conv_model
from test_engine import ACTIVATION_CASES, HIDDEN_TAILS
from test_graph_differential import F32, G, load_compiled, normal, run_c, weights

pytestmark = pytest.mark.skipif("avx512" not in _core.isa_supported(),
                                reason=f"no AVX-512 table here (supported: {_core.isa_supported()}): this CPU lacks "
                                       f"AVX-512 F/VL/DQ/BW, the OS does not save zmm state, or the build left it out")


@pytest.fixture
def both_tables():
    """run(fn) -> fn()'s result under the AVX2 table and under the AVX-512 table; the import's choice restored."""
    before = _core.isa_selected()

    def run(fn):
        results = []
        for table in ("avx2", "avx512"):
            _core.isa_select(table)
            results.append(fn())
        return results

    yield run
    _core.isa_select(before)


def arrays_of(out):
    """The float arrays of a run's result (nested lists and tuples, None left out)."""
    if out is None:
        return []
    if isinstance(out, (list, tuple)):
        return [a for o in out for a in arrays_of(o)]
    return [np.asarray(out)]


def assert_same_bits(results, what):
    avx2, avx512 = (arrays_of(r) for r in results)
    assert len(avx2) == len(avx512), what
    for k, (a, b) in enumerate(zip(avx2, avx512)):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{what} output {k}"
        if a.tobytes() != b.tobytes():
            diff = np.flatnonzero((a != b) & ~(np.isnan(a) & np.isnan(b)))
            raise AssertionError(f"{what} output {k}: avx512 differs from avx2 at {diff.size} of {a.size} values, "
                                 f"first at {diff[:3].tolist()}: {a.flat[diff[:3]].tolist()} vs "
                                 f"{b.flat[diff[:3]].tolist()}")


LAYER_CONFIGS = [
    dict(cell="rnn"), dict(cell="rnn", activations="Relu"),
    dict(cell="gru", linear_before_reset=True), dict(cell="gru", linear_before_reset=False),
    dict(cell="gru", linear_before_reset=True, clip=0.5), dict(cell="gru", activations="HardSigmoid"),
    dict(cell="lstm"), dict(cell="lstm", peepholes=True), dict(cell="lstm", input_forget=True),
    dict(cell="lstm", peepholes=True, input_forget=True, clip=0.5), dict(cell="lstm", clip=0.5),
    dict(cell="lstm", activations="Softsign"), dict(cell="lstm", proj_size=5),
]


@pytest.mark.parametrize("batch", [1, 5, 13, 40])  # one row, the row kernels, 7 + 6 rows, 11 + 10 + ... row blocks
@pytest.mark.parametrize("hidden", HIDDEN_TAILS)
@pytest.mark.parametrize("config", LAYER_CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_recurrent_layers_give_the_avx2_bits(both_tables, batch, hidden, config):
    rng = np.random.default_rng(hidden * 100 + batch)
    direction = ["forward", "bidirectional", "reverse"][hidden % 3]
    layer = random_layer(rng, direction=direction, input_size=7, hidden_size=hidden, **config)
    x = rng.standard_normal((5, batch, 7)).astype(np.float32) * 2
    mask = rng.random((5, batch)) > 0.3
    stack = CompiledStack([layer])
    for m in (None, mask):
        results = both_tables(lambda: stack.run(x, mask=m, n_threads=1))
        assert_same_bits(results, f"{config} {direction} batch {batch} mask {m is not None}")


@pytest.mark.parametrize("dtype", ["int8", "float16"])
@pytest.mark.parametrize("batch", [1, 3, 10, 21])  # one row, 4 panels a row block, 5 + 5 rows, 7 + 7 + 7
@pytest.mark.parametrize("hidden", [7, 16, 40, 64])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_quantized_layers_give_the_avx2_bits(both_tables, dtype, batch, hidden, cell):
    """The quantized GEMMs (avx512_q.c against avx2_q.c) over row blocks and panel remainders."""
    rng = np.random.default_rng(hidden + batch)
    extra = dict(linear_before_reset=True) if cell == "gru" else {}
    layer = random_layer(rng, cell=cell, input_size=19, hidden_size=hidden, **extra).with_weight_dtype(dtype)
    x = rng.standard_normal((4, batch, 19)).astype(np.float32)
    stack = CompiledStack([layer])
    assert_same_bits(both_tables(lambda: stack.run(x, n_threads=1)), f"{dtype} {cell} {hidden} batch {batch}")


@pytest.mark.parametrize("name,alpha,beta", [c[:3] for c in ACTIVATION_CASES], ids=[c[0] for c in ACTIVATION_CASES])
def test_activation_entry_gives_the_avx2_bits(both_tables, name, alpha, beta):
    """Lengths that end in every tail of 8- and 16-lane vectors and of the 4- and 8-vector groups."""
    rng = np.random.default_rng(3)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 89.0, -88.0, 0.2499, 0.25, -0.2501, 1e-30], np.float32)
    for n in (1, 7, 8, 9, 15, 16, 17, 24, 31, 63, 64, 65, 127, 128, 129, 200, 1000):
        x = (rng.standard_normal(n) * 6).astype(np.float32)
        x[:min(n, specials.size)] = specials[:n]
        rng.shuffle(x)
        kind = ACTIVATION_CODES[name]
        assert_same_bits(both_tables(lambda: _core.activation(kind, alpha, beta, x)), f"{name} n={n}")


@pytest.mark.parametrize("rows,k,n", [(1, 5, 16), (2, 33, 100), (3, 64, 130), (7, 16, 48), (12, 9, 33),
                                      (13, 40, 64), (25, 17, 200), (64, 64, 256), (97, 3, 20), (200, 31, 7)])
def test_matmul_gives_the_avx2_bits(both_tables, rows, k, n):
    """A constant right operand runs as packed panels (gemm_packed): row counts that reach each block of 1 to 12
    rows and more than one 96-row block, panel counts that leave every remainder of the panel groups."""
    rng = np.random.default_rng(rows * 7 + n)
    g = G()
    x = g.input("x", F32, ["batch", k])
    y = g.add("Add", [g.add("MatMul", [x, g.const(weights(rng, (k, n), k))]), g.const(normal(rng, (n,), 0.3))])
    model = load_compiled(g.model([y]), n_threads=1)
    feeds = {"x": normal(rng, (rows, k))}
    assert_same_bits(both_tables(lambda: run_c(model, feeds)), f"MatMul {rows}x{k}x{n}")


def with_specials(feeds, rng):
    """The feeds with a few NaN and infinities placed at random."""
    out = {}
    for name, v in feeds.items():
        v = v.copy()
        flat = v.reshape(-1)
        at = rng.choice(flat.size, size=min(6, flat.size), replace=False)
        flat[at] = [np.nan, np.inf, -np.inf, np.nan, np.inf, -np.inf][:at.size]
        out[name] = v
    return out


@pytest.mark.parametrize("case", range(len(POOL_CASES)))
def test_conv_and_fused_pool_give_the_avx2_bits(both_tables, case):
    """Every conv mode (implicit GEMM with and without the fused 2x2 pool, Winograd with and without it, im2col
    panels) over the shapes of test_conv_pool_fused, fused (the pool in the conv's epilogue: AVX-512 has its own
    pooled Winograd output transform) and not (the Conv's own output read as well), finite inputs and inputs with
    NaN and inf."""
    rng = np.random.default_rng(990 + case)
    for apart in (True, False):
        model = load_compiled(fused_model(case, rng, conv_out_too=apart), n_threads=1)
        for feeds in feeds_of(case, rng):
            for f in (feeds, with_specials(feeds, rng)):
                assert_same_bits(both_tables(lambda: run_c(model, f)), f"conv-pool case {case}, apart {apart}")


@pytest.mark.parametrize("case", range(len(WINO_CASES)))
def test_winograd_conv_gives_the_avx2_bits(both_tables, case):
    rng = np.random.default_rng(970 + case)
    g, y = conv_model(case, rng)
    C, _, H, _, _, _, _, widths, batches = WINO_CASES[case]
    model = load_compiled(g.model([y]), n_threads=1)
    for n, w in zip(batches, widths):
        feeds = {"x": normal(rng, (n, C, H, w))}
        for f in (feeds, with_specials(feeds, rng)):
            assert_same_bits(both_tables(lambda: run_c(model, f)), f"winograd case {case}")
