"""The portable model: the subset of every source format that the exporters (.rnnf, ONNX, C code, npz) write.

A Pipeline is one input, one output and a chain of stages:
    [EmbeddingStage] -> RecurrentStage+ (and DenseStage between or after them) -> DenseStage*
Sources that fit (a torch Embedding -> LSTM -> Linear file, a Keras Sequential of Embedding/RNN/Dense layers,
an ONNX graph around one recurrent stack) convert to it with `to_pipeline`; anything else is refused by name
there, never approximated. Tensors inside are time-major [seq_len, batch, features]; `batch_first` only says
how the pipeline's own input and output are laid out.

Masks follow Keras: with `EmbeddingStage.mask_zero`, id 0 marks a masked step; every recurrent stage then
carries its state over masked steps and repeats the previous output (`RecurrentStage.mask_zero_output` gives
zeros instead, as Keras' Bidirectional does).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from . import engine
from .errors import FormatError
from .layers import RecurrentLayer
from .model import TensorInfo


def _softmax(y):
    e = np.exp(y - y.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# A Dense stage's activations, in the array's own dtype (the C engine and exporters implement the same formulas).
_DENSE = {"linear": lambda y: y, "relu": lambda y: np.maximum(y, 0), "tanh": np.tanh,
          "sigmoid": lambda y: 1 / (1 + np.exp(-y)), "softmax": _softmax}
DENSE_ACTIVATIONS = tuple(_DENSE)


def dense_activation(name: str, y: np.ndarray) -> np.ndarray:
    return _DENSE[name](y)


@dataclass
class EmbeddingStage:
    table: np.ndarray  # [vocab, dim] float32
    mask_zero: bool = False
    name: str = ""

    def __post_init__(self):
        self.table = np.ascontiguousarray(self.table, np.float32)
        if self.table.ndim != 2:
            raise FormatError(f"embedding {self.name!r}: table has shape {self.table.shape}, expected [vocab, dim]")

    @property
    def output_size(self) -> int:
        return int(self.table.shape[1])


@dataclass
class RecurrentStage:
    """Stacked recurrent layers; layer k+1 reads layer k's output with directions concatenated.
    return_sequences False: the output is the last layer's final state, directions concatenated, [batch, D*P]."""

    layers: list
    return_sequences: bool = True
    mask_zero_output: bool = False
    name: str = ""

    def __post_init__(self):
        if not self.layers or not all(isinstance(l, RecurrentLayer) for l in self.layers):
            raise FormatError(f"recurrent stage {self.name!r}: needs one or more RecurrentLayer")
        for prev, nxt in zip(self.layers, self.layers[1:]):
            if nxt.input_size != prev.n_dirs * prev.output_size:
                raise FormatError(f"recurrent stage {self.name!r}: layer {nxt.name!r} takes {nxt.input_size} "
                                  f"inputs, the layer before gives {prev.n_dirs * prev.output_size}")

    @property
    def input_size(self) -> int:
        return self.layers[0].input_size

    @property
    def output_size(self) -> int:
        last = self.layers[-1]
        return last.n_dirs * last.output_size


@dataclass
class DenseStage:
    """y = activation(x @ weight.T + bias) over the last axis (torch Linear layout)."""

    weight: np.ndarray  # [out, in]
    bias: Optional[np.ndarray] = None  # [out]
    activation: str = "linear"
    name: str = ""

    def __post_init__(self):
        self.weight = np.ascontiguousarray(self.weight, np.float32)
        if self.weight.ndim != 2:
            raise FormatError(f"dense {self.name!r}: weight has shape {self.weight.shape}, expected [out, in]")
        if self.bias is not None:
            self.bias = np.ascontiguousarray(self.bias, np.float32)
            if self.bias.shape != (self.weight.shape[0],):
                raise FormatError(f"dense {self.name!r}: bias has shape {self.bias.shape}, "
                                  f"expected ({self.weight.shape[0]},)")
        if self.activation not in DENSE_ACTIVATIONS:
            raise FormatError(f"dense {self.name!r}: activation {self.activation!r} is not one of "
                              f"{DENSE_ACTIVATIONS}")

    @property
    def input_size(self) -> int:
        return int(self.weight.shape[1])

    @property
    def output_size(self) -> int:
        return int(self.weight.shape[0])


