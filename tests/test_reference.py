"""The float64 reference on cases worked out by hand with scalar arithmetic (hidden = input = 1), so the spec
the rest of the suite leans on is itself pinned to the equations of SEMANTICS.md 1.1."""
import math

import numpy as np
import pytest

from rnnfast.layers import Activation, RecurrentLayer
from rnnfast.reference import apply_activation, run_layer


def sig(v):
    return 1 / (1 + math.exp(-v))


def scalar_layer(cell, w, r, b_ih, b_hh, direction="forward", **kw):
    n = 2 if direction == "bidirectional" else 1
    g = len(w)
    arr = lambda v: np.array([v] * n, np.float32).reshape(n, g, *([1] if v is w or v is r else []))
    return RecurrentLayer(cell, direction, 1, 1, arr(w), arr(r), np.array([b_ih] * n, np.float32).reshape(n, g),
                          np.array([b_hh] * n, np.float32).reshape(n, g), **kw)


XS = [0.5, -1.0]


def test_rnn_two_steps():
    layer = scalar_layer("rnn", [0.5], [-0.25], [0.125], [0.25])
    h1 = math.tanh(0.5 * 0.5 + 0.375)
    h2 = math.tanh(0.5 * -1.0 - 0.25 * h1 + 0.375)
    y, y_h, _ = run_layer(layer, np.array(XS).reshape(2, 1, 1))
    assert y[:, 0, 0, 0] == pytest.approx([h1, h2], abs=1e-6)
    assert y_h[0, 0, 0] == pytest.approx(h2, abs=1e-6)


@pytest.mark.parametrize("lbr", [False, True])
def test_gru_two_steps(lbr):
    wz, wr, wh, rz, rr, rh = 0.5, -0.5, 0.25, 0.125, 0.75, -0.5
    bw, br = [0.125, -0.25, 0.5], [0.25, 0.125, -0.375]
    layer = scalar_layer("gru", [wz, wr, wh], [rz, rr, rh], bw, br, linear_before_reset=lbr)
    h = 0.0
    for x in XS:
        z = sig(wz * x + rz * h + bw[0] + br[0])
        r = sig(wr * x + rr * h + bw[1] + br[1])
        if lbr:
            n = math.tanh(wh * x + bw[2] + r * (rh * h + br[2]))
        else:
            n = math.tanh(wh * x + rh * (r * h) + br[2] + bw[2])
        h = (1 - z) * n + z * h
    assert run_layer(layer, np.array(XS).reshape(2, 1, 1))[1][0, 0, 0] == pytest.approx(h, abs=1e-6)


@pytest.mark.parametrize("peep,input_forget,clip", [(None, False, None), ([0.5, -0.25, 0.75], False, None),
                                                    (None, True, None), ([0.5, -0.25, 0.75], False, 0.3)])
def test_lstm_two_steps(peep, input_forget, clip):
    w = [0.5, -0.5, 0.25, 0.75]  # i, o, f, c
    r = [0.125, 0.75, -0.5, 0.25]
    b = [0.125, -0.25, 0.5, 0.0]
    layer = scalar_layer("lstm", w, r, b, [0.0] * 4, clip=clip, input_forget=input_forget,
                         peepholes=None if peep is None else np.array([peep], np.float32))
    cl = (lambda v: v) if clip is None else (lambda v: max(-clip, min(clip, v)))
    p_i, p_o, p_f = peep or (0.0, 0.0, 0.0)
    h = c = 0.0
    for x in XS:
        pre = [w[k] * x + r[k] * h + b[k] for k in range(4)]
        i = sig(cl(pre[0] + p_i * c))
        f = 1 - i if input_forget else sig(cl(pre[2] + p_f * c))
        c = f * c + i * math.tanh(cl(pre[3]))
        o = sig(cl(pre[1] + p_o * c))  # the o-gate peephole reads the new cell
        h = o * math.tanh(c)
    _, y_h, y_c = run_layer(layer, np.array(XS).reshape(2, 1, 1))
    assert (y_h[0, 0, 0], y_c[0, 0, 0]) == pytest.approx((h, c), abs=1e-6)


