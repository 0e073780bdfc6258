"""A 2-D Conv (no activation, or Relu) followed by MaxPool 2x2 stride 2 runs as one C node: graph/fuse.py gives the
Conv a "_pool" attribute and src_c/graph/ops/conv.c pools the activated output while it is in cache (a Winograd
tile is one pool window: the kernel table's wino2_out_pool; the implicit GEMM pools row pairs in registers:
gemm_offsets_pool; the other modes pool their whole planes after the tasks).

Each case runs against onnxruntime (conftest.assert_close) at two shapes and the first again, with 1 and 2 threads
giving the same bits, under every kernel table this CPU runs (the scalar reference, AVX2, AVX-512). The
shapes reach every conv mode: the crnn fixture's two convs (1 input channel: implicit GEMM; 16: Winograd), odd
output sizes (a last row or column no window takes), batch 1 and > 1, groups, a depthwise conv, strides, dilations,
asymmetric pads, a 1x1 kernel, Winograd rows wider than one task, and outputs so narrow that the GEMM takes
positions as rows or as im2col panels. Inputs holding NaN and +-inf give the same
bits fused as the Conv, Relu and MaxPool nodes give unfused. MaxPools the C conv does not apply (pads, another
window, ceil_mode, an activation other than Relu before them) stay separate nodes and still agree with
onnxruntime."""
import numpy as np
import pytest

from rnnfast import _core
from rnnfast.graph.compile import OP_NAMES
from test_graph_differential import F32, G, check, load_compiled, normal, run_c, weights

CASES = [  # (C, M, H, kernel, strides, pads (b0, b1, e0, e1), dilations, group, relu, widths, batches)
    (1, 16, 40, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True, (64, 37), (2, 1)),  # crnn conv1
    (16, 32, 20, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True, (32, 17), (2, 3)),  # crnn conv2 (Winograd)
    (12, 20, 9, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, False, (21, 30), (3, 2)),
    (32, 24, 7, (3, 3), (1, 1), (1, 0, 0, 1), (1, 1), 2, True, (9, 20), (2, 1)),
    (16, 16, 6, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True, (201, 77), (1, 2)),  # tasks cut along tile rows
    (4, 8, 13, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, True, (30, 11), (2, 1)),
    (6, 6, 10, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 6, True, (15, 24), (1, 2)),  # depthwise
    (8, 5, 8, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, False, (12, 7), (2, 1)),
    (1, 7, 11, (5, 3), (1, 1), (2, 1, 2, 1), (1, 1), 1, True, (33, 10), (1, 3)),
    (3, 4, 12, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 1, True, (19, 8), (2, 1)),
    (4, 48, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True, (2, 3), (2, 1)),  # positions as GEMM rows
    (4, 8, 24, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True, (3, 5), (2, 1)),  # positions as panel columns
]


def fused_model(case, rng, conv_out_too=False):
    C, M, H, kernel, strides, pads, dil, group, relu, _, _ = CASES[case]
    g = G()
    x = g.input("x", F32, ["batch", C, H, "time"])
    w = g.const(weights(rng, (M, C // group) + kernel, C // group * kernel[0] * kernel[1]))
    y = g.add("Conv", [x, w, g.const(normal(rng, (M,), 0.3))], kernel_shape=list(kernel), strides=list(strides),
              pads=list(pads), dilations=list(dil), group=group)
    if relu:
        y = g.add("Relu", [y])
    p = g.add("MaxPool", [y], kernel_shape=[2, 2], strides=[2, 2])
    return g.model([p, y] if conv_out_too else [p])


def feeds_of(case, rng):
    C, _, H, *_, widths, batches = CASES[case]
    return [{"x": normal(rng, (n, C, H, w))} for n, w in zip(batches, widths)]


def ops_of(model):
    return [OP_NAMES[node[0]] for node in model.graph.compiled.desc["nodes"]]


@pytest.fixture
def isa():
    before = _core.isa_selected()
    yield _core.isa_select
    _core.isa_select(before)


@pytest.mark.parametrize("table", _core.isa_supported())
@pytest.mark.parametrize("case", range(len(CASES)))
def test_fused_conv_pool_vs_onnxruntime(case, table, isa):
    isa(table)
    rng = np.random.default_rng(900 + case)
    data = fused_model(case, rng)
    model = check(data, feeds_of(case, rng), threads=True)
    assert ops_of(model) == ["CONV"], ops_of(model)


@pytest.mark.parametrize("case", [0, 1, 2, 5])
def test_nan_and_inf_give_the_unfused_bits(case):
    rng = np.random.default_rng(950 + case)
    fused = load_compiled(fused_model(case, rng))
    rng = np.random.default_rng(950 + case)
    apart = load_compiled(fused_model(case, rng, conv_out_too=True))  # the conv's output is read: not fused
    assert ops_of(fused) == ["CONV"] and "MAXPOOL" in ops_of(apart)
    x = feeds_of(case, rng)[0]["x"]
    flat = x.reshape(-1)
    picks = rng.choice(flat.size, size=max(4, flat.size // 20), replace=False)
    flat[picks[0::3]] = np.nan
    flat[picks[1::3]] = np.inf
    flat[picks[2::3]] = -np.inf
    got, want = run_c(fused, {"x": x})[0], run_c(apart, {"x": x})[0]
    assert got.shape == want.shape and got.tobytes() == want.tobytes()
    assert np.isnan(got).any() or np.isinf(got).any()  # the special values reached the pooled output


NOT_FUSED = [  # MaxPool attributes, the activation between
    (dict(kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 1, 1]), "Relu"),
    (dict(kernel_shape=[3, 3], strides=[2, 2]), "Relu"),
    (dict(kernel_shape=[2, 2], strides=[1, 1]), None),
    (dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1), "Relu"),
    (dict(kernel_shape=[2, 2], strides=[2, 2]), "Sigmoid"),
]


@pytest.mark.parametrize("case", range(len(NOT_FUSED)))
def test_other_pools_stay_apart(case):
    attrs, act = NOT_FUSED[case]
    rng = np.random.default_rng(980 + case)
    g = G()
    x = g.input("x", F32, ["batch", 8, 9, 13])  # ceil_mode needs a known width
    y = g.add("Conv", [x, g.const(weights(rng, (8, 8, 3, 3), 72))], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    if act:
        y = g.add(act, [y])
    p = g.add("MaxPool", [y], **attrs)
    model = check(g.model([p]), [{"x": normal(rng, (2, 8, 9, 13))}, {"x": normal(rng, (1, 8, 9, 13))}])
    assert "MAXPOOL" in ops_of(model)
