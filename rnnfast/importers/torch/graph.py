"""The graph a PyTorch file becomes: optional Embedding, a stack of recurrent layers, optional Linear head.

It runs with nn.LSTM / nn.GRU / nn.RNN conventions: inputs `input` (and optional `h0`, `c0`), outputs `output`,
`h_n` (and `c_n` for LSTM); batch_first applies to input and output only; unbatched input (no batch axis) works.
Each recurrent layer goes through engine.run_layer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ... import engine
from ...model import TensorInfo


@dataclass
class Embedding:
    name: str
    weight: np.ndarray  # [num_embeddings, embedding_dim]


@dataclass
class Linear:
    name: str
    weight: np.ndarray  # [out_features, in_features]
    bias: Optional[np.ndarray]


class TorchGraph:
    def __init__(self, layers, batch_first=False, embedding: Optional[Embedding] = None,
                 head: Optional[Linear] = None, name="", source="", defaults=()):
        self.layers = list(layers)
        self.defaults = list(defaults)  # (module, option, value, why) for options the file did not store
        self.batch_first = bool(batch_first)
        self.embedding = embedding
        self.head = head
        self.name = name
        self.source = source
        first, last = self.layers[0], self.layers[-1]
        self.cell = first.cell
        self.n_dirs = first.n_dirs
        self.states = len(self.layers) * self.n_dirs
        seq = ["batch", "seq_len"] if self.batch_first else ["seq_len", "batch"]
        features = self.head.weight.shape[0] if self.head else last.n_dirs * last.output_size
        if self.embedding is not None:
            self.inputs = [TensorInfo("input", seq, "tensor(int64)")]
        else:
            self.inputs = [TensorInfo("input", seq + [first.input_size])]
        self.inputs.append(TensorInfo("h0", [self.states, "batch", first.output_size]))
        self.outputs = [TensorInfo("output", seq + [features]),
                        TensorInfo("h_n", [self.states, "batch", first.output_size])]
        if self.cell == "lstm":
            self.inputs.append(TensorInfo("c0", [self.states, "batch", first.hidden_size]))
            self.outputs.append(TensorInfo("c_n", [self.states, "batch", first.hidden_size]))

    def run(self, feeds: dict, sequence_lens=None, n_threads=None) -> list:
        """feeds: input (required), h0, c0. sequence_lens: int [batch], as a PackedSequence of post-padded
        rows would give: steps past a row's length are not run and their outputs are 0 (before the head)."""
        if "input" not in feeds:
            raise ValueError(f"{self._where()}: the input 'input' is required")
        x, batched = self._input(feeds["input"])
        T, B = x.shape[0], x.shape[1]
        h0 = self._state(feeds.get("h0"), "h0", B, batched, self.layers[0].output_size)
        c0 = self._state(feeds.get("c0"), "c0", B, batched, self.layers[0].hidden_size)
        if sequence_lens is not None:
            sequence_lens = np.asarray(sequence_lens)
            if sequence_lens.shape != (B,) or sequence_lens.dtype.kind not in "iu":
                raise ValueError(f"{self._where()}: sequence_lens must be int [{B}], got {sequence_lens.dtype} "
                                 f"{sequence_lens.shape}")
            if sequence_lens.size and (sequence_lens.min() < 0 or sequence_lens.max() > T):
                raise ValueError(f"{self._where()}: sequence_lens must lie in [0, {T}], got {sequence_lens}")
            sequence_lens = sequence_lens.astype(np.int32)
        D = self.n_dirs
        h_n, c_n = [], []
        for k, layer in enumerate(self.layers):
            sl = slice(k * D, (k + 1) * D)
            y, y_h, y_c = engine.run_layer(
                layer, np.ascontiguousarray(x, np.float32), sequence_lens=sequence_lens,
                initial_h=None if h0 is None else np.ascontiguousarray(h0[sl]),
                initial_c=None if c0 is None else np.ascontiguousarray(c0[sl]), n_threads=n_threads)
            x = y.transpose(0, 2, 1, 3).reshape(T, B, D * layer.output_size)
            h_n.append(y_h)
            if y_c is not None:
                c_n.append(y_c)
        if self.head is not None:
            x = x @ self.head.weight.T
            if self.head.bias is not None:
                x = x + self.head.bias
        out = np.ascontiguousarray(x.transpose(1, 0, 2) if self.batch_first and batched else x, np.float32)
        outs = [out, np.concatenate(h_n, axis=0)]
        if self.cell == "lstm":
            outs.append(np.concatenate(c_n, axis=0))
        if not batched:
            outs = [outs[0][:, 0]] + [s[:, 0] for s in outs[1:]]
        return outs

    def stream(self, batch=1, n_threads=None):
        """Step by step through Embedding -> recurrent stack -> Linear, state kept in C between steps."""
        from ...stream import Stream

        pre = post = check = None
        if self.embedding is not None:
            vocab = self.embedding.weight.shape[0]

            def check(ids, batch):
                if ids.dtype.kind not in "iu" or ids.shape != (batch,) or ids.min() < 0 or ids.max() >= vocab:
                    raise ValueError(f"{self._where()}: a step takes {batch} integer token id(s) in [0, {vocab}), "
                                     f"got {ids.dtype} {ids.shape}")

            pre = lambda ids: self.embedding.weight[ids]
        if self.head is not None:
            post = lambda y: y @ self.head.weight.T + (0 if self.head.bias is None else self.head.bias)
        return Stream(self.layers, batch, pre=pre, post=post, input_check=check, n_threads=n_threads,
                      where=self._where())

    def to_pipeline(self):
        """Embedding -> the recurrent stack -> Linear. Always fits; h0/c0 inputs and h_n/c_n outputs are left out
        (a pipeline starts from zero state and returns the sequence only), and so is unbatched input."""
        from ...pipeline import DenseStage, EmbeddingStage, Pipeline, RecurrentStage

        stages = []
        if self.embedding is not None:
            stages.append(EmbeddingStage(self.embedding.weight, name=self.embedding.name))
        stages.append(RecurrentStage(list(self.layers), name=self.name))
        if self.head is not None:
            stages.append(DenseStage(self.head.weight, self.head.bias, name=self.head.name))
        return Pipeline(stages, batch_first=self.batch_first, name=self.name, source=self._where())

    def _input(self, x):
        """(time-major [T, B, I] float32 array, batched?) from the user's input."""
        if self.embedding is not None:
            ids = np.asarray(x)
            if ids.dtype.kind not in "iu":
                raise ValueError(f"{self._where()}: input holds token ids for Embedding {self.embedding.name!r}; "
                                 f"expected an integer array, got {ids.dtype}")
            if ids.ndim not in (1, 2):
                raise ValueError(f"{self._where()}: token ids must be 1-D (unbatched) or 2-D, got shape {ids.shape}")
            vocab = self.embedding.weight.shape[0]
            if ids.size and (ids.min() < 0 or ids.max() >= vocab):
                raise ValueError(f"{self._where()}: token ids must lie in [0, {vocab}), got {ids.min()}..{ids.max()}")
            x = self.embedding.weight[ids]
        else:
            x = np.asarray(x)
            if x.dtype.kind not in "fiub":
                raise ValueError(f"{self._where()}: input must be numeric, got {x.dtype}")
            x = x.astype(np.float32, copy=False)
        want = self.layers[0].input_size
        if x.ndim not in (2, 3) or x.shape[-1] != want:
            raise ValueError(f"{self._where()}: input must be [seq_len, batch, {want}] (or batch-first, or "
                             f"unbatched [seq_len, {want}]), got shape {x.shape}")
        batched = x.ndim == 3
        if not batched:
            x = x[:, None, :]
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        if x.shape[0] == 0:
            raise ValueError(f"{self._where()}: the input has no time steps")
        return x, batched

    def _state(self, s, name, batch, batched, size):
        if s is None:
            return None
        if name == "c0" and self.cell != "lstm":
            raise ValueError(f"{self._where()}: c0 is only an input of an LSTM")
        s = np.asarray(s, np.float32)
        want = (self.states, batch, size) if batched else (self.states, size)
        if s.shape != want:
            raise ValueError(f"{self._where()}: {name} must have shape {want} (layers*directions, batch, size); "
                             f"got {s.shape}")
        return s if batched else s[:, None, :]

    def _where(self):
        return self.source or "torch model"

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