def test_lstm_projection_feeds_back_the_projected_state():
    layer = RecurrentLayer("lstm", "forward", 1, 1, np.full((1, 4, 1), 0.5), np.full((1, 4, 1), 0.25),
                           np.zeros((1, 4)), np.zeros((1, 4)), w_hr=np.full((1, 1, 1), -2.0))
    h = c = 0.0
    for x in XS:
        i = o = f = sig(0.5 * x + 0.25 * h)
        c = f * c + i * math.tanh(0.5 * x + 0.25 * h)
        h = -2.0 * o * math.tanh(c)
    assert run_layer(layer, np.array(XS).reshape(2, 1, 1))[1][0, 0, 0] == pytest.approx(h, abs=1e-6)


def test_reverse_keeps_y_aligned_with_x_and_bidirectional_stacks_directions():
    layer = scalar_layer("rnn", [1.0], [0.5], [0.0], [0.0], direction="bidirectional")
    back_t1 = math.tanh(-1.0)
    back_t0 = math.tanh(0.5 + 0.5 * back_t1)
    y, y_h, _ = run_layer(layer, np.array(XS).reshape(2, 1, 1))
    assert y[:, 1, 0, 0] == pytest.approx([back_t0, back_t1], abs=1e-6)
    assert y_h[1, 0, 0] == pytest.approx(back_t0, abs=1e-6)  # the backward state after consuming x[0]
    assert y[0, 0, 0, 0] == pytest.approx(math.tanh(0.5), abs=1e-6)


def test_sequence_lens_zero_padding_last_valid_state_and_zero_length():
    layer = scalar_layer("rnn", [1.0], [0.5], [0.0], [0.0], direction="reverse")
    x = np.array([[0.5, 0.5, 0.5], [-1.0, -1.0, -1.0]]).reshape(2, 3, 1)
    y, y_h, _ = run_layer(layer, x, sequence_lens=[2, 1, 0], initial_h=np.full((1, 3, 1), 0.7))
    # row 0: full length, reverse from t=1; row 1: length 1, reverse starts at t=0; row 2: length 0
    r0_t1 = math.tanh(-1.0 + 0.5 * 0.7)
    assert y[1, 0, 0, 0] == pytest.approx(r0_t1, abs=1e-6)
    assert y[1, 0, 1, 0] == 0.0 and y[0, 0, 1, 0] == pytest.approx(math.tanh(0.5 + 0.35), abs=1e-6)
    assert y_h[0, 2, 0] == 0.0 and np.all(y[:, 0, 2] == 0)  # zero length: zero state, not initial_h
    with pytest.raises(ValueError, match="in \\[0, 2\\]"):
        run_layer(layer, x, sequence_lens=[3, 1, 0])


@pytest.mark.parametrize("zero_output", [False, True])
def test_mask_carries_state_and_repeats_or_zeroes_the_output(zero_output):
    layer = scalar_layer("rnn", [1.0], [0.5], [0.0], [0.0])
    x = np.array([0.5, 9.0, -1.0]).reshape(3, 1, 1)
    y, y_h, _ = run_layer(layer, x, mask=np.array([[True], [False], [True]]), mask_zero_output=zero_output)
    h0 = math.tanh(0.5)
    h2 = math.tanh(-1.0 + 0.5 * h0)  # the masked step's 9.0 never enters
    assert y[:, 0, 0, 0] == pytest.approx([h0, 0.0 if zero_output else h0, h2], abs=1e-6)
    y, _, _ = run_layer(layer, x, mask=np.array([[False], [True], [True]]))
    assert y[0, 0, 0, 0] == 0.0  # nothing to repeat before the first real step


