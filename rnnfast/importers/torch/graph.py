"""The graph a PyTorch file becomes: optional Embedding, a stack of recurrent layers, optional Linear head.

It runs with nn.LSTM / nn.GRU / nn.RNN conventions: inputs `input` (and optional `h0`, `c0`), outputs `output`,
`h_n` (and `c_n` for LSTM); batch_first applies to input and output only; unbatched input (no batch axis) works.
The chain is a graph run by the C executor (graph/chain.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ...graph.chain import ChainModel
from ...pipeline import DenseStage, EmbeddingStage, Pipeline, RecurrentStage


@dataclass
class Embedding:
    name: str
    weight: np.ndarray  # [num_embeddings, embedding_dim]


@dataclass
class Linear:
    name: str
    weight: np.ndarray  # [out_features, in_features]
    bias: Optional[np.ndarray]


class TorchGraph(ChainModel):
    """Embedding -> the recurrent stack -> Linear as a chain (graph/chain.py) with PyTorch's conventions."""

    framework = "torch"

    def __init__(self, layers, batch_first=False, embedding: Optional[Embedding] = None,
                 head: Optional[Linear] = None, name="", source="", defaults=()):
        self.layers = list(layers)
        self.defaults = list(defaults)  # (module, option, value, why) for options the file did not store
        self.embedding, self.head, self.name, self.source = embedding, head, name, source
        first = self.layers[0]
        self.cell, self.n_dirs = first.cell, first.n_dirs
        self.states = len(self.layers) * self.n_dirs
        stages = []
        if embedding is not None:
            stages.append(EmbeddingStage(embedding.weight, name=embedding.name))
        stages.append(RecurrentStage(list(self.layers), name=name))
        if head is not None:
            stages.append(DenseStage(head.weight, head.bias, name=head.name))
        where = source or "torch model"
        super().__init__(Pipeline(stages, batch_first=bool(batch_first), name=name, source=where), torch=True,
                         where=where)

    def quantized(self, weight_dtype: str) -> "TorchGraph":
        """The same model (inputs, outputs, conventions), its recurrent weights stored in weight_dtype (subclasses,
        TF 1.x's graph and the PyTorch cell, make their own)."""
        layers = [layer.with_weight_dtype(weight_dtype) for layer in self.layers]
        return TorchGraph(layers, self.batch_first, self.embedding, self.head, self.name, self.source, self.defaults)

    def describe(self) -> str:
        lines = [f"PyTorch {self.cell.upper()} model from {self.source or 'memory'} "
                 f"(batch_first={self.batch_first})"]
        if self.embedding is not None:
            v, e = self.embedding.weight.shape
            lines.append(f"  Embedding {self.embedding.name!r}: {v} tokens -> {e}")
        for layer in self.layers:
            acts = ",".join(a.name for a in layer.activations[0])
            proj = f", proj_size={layer.proj_size}" if layer.proj_size else ""
            lines.append(f"  {layer.name}: {layer.cell} {layer.direction}, input {layer.input_size}, hidden "
                         f"{layer.hidden_size}{proj}, activations {acts}")
        if self.head is not None:
            o, i = self.head.weight.shape
            lines.append(f"  Linear {self.head.name!r}: {i} -> {o}{'' if self.head.bias is not None else ', no bias'}"
                         f" (applied at every time step)")
        for module, option, value, why in self.defaults:
            lines.append(f"  default applied: {module}.{option} = {value!r} ({why})")
        return "\n".join(lines)
