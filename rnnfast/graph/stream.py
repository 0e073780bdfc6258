"""Streaming a whole graph: the graph's state loops (an output fed back as an input on the next call: a VAD's
state -> stateN, h0 -> hn, conv caches) are held in two buffers the C executor reads and writes in place, so a
step passes only the per-chunk inputs (audio, sample rate) and returns the other outputs. A step computes exactly
what `run` computes on the same inputs and states, to the bit.

The pairs come from the caller (`states={"state": "stateN"}`) or are found by name and shape (`find_state_pairs`);
`GraphStream.pairs` says which were chosen."""
from __future__ import annotations

import threading

import numpy as np

from .dims import Dim

# How exporters name a state's next value after its input: h0 -> hn, state -> stateN, cache -> cache_out, ...
_NEXT_SUFFIXES = ("n", "_n", "out", "_out", "new", "_new", "next", "_next")
_INPUT_SUFFIXES = ("0", "_0", "in", "_in", "")


def _related(inp: str, out: str) -> bool:
    i, o = inp.lower(), out.lower()
    for in_suffix in _INPUT_SUFFIXES:
        if in_suffix and not i.endswith(in_suffix):
            continue
        stem = i[:len(i) - len(in_suffix)] if in_suffix else i
        if stem and any(o == stem + s for s in _NEXT_SUFFIXES):
            return True
        if stem and o in ("new_" + stem, "next_" + stem):
            return True
    return False


def _shapes_agree(a, b) -> bool:
    if len(a) != len(b):
        return False
    return all(x == y or isinstance(x, Dim) != isinstance(y, Dim) for x, y in zip(a, b))


def find_state_pairs(graph) -> dict:
    """{input name: output name} for the inputs whose next value an output evidently is (name and shape)."""
    pairs = {}
    for inp in graph.inputs:
        vi = graph.values[inp]
        found = [o for o in graph.outputs if o not in pairs.values() and _related(inp, o)
                 and graph.values[o].dtype == vi.dtype and _shapes_agree(vi.shape, graph.values[o].shape)]
        if len(found) == 1:
            pairs[inp] = found[0]
    return pairs


class GraphStream:
    def __init__(self, compiled, batch: int = 1, states=None, n_threads=None, where: str = "model",
                 batch_axis_optional: bool = False, input_check=None):
        """batch_axis_optional: with batch 1, a lone step input may leave out its batch axis (axis 0), and the
        outputs then have none either (the step graphs of graph/chain.py, as rnnfast.stream.Stream takes steps).
        input_check(array): raises ValueError naming what is wrong with a lone step input (token ids in range)."""
        graph = compiled.graph
        self._where, self._compiled = where, compiled
        # The C step runs without the GIL and flips the state buffers: two threads stepping one stream at once
        # would mix their states. Steps are serialized instead (~0.1 us each).
        self._lock = threading.Lock()
        if int(batch) < 1:
            raise ValueError(f"{where}: a stream needs batch >= 1, got {batch}")
        self.batch = int(batch)
        pairs = dict(states) if states is not None else find_state_pairs(graph)
        for i, o in pairs.items():
            if i not in graph.inputs or o not in graph.outputs:
                raise ValueError(f"{where}: state pair {i!r} -> {o!r}: the graph's inputs are {graph.inputs} and its "
                                 f"outputs {graph.outputs}")
        if not pairs:
            raise NotImplementedError(f"{where}: no output of the graph is evidently the next value of an input (a "
                                      f"state loop); name them: model.stream(states={{'input': 'output'}})")
        self.pairs = pairs
        self.step_inputs = [n for n in graph.inputs if n not in pairs]
        self.step_outputs = [n for n in graph.outputs if n not in pairs.values()]
        self._in_index = {n: k for k, n in enumerate(graph.inputs)}
        self._out_index = {n: k for k, n in enumerate(graph.outputs)}
        self._n_threads = int(n_threads or 0)
        self._batch_symbol = self._find_batch_symbol(graph)
        self._shapes = {i: self._concrete(graph, i) for i in pairs}
        self._cur = {i: np.zeros(s, graph.values[i].dtype) for i, s in self._shapes.items()}
        self._nxt = {i: np.zeros(s, graph.values[i].dtype) for i, s in self._shapes.items()}
        self._lists()
        self._step_rank = len(graph.values[self.step_inputs[0]].shape) if len(self.step_inputs) == 1 else -1
        self._squeezable = batch_axis_optional and self.batch == 1 and self._step_rank >= 1
        self._check = input_check
        if input_check is not None:
            self._step_rank = -2  # every step takes the checked path

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
                    raise NotImplementedError(f"{self._where}: state {name!r} has the size {d} on axis {axis}, which "
                                              f"the stream cannot know before the first step")
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
            if type(inputs) is np.ndarray and inputs.ndim == self._step_rank:  # the usual call: one array
                feeds = self._feeds[self._parity]
                slot = self._step_slots[0]
                feeds[slot] = inputs
                try:
                    outs = self._compiled.c_graph.run(feeds, self._n_threads or self._compiled.n_threads,
                                                      self._into[self._parity])
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
                inputs = np.asarray(inputs)
                if self._check is not None:
                    self._check(inputs)
                if self._squeezable and inputs.ndim == self._step_rank - 1:
                    with_axis = self._run_step({self.step_inputs[0]: inputs[None]})
                    return with_axis[0] if not isinstance(with_axis, list) else [o[0] for o in with_axis]
                given = {self.step_inputs[0]: inputs}
            return self._run_step(given)

    def _run_step(self, given):
        feeds = self._feeds[self._parity]
        for name, slot in zip(self.step_inputs, self._step_slots):
            feeds[slot] = given[name]
        try:
            outs = self._compiled.c_graph.run(feeds, self._n_threads or self._compiled.n_threads,
                                              self._into[self._parity])
        finally:
            for slot in self._step_slots:
                feeds[slot] = None  # the lists hold no caller array between steps
        self._step_done()
        if len(self._result_slots) == 1:
            return outs[self._result_slots[0]]
        return [outs[k] for k in self._result_slots]

    def feed(self, chunk) -> np.ndarray:
        """Several steps of a graph with one step input and one step output: chunk [steps, ...] -> [steps, ...]."""
        return np.stack([self.step(x_t) for x_t in np.asarray(chunk)])

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
        rows = np.asarray(rows, np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= self.batch):
            raise ValueError(f"{self._where}: rows must lie in [0, {self.batch}), got {rows.tolist()}")
        for name, buf in self._cur.items():
            axis = self._batch_axis(name)
            if axis is None:
                raise NotImplementedError(f"{self._where}: state {name!r} has no batch axis to reset rows on")
            index = [slice(None)] * buf.ndim
            index[axis] = rows
            buf[tuple(index)] = 0

    @property
    def state(self) -> dict:
        """{state input name: array}: copies, picklable."""
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

    def __repr__(self) -> str:
        return f"<GraphStream of {self._where}: steps {self.step_inputs} -> {self.step_outputs}, states {self.pairs}>"
