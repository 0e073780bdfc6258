"""The one place that knows each framework's gate order and bias layout.

Canonical (ONNX) order: LSTM i,o,f,c; GRU z,r,h; RNN one gate. Every importer and exporter converts through
these functions, so a wrong permutation can only be wrong here; the importer fixture tests (outputs recorded by
the real Keras and PyTorch) check each map. Gate counts per cell are rnnfast.layers.N_GATES.

Sources: shared/docs/SEMANTICS.md sections 1.2-1.4 (verified against onnxruntime, Keras 3.15 and torch 2.13).
"""
from __future__ import annotations

import numpy as np

from ..layers import N_GATES

# Order of each framework's gate blocks, by canonical gate name.
CANONICAL_ORDER = {"lstm": ("i", "o", "f", "c"), "gru": ("z", "r", "h"), "rnn": ("h",)}
KERAS_ORDER = {"lstm": ("i", "f", "c", "o"), "gru": ("z", "r", "h"), "rnn": ("h",)}
TORCH_ORDER = {"lstm": ("i", "f", "c", "o"), "gru": ("r", "z", "h"), "rnn": ("h",)}  # torch calls c 'g', h 'n'
# Keras 1 stores one array per gate, in this order (its W_i, W_c, W_f, W_o ...; GRU as Keras 2).
KERAS1_ORDER = dict(KERAS_ORDER, lstm=("i", "c", "f", "o"))
# TensorFlow 1.x rnn_cell: BasicLSTMCell / LSTMCell split i, j, f, o (j is the candidate c); GRUCell's gates kernel
# holds r, u (u is z) and its separate candidate kernel h. Every kernel is [input + state, gates*hidden], applied to
# concat([x, h]) (tensorflow/python/ops/rnn_cell_impl.py, now tf_keras/src/layers/legacy_rnn/rnn_cell_impl.py).
TF1_ORDER = {"lstm": ("i", "c", "f", "o"), "gru": ("r", "z", "h"), "rnn": ("h",)}
# ONNX's peephole vector P is [i, o, f] (TF1 LSTMCell keeps them as w_i_diag, w_f_diag, w_o_diag).
CANONICAL_PEEPHOLES = ("i", "o", "f")


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
    gh = N_GATES[cell] * hidden
    b = np.asarray(b)
    return b[:, :gh], b[:, gh:]



def from_keras1(cell: str, arrays, hidden: int):
    """Keras 1 per-gate weights (consume_less 'cpu'/'mem') -> canonical, one direction.

    LSTM stores 12 arrays W_x, U_x, b_x for x in KERAS1_ORDER (i, c, f, o); GRU 9 arrays for z, r, h.
    They are joined into the Keras 2 layout (what Keras 2's loader did) and converted by from_keras.
    """
    per_gate = {g: arrays[3 * k:3 * k + 3] for k, g in enumerate(KERAS1_ORDER[cell])}
    joined = [np.concatenate([np.asarray(per_gate[g][j]) for g in KERAS_ORDER[cell]], axis=-1) for j in range(3)]
    return from_keras(cell, joined[0], joined[1], joined[2], hidden)


def from_keras_cudnn(cell: str, kernel, recurrent_kernel, bias, hidden: int):
    """CuDNNLSTM / CuDNNGRU weights (Keras 2 / tf.keras 1.x) -> canonical, one direction.

    These layers handed each gate's kernel block to cuDNN as a flat buffer that cuDNN reads as a row-major
    [hidden, input] matrix, so the equivalent Keras LSTM/GRU kernel block is `k.T.reshape(k.shape, order='F')` and
    the recurrent block its transpose (tf-keras hdf5_format._convert_rnn_weights). CuDNNLSTM's bias is [8H] =
    input and recurrent halves, which only ever appear summed; CuDNNGRU's [6H] bias is GRU(reset_after=True)'s
    [2, 3H]. Gate order is Keras' own (i,f,c,o / z,r,h).
    """
    n = len(KERAS_ORDER[cell])
    kernel, recurrent_kernel, bias = (np.asarray(a) for a in (kernel, recurrent_kernel, bias))
    k = np.hstack([b.T.reshape(b.shape, order="F") for b in np.hsplit(kernel, n)])
    r = np.hstack([b.T for b in np.hsplit(recurrent_kernel, n)])
    if cell == "lstm":
        return from_keras(cell, k, r, bias.reshape(2, -1).sum(axis=0), hidden)
    return from_keras(cell, k, r, bias.reshape(2, -1), hidden, reset_after=True)


def from_tf1(cell: str, kernel, bias, input_size: int, hidden: int, forget_bias: float = 0.0):
    """TF1 kernel [input_size + state, G*H] (rows for x first, then h) and bias [G*H] -> canonical, one direction.

    BasicLSTMCell and LSTMCell add forget_bias to the f gate's pre-activation at run time: it is folded into the f
    bias here (exact up to float32 rounding of the sum). The whole bias becomes b_ih; b_hh is zero."""
    p = permutation(TF1_ORDER, cell)
    k = np.asarray(kernel)
    b = np.array(bias, np.float32)
    if cell == "lstm" and forget_bias:
        f = TF1_ORDER["lstm"].index("f")
        b[f * hidden:(f + 1) * hidden] += np.float32(forget_bias)
    w_ih = reorder_rows(k[:input_size].T, p, hidden)
    w_hh = reorder_rows(k[input_size:].T, p, hidden)
    return w_ih, w_hh, reorder_rows(b, p, hidden), np.zeros(len(p) * hidden, np.float32)


def from_tf1_gru(gates_kernel, gates_bias, candidate_kernel, candidate_bias, input_size: int, hidden: int):
    """TF1 GRUCell: gates/kernel [I+H, 2H] (r, u) and candidate/kernel [I+H, H] with their biases -> canonical.

    GRUCell multiplies the state by r before the candidate's matmul (ONNX linear_before_reset=0), so splitting the
    candidate kernel into its input and state rows gives W_h and R_h exactly, its bias Wb_h."""
    kernel = np.concatenate([np.asarray(gates_kernel), np.asarray(candidate_kernel)], axis=1)
    bias = np.concatenate([np.asarray(gates_bias), np.asarray(candidate_bias)])
    return from_tf1("gru", kernel, bias, input_size, hidden)


def from_tf1_peepholes(w_i_diag, w_f_diag, w_o_diag):
    """LSTMCell's peephole vectors [H] each -> the canonical P [3H]."""
    named = {"i": w_i_diag, "f": w_f_diag, "o": w_o_diag}
    return np.concatenate([np.asarray(named[g], np.float32) for g in CANONICAL_PEEPHOLES])
