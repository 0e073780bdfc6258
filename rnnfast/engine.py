"""Bridge from canonical RecurrentLayers to the C engine (rnnfast._core).

TEMPORARY (issue #3, replaced by the C engine within this session): delegates to the float64 reference so that
importer work can proceed in parallel. Public contract below is final.
"""
from __future__ import annotations

import numpy as np


def run_layer(layer, x, sequence_lens=None, initial_h=None, initial_c=None, mask=None, mask_zero_output=False,
              n_threads=None):
    """Run one RecurrentLayer.

    x: float32 [seq_len, batch, input_size]; sequence_lens: int [batch] or None (ONNX semantics);
    initial_h: [n_dirs, batch, output_size] or None (zeros); initial_c: [n_dirs, batch, hidden_size] or None;
    mask: bool [seq_len, batch] or None (Keras semantics: a masked step carries the state and repeats the
    previous output, or gives zeros when mask_zero_output).
    Returns (y [seq_len, n_dirs, batch, output_size], y_h [n_dirs, batch, output_size], y_c [n_dirs, batch, hidden] or None),
    all float32.
    """
    from . import reference

    y, y_h, y_c = reference.run_layer(layer, x, sequence_lens=sequence_lens, initial_h=initial_h,
                                      initial_c=initial_c, mask=mask, mask_zero_output=mask_zero_output)
    f = lambda a: None if a is None else np.asarray(a, np.float32)
    return f(y), f(y_h), f(y_c)
