"""Streaming a graph that is a lone recurrent stack with its states as inputs and outputs (graph/stack.py
looped_stack: torch.onnx.export's LSTM with h0/c0 -> h_n/c_n): the same interface and bits as GraphStream over that
graph, but a one-step call is one C step of rnnfast.stream.Stream instead of a run of the graph through the
executor (3.7 against 6.6 us a step for an LSTM-16, 6.8 against 9.0 for an RNN-256, on a busy machine). A call
with several time steps at once goes through the GraphStream, the state handed over both ways."""
from __future__ import annotations

import threading

import numpy as np

from .dims import Dim
from .stream import GraphStream


def stack_stream(compiled, pairs, batch=1, n_threads=None, where="model"):
    """A StackStream when the graph is a looped lone stack (graph/stack.py) whose one-step output's shape follows
    from X's time and batch sizes; else None (GraphStream streams it)."""
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
    return StackStream(compiled, layers, x_name, y_name, pairs, which, out_shape, batch, n_threads, where)


class StackStream:
    def __init__(self, compiled, layers, x_name, y_name, pairs, which, out_shape, batch, n_threads, where):
        from ..stream import Stream

        self._graph_stream = GraphStream(compiled, batch, pairs, n_threads=n_threads, where=where)
        self._where, self._x = where, x_name
        self.batch, self.pairs = self._graph_stream.batch, dict(pairs)
        self.step_inputs, self.step_outputs = [x_name], [y_name]
        self._stream = Stream(layers, self.batch, n_threads=n_threads, where=where)
        self._c, self._n_threads = self._stream._c, int(n_threads or 0)
        self._layers, self._which = layers, which
        self._in_shape, self._out_shape = (1, self.batch, layers[0].input_size), out_shape
        self._lock = threading.Lock()

    def step(self, inputs):
        """As GraphStream.step: X [1, batch, input] (one array, a one-item list or {X: ...}) -> the sequence output
        of this step; several steps at once run through the graph."""
        if type(inputs) is np.ndarray and inputs.shape == self._in_shape:  # the usual call, in one C step
            with self._lock:
                y = self._c.step_new(inputs.reshape(self._in_shape[1:]), self._n_threads)
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
                return self._stream.step(x.reshape(self._in_shape[1:])).reshape(self._out_shape)
            self._graph_stream.state = self._state()  # anything else is the graph's to run, or to refuse
            try:
                return self._graph_stream.step({self._x: x})
            finally:
                self._set_state(self._graph_stream.state)

    def feed(self, chunk) -> np.ndarray:
        return np.stack([self.step(x_t) for x_t in np.asarray(chunk)])

    def reset(self, rows=None) -> None:
        """As GraphStream.reset (which it runs on the handed-over state: the same checks and messages)."""
        with self._lock:
            if rows is None:
                self._stream.reset()
                return
            self._graph_stream.state = self._state()
            self._graph_stream.reset(rows)
            self._set_state(self._graph_stream.state)

    def _state(self) -> dict:
        inner = self._stream.state
        return {inp: np.concatenate([inner[f"layer{k}.{which}"] for k in range(len(self._layers))])
                for inp, which in self._which.items()}

    def _set_state(self, value: dict) -> None:
        inner = {}
        for inp, which in self._which.items():
            for k, part in enumerate(np.split(np.asarray(value[inp], np.float32), len(self._layers))):
                inner[f"layer{k}.{which}"] = part
        self._stream.state = inner

    @property
    def state(self) -> dict:
        """{state input name: array}, as GraphStream.state: copies, picklable."""
        with self._lock:
            return self._state()

    @state.setter
    def state(self, value: dict) -> None:
        with self._lock:
            self._graph_stream.state = value  # its checks: the names and shapes
            self._set_state(value)

    def __repr__(self) -> str:
        return f"<StackStream of {self._where}: steps {self.step_inputs} -> {self.step_outputs}, states {self.pairs}>"
