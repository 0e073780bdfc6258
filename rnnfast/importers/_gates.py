"""The one place that knows each framework's gate order and bias layout.

Canonical (ONNX) order: LSTM i,o,f,c; GRU z,r,h; RNN one gate. Every importer and exporter converts through
these functions, so a wrong permutation can only be wrong here, and tests/test_gates.py checks each map
against the framework equations.

Sources: shared/docs/SEMANTICS.md sections 1.2-1.4 (verified against onnxruntime, Keras 3.15 and torch 2.13).
"""
from __future__ import annotations

import numpy as np

# Order of each framework's gate blocks, by canonical gate name.
CANONICAL_ORDER = {"lstm": ("i", "o", "f", "c"), "gru": ("z", "r", "h"), "rnn": ("h",)}
KERAS_ORDER = {"lstm": ("i", "f", "c", "o"), "gru": ("z", "r", "h"), "rnn": ("h",)}
TORCH_ORDER = {"lstm": ("i", "f", "c", "o"), "gru": ("r", "z", "h"), "rnn": ("h",)}  # torch calls c 'g', h 'n'
# Keras 1 stores one array per gate, in this order (its W_i, W_c, W_f, W_o ...).
KERAS1_LSTM_ORDER = ("i", "c", "f", "o")


def permutation(src_order, cell) -> list[int]:
    """Index list p such that canonical gate k is source gate p[k]."""
    return [src_order[cell].index(g) for g in CANONICAL_ORDER[cell]]


def inverse_permutation(dst_order, cell) -> list[int]:
    """Index list q such that destination gate k is canonical gate q[k]."""
    return [CANONICAL_ORDER[cell].index(g) for g in dst_order[cell]]


def reorder_rows(m: np.ndarray, perm, hidden: int) -> np.ndarray:
    """Reorder gate blocks of `hidden` rows along axis 0 of a [G*H, ...] array (or [G*H] vector)."""
    m = np.asarray(m)
    g = len(perm)
    if m.shape[0] != g * hidden:
        raise ValueError(f"expected {g}*{hidden} rows, got {m.shape[0]}")
    return m.reshape((g, hidden) + m.shape[1:])[list(perm)].reshape(m.shape)


def from_keras(cell: str, kernel, recurrent_kernel, bias, hidden: int, reset_after: bool = False):
    """Keras kernel [I, G*H], recurrent [H, G*H], bias [G*H] / [2, G*H] / None -> canonical (w_ih, w_hh, b_ih, b_hh).

    Returned for one direction: w_ih [G*H, I], w_hh [G*H, H], b_ih, b_hh [G*H].
    GRU reset_after=True has bias rows (input, recurrent); every other case has only an input bias.
    """
    p = permutation(KERAS_ORDER, cell)
    w_ih = reorder_rows(np.asarray(kernel).T, p, hidden)
    w_hh = reorder_rows(np.asarray(recurrent_kernel).T, p, hidden)
    gh = len(p) * hidden
    b_ih = np.zeros(gh, np.float32)
    b_hh = np.zeros(gh, np.float32)
    if bias is not None:
        bias = np.asarray(bias)
        if cell == "gru" and reset_after:
            b_ih, b_hh = reorder_rows(bias[0], p, hidden), reorder_rows(bias[1], p, hidden)
        else:
            b_ih = reorder_rows(bias, p, hidden)
    return w_ih, w_hh, b_ih, b_hh


def to_keras(cell: str, w_ih, w_hh, b_ih, b_hh, hidden: int, reset_after: bool = False):
    """Inverse of from_keras for one direction: canonical -> (kernel, recurrent_kernel, bias)."""
    q = inverse_permutation(KERAS_ORDER, cell)
    kernel = reorder_rows(w_ih, q, hidden).T
    recurrent = reorder_rows(w_hh, q, hidden).T
    if cell == "gru" and reset_after:
        bias = np.stack([reorder_rows(b_ih, q, hidden), reorder_rows(b_hh, q, hidden)])
    else:
        bias = reorder_rows(np.asarray(b_ih) + np.asarray(b_hh), q, hidden)
    return kernel, recurrent, bias


def from_torch(cell: str, weight_ih, weight_hh, bias_ih, bias_hh, hidden: int):
    """torch weight_ih [G*H, I], weight_hh [G*H, P], biases [G*H] or None -> canonical, one direction."""
    p = permutation(TORCH_ORDER, cell)
    gh = len(p) * hidden
    w_ih = reorder_rows(weight_ih, p, hidden)
    w_hh = reorder_rows(weight_hh, p, hidden)
    b_ih = np.zeros(gh, np.float32) if bias_ih is None else reorder_rows(bias_ih, p, hidden)
    b_hh = np.zeros(gh, np.float32) if bias_hh is None else reorder_rows(bias_hh, p, hidden)
    return w_ih, w_hh, b_ih, b_hh


def to_torch(cell: str, w_ih, w_hh, b_ih, b_hh, hidden: int):
    """Inverse of from_torch for one direction."""
    q = inverse_permutation(TORCH_ORDER, cell)
    return tuple(reorder_rows(a, q, hidden) for a in (w_ih, w_hh, b_ih, b_hh))


def split_onnx_bias(cell: str, b, hidden: int):
    """ONNX B [D, 2*G*H] = [Wb, Rb] -> (b_ih [D, G*H], b_hh [D, G*H]). ONNX order is canonical: no permutation."""
    gh = CANONICAL_ORDER_SIZE[cell] * hidden
    b = np.asarray(b)
    return b[:, :gh], b[:, gh:]


CANONICAL_ORDER_SIZE = {cell: len(order) for cell, order in CANONICAL_ORDER.items()}
