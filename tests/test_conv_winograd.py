"""Conv 3x3, stride 1, dilation 1 with enough input channels per group: the C executor runs it as Winograd F(2x2, 3x3)
(src_c/graph/ops/conv.c, MODE_WINO), chosen by its cost model for every shape below (each has at least 8 input
channels per group and more than a panel of output tiles).

Each case is held to conftest.assert_close (rtol 1e-5, atol 1e-6) against onnxruntime and against a float64
convolution, at two shapes and then the first again (the symbolic width re-plans the node), and loaded with 1 and 2
threads for identical bits. The shapes cover partial tiles (odd output sizes), no padding, asymmetric and large
padding (outputs that read only the border), a partial last tile row, batch > 1, groups, rows wider than one task
(tasks cut along a tile row), and the epilogues the fusion folds into the Conv (bias, BatchNormalization, Relu,
LeakyRelu, Sigmoid)."""
import numpy as np
import pytest

from conftest import assert_close
from test_graph_differential import F32, G, _after_conv, check, load_compiled, normal, run_c, weights

CASES = [  # (C, M, H, pads (b0, b1, e0, e1), group, bias, after, widths for two runs, batch for two runs)
    (16, 32, 20, (1, 1, 1, 1), 1, True, "relu", (32, 17), (2, 1)),  # the crnn fixture's conv2, and an odd width
    (12, 20, 9, (1, 1, 1, 1), 1, True, None, (21, 30), (3, 2)),
    (10, 24, 11, (0, 0, 0, 0), 1, False, "leakyrelu", (25, 31), (1, 2)),
    (16, 16, 7, (2, 0, 1, 3), 1, True, "sigmoid", (40, 11), (2, 1)),
    (32, 24, 17, (1, 0, 0, 1), 2, True, "relu", (9, 20), (2, 3)),
    (16, 24, 3, (1, 1, 1, 1), 1, True, "bn_relu", (50, 33), (2, 1)),
    (8, 8, 5, (3, 2, 4, 3), 1, True, "add_relu", (6, 19), (1, 2)),
    (16, 16, 6, (1, 1, 1, 1), 1, True, None, (201, 77), (1, 2)),  # 101 tiles a row: tasks cut along the rows
    (24, 42, 12, (1, 1, 1, 1), 3, False, "bn", (45, 14), (2, 1)),
]


def conv_model(case, rng):
    C, M, H, pads, group, bias, after, _, _ = CASES[case]
    g = G()
    x = g.input("x", F32, ["batch", C, H, "time"])
    ins = [x, g.const(weights(rng, (M, C // group, 3, 3), C // group * 9))]
    if bias:
        ins.append(g.const(normal(rng, (M,), 0.3)))
    y = g.add("Conv", ins, kernel_shape=[3, 3], pads=list(pads), group=group)
    if after == "leakyrelu":
        return g, g.add("LeakyRelu", [y], alpha=0.1)
    return g, _after_conv(g, rng, y, M, after, 2)


def conv64(x, w, b, pads, group):
    """The float64 convolution: a sum over the nine taps of per-group channel products."""
    N, C, H, W = x.shape
    M = w.shape[0]
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    Ho, Wo = xp.shape[2] - 2, xp.shape[3] - 2
    y = np.zeros((N, M, Ho, Wo))
    Cg, Mg = C // group, M // group
    for gi in range(group):
        wg = w[gi * Mg:(gi + 1) * Mg].astype(np.float64)
        xg = xp[:, gi * Cg:(gi + 1) * Cg]
        for kh in range(3):
            for kw in range(3):
                y[:, gi * Mg:(gi + 1) * Mg] += np.einsum("mc,nchw->nmhw", wg[:, :, kh, kw],
                                                         xg[:, :, kh:kh + Ho, kw:kw + Wo])
    return y + (0.0 if b is None else b.astype(np.float64)[None, :, None, None])


@pytest.mark.parametrize("case", range(len(CASES)))
def test_winograd_conv_vs_onnxruntime(case):
    rng = np.random.default_rng(700 + case)
    g, y = conv_model(case, rng)
    C, _, H, _, _, _, _, widths, batches = CASES[case]
    feeds = [{"x": normal(rng, (n, C, H, w))} for n, w in zip(batches, widths)]
    check(g.model([y]), feeds, threads=True)


@pytest.mark.parametrize("case", [c for c, spec in enumerate(CASES) if spec[6] in (None, "relu")])
def test_winograd_conv_vs_float64(case):
    rng = np.random.default_rng(800 + case)
    g, y = conv_model(case, rng)
    C, M, H, pads, group, bias, after, widths, batches = CASES[case]
    model = load_compiled(g.model([y]))
    w = g.inits[g.nodes[0].input[1]]
    b = g.inits[g.nodes[0].input[2]] if bias else None
    for n, width in zip(batches, widths):
        x = normal(rng, (n, C, H, width))
        want = conv64(x, w, b, pads, group)
        if after == "relu":
            want = np.maximum(want, 0.0)
        assert_close(run_c(model, {"x": x})[0], want.astype(F32), what=f"case {case} width {width}")


def test_winograd_conv_crnn_shape_many_threads():
    """The crnn fixture's conv2 at 1, 2 and 3 threads: the tasks are cut from the shapes, so the bits agree."""
    rng = np.random.default_rng(790)
    g, y = conv_model(0, rng)
    data = g.model([y])
    x = {"x": normal(rng, (2, 16, 20, 32))}
    outs = [run_c(load_compiled(data, n_threads=n), x)[0] for n in (1, 2, 3)]
    assert outs[0].tobytes() == outs[1].tobytes() == outs[2].tobytes()
