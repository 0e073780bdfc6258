"""Watch (or replace) every recurrent computation of one model run: what `rnnfast verify` (per-layer checks, the
float64 reference oracle) and `rnnfast inspect` (each layer's shapes) are built on.

`recording` replaces `engine.CompiledStack.run` for the duration of a block, and `engine.run_is_traced()` then says
so. The C graph executor runs a whole model in one call that makes no such call, so a traced model runs otherwise:
a chain graph (.rnnf 1, PyTorch, TF 1.x) node by node through graph/interpret.py, an ONNX model through its
node-by-node path, a Keras model layer by layer, and a .rnnf 2 file (or a graph in .npz / .safetensors), which
holds only the executor's description, in the C executor with each recurrent node handed back to Python
(graph/watched.py); each recurrent layer there reaches the engine through that one method. The replacement records
each call's exact inputs, options and outputs (`Call`), or computes it with the float64 reference
(rnnfast/reference.py) instead of the engine, without any importer knowing about it. A run that makes no call
(a model without recurrent layers) has nothing recorded or replaced, and verify says so rather than compare the
model with itself.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .. import engine, reference


@dataclass
class Call:
    layers: list  # the RecurrentLayers run by this call (one, or a stack run whole)
    x: np.ndarray
    options: dict  # sequence_lens, initial_h, initial_c, mask, mask_zero_output
    outputs: tuple  # (y [T, D, B, P], [y_h per layer], [y_c per layer or None])


def reference_stack(layers, x, sequence_lens=None, initial_h=None, initial_c=None, mask=None,
                    mask_zero_output=False):
    """engine.CompiledStack.run's contract (default y layout), layer by layer in float64."""
    hs, cs = [], []
    for k, layer in enumerate(layers):
        y, y_h, y_c = reference.run_layer(layer, x, sequence_lens=sequence_lens,
                                          initial_h=None if initial_h is None else initial_h[k],
                                          initial_c=None if initial_c is None else initial_c[k], mask=mask,
                                          mask_zero_output=mask_zero_output)
        T, D, B, P = y.shape
        x = y.transpose(0, 2, 1, 3).reshape(T, B, D * P)
        hs.append(y_h)
        cs.append(y_c)
    return y, hs, cs


@contextmanager
def recording(use_reference: bool = False, n_threads=None):
    """Yields the list of Calls made while the block runs. use_reference: compute with rnnfast.reference
    instead of the engine. n_threads: used by every engine call that does not name its own."""
    calls = []
    engine_run = engine.CompiledStack.run
    default_threads = n_threads

    def run(self, x, sequence_lens=None, initial_h=None, initial_c=None, mask=None, mask_zero_output=False,
            want_y=True, y_layout=engine.Y_SEQ_DIR_BATCH, n_threads=None):
        options = dict(sequence_lens=sequence_lens, initial_h=initial_h, initial_c=initial_c, mask=mask,
                       mask_zero_output=mask_zero_output)
        if use_reference:
            y, hs, cs = reference_stack(self.layers, np.asarray(x), **options)
            merged = y.transpose(0, 2, 1, 3).reshape(y.shape[0], y.shape[2], -1)  # Y_SEQ_BATCH_DIR: [T, B, D*P]
            out = (y if y_layout == engine.Y_SEQ_DIR_BATCH else merged if want_y else None, hs, cs)
        else:
            out = engine_run(self, x, want_y=want_y, y_layout=y_layout, n_threads=n_threads or default_threads,
                             **options)
        y = out[0]
        if y_layout != engine.Y_SEQ_DIR_BATCH and y is not None:  # recorded as [T, D, B, P] whatever the layout
            last = self.layers[-1]
            y = y.reshape(y.shape[0], y.shape[1], last.n_dirs, last.output_size).transpose(0, 2, 1, 3)
        calls.append(Call(list(self.layers), np.asarray(x), options, (y, out[1], out[2])))
        return out

    engine.CompiledStack.run = run
    try:
        yield calls
    finally:
        engine.CompiledStack.run = engine_run