Stage = Union[EmbeddingStage, RecurrentStage, DenseStage]


@dataclass
class Pipeline:
    stages: list
    batch_first: bool = False
    name: str = ""
    source: str = field(default="", repr=False)

    def __post_init__(self):
        where = self.source or self.name or "pipeline"
        if not any(isinstance(s, RecurrentStage) for s in self.stages):
            raise FormatError(f"{where}: a pipeline needs at least one recurrent stage")
        if any(isinstance(s, EmbeddingStage) for s in self.stages[1:]):
            raise FormatError(f"{where}: an embedding can only be the first stage")
        width, sequence = None, True
        for s in self.stages:
            if not sequence and isinstance(s, RecurrentStage):
                raise FormatError(f"{where}: recurrent stage {s.name!r} follows a stage that returned no sequence")
            if isinstance(s, (RecurrentStage, DenseStage)) and width is not None and s.input_size != width:
                raise FormatError(f"{where}: stage {s.name!r} takes {s.input_size} features, gets {width}")
            width = s.output_size
            sequence = sequence and not (isinstance(s, RecurrentStage) and not s.return_sequences)

    @property
    def takes_ids(self) -> bool:
        return isinstance(self.stages[0], EmbeddingStage)

    @property
    def input_size(self) -> int:
        first = self.stages[0]
        return 1 if self.takes_ids else first.input_size

    @property
    def output_size(self) -> int:
        return self.stages[-1].output_size

    @property
    def returns_sequence(self) -> bool:
        return all(s.return_sequences for s in self.stages if isinstance(s, RecurrentStage))


def run_pipeline(p: Pipeline, x, n_threads=None) -> np.ndarray:
    """x: float [seq_len, batch, input_size] or int ids [seq_len, batch] (batch-first when p.batch_first).
    Returns [seq_len, batch, out] (batch-first likewise) or [batch, out] when a stage ends the sequence."""
    x = np.asarray(x)
    where = p.source or p.name or "pipeline"
    if p.takes_ids:
        if x.dtype.kind not in "iu" or x.ndim != 2:
            raise ValueError(f"{where}: input must be integer token ids [seq_len, batch], got {x.dtype} {x.shape}")
    elif x.dtype.kind not in "fiu" or x.ndim != 3 or x.shape[2] != p.input_size:
        raise ValueError(f"{where}: input must be float [seq_len, batch, {p.input_size}], got {x.dtype} {x.shape}")
    if p.batch_first:
        x = np.swapaxes(x, 0, 1)
    mask = None
    for s in p.stages:
        if isinstance(s, EmbeddingStage):
            vocab = s.table.shape[0]
            if x.size and (x.min() < 0 or x.max() >= vocab):
                raise ValueError(f"{where}: token ids must lie in [0, {vocab}), got {x.min()}..{x.max()}")
            mask = (x != 0) if s.mask_zero else None
            x = s.table[x]
        elif isinstance(s, RecurrentStage):
            T, B = x.shape[0], x.shape[1]
            y, y_h, _ = engine.CompiledStack(s.layers).run(np.ascontiguousarray(x, np.float32), mask=mask,
                                                           mask_zero_output=s.mask_zero_output, n_threads=n_threads)
            last = s.layers[-1]
            if s.return_sequences:
                x = y.transpose(0, 2, 1, 3).reshape(T, B, last.n_dirs * last.output_size)
            else:
                x = y_h[-1].transpose(1, 0, 2).reshape(B, last.n_dirs * last.output_size)
                mask = None
        else:
            x = dense(s, x)
    if p.batch_first and x.ndim == 3:
        x = np.swapaxes(x, 0, 1)
    return np.ascontiguousarray(x, np.float32)