@pytest.mark.parametrize("name,alpha,beta,x,want", [
    ("Affine", 2.0, 0.5, 1.5, 3.5), ("LeakyRelu", 0.1, 0, -2.0, -0.2), ("ThresholdedRelu", 1.0, 0, 0.5, 0.0),
    ("ThresholdedRelu", 1.0, 0, 1.5, 1.5), ("ScaledTanh", 2.0, 0.5, 1.0, 2 * math.tanh(0.5)),
    ("HardSigmoid", 0.2, 0.5, 1.0, 0.7), ("HardSigmoid", 0.2, 0.5, 10.0, 1.0), ("Elu", 2.0, 0, -1.0, 2 * (math.exp(-1) - 1)),
    ("Softsign", 0, 0, 3.0, 0.75), ("Softplus", 0, 0, 1.0, math.log(1 + math.e)), ("Relu", 0, 0, -3.0, 0.0),
    ("Sigmoid", 0, 0, 2.0, sig(2.0)), ("Tanh", 0, 0, 0.3, math.tanh(0.3)), ("Swish", 0, 0, 1.0, sig(1.0)),
    ("Gelu", 0, 0, 1.0, 0.5 * (1 + math.erf(1 / math.sqrt(2)))), ("Exp", 0, 0, 1.0, math.e),
    ("Selu", 0, 0, -1.0, 1.0507009873554805 * 1.6732632423543772 * (math.exp(-1) - 1))])
def test_activation_formulas(name, alpha, beta, x, want):
    assert apply_activation(Activation(name, alpha, beta), np.array([x]))[0] == pytest.approx(want, abs=1e-12)


def test_gru_clip_bounds_every_gate_pre_activation():
    layer = scalar_layer("gru", [2.0, -2.0, 3.0], [0.0, 0.0, 0.0], [0.0] * 3, [0.0] * 3, clip=0.5)
    z, r = sig(0.5), sig(-0.5)  # x = 1: pre-activations 2, -2, 3 all clipped to +-0.5
    h = (1 - z) * math.tanh(0.5)
    assert run_layer(layer, np.ones((1, 1, 1)))[1][0, 0, 0] == pytest.approx(h, abs=1e-12)
    assert r == pytest.approx(sig(-0.5))  # r is computed but multiplies a zero state here


def test_lstm_projection_with_hidden_larger_than_output():
    # H = 2 cells projected to P = 1: w_hh is [4H, P], w_hr is [P, H]; the state fed back has P entries.
    w_x = [0.5, -0.25, 0.25, 0.75, -0.5, 0.125, 1.0, -1.0]  # i0 i1 o0 o1 f0 f1 c0 c1
    w_h = [0.25, 0.5, -0.75, 0.125, 0.375, -0.25, 0.5, 0.625]
    proj = [1.5, -0.5]
    layer = RecurrentLayer("lstm", "forward", 2, 1, np.array(w_x).reshape(1, 8, 1), np.array(w_h).reshape(1, 8, 1),
                           np.zeros((1, 8)), np.zeros((1, 8)), w_hr=np.array(proj).reshape(1, 1, 2))
    h, c = 0.0, [0.0, 0.0]
    for x in XS:
        pre = [w_x[k] * x + w_h[k] * h for k in range(8)]
        cells = []
        for u in range(2):
            i, o, f = sig(pre[u]), sig(pre[2 + u]), sig(pre[4 + u])
            c[u] = f * c[u] + i * math.tanh(pre[6 + u])
            cells.append(o * math.tanh(c[u]))
        h = proj[0] * cells[0] + proj[1] * cells[1]
    y, y_h, y_c = run_layer(layer, np.array(XS).reshape(2, 1, 1))
    assert y.shape == (2, 1, 1, 1) and y_c.shape == (1, 1, 2)
    assert y_h[0, 0, 0] == pytest.approx(h, abs=1e-12)
    assert y_c[0, 0] == pytest.approx(c, abs=1e-12)


def test_bidirectional_uses_each_directions_own_activation():
    layer = scalar_layer("rnn", [1.0], [0.5], [0.0], [0.0], direction="bidirectional",
                         activations=((Activation("Tanh"),), (Activation("Affine", 2.0, 0.25),)))
    fw0 = math.tanh(0.5)
    fw1 = math.tanh(-1.0 + 0.5 * fw0)
    bw1 = 2.0 * -1.0 + 0.25
    bw0 = 2.0 * (0.5 + 0.5 * bw1) + 0.25
    y, y_h, _ = run_layer(layer, np.array(XS).reshape(2, 1, 1))
    np.testing.assert_allclose(y[:, :, 0, 0], [[fw0, bw0], [fw1, bw1]], rtol=0, atol=1e-12)
    assert y_h[:, 0, 0].tolist() == pytest.approx([fw1, bw0], abs=1e-12)


