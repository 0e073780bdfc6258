"""The graph a PyTorch file becomes: optional Embedding, a stack of recurrent layers, optional Linear head.

It runs with nn.LSTM / nn.GRU / nn.RNN conventions: inputs `input` (and optional `h0`, `c0`: zeros when left out),
outputs `output`, `h_n` (and `c_n` for LSTM); batch_first applies to input and output only; unbatched input (no
batch axis) works; the run option sequence_lens gives per-row lengths (packed sequences). The model is built as a
graph and run by the C executor (graph/chain.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ...graph.chain import TORCH, ChainGraph
from ...pipeline import DenseStage, EmbeddingStage, RecurrentStage


@dataclass
class Embedding:
    name: str
    weight: np.ndarray  # [num_embeddings, embedding_dim]


@dataclass
class Linear:
    name: str
    weight: np.ndarray  # [out_features, in_features]
    bias: Optional[np.ndarray]


class TorchGraph(ChainGraph):
    """Embedding -> the recurrent stack -> Linear as a graph (graph/chain.py) with PyTorch's conventions."""

    framework = "torch"

    def __init__(self, layers, batch_first=False, embedding: Optional[Embedding] = None,
                 head: Optional[Linear] = None, name="", source="", defaults=()):
        layers = list(layers)
        self.defaults = list(defaults)  # (module, option, value, why) for options the file did not store
        self.embedding, self.head, self.source = embedding, head, source
        self.cell, self.n_dirs = layers[0].cell, layers[0].n_dirs
        self.states = len(layers) * self.n_dirs
        stages = []
        if embedding is not None:
            stages.append(EmbeddingStage(embedding.weight, name=embedding.name))
        stages.append(RecurrentStage(layers, name=name))
        if head is not None:
            stages.append(DenseStage(head.weight, head.bias, name=head.name))
        super().__init__(stages, bool(batch_first), source or "torch model", TORCH, name)

    def quantized(self, weight_dtype: str) -> "TorchGraph":
        """The same model (inputs, outputs, conventions), its recurrent weights stored in weight_dtype (the PyTorch
        cell makes its own)."""
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
