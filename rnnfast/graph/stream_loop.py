"""The graph's way a stream steps: the state loops of a whole graph (an output fed back as an input on the next
call: a VAD's state -> stateN, h0 -> hn, conv caches, the layers of a chain's step graph) are held in two buffers
the C executor reads and writes in place, so a step passes only the per-chunk inputs (audio, sample rate) and
returns the other outputs. A step computes exactly what `run` computes on the same inputs and states, to the bit.
graph/stream.py chooses it (with the pairs) where the direct step (rnnfast/stream/direct.py) does not apply."""
from __future__ import annotations

import threading

import numpy as np

from ..errors import FormatError
from ..stream import batch_rows
from .dims import Dim


class LoopStep:
    direct = False

    def __init__(self, compiled, batch: int, pairs: dict, n_threads=None, where: str = "model", step_input=None):
        """pairs: {state input: the output fed back to it} (graph/stream.py checks and chooses them). step_input
        (stream/step_input.py): what the lone step input of a step graph rnnfast made is checked against (a chain's,
        a Keras model's); at batch 1 it may leave out its batch axis, and the outputs then have none either."""
        graph = compiled.graph
        self._where, self._compiled = where, compiled
        # The C step runs without the GIL and flips the state buffers: two threads stepping one stream at once
        # would mix their states. Steps are serialized instead (~0.1 us each).
        self._lock = threading.Lock()
        self.batch = int(batch)  # >= 1: make_stream, the only maker, checked it
        self.pairs = dict(pairs)
        self.step_inputs = [n for n in graph.inputs if n not in self.pairs]
        self.step_outputs = [n for n in graph.outputs if n not in self.pairs.values()]
        self._in_index = {n: k for k, n in enumerate(graph.inputs)}
        self._out_index = {n: k for k, n in enumerate(graph.outputs)}
        self._n_threads = int(n_threads or 0)  # 0: the compiled graph's own count, read at each step
        self._batch_symbol = self._find_batch_symbol(graph)
        self._shapes = {i: self._concrete(graph, i) for i in self.pairs}
        self._cur = {i: np.zeros(s, graph.values[i].dtype) for i, s in self._shapes.items()}
        self._nxt = {i: np.zeros(s, graph.values[i].dtype) for i, s in self._shapes.items()}
        self._lists()
        self._step_rank = len(graph.values[self.step_inputs[0]].shape) if len(self.step_inputs) == 1 else -1
        self._input = step_input
        self._fast_shape = None
        if step_input is not None:  # the fast path takes only the exact step shape; the rest is checked first
            self._step_rank = -2
            self._fast_shape = step_input.shape(self.batch)

    def _lists(self):
        """The feed and output-buffer lists for this step and the next (the two state buffers swap every step), and
        where the step's inputs and outputs sit in them, so a step only fills in its inputs."""
        graph = self._compiled.graph
        self._step_slots = [self._in_index[n] for n in self.step_inputs]
        self._result_slots = [self._out_index[o] for o in self.step_outputs]
        self._feeds, self._into = [], []
        for cur, nxt in ((self._cur, self._nxt), (self._nxt, self._cur)):
            feeds = [None] * len(graph.inputs)
            into = [None] * len(graph.outputs)
            for i, o in self.pairs.items():
                feeds[self._in_index[i]] = cur[i]
                into[self._out_index[o]] = nxt[i]
            self._feeds.append(feeds)
            self._into.append(into)
        self._parity = 0

    def _find_batch_symbol(self, graph):
        syms = None
        for name in list(self.pairs) + self.step_inputs[:1]:
            here = {a for d in graph.values[name].shape if isinstance(d, Dim) for a in d.symbols()}
            syms = here if syms is None else syms & here
        return next(iter(syms)) if syms and len(syms) == 1 else None

    def _concrete(self, graph, name):
        shape = []
        for axis, d in enumerate(graph.values[name].shape):
            if isinstance(d, Dim):
                if d.symbols() != {self._batch_symbol}:
                    raise FormatError(f"{self._where}: cannot stream: state {name!r} has the size {d} on axis "
                                      f"{axis}, which the stream must know before the first step to hold the state; "
                                      f"a state streams when each of its sizes is fixed or the batch size (give "
                                      f"that axis a fixed size in the model)")
                d = d.evaluate({self._batch_symbol: self.batch})
            shape.append(int(d))
        return tuple(shape)

    def _batch_axis(self, name):
        for axis, d in enumerate(self._compiled.graph.values[name].shape):
            if isinstance(d, Dim) and d.symbols() == {self._batch_symbol}:
                return axis
        return None

    def step(self, inputs):
        """inputs: the per-step inputs (a dict by name, a sequence in order, or one array when there is one).
        Returns the outputs that are not states (one array, or a list when there are several). Safe to call from
        several threads: steps run one at a time."""
        with self._lock:
            if type(inputs) is np.ndarray and (inputs.ndim == self._step_rank or
                                               inputs.shape == self._fast_shape):  # the usual call: one array
                feeds = self._feeds[self._parity]
                slot = self._step_slots[0]
                feeds[slot] = inputs
                try:
                    outs = self._compiled.c_graph.run(feeds, self._n_threads or self._compiled.n_threads,
                                                      self._into[self._parity])
                except ValueError:
                    self._refuse_rows({self.step_inputs[0]: inputs})
                    raise
                finally:
                    feeds[slot] = None
                self._step_done()
                return outs[self._result_slots[0]] if len(self._result_slots) == 1 else [outs[k] for k in
                                                                                          self._result_slots]
            if isinstance(inputs, dict):
                unknown = [k for k in inputs if k not in self.step_inputs]
                if unknown:
                    raise ValueError(f"{self._where}: unknown step input(s) {unknown}; a step takes {self.step_inputs} "
                                     f"(the states {list(self.pairs)} are kept by the stream)")
                missing = [k for k in self.step_inputs if k not in inputs]
                if missing:
                    raise ValueError(f"{self._where}: missing step input(s) {missing}")
                given = inputs
            elif isinstance(inputs, (list, tuple)):
                if len(inputs) != len(self.step_inputs):
                    raise ValueError(f"{self._where}: {len(inputs)} step inputs, expected {self.step_inputs}")
                given = dict(zip(self.step_inputs, inputs))
            else:
                if len(self.step_inputs) != 1:
                    raise ValueError(f"{self._where}: a step takes {self.step_inputs}: pass a dict")
                if self._input is not None:
                    x, squeeze = self._input.take(inputs, self.batch)
                    out = self._run_step({self.step_inputs[0]: x})
                    if not squeeze:
                        return out
                    return out[0] if not isinstance(out, list) else [o[0] for o in out]
                inputs = np.asarray(inputs)
                given = {self.step_inputs[0]: inputs}
            return self._run_step(given)

    def _run_step(self, given):
        feeds = self._feeds[self._parity]
        for name, slot in zip(self.step_inputs, self._step_slots):
            feeds[slot] = given[name]
        try:
            outs = self._compiled.c_graph.run(feeds, self._n_threads or self._compiled.n_threads,
                                              self._into[self._parity])
        except ValueError:
            self._refuse_rows(given)
            raise
        finally:
            for slot in self._step_slots:
                feeds[slot] = None  # the lists hold no caller array between steps
        self._step_done()
        if len(self._result_slots) == 1:
            return outs[self._result_slots[0]]
        return [outs[k] for k in self._result_slots]

    def _refuse_rows(self, given):
        """After the executor refused a step: when a step input has another number of rows than the stream's batch,
        says that (the executor can only name the state it no longer matches)."""
        for name, value in given.items():
            axis = self._batch_axis(name)
            shape = np.shape(value)
            if axis is not None and len(shape) > axis and shape[axis] != self.batch:
                raise ValueError(f"{self._where}: step input {name!r} has {shape[axis]} rows (axis {axis} of "
                                 f"{shape}); this stream steps {self.batch} (model.stream(batch=...))") from None

    def _step_done(self):
        """The outputs just written are the next step's states."""
        self._cur, self._nxt = self._nxt, self._cur
        self._parity ^= 1

    def reset(self, rows=None) -> None:
        """Zero every state, or only batch rows `rows` (those rows start new sequences)."""
        with self._lock:
            self._reset(rows)

    def _reset(self, rows):
        if rows is None:
            for buf in self._cur.values():
                buf[...] = 0
            return
        rows = batch_rows(rows, self.batch, self._where)
        for name, buf in self._cur.items():
            axis = self._batch_axis(name)
            if axis is None:
                raise ValueError(f"{self._where}: cannot reset rows: state {name!r} (shape {buf.shape}) has no "
                                 f"axis the graph declares as the batch size, so its rows are not known; reset() "
                                 f"without rows zeroes every state")
            index = [slice(None)] * buf.ndim
            index[axis] = rows
            buf[tuple(index)] = 0

    @property
    def state(self) -> dict:
        """{state input name: array}: copies, picklable, taken under the lock steps hold (a step swaps the buffers
        when it ends: read without it, the states could come from two steps)."""
        with self._lock:
            return {name: buf.copy() for name, buf in self._cur.items()}

    @state.setter
    def state(self, value: dict) -> None:
        if set(value) != set(self._cur):
            raise ValueError(f"{self._where}: a stream state has the keys {sorted(self._cur)}, got {sorted(value)}")
        for name, arr in value.items():
            if np.shape(arr) != self._shapes[name]:
                raise ValueError(f"{self._where}: state {name!r} must have shape {self._shapes[name]}, got "
                                 f"{np.shape(arr)}")
        with self._lock:
            for name, arr in value.items():
                self._cur[name][...] = arr

    @property
    def n_threads(self) -> int:
        return self._n_threads or int(self._compiled.n_threads or 0)

    def describe(self) -> str:
        return "the graph's state loop, one run of the C executor a step"