def test_forward_sequence_lens_keeps_last_valid_lstm_state_and_zero_length_zeroes_c():
    layer = scalar_layer("lstm", [0.5, -0.5, 0.25, 0.75], [0.125, 0.75, -0.5, 0.25], [0.0] * 4, [0.0] * 4)
    x = np.array([0.5, -1.0, 2.0]).reshape(3, 1, 1).repeat(3, axis=1)
    h0, c0 = np.full((1, 3, 1), 0.25), np.full((1, 3, 1), -0.5)
    y, y_h, y_c = run_layer(layer, x, sequence_lens=np.array([3, 2, 0]), initial_h=h0, initial_c=c0)
    hs, cs, h, c = [], [], 0.25, -0.5
    for v in [0.5, -1.0, 2.0]:
        pre = [w * v + r * h for w, r in zip([0.5, -0.5, 0.25, 0.75], [0.125, 0.75, -0.5, 0.25])]
        c = sig(pre[2]) * c + sig(pre[0]) * math.tanh(pre[3])
        h = sig(pre[1]) * math.tanh(c)
        hs.append(h)
        cs.append(c)
    assert y[:, 0, 0, 0].tolist() == pytest.approx(hs, abs=1e-12)
    assert y[:, 0, 1, 0].tolist() == pytest.approx([hs[0], hs[1], 0.0], abs=1e-12)
    np.testing.assert_allclose(y_h[0, :, 0], [hs[2], hs[1], 0.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(y_c[0, :, 0], [cs[2], cs[1], 0.0], rtol=0, atol=1e-12)
    assert np.all(y[:, 0, 2] == 0.0)


def test_reverse_sequence_lens_final_state_is_after_x0():
    layer = scalar_layer("rnn", [1.0], [0.5], [0.0], [0.0], direction="reverse")
    x = np.array([[0.5, 0.5], [-1.0, -1.0], [4.0, 4.0]]).reshape(3, 2, 1)
    y, y_h, _ = run_layer(layer, x, sequence_lens=np.array([2, 1]))
    r0_t1 = math.tanh(-1.0)  # row 0 starts at t = len - 1 = 1; the 4.0 at t = 2 is padding
    r0_t0 = math.tanh(0.5 + 0.5 * r0_t1)
    r1_t0 = math.tanh(0.5)
    np.testing.assert_allclose(y[:, 0, :, 0], [[r0_t0, r1_t0], [r0_t1, 0.0], [0.0, 0.0]], rtol=0, atol=1e-12)
    assert y_h[0, :, 0].tolist() == pytest.approx([r0_t0, r1_t0], abs=1e-12)


@pytest.mark.parametrize("bad", [np.array([1.0, 2.0]), np.array([1, 2, 3]), np.array([-1, 2])])
def test_bad_sequence_lens_raise(bad):
    layer = scalar_layer("rnn", [1.0], [0.5], [0.0], [0.0])
    with pytest.raises(ValueError, match="sequence_lens"):
        run_layer(layer, np.zeros((2, 2, 1)), sequence_lens=bad)


def test_mask_in_reverse_repeats_in_processing_order():
    layer = scalar_layer("rnn", [1.0], [0.5], [0.0], [0.0], direction="reverse")
    x = np.array([0.5, 9.0, -1.0, 9.0]).reshape(4, 1, 1)
    y, y_h, _ = run_layer(layer, x, mask=np.array([[True], [False], [True], [False]]))
    h2 = math.tanh(-1.0)  # t = 3 is processed first and is masked: nothing to repeat yet
    h0 = math.tanh(0.5 + 0.5 * h2)  # t = 1 is skipped, so t = 0 sees the state from t = 2
    assert y[:, 0, 0, 0].tolist() == pytest.approx([h0, h2, h2, 0.0], abs=1e-12)
    assert y_h[0, 0, 0] == pytest.approx(h0, abs=1e-12)


def test_mask_carries_lstm_cell_and_fully_masked_row_keeps_initial_state():
    w, r = [0.5, -0.5, 0.25, 0.75], [0.125, 0.75, -0.5, 0.25]
    layer = scalar_layer("lstm", w, r, [0.0] * 4, [0.0] * 4)
    x = np.array([0.5, 9.0, -1.0]).reshape(3, 1, 1).repeat(2, axis=1)
    mask = np.array([[True, False], [False, False], [True, False]])
    h0, c0 = np.full((1, 2, 1), 0.25), np.full((1, 2, 1), -0.5)
    y, y_h, y_c = run_layer(layer, x, mask=mask, initial_h=h0, initial_c=c0)
    h, c = 0.25, -0.5
    for v in [0.5, -1.0]:  # the masked 9.0 changes neither h nor c
        pre = [wk * v + rk * h for wk, rk in zip(w, r)]
        c = sig(pre[2]) * c + sig(pre[0]) * math.tanh(pre[3])
        h = sig(pre[1]) * math.tanh(c)
    assert (y_h[0, 0, 0], y_c[0, 0, 0]) == pytest.approx((h, c), abs=1e-12)
    assert (y_h[0, 1, 0], y_c[0, 1, 0]) == (0.25, -0.5)
    assert np.all(y[:, 0, 1] == 0.0)  # a row that never steps has no output to repeat


def test_mask_and_sequence_lens_together():
    layer = scalar_layer("rnn", [1.0], [0.5], [0.0], [0.0])
    x = np.array([0.5, 9.0, -1.0]).reshape(3, 1, 1).repeat(2, axis=1)
    mask = np.array([[True, True], [False, True], [True, True]])
    y, y_h, _ = run_layer(layer, x, sequence_lens=np.array([2, 0]), mask=mask, initial_h=np.full((1, 2, 1), 0.5))
    h = math.tanh(0.5 + 0.5 * 0.5)
    # row 0: t = 1 masked (repeat), t = 2 past the length (zero even though the mask allows it)
    assert y[:, 0, 0, 0].tolist() == pytest.approx([h, h, 0.0], abs=1e-12)
    assert y_h[0, 0, 0] == pytest.approx(h, abs=1e-12)
    assert y_h[0, 1, 0] == 0.0 and np.all(y[:, 0, 1] == 0.0)  # length 0 wins over the mask and initial_h


@pytest.mark.parametrize("name,alpha,beta,x,want", [
    ("Affine", -1.0, 0.0, -2.0, 2.0), ("LeakyRelu", 0.1, 0, 2.0, 2.0), ("LeakyRelu", 0.1, 0, 0.0, 0.0),
    ("ThresholdedRelu", 1.0, 0, 1.0, 0.0), ("ThresholdedRelu", -1.0, 0, -0.5, -0.5),
    ("ScaledTanh", 1.5, 2.0, -0.25, 1.5 * math.tanh(-0.5)), ("HardSigmoid", 1 / 6, 0.5, -4.0, 0.0),
    ("HardSigmoid", 1 / 6, 0.5, 1.5, 0.75), ("Elu", 2.0, 0, 3.0, 3.0), ("Elu", 0.5, 0, -2.0, 0.5 * (math.exp(-2) - 1)),
    ("Softsign", 0, 0, -1.0, -0.5), ("Softplus", 0, 0, 800.0, 800.0), ("Softplus", 0, 0, -3.0, math.log1p(math.exp(-3))),
    ("Sigmoid", 0, 0, -800.0, 0.0), ("Sigmoid", 0, 0, -3.0, 1 / (1 + math.exp(3))), ("Relu", 0, 0, 2.5, 2.5),
    ("Swish", 0, 0, -2.0, -2.0 / (1 + math.exp(2))), ("Gelu", 0, 0, -0.5, -0.25 * (1 - math.erf(0.5 / math.sqrt(2)))),
    ("Selu", 0, 0, 2.0, 1.0507009873554805 * 2.0), ("Exp", 0, 0, -2.0, math.exp(-2))])
def test_activation_formulas_more_points(name, alpha, beta, x, want):
    with np.errstate(over="raise", invalid="raise"):  # the stable forms must not overflow at +-800
        got = apply_activation(Activation(name, alpha, beta), np.array([x]))[0]
    assert got == pytest.approx(want, rel=1e-12, abs=1e-300)
