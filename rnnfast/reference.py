"""The float64 numpy reference: the executable specification the tests hold the C engine to.

One short function per cell, written to read like the equations of shared/docs/SEMANTICS.md section 1.1
(ONNX semantics, as onnxruntime runs them), plus Keras-style masks. Slow on purpose: clarity first.
"""
from __future__ import annotations

import math

import numpy as np

from .layers import Activation, RecurrentLayer

erf = np.vectorize(math.erf, otypes=[np.float64])


def sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))


ACTIVATIONS = {
    "Relu": lambda x, a, b: np.maximum(x, 0.0),
    "Tanh": lambda x, a, b: np.tanh(x),
    "Sigmoid": lambda x, a, b: sigmoid(x),
    "Affine": lambda x, a, b: a * x + b,
    "LeakyRelu": lambda x, a, b: np.where(x >= 0, x, a * x),
    "ThresholdedRelu": lambda x, a, b: np.where(x > a, x, 0.0),
    "ScaledTanh": lambda x, a, b: a * np.tanh(b * x),
    "HardSigmoid": lambda x, a, b: np.clip(a * x + b, 0.0, 1.0),
    "Elu": lambda x, a, b: np.where(x >= 0, x, a * np.expm1(np.minimum(x, 0.0))),
    "Softsign": lambda x, a, b: x / (1.0 + np.abs(x)),
    "Softplus": lambda x, a, b: np.logaddexp(0.0, x),
    "Selu": lambda x, a, b: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(np.minimum(x, 0.0))),
    "Swish": lambda x, a, b: x * sigmoid(x),
    "Gelu": lambda x, a, b: 0.5 * x * (1.0 + erf(x / math.sqrt(2.0))),
    "Exp": lambda x, a, b: np.exp(x),
}


def apply_activation(act: Activation, x) -> np.ndarray:
    return ACTIVATIONS[act.name](np.asarray(x, np.float64), float(act.alpha), float(act.beta))


def _clip(x, clip):
    return x if clip is None else np.clip(x, -clip, clip)


def rnn_cell(x, h, c, w, layer, d):
    """H_t = f(X W^T + H R^T + Wb + Rb)"""
    (f,) = layer.activations[d]
    pre = x @ w["w_ih"].T + h @ w["w_hh"].T + w["b_ih"] + w["b_hh"]
    return apply_activation(f, _clip(pre, layer.clip)), None


def gru_cell(x, h, c, w, layer, d):
    """z, r gates; h~ with the reset applied before (lbr=0) or after (lbr=1) the recurrent product."""
    f, g = layer.activations[d]
    H = layer.hidden_size
    gx = x @ w["w_ih"].T + w["b_ih"]
    W_hz, W_hr, W_hh = w["w_hh"][:H], w["w_hh"][H:2 * H], w["w_hh"][2 * H:]
    b_hz, b_hr, b_hh = w["b_hh"][:H], w["b_hh"][H:2 * H], w["b_hh"][2 * H:]
    z = apply_activation(f, _clip(gx[:, :H] + h @ W_hz.T + b_hz, layer.clip))
    r = apply_activation(f, _clip(gx[:, H:2 * H] + h @ W_hr.T + b_hr, layer.clip))
    if layer.linear_before_reset:
        pre_h = gx[:, 2 * H:] + r * (h @ W_hh.T + b_hh)
    else:
        pre_h = gx[:, 2 * H:] + (r * h) @ W_hh.T + b_hh
    h_tilde = apply_activation(g, _clip(pre_h, layer.clip))
    return (1.0 - z) * h_tilde + z * h, None


def lstm_cell(x, h, c, w, layer, d):
    """Gates i,o,f,c; peepholes on C_{t-1} for i and f, on the new C_t for o; optional projection."""
    f, g, hact = layer.activations[d]
    H = layer.hidden_size
    pre = x @ w["w_ih"].T + h @ w["w_hh"].T + w["b_ih"] + w["b_hh"]
    p_i, p_o, p_f = (np.zeros(H),) * 3 if w["peep"] is None else (w["peep"][:H], w["peep"][H:2 * H], w["peep"][2 * H:])
    i = apply_activation(f, _clip(pre[:, :H] + p_i * c, layer.clip))
    if layer.input_forget:
        f_gate = 1.0 - i
    else:
        f_gate = apply_activation(f, _clip(pre[:, 2 * H:3 * H] + p_f * c, layer.clip))
    c_tilde = apply_activation(g, _clip(pre[:, 3 * H:], layer.clip))
    c_new = f_gate * c + i * c_tilde
    o = apply_activation(f, _clip(pre[:, H:2 * H] + p_o * c_new, layer.clip))
    h_new = o * apply_activation(hact, c_new)
    if w["w_hr"] is not None:
        h_new = h_new @ w["w_hr"].T
    return h_new, c_new


