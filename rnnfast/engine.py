"""Bridge from canonical RecurrentLayers (rnnfast/layers.py) to the C engine (rnnfast._core).

Importers call `run_layer` (one layer) or build a `CompiledStack` (several stacked layers run in one C call).
This module owns the conversion of inputs to what C expects (float32, C-contiguous, time-major) and the
checks that keep wrong shapes from ever reaching C as a silent misread.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from typing import Optional, Sequence

import numpy as np

from . import _core
from .layers import RecurrentLayer
from .rnnf_spec import ACTIVATIONS

CELL_CODES = {"rnn": 0, "gru": 1, "lstm": 2}
ACTIVATION_CODES = {name: code for code, name in enumerate(ACTIVATIONS)}  # rnnf_act_kind
WEIGHT_DTYPE_CODES = {"float32": 0, "float16": 1, "int8": 2}  # rnnf_weight_dtype
Y_SEQ_DIR_BATCH = _core.Y_SEQ_DIR_BATCH
Y_SEQ_BATCH_DIR = _core.Y_SEQ_BATCH_DIR


# The thread count a Model was loaded with, for the engine calls its run makes without one of their own (a Keras or
# PyTorch graph reaches the engine through many layers; a context variable, so concurrent runs in other Python
# threads keep theirs).
_CALL_THREADS = contextvars.ContextVar("rnnfast_call_threads", default=None)


@contextlib.contextmanager
def call_threads(n_threads):
    token = _CALL_THREADS.set(n_threads)
    try:
        yield
    finally:
        _CALL_THREADS.reset(token)


def check_threads(n_threads, where="n_threads"):
    """None or 0 (the engine's default) or a positive int."""
    if n_threads is None:
        return None
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)) or n_threads < 0:
        raise ValueError(f"{where} must be None or an integer >= 0 (0: the default), got {n_threads!r}")
    return int(n_threads)


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
        "layer": layer,  # what .rnnf 2 writes (exporters/rnnf_graph.py); the C binding reads the fields above
    }


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
        # Every check and conversion is made by the C model's run, in one pass (one Python call per run).
        if n_threads is None:
            n_threads = _CALL_THREADS.get()
        return self.c_model.run(x, sequence_lens, initial_h, initial_c, mask, mask_zero_output, want_y, y_layout,
                                n_threads)

    def stream(self, batch: int = 1) -> "_core.CStream":
        return _core.CStream(self.c_model, int(batch))


_UNTRACED_RUN = CompiledStack.run


def run_is_traced() -> bool:
    """True while `rnnfast verify` / `inspect` replace CompiledStack.run to record each recurrent run
    (rnnfast/cli/trace.py). A graph executed whole in C never calls it, so while traced, models run node by node."""
    return CompiledStack.run is not _UNTRACED_RUN


def compiled_shortcut(run, holder, compiled):
    """run(arg) while holder.compiled is still `compiled` and the engine is not traced (run_is_traced), else None: a
    shortcut past a graph's own run gives way to the node-by-node path `rnnfast verify` / `inspect` watch, and to a
    graph whose compiled form was dropped or replaced."""
    stack = CompiledStack

    def call(arg):
        return run(arg) if holder.compiled is compiled and stack.run is _UNTRACED_RUN else None
    return call


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
