"""Error of Winograd tile choices for a 3x3 conv against the float64 convolution, in a float32 emulation, before any
is built in C: src_c/graph/ops/conv.c runs F(2x2, 3x3) and keeps the larger tiles out on these figures.

    python bench/winograd_tiles.py

Tiles: F(m_h x m_w, 3x3) as the product of a 1-D F(m, 3) along each axis, m in {2, 3, 4}, from the interpolation
points printed (and infinity); the transforms are built here by Toom-Cook (A^T and G from the points, B^T solved
from the bilinear identity) and checked on a random tile. The emulation: the input transform B^T d B and the
output transform A^T M A in float32, the weights' transform G w G^T in float64 rounded once (as conv.c does), and
the position products summed over the input channels in float32. Shapes: the crnn fixture's conv2 on its recorded
input (conv1, ReLU and the pool in float64 before it) and random layers as the tests make them (weights uniform in
+-1/sqrt(C*9), inputs N(0, 1), bias N(0, 0.3^2), pads 1).

Printed per shape and tile: the max abs error after the ReLU and the tolerance ratio max |err| / (atol + rtol |y|)
with conftest.assert_close's rtol 1e-5, atol 1e-6: at 1 a test comparing against float64 fails, and onnxruntime's
own error comes on top in the tests that compare with it. The direct float32 sum (one chain over c, kh, kw) is the
first line.
"""
from __future__ import annotations

import os
from fractions import Fraction as Fr

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "data", "onnx", "graph")
RTOL, ATOL = 1e-5, 1e-6
F32 = np.float32

POINTS = {  # 1-D tiles: name -> (m, finite points)
    "F2": (2, [0, 1, -1]),
    "F3(0,1,-1,1/2)": (3, [0, 1, -1, Fr(1, 2)]),
    "F4(0,1,-1,2,-2)": (4, [0, 1, -1, 2, -2]),
    "F4(0,1,-1,1/2,-1/2)": (4, [0, 1, -1, Fr(1, 2), Fr(-1, 2)]),
    "F4(0,1,-1,1/2,-2)": (4, [0, 1, -1, Fr(1, 2), -2]),
    "F4(0,-1,1,-1/2,2)": (4, [0, -1, 1, Fr(-1, 2), 2]),
}
TILES = [("F2", "F2"), ("F2", "F3(0,1,-1,1/2)"), ("F2", "F4(0,1,-1,2,-2)"), ("F2", "F4(0,1,-1,1/2,-1/2)"),
         ("F2", "F4(0,1,-1,1/2,-2)"), ("F2", "F4(0,-1,1,-1/2,2)"), ("F3(0,1,-1,1/2)", "F3(0,1,-1,1/2)"),
         ("F4(0,1,-1,1/2,-2)", "F4(0,1,-1,1/2,-2)"), ("F4(0,1,-1,2,-2)", "F4(0,1,-1,2,-2)")]


def toom_cook(m, pts, r=3):
    """(A^T [m][a], G [a][r], B^T [a][a]) of F(m, r) on the finite points and infinity, a = m + r - 1."""
    a = m + r - 1
    pts = [Fr(p) for p in pts]
    at = np.array([[float(p ** i) for p in pts] + [1.0 if i == m - 1 else 0.0] for i in range(m)])
    g = []
    for j, pj in enumerate(pts):
        f = Fr(1)
        for pl in pts[:j] + pts[j + 1:]:
            f *= pj - pl
        g.append([float(pj ** k / f) for k in range(r)])
    g = np.array(g + [[0.0] * (r - 1) + [1.0]])
    # sum_j A^T[i][j] G[j][k] B^T[j][l] = [l == i + k] for every i, k, l: linear in B^T
    rows, rhs = [], []
    for i in range(m):
        for k in range(r):
            for col in range(a):
                e = np.zeros((a, a))
                e[:, col] = at[i] * g[:, k]
                rows.append(e.ravel())
                rhs.append(1.0 if col == i + k else 0.0)
    bt, _, rank, _ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
    assert rank == a * a, f"F({m}, {r}) on {pts}: the transform is not determined"
    bt = np.round(bt.reshape(a, a) * 48) / 48  # simple rationals; the check below fails if rounding moved one
    d, w = np.random.default_rng(0).standard_normal(a), np.random.default_rng(1).standard_normal(r)
    want = [sum(d[i + k] * w[k] for k in range(r)) for i in range(m)]
    assert np.allclose(at @ ((g @ w) * (bt @ d)), want, atol=1e-12), f"F({m}, {r}) on {pts}: wrong transform"
    return at, g, bt