CELLS = {"rnn": rnn_cell, "gru": gru_cell, "lstm": lstm_cell}


def _weights(layer: RecurrentLayer, d: int) -> dict:
    f64 = lambda a: None if a is None else np.asarray(a[d], np.float64)
    return {"w_ih": f64(layer.w_ih), "w_hh": f64(layer.w_hh), "b_ih": f64(layer.b_ih), "b_hh": f64(layer.b_hh),
            "peep": f64(layer.peepholes), "w_hr": f64(layer.w_hr)}


def run_layer(layer: RecurrentLayer, x, sequence_lens=None, initial_h=None, initial_c=None, mask=None,
              mask_zero_output=False):
    """Same contract as rnnfast.engine.run_layer, in float64.

    Returns (y [T, D, B, P], y_h [D, B, P], y_c [D, B, H] or None)."""
    x = np.asarray(x, np.float64)
    if x.ndim != 3 or x.shape[2] != layer.input_size:
        raise ValueError(f"x has shape {x.shape}, expected [seq_len, batch, {layer.input_size}]")
    T, B, _ = x.shape
    D, H, P = layer.n_dirs, layer.hidden_size, layer.output_size
    # Shapes are checked because numpy broadcasting would otherwise turn a wrong shape into a wrong answer.
    if sequence_lens is not None:
        sequence_lens = np.asarray(sequence_lens)
        if sequence_lens.shape != (B,) or not np.issubdtype(sequence_lens.dtype, np.integer):
            raise ValueError(f"sequence_lens must be integers of shape ({B},), got {sequence_lens.dtype} "
                             f"{sequence_lens.shape}")
        if sequence_lens.min() < 0 or sequence_lens.max() > T:
            raise ValueError(f"sequence_lens values must lie in [0, {T}], got {sequence_lens.tolist()}")
    if mask is not None and np.shape(mask) != (T, B):
        raise ValueError(f"mask has shape {np.shape(mask)}, expected (seq_len, batch) = {(T, B)}")
    if initial_h is not None and np.shape(initial_h) != (D, B, P):
        raise ValueError(f"initial_h has shape {np.shape(initial_h)}, expected {(D, B, P)}")
    if initial_c is not None and (layer.cell != "lstm" or np.shape(initial_c) != (D, B, H)):
        raise ValueError(f"initial_c has shape {np.shape(initial_c)}, expected {(D, B, H)} (LSTM only)")
    lens = np.full(B, T) if sequence_lens is None else sequence_lens
    real = np.arange(T)[:, None] < lens[None, :]
    if mask is not None:
        real = real & np.asarray(mask, bool)
    y = np.zeros((T, D, B, P))
    y_h = np.zeros((D, B, P))
    y_c = np.zeros((D, B, H)) if layer.cell == "lstm" else None
    cell = CELLS[layer.cell]
    for d in range(D):
        w = _weights(layer, d)
        h = np.zeros((B, P)) if initial_h is None else np.array(initial_h[d], np.float64)
        c = np.zeros((B, H)) if initial_c is None else np.array(initial_c[d], np.float64)
        last_out = np.zeros((B, P))  # Keras: a masked step repeats the previous output (zeros before any)
        reverse = d == 1 or layer.direction == "reverse"
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            h_new, c_new = cell(x[t], h, c, w, layer, d)
            step = real[t][:, None]
            h = np.where(step, h_new, h)
            if c_new is not None:
                c = np.where(step, c_new, c)
            last_out = np.where(step, h, last_out)
            padded = (t >= lens)[:, None]  # ONNX: zeros past a row's length
            masked_out = np.zeros_like(h) if mask_zero_output else last_out
            y[t, d] = np.where(step, h, np.where(padded, 0.0, masked_out))
        empty = (lens == 0)[:, None]  # ONNX: a length-0 row ends with a zero state, not its initial state
        y_h[d] = np.where(empty, 0.0, h)
        if y_c is not None:
            y_c[d] = np.where(empty, 0.0, c)
    return y, y_h, y_c


def softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def dense_activation(name: str, y):
    """A Dense stage's activation (rnnfast.pipeline.DENSE_ACTIVATIONS) in the array's own dtype."""
    if name == "softmax":
        return softmax(y)
    return {"linear": lambda v: v, "relu": lambda v: np.maximum(v, 0), "tanh": np.tanh,
            "sigmoid": lambda v: 1 / (1 + np.exp(-v))}[name](y)
