"""The direct way a stream steps: a lone stack of forward recurrent layers stepped by the engine itself, one C call a
step with the state kept in C (engine.CompiledStack's stream), without the graph executor's per-run setup (3.1
against 13.8 us a step for a 1-layer LSTM-8). graph/stream.py chooses it where it applies; rnnfast.Stream wraps it.

The states are the layers' own, "layer{k}.h" / "layer{k}.c": a chain of recurrent layers, an ONNX graph that is one
stack reading its only input, the layers of a TF1 or Keras model whose embedding and head run in numpy (pre, post).
graph/stream_stack.py steps a stack whose states are graph inputs through this too."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from ..engine import CompiledStack
from ..errors import FormatError
from ..layers import RecurrentLayer
from . import batch_rows
from .step_input import Features


class LayerStep:
    direct = True

    def __init__(self, layers: Sequence[RecurrentLayer], batch: int = 1, n_threads=None, where: str = "model",
                 step_input=None, pre: Optional[Callable] = None, post: Optional[Callable] = None):
        """step_input: stream/step_input.py (default: features of the first layer's width); pre: the checked step
        input to features (a numpy embedding lookup); post: the stack's step output to the step's (numpy heads)."""
        for layer in layers:
            if layer.n_dirs != 1 or layer.direction != "forward":
                raise FormatError(f"{where}: layer {layer.name or '?'} is {layer.direction}; a stream runs forward in "
                                  f"time only. Run the bidirectional model on a sliding window with Model.run instead.")
        if int(batch) < 1:
            raise ValueError(f"{where}: a stream needs batch >= 1, got {batch}")
        self.layers = list(layers)
        self.batch = int(batch)
        self.n_threads = int(n_threads or 0)
        self._pre, self._post = pre, post
        self._input = step_input or Features(self.layers[0].input_size, where)
        self._c = CompiledStack(self.layers).stream(self.batch)
        self._where = where
        self._plain = pre is None and post is None and step_input is None
        self.step_inputs, self.step_outputs = ["input"], ["output"]
        self.pairs = {}
        for k, layer in enumerate(self.layers):
            self.pairs[f"layer{k}.h"] = f"layer{k}.h_n"
            if layer.cell == "lstm":
                self.pairs[f"layer{k}.c"] = f"layer{k}.c_n"

    def thread_choice(self) -> dict:
        """How many threads the steps use now: one or n_threads (else the default), whichever the recent steps
        measured faster ({"threads": n, "seconds_1_thread": t1, "seconds_asked": tn} per step, None until measured)."""
        return self._c.thread_choice()

    def step(self, x_t) -> np.ndarray:
        """One time step: x_t [batch, ...] (or without the batch axis when batch is 1). Returns this step's output."""
        if self._plain:  # the usual float32 step, checked and run in one C call; anything else is converted below
            y = self._c.step_new(x_t, self.n_threads)
            if y is not None:
                return y
        x, squeeze = self._input.take(x_t, self.batch)
        if self._pre is not None:
            x = np.ascontiguousarray(self._pre(x), np.float32)
        y = self._c.step_new(x, self.n_threads)  # refused calls never reach here, so the state is unchanged
        if y is None:
            raise ValueError(f"{self._where}: a step's features have shape {x.shape}; the layers take "
                             f"{(self.batch, self.layers[0].input_size)}")
        y = self._post(y) if self._post else y
        return y[0] if squeeze else y

    def reset(self, rows=None) -> None:
        self._c.reset(None if rows is None else batch_rows(rows, self.batch, self._where))

    def _state_keys(self) -> list:
        """[(name, layer, which_c)] of every state, in the order the C stream reads and writes them."""
        keys = []
        for k, layer in enumerate(self.layers):
            keys.append((f"layer{k}.h", k, False))
            if layer.cell == "lstm":
                keys.append((f"layer{k}.c", k, True))
        return keys

    @property
    def state(self) -> dict:
        """Every state as one step left it: read at once under the C stream's lock, which steps also take (read layer
        by layer, a step by another thread could fall between two layers)."""
        keys = self._state_keys()
        return dict(zip([name for name, _, _ in keys], self._c.get_all([(k, c) for _, k, c in keys])))

    @state.setter
    def state(self, value: dict) -> None:
        keys = self._state_keys()
        names = sorted(name for name, _, _ in keys)
        if set(value) != set(names):
            raise ValueError(f"{self._where}: a stream state has the keys {names}, got {sorted(value)}")
        items = []
        for name, k, which_c in keys:  # checked whole first (set_all), so a refused state changes nothing
            layer = self.layers[k]
            shape = (1, self.batch, layer.hidden_size if which_c else layer.output_size)
            if np.shape(value[name]) != shape:
                raise ValueError(f"{self._where}: state {name!r} must have shape {shape}, got {np.shape(value[name])}")
            items.append((k, which_c, value[name]))
        self._c.set_all(items)  # at once under the C stream's lock: a step sees the old state or the new, whole

    def describe(self) -> str:
        return f"direct C step of {len(self.layers)} recurrent layer(s)"
