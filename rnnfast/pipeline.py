"""The chain form of a model: what the chain writers (.rnnf 1, export-c's chain export) read, and the parts a model
read as a chain (.rnnf 1, PyTorch, TF 1.x) is built from. It is data only: every model is a graph (graph/chain.py
builds one of these parts with graph/build.py), and Model.to_pipeline reads this form back off the graph
(graph/to_pipeline.py), for every format.

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

from dataclasses import dataclass, field, replace
from typing import Optional, Union

import numpy as np

from .errors import FormatError
from .layers import RecurrentLayer
from .rnnf_spec import DENSE_ACTIVATIONS


# A Dense stage's activations (graph/build.py computes them; the exporters write the same formulas).


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
        check_chain(self.stages, self.source or self.name or "chain")

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


def check_chain(stages, where: str) -> None:
    """FormatError naming `where` unless the stages make a chain: one or more recurrent stages, an embedding only
    first, each stage taking the features the one before gives, no recurrent stage after a final state."""
    if not any(isinstance(s, RecurrentStage) for s in stages):
        raise FormatError(f"{where}: a chain needs at least one recurrent layer")
    if any(isinstance(s, EmbeddingStage) for s in stages[1:]):
        raise FormatError(f"{where}: an embedding can only be the first stage")
    width, sequence = None, True
    for s in stages:
        if not sequence and isinstance(s, RecurrentStage):
            raise FormatError(f"{where}: recurrent stage {s.name!r} follows a stage that returned no sequence")
        if isinstance(s, (RecurrentStage, DenseStage)) and width is not None and s.input_size != width:
            raise FormatError(f"{where}: stage {s.name!r} takes {s.input_size} features, gets {width}")
        width = s.output_size
        sequence = sequence and not (isinstance(s, RecurrentStage) and not s.return_sequences)


def quantized_stages(stages, weight_dtype: str) -> list:
    """The stages with their recurrent layers' weights stored in weight_dtype (rnnfast/quantize.py's rule, applied
    by RecurrentLayer.with_weight_dtype); embedding and dense stages stay float32."""
    return [replace(s, layers=[layer.with_weight_dtype(weight_dtype) for layer in s.layers])
            if isinstance(s, RecurrentStage) else s for s in stages]