def conv64(x, w, b):
    n, _, h, wd = x.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    y = np.zeros((n, w.shape[0], h, wd))
    for kh in range(3):
        for kw in range(3):
            y += np.einsum("mc,nchw->nmhw", w[:, :, kh, kw].astype(np.float64), xp[:, :, kh:kh + h, kw:kw + wd])
    return y + b.astype(np.float64)[None, :, None, None]


def direct32(x, w, b):
    n, c_in, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    y = np.zeros((n, w.shape[0], h, wd), F32)
    for c in range(c_in):
        for kh in range(3):
            for kw in range(3):
                y = (y + w[None, :, c, kh, kw, None, None] * xp[:, c:c + 1, kh:kh + h, kw:kw + wd]).astype(F32)
    return y + b[None, :, None, None]


def winograd32(x, w, b, tile_h, tile_w):
    (ath, gh, bth), (atw, gw, btw) = tile_h, tile_w
    mh, mw = ath.shape[0], atw.shape[0]
    n, c_in, h, wd = x.shape
    nth, ntw = -(-h // mh), -(-wd // mw)
    xp = np.zeros((n, c_in, nth * mh + 2, ntw * mw + 2), F32)
    xp[:, :, 1:1 + h, 1:1 + wd] = x
    d = np.stack([np.stack([xp[:, :, i * mh:i * mh + mh + 2, j * mw:j * mw + mw + 2] for j in range(ntw)], 2)
                  for i in range(nth)], 2)  # [n][c][tile row][tile col][a_h][a_w]
    v = np.einsum("ai,ncstij->ncstaj", bth.astype(F32), d).astype(F32)
    v = np.einsum("bj,ncstaj->ncstab", btw.astype(F32), v).astype(F32)
    u = np.einsum("ak,mckl,bl->mcab", gh, w.astype(np.float64), gw).astype(F32)
    prod = np.einsum("mcab,ncstab->nmstab", u, v).astype(F32)
    y = np.einsum("ia,nmstab->nmstib", ath.astype(F32), prod).astype(F32)
    y = np.einsum("jb,nmstib->nmstij", atw.astype(F32), y).astype(F32)
    y = y.transpose(0, 1, 2, 4, 3, 5).reshape(n, w.shape[0], nth * mh, ntw * mw)[:, :, :h, :wd]
    return y + b[None, :, None, None]


def score(got, want):
    got, want = np.maximum(got, 0).astype(np.float64), np.maximum(want, 0).astype(F32).astype(np.float64)
    err = np.abs(got - want)
    return err.max(), (err / (ATOL + RTOL * np.abs(want))).max()


def shapes():
    model = onnx.load(os.path.join(FIXTURES, "crnn.ts.onnx"))
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    w1, b1 = (init[i] for i in convs[0].input[1:])
    w2, b2 = (init[i] for i in convs[1].input[1:])
    x = np.load(os.path.join(FIXTURES, "crnn.npz"))["in:input"]
    y1 = np.maximum(conv64(x, w1, b1), 0)
    n, c, h, wd = y1.shape
    pooled = y1.reshape(n, c, h // 2, 2, wd // 2, 2).max(axis=(3, 5)).astype(F32)
    yield "crnn conv2 (recorded input)", pooled, w2, b2
    for seed, (c, m, h, wd) in enumerate([(16, 32, 20, 32), (16, 32, 20, 32), (12, 20, 9, 21), (32, 32, 16, 24),
                                          (64, 64, 12, 16), (8, 8, 12, 16)]):
        rng = np.random.default_rng(seed)
        s = 1 / np.sqrt(c * 9)
        w = rng.uniform(-s, s, (m, c, 3, 3)).astype(F32)
        b = (rng.standard_normal(m) * 0.3).astype(F32)
        yield f"random {c}->{m} channels, 2 x {h} x {wd}, seed {seed}", rng.standard_normal((2, c, h, wd)).astype(
            F32), w, b


def main():
    tiles = {name: toom_cook(m, pts) for name, (m, pts) in POINTS.items()}
    for name, x, w, b in shapes():
        want = conv64(x, w, b)
        e, r = score(direct32(x, w, b), want)
        print(f"{name}: max |y| {np.abs(want).max():.2f}")
        print(f"  {'direct sum':45s} max abs {e:.2e}  tolerance ratio {r:.2f}")
        for th, tw in TILES:
            e, r = score(winograd32(x, w, b, tiles[th], tiles[tw]), want)
            print(f"  {th + ' x ' + tw:45s} max abs {e:.2e}  tolerance ratio {r:.2f}")


if __name__ == "__main__":
    main()
