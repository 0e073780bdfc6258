"""rnnfast.Stream: step-by-step inference with the state kept between calls, what Model.stream returns for every
format (ONNX, Keras, PyTorch, TF1 checkpoints, .rnnf 1 and 2, .npz / .safetensors graphs).

onnxruntime is stateless, so a streaming user must pass every state in and out of each call; a Stream keeps the
states itself (in C), so a step passes only the per-step inputs and returns the other outputs. The states are
readable, settable, resettable per batch row and picklable as a plain dict of arrays.

How a step runs is chosen where the stream is made (graph/stream.py make_stream), never by the caller: the direct C
step of a lone stack of forward recurrent layers where the model is one (stream/direct.py), else one run of
the model's graph with its state loops (graph/stream_loop.py). Either computes what `run` computes on the same
inputs and states."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..layers import RecurrentLayer


def batch_rows(rows, batch: int, where: str) -> np.ndarray:
    """`rows` of a reset as int64 indices, refused unless each lies in [0, batch): both ways a stream steps take it."""
    rows = np.asarray(rows, np.int64).reshape(-1)
    if rows.size and (rows.min() < 0 or rows.max() >= batch):
        raise ValueError(f"{where}: rows must lie in [0, {batch}), got {rows.tolist()}")
    return rows


class Stream:
    """step(x or feeds) -> this step's outputs; feed(chunk) -> the steps of a chunk; reset(rows=None); state (read
    or assign a dict of arrays); pairs ({state input: the output fed back to it}) and pairs_from (how they were
    chosen: "states" by the caller, "graph" recorded with the graph, "names" found by name and shape, "layers"
    each recurrent layer's own state, layer{k}.h / layer{k}.c); step_inputs / step_outputs; batch; n_threads;
    direct (True when a step is the engine's own C step of the recurrent layers, no graph run)."""

    def __init__(self, layers: Sequence[RecurrentLayer], batch: int = 1, n_threads=None, where: str = "model"):
        """A stream over forward recurrent layers alone (rnnfast.layers), stepped directly in C: step(x_t [batch,
        input]) -> [batch, output]; the states are each layer's. Models make theirs with Model.stream."""
        from .direct import LayerStep

        self._use(LayerStep(layers, batch, n_threads, where), "layers")

    @classmethod
    def _of(cls, impl, pairs_from: str) -> "Stream":
        """The stream over one way of stepping (stream/direct.py, graph/stream_stack.py, graph/stream_loop.py);
        graph/stream.py makes them."""
        self = cls.__new__(cls)
        self._use(impl, pairs_from)
        return self

    def _use(self, impl, pairs_from: str) -> None:
        self._impl = impl
        self.pairs_from = pairs_from
        # A step is the hot path (3 us for a small LSTM): the instance takes the way's own step, which saves the
        # call through Stream.step below (its documented form).
        self.step = impl.step

    def step(self, inputs):
        """One time step. inputs: one array when the step has one input ([batch, ...], or without the batch axis
        at batch 1 where the model's step input is known), else a dict by name or a sequence in step_inputs order.
        Returns this step's output (a list when there are several). A refused step leaves the state unchanged.
        Safe to call from several threads: steps run one at a time."""
        return self._impl.step(inputs)

    def feed(self, chunk) -> np.ndarray:
        """Several steps of a stream with one step input and one step output: chunk [steps, ...] -> [steps, ...]."""
        if len(self._impl.step_inputs) != 1 or len(self._impl.step_outputs) != 1:
            raise ValueError(f"{self._impl._where}: feed takes a stream of one step input and one step output; this "
                             f"one steps {self.step_inputs} -> {self.step_outputs}: call step once a step")
        return np.stack([self.step(x_t) for x_t in np.asarray(chunk)])

    def reset(self, rows=None) -> None:
        """Zero every state, or only the batch rows `rows` (those rows start new sequences; the others go on)."""
        self._impl.reset(rows)

    @property
    def state(self) -> dict:
        """{state input name: array} (for layers: "layer0.h" [1, batch, out], "layer0.c" [1, batch, hidden] for an
        LSTM, ...): copies, picklable, all as one step left them even while other threads step."""
        return self._impl.state

    @state.setter
    def state(self, value: dict) -> None:
        """Every state at once, by the names `state` gives; checked whole first, so a refused one changes nothing,
        and written whole between two steps, so a step in another thread sees the old states or the new."""
        self._impl.state = value

    @property
    def pairs(self) -> dict:
        return dict(self._impl.pairs)

    @property
    def step_inputs(self) -> list:
        return list(self._impl.step_inputs)

    @property
    def step_outputs(self) -> list:
        return list(self._impl.step_outputs)

    @property
    def batch(self) -> int:
        return self._impl.batch

    @property
    def direct(self) -> bool:
        return self._impl.direct

    @property
    def n_threads(self) -> int:
        """The threads a step uses (0: the engine's default, OMP_NUM_THREADS or every core)."""
        return self._impl.n_threads

    def thread_choice(self) -> dict:
        """How many threads the steps use now and why, where the stream measures it (a direct stream: the steps are
        timed with one thread and with n_threads, and use the faster per step; {"threads": n, "seconds_1_thread":
        t1, "seconds_asked": tn}, None until measured). Other streams refuse: their graph runs choose per run."""
        choice = getattr(self._impl, "thread_choice", None)
        if choice is None:
            raise ValueError(f"{self._impl._where}: this stream steps a graph ({self._impl.describe()}); its runs "
                             f"choose their threads as the model's do (Model.thread_choice())")
        return choice()

    def __repr__(self) -> str:
        return (f"<rnnfast.Stream of {self._impl._where}: steps {self.step_inputs} -> {self.step_outputs}, batch "
                f"{self.batch}, states {self.pairs} ({self.pairs_from}); {self._impl.describe()}>")