def dense(s: DenseStage, x: np.ndarray) -> np.ndarray:
    y = x @ s.weight.T
    if s.bias is not None:
        y = y + s.bias
    return dense_activation(s.activation, y).astype(np.float32)


class PipelineGraph:
    """A Pipeline as a Model graph (what `rnnfast.load` gives for a .rnnf file): input `input`, output `output`."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        p = pipeline
        seq = ["batch", "seq_len"] if p.batch_first else ["seq_len", "batch"]
        self.inputs = [TensorInfo("input", seq, "tensor(int64)") if p.takes_ids
                       else TensorInfo("input", seq + [p.input_size])]
        self.outputs = [TensorInfo("output", (seq if p.returns_sequence else ["batch"]) + [p.output_size])]

    def run(self, feeds: dict, n_threads=None) -> list:
        if "input" not in feeds:
            raise ValueError("the input 'input' is required")
        return [run_pipeline(self.pipeline, feeds["input"], n_threads=n_threads)]

    def to_pipeline(self) -> Pipeline:
        return self.pipeline

    def stream(self, batch=1, n_threads=None):
        """Step by step through the embedding, the recurrent layers (state kept in C) and the dense heads. The
        recurrent stages must be adjacent, so one C stack holds them all."""
        from .stream import Stream

        p, where = self.pipeline, self.pipeline.source or self.pipeline.name or "pipeline"
        kinds = [type(s) for s in p.stages]
        first, last = kinds.index(RecurrentStage), len(kinds) - 1 - kinds[::-1].index(RecurrentStage)
        between = [s for s in p.stages[first:last + 1] if not isinstance(s, RecurrentStage)]
        if between:
            raise FormatError(f"{where}: cannot stream: dense stage {between[0].name!r} sits between recurrent "
                              f"stages; use Model.run")
        pre = check = None
        if p.takes_ids:
            emb = p.stages[0]
            if emb.mask_zero:
                raise FormatError(f"{where}: cannot stream: embedding {emb.name!r} masks id 0 (mask_zero), and a "
                                  f"stream step has no mask; use Model.run")
            vocab = emb.table.shape[0]

            def check(ids, rows):
                if ids.dtype.kind not in "iu" or ids.shape != (rows,) or ids.min() < 0 or ids.max() >= vocab:
                    raise ValueError(f"{where}: a step takes {rows} integer token id(s) in [0, {vocab}), "
                                     f"got {ids.dtype} {ids.shape}")

            pre = lambda ids: emb.table[ids]
        heads = p.stages[last + 1:]
        post = None
        if heads:
            def post(y):
                for s in heads:
                    y = dense(s, y)
                return y
        layers = [l for s in p.stages[first:last + 1] for l in s.layers]
        return Stream(layers, batch, pre=pre, post=post, input_check=check, n_threads=n_threads, where=where)

    def describe(self) -> str:
        lines = [f"pipeline {self.pipeline.name or ''} (batch_first={self.pipeline.batch_first})"]
        for s in self.pipeline.stages:
            if isinstance(s, EmbeddingStage):
                lines.append(f"  Embedding {s.name}: vocab {s.table.shape[0]} -> {s.output_size}"
                             f"{' mask_zero' if s.mask_zero else ''}")
            elif isinstance(s, RecurrentStage):
                for l in s.layers:
                    lines.append(f"  {l.cell.upper()} {l.name} {l.direction}: {l.input_size} -> hidden "
                                 f"{l.hidden_size}{f' proj {l.proj_size}' if l.proj_size else ''}")
                if not s.return_sequences:
                    lines.append("    (final state only)")
            else:
                lines.append(f"  Dense {s.name}: {s.input_size} -> {s.output_size} {s.activation}")
        return "\n".join(lines)
