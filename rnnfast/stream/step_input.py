"""What the lone input of a stream step must be, checked in Python before C sees it, so a wrong step is refused
naming what was expected (and leaves the state alone): token ids in the vocabulary, or features of the model's
width. A batch-1 step may leave out its batch axis; its outputs then have none either.

Used by both ways a stream steps (stream/direct.py, graph/stream_loop.py), for the models whose step input
rnnfast knows: chains (PyTorch, .rnnf 1, TF1) and Keras Sequential models."""
from __future__ import annotations

import numpy as np

_INT64 = np.dtype(np.int64)


class Features:
    """A step of float features [batch, width] (or [width] at batch 1), converted to float32."""

    def __init__(self, width: int, where: str):
        self.width, self.where = int(width), where

    def shape(self, batch: int) -> tuple:
        return (batch, self.width)

    def take(self, x_t, batch: int):
        """(the step as float32 [batch, width], whether the caller left out the batch axis)."""
        x = np.asarray(x_t)
        if x.dtype.kind not in "fiub":  # complex would lose its imaginary part, None become NaN: refused, as run does
            raise ValueError(f"{self.where}: a step takes real-valued features [batch, input], got {x.dtype}")
        squeeze = batch == 1 and x.ndim == 1
        if squeeze:
            x = x[None]
        x = np.ascontiguousarray(x, np.float32)
        want = (batch, self.width)
        if x.shape != want:
            raise ValueError(f"{self.where}: a step takes [batch, input] = {want}"
                             f"{' (or [input] for batch 1)' if batch == 1 else ''}, got {x.shape}")
        return x, squeeze


class TokenIds:
    """A step of integer token ids [batch] (or one id at batch 1) in [0, vocab), converted to int64."""

    def __init__(self, vocab: int, where: str):
        self.vocab, self.where = int(vocab), where

    def shape(self, batch: int) -> None:
        return None  # every step is checked: an id out of range is the caller's error, named here

    def take(self, ids, batch: int):
        x = np.asarray(ids)
        squeeze = batch == 1 and x.ndim == 0
        if squeeze:
            x = x[None]
        if x.dtype.kind not in "iu" or x.shape != (batch,) or (x.size and (x.min() < 0 or x.max() >= self.vocab)):
            raise ValueError(f"{self.where}: a step takes {batch} integer token id(s) in [0, {self.vocab}), got "
                             f"{x.dtype} {x.shape}")
        return (x if x.dtype is _INT64 else x.astype(np.int64)), squeeze  # astype costs 0.3 us even as a no-op
