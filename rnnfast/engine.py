"""Bridge from canonical RecurrentLayers (rnnfast/layers.py) to the C engine (rnnfast._core).

Importers call `run_layer` (one layer) or build a `CompiledStack` (several stacked layers run in one C call).
This module owns the conversion of inputs to what C expects (float32, C-contiguous, time-major) and the
checks that keep wrong shapes from ever reaching C as a silent misread.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from . import _core
from .layers import RecurrentLayer

CELL_CODES = {"rnn": 0, "gru": 1, "lstm": 2}
ACTIVATION_CODES = {
    "Relu": 0, "Tanh": 1, "Sigmoid": 2, "Affine": 3, "LeakyRelu": 4, "ThresholdedRelu": 5, "ScaledTanh": 6,
    "HardSigmoid": 7, "Elu": 8, "Softsign": 9, "Softplus": 10, "Selu": 11, "Swish": 12, "Gelu": 13, "Exp": 14,
}
WEIGHT_DTYPE_CODES = {"float32": 0, "float16": 1, "int8": 2}  # rnnf_weight_dtype
Y_SEQ_DIR_BATCH = _core.Y_SEQ_DIR_BATCH
Y_SEQ_BATCH_DIR = _core.Y_SEQ_BATCH_DIR


def _select_isa_from_env():
    """RNNFAST_ISA forces a kernel table; an unknown or unsupported name is an error, not a silent fallback."""
    name = os.environ.get("RNNFAST_ISA", "").strip()
    if name:
        _core.isa_select(name)


_select_isa_from_env()


def layer_desc(layer: RecurrentLayer) -> dict:
    return {
        "cell": CELL_CODES[layer.cell],
        "n_dirs": layer.n_dirs,
        "reverse": int(layer.direction == "reverse"),
        "input_size": layer.input_size,
        "hidden_size": layer.hidden_size,
        "proj_size": layer.proj_size,
        "w_ih": layer.w_ih, "w_hh": layer.w_hh, "b_ih": layer.b_ih, "b_hh": layer.b_hh,
        "peepholes": layer.peepholes, "w_hr": layer.w_hr,
        "activations": [[(ACTIVATION_CODES[a.name], float(a.alpha), float(a.beta)) for a in acts]
                        for acts in layer.activations],
        "clip": layer.clip if layer.clip is not None else 0.0,
        "input_forget": int(layer.input_forget),
        "linear_before_reset": int(layer.linear_before_reset),
        "weight_dtype": WEIGHT_DTYPE_CODES[layer.weight_dtype],
        "qweights": layer.qweights,
    }


def _as_f32(name, a, shape=None):
    if type(a) is np.ndarray and a.dtype == np.float32 and a.flags.c_contiguous:
        if shape is not None and a.shape != tuple(shape):
            raise ValueError(f"{name} has shape {a.shape}, expected {tuple(shape)}")
        return a  # the common case, kept cheap: single-step calls are dominated by this overhead
    a = np.asarray(a)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{name} has dtype {a.dtype}, expected a float array")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"{name} has shape {a.shape}, expected {tuple(shape)}")
    return a


class CompiledStack:
    """One or more stacked RecurrentLayers packed into one C model. Layer k+1 takes layer k's output with
    the directions concatenated, as Keras and PyTorch stack them."""

    def __init__(self, layers: Sequence[RecurrentLayer]):
        self.layers = list(layers)
        for prev, nxt in zip(self.layers, self.layers[1:]):
            if nxt.input_size != prev.n_dirs * prev.output_size:
                raise ValueError(f"layer {nxt.name or '?'} takes {nxt.input_size} inputs but the layer before "
                                 f"gives {prev.n_dirs * prev.output_size}")
        self.c_model = _core.CModel([layer_desc(l) for l in self.layers])

    @property
    def input_size(self) -> int:
        return self.layers[0].input_size

    def run(self, x, sequence_lens=None, initial_h=None, initial_c=None, mask=None, mask_zero_output=False,
            want_y=True, y_layout=Y_SEQ_DIR_BATCH, n_threads=None):
        """x [seq_len, batch, input_size]. initial_h / initial_c: None, or one entry per layer (None or
        [n_dirs, batch, out] / [n_dirs, batch, hidden]). Returns (y, [y_h per layer], [y_c per layer])."""
        x = _as_f32("x", x)
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"x has shape {x.shape}, expected [seq_len, batch, {self.input_size}]")
        T, B = x.shape[0], x.shape[1]
        if T == 0 or B == 0:
            raise ValueError(f"x has shape {x.shape}: seq_len and batch must be at least 1")
        if sequence_lens is not None:
            sequence_lens = np.asarray(sequence_lens)
            if not np.issubdtype(sequence_lens.dtype, np.integer) or sequence_lens.shape != (B,):
                raise ValueError(f"sequence_lens must be integers of shape ({B},), got {sequence_lens.dtype} "
                                 f"{sequence_lens.shape}")
            if sequence_lens.min() < 0 or sequence_lens.max() > T:
                raise ValueError(f"sequence_lens values must lie in [0, {T}] (seq_len), got {sequence_lens.tolist()}")
            sequence_lens = np.ascontiguousarray(sequence_lens, dtype=np.int32)
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (T, B):
                raise ValueError(f"mask has shape {mask.shape}, expected (seq_len, batch) = {(T, B)}")
            mask = np.ascontiguousarray(mask != 0, dtype=np.uint8)
        h0 = self._states("initial_h", initial_h, B, lambda l: l.output_size)
        c0 = self._states("initial_c", initial_c, B, lambda l: l.hidden_size, lstm_only=True)
        return self.c_model.run(x, sequence_lens, mask, bool(mask_zero_output), h0, c0, bool(want_y), int(y_layout),
                                int(n_threads or 0))

    def _states(self, name, states, batch, size_of, lstm_only=False):
        if states is None:
            return None
        if len(states) != len(self.layers):
            raise ValueError(f"{name} needs one entry per layer ({len(self.layers)}), got {len(states)}")
        out = []
        for i, (layer, s) in enumerate(zip(self.layers, states)):
            if s is not None and lstm_only and layer.cell != "lstm":
                raise ValueError(f"{name} given for layer {i}, a {layer.cell}, which has no cell state")
            shape = (layer.n_dirs, batch, size_of(layer))
            out.append(None if s is None else _as_f32(f"{name}[{i}]", s, shape))
        return out

    def stream(self, batch: int = 1) -> "_core.CStream":
        return _core.CStream(self.c_model, int(batch))


def compiled(layer: RecurrentLayer) -> CompiledStack:
    """The layer packed for C, built on first use and kept on the layer (layers are not changed after import)."""
    stack = layer.__dict__.get("_rnnf_compiled")
    if stack is None:
        stack = layer.__dict__["_rnnf_compiled"] = CompiledStack([layer])
    return stack


def run_layer(layer: RecurrentLayer, x, sequence_lens=None, initial_h=None, initial_c=None, mask=None,
              mask_zero_output=False, n_threads: Optional[int] = None):
    """Run one RecurrentLayer.

    x: [seq_len, batch, input_size]; sequence_lens: int [batch] or None (ONNX semantics);
    initial_h: [n_dirs, batch, output_size] or None (zeros); initial_c: [n_dirs, batch, hidden_size] or None;
    mask: bool [seq_len, batch] or None (Keras semantics: a masked step carries the state and repeats the
    previous output, or gives zeros when mask_zero_output).
    Returns (y [seq_len, n_dirs, batch, output_size], y_h [n_dirs, batch, output_size],
    y_c [n_dirs, batch, hidden_size] or None), all float32.
    """
    y, y_h, y_c = compiled(layer).run(
        x, sequence_lens=sequence_lens, initial_h=None if initial_h is None else [initial_h],
        initial_c=None if initial_c is None else [initial_c], mask=mask, mask_zero_output=mask_zero_output,
        n_threads=n_threads)
    return y, y_h[0], y_c[0]
