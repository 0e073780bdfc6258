"""A Keras chain streamed through the C graph executor: one step of the whole chain (the Embedding lookup, the
recurrent layers, the per-step head) is a small graph whose recurrent states are its state loops (graph/stream.py
GraphStream), so a step is one C call with no numpy between the layers. It keeps rnnfast.stream.Stream's interface
(step, feed, reset, state as {"layer0.h": [1, batch, out], ...}), so model.stream() behaves the same either way;
stream.py decides what can stream and uses this when the chain has an Embedding or a head to run around the
recurrent layers (without them, Stream is one C call already)."""
from __future__ import annotations

import numpy as np

from ...graph.stream import GraphStream
from .lower import KT, _Lowering


def graph_stream(model_graph, embedding, rnns, post, batch, n_threads, where):
    """The stream, or infer.Unfit when a head layer has no lowering."""
    from ...graph.build import OPSET
    from ...graph.runtime import compile_graph

    low = _Lowering(model_graph)
    b = low.b
    if embedding is not None:
        ids = b.input("input", np.int64, ["batch"])
        x = b.embedding(ids, embedding.weights[0], name=embedding.name)
    else:
        x = b.input("input", np.float32, ["batch", rnns[0].layer.input_size])
    seq = low.unsqueeze(x, [0], "step")  # one time step: [1, batch, features]
    pairs, outs = {}, []
    for k, r in enumerate(rnns):
        h0 = b.input(f"layer{k}.h", np.float32, [1, "batch", r.units])
        c0 = b.input(f"layer{k}.c", np.float32, [1, "batch", r.units]) if r.cell == "lstm" else ""
        seq, h_n, c_n = b.recurrent(seq, [r.layer], h0=h0, c0=c0, states=True, name=r.name)
        outs += [(h_n, f"layer{k}.h")] + ([(c_n, f"layer{k}.c")] if c0 else [])
    y = KT(low.node("Transpose", [seq], {"perm": [1, 0, 2]}, name="batch_major"), (None, 1, rnns[-1].units))
    for obj in post:  # the head sees [batch, 1, features], as in a sequence
        (y,) = low.layer(obj, y, {})[:1]
    b.output(low.squeeze(y.name, [1], "output"), "output")
    for value, state in outs:
        pairs[state] = b.output(value, f"{state}_next")
        b.state_loop(pairs[state], state)
    compiled = compile_graph(b.graph(), OPSET, n_threads)
    return KerasGraphStream(GraphStream(compiled, batch, pairs, n_threads=n_threads, where=where), embedding,
                            rnns[0].layer.input_size, where)


class KerasGraphStream:
    def __init__(self, stream: GraphStream, embedding, input_size, where):
        self._s, self._embedding, self._where = stream, embedding, where
        self.batch = stream.batch
        self._want = (self.batch,) if embedding is not None else (self.batch, input_size)

    def step(self, x_t) -> np.ndarray:
        """One time step: x_t [batch, input] (token ids [batch]), or without the batch axis when batch is 1."""
        x = np.asarray(x_t)
        squeeze = self.batch == 1 and x.ndim == len(self._want) - 1
        if squeeze:
            x = x[None]
        e = self._embedding
        if e is not None:
            if x.dtype.kind not in "iu" or x.shape != self._want or (x.size and (x.min() < 0
                                                                                or x.max() >= e.input_dim)):
                raise ValueError(f"{e.where}: a step takes {self.batch} integer token id(s) in [0, {e.input_dim}), "
                                 f"got {x.dtype} {tuple(np.shape(x_t))}")
            x = x.astype(np.int64, copy=False)
        else:
            if x.shape != self._want:
                raise ValueError(f"{self._where}: a step takes [batch, input] = {self._want}"
                                 f"{' (or [input] for batch 1)' if self.batch == 1 else ''}, got "
                                 f"{tuple(np.shape(x_t))}")
            x = np.ascontiguousarray(x, np.float32)
        y = self._s.step(x)
        return y[0] if squeeze else y

    def feed(self, chunk) -> np.ndarray:
        """Several steps: chunk [steps, batch, ...]; returns [steps, batch, out]."""
        return np.stack([self.step(x_t) for x_t in np.asarray(chunk)])

    def reset(self, rows=None) -> None:
        self._s.reset(rows)

    @property
    def state(self) -> dict:
        """{"layer0.h": [1, batch, out], "layer0.c": [1, batch, hidden] (LSTM), ...}: copies, picklable."""
        return self._s.state

    @state.setter
    def state(self, value: dict) -> None:
        self._s.state = value

    def __repr__(self) -> str:
        return f"<Keras stream of {self._where} through the C graph: states {sorted(self._s.pairs)}>"
