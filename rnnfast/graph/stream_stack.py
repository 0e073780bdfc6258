"""The direct step of a graph that is one stack of forward recurrent layers whose states are its inputs fed back from
its outputs (graph/stack.py looped_stack: torch.onnx.export's LSTM with h0/c0 -> h_n/c_n): the layers stepped by
the engine (rnnfast/stream/direct.py), the states named as the graph names them, the same bits as the graph's state
loop (graph/stream_loop.py), which it runs for what is not one time step (and to reset rows). graph/stream.py
chooses it where it applies."""
from __future__ import annotations

import threading

import numpy as np

from ..stream.direct import LayerStep
from .dims import Dim
from .stream_loop import LoopStep


def stack_step(compiled, pairs, batch=1, n_threads=None, where="model"):
    """A StackStep when the graph is a looped lone stack (graph/stack.py) whose one-step output's shape follows
    from X's time and batch sizes; else None (the graph's state loop steps it)."""
    from .stack import looped_stack

    found = looped_stack(compiled.graph, pairs)
    if found is None:
        return None
    layers, x_name, y_name, which = found
    values = compiled.graph.values
    env = {}
    for d, size in zip(values[x_name].shape[:2], (1, int(batch))):  # X is [time, batch, input]
        if isinstance(d, Dim) and len(d.symbols()) == 1:
            env[next(iter(d.symbols()))] = size
    try:
        out_shape = tuple(d.evaluate(env) if isinstance(d, Dim) else d for d in values[y_name].shape)
    except KeyError:
        return None
    if int(np.prod(out_shape)) != int(batch) * layers[-1].output_size:
        return None
    return StackStep(compiled, layers, x_name, y_name, pairs, which, out_shape, batch, n_threads, where)


class StackStep:
    direct = True

    def __init__(self, compiled, layers, x_name, y_name, pairs, which, out_shape, batch, n_threads, where):
        self._loop = LoopStep(compiled, batch, pairs, n_threads=n_threads, where=where)
        self._where, self._x = where, x_name
        self.batch, self.pairs = self._loop.batch, dict(pairs)
        self.step_inputs, self.step_outputs = [x_name], [y_name]
        self._direct = LayerStep(layers, self.batch, n_threads=n_threads, where=where)
        self._c, self.n_threads = self._direct._c, int(n_threads or 0)
        self.layers, self.which = layers, which
        self._in_shape, self._out_shape = (1, self.batch, layers[0].input_size), out_shape
        self._lock = threading.Lock()

    def step(self, inputs):
        """X [1, batch, input] (one array, a one-item list or {X: ...}) -> the sequence output of this step; several
        steps at once run through the graph."""
        if type(inputs) is np.ndarray and inputs.shape == self._in_shape:  # the usual call, in one C step
            with self._lock:
                y = self._c.step_new(inputs.reshape(self._in_shape[1:]), self.n_threads)
            if y is not None:  # None: not float32 in C order, converted below
                return y.reshape(self._out_shape)
        if isinstance(inputs, dict):
            unknown = [k for k in inputs if k != self._x]
            if unknown or self._x not in inputs:
                raise ValueError(f"{self._where}: a step takes {self.step_inputs} (the states {list(self.pairs)} are "
                                 f"kept by the stream), got {list(inputs)}")
            x = inputs[self._x]
        elif isinstance(inputs, (list, tuple)):
            if len(inputs) != 1:
                raise ValueError(f"{self._where}: {len(inputs)} step inputs, expected {self.step_inputs}")
            x = inputs[0]
        else:
            x = inputs
        x = np.asarray(x)
        with self._lock:
            if x.shape == self._in_shape:
                return self._direct.step(x.reshape(self._in_shape[1:])).reshape(self._out_shape)
            self._loop.state = self._state()  # anything else is the graph's to run, or to refuse
            try:
                return self._loop.step({self._x: x})
            finally:
                self._set_state(self._loop.state)

    def reset(self, rows=None) -> None:
        """As the graph's state loop resets (run on the handed-over state: the same checks and messages)."""
        with self._lock:
            if rows is None:
                self._direct.reset()
                return
            self._loop.state = self._state()
            self._loop.reset(rows)
            self._set_state(self._loop.state)

    def _state(self) -> dict:
        inner = self._direct.state
        return {inp: np.concatenate([inner[f"layer{k}.{which}"] for k in range(len(self.layers))])
                for inp, which in self.which.items()}

    def _set_state(self, value: dict) -> None:
        inner = {}
        for inp, which in self.which.items():
            for k, part in enumerate(np.split(np.asarray(value[inp], np.float32), len(self.layers))):
                inner[f"layer{k}.{which}"] = part
        self._direct.state = inner

    @property
    def state(self) -> dict:
        with self._lock:
            return self._state()

    @state.setter
    def state(self, value: dict) -> None:
        with self._lock:
            self._loop.state = value  # its checks: the names and shapes
            self._set_state(value)

    def describe(self) -> str:
        return f"direct C step of {len(self.layers)} recurrent layer(s), states as the graph's inputs"
