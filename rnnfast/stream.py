"""Stream: step-by-step inference with the recurrent state kept in C between calls (Model.stream).

onnxruntime is stateless, so a streaming user must pass every layer's state in and out of each call; here the
state stays inside the engine, one C call per step, and is readable, settable, resettable per batch row and
picklable as a plain dict of arrays.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from .engine import CompiledStack
from .errors import FormatError
from .layers import RecurrentLayer


class Stream:
    def __init__(self, layers: Sequence[RecurrentLayer], batch: int = 1, pre: Optional[Callable] = None,
                 post: Optional[Callable] = None, input_check: Optional[Callable] = None, n_threads=None,
                 where: str = "model"):
        for layer in layers:
            if layer.n_dirs != 1 or layer.direction != "forward":
                raise FormatError(f"{where}: layer {layer.name or '?'} is {layer.direction}; a stream runs forward in "
                                  f"time only. Run the bidirectional model on a sliding window with Model.run instead.")
        if int(batch) < 1:
            raise ValueError(f"a stream needs batch >= 1, got {batch}")
        self.layers = list(layers)
        self.batch = int(batch)
        self._pre, self._post, self._check = pre, post, input_check
        self._n_threads = int(n_threads or 0)
        self._c = CompiledStack(self.layers).stream(self.batch)
        self._where = where
        self._plain = pre is None and post is None and input_check is None

    def step(self, x_t) -> np.ndarray:
        """One time step: x_t [batch, ...] (or without the batch axis when batch is 1). Returns this step's output."""
        if self._plain:  # the usual float32 step, checked and run in one C call; anything else is converted below
            y = self._c.step_new(x_t, self._n_threads)
            if y is not None:
                return y
        x_t = np.asarray(x_t)
        squeeze = self.batch == 1 and x_t.ndim == (1 if self._pre is None else 0)
        if squeeze:
            x_t = x_t[None]
        if self._check:
            self._check(x_t, self.batch)
        x = self._pre(x_t) if self._pre else x_t
        x = np.ascontiguousarray(x, np.float32)
        want = (self.batch, self.layers[0].input_size)
        if x.shape != want:
            raise ValueError(f"{self._where}: a step takes [batch, input] = {want}"
                             f"{' (or [input] for batch 1)' if self.batch == 1 else ''}, got {tuple(np.shape(x_t))}")
        y = self._c.step_new(x, self._n_threads)  # refused calls never reach here, so the state is unchanged
        y = self._post(y) if self._post else y
        return y[0] if squeeze else y

    def feed(self, chunk) -> np.ndarray:
        """Several steps: chunk [steps, batch, ...]; returns [steps, batch, out]."""
        return np.stack([self.step(x_t) for x_t in np.asarray(chunk)])

    def reset(self, rows=None) -> None:
        """Zero the state of every row, or only of `rows` (those rows start new sequences; the others go on)."""
        if rows is not None:
            rows = np.asarray(rows, np.int64).reshape(-1)
            if rows.size and (rows.min() < 0 or rows.max() >= self.batch):
                raise ValueError(f"{self._where}: rows must lie in [0, {self.batch}), got {rows.tolist()}")
        self._c.reset(rows)

    @property
    def state(self) -> dict:
        """{"layer0.h": [1, batch, out], "layer0.c": [1, batch, hidden] (LSTM), ...}: copies, picklable."""
        out = {}
        for k, layer in enumerate(self.layers):
            out[f"layer{k}.h"] = self._c.get(k, False)
            if layer.cell == "lstm":
                out[f"layer{k}.c"] = self._c.get(k, True)
        return out

    @state.setter
    def state(self, value: dict) -> None:
        current = self.state
        if set(value) != set(current):
            raise ValueError(f"{self._where}: a stream state has the keys {sorted(current)}, got {sorted(value)}")
        for key, arr in value.items():  # check everything first, so a refused state changes nothing
            if np.shape(arr) != current[key].shape:
                raise ValueError(f"{self._where}: state {key!r} must have shape {current[key].shape}, "
                                 f"got {np.shape(arr)}")
        for key, arr in value.items():
            k, which = key[len("layer"):].split(".")
            self._c.set(int(k), which == "c", arr)
