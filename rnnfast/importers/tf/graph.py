"""The graph a TensorFlow 1.x checkpoint becomes: optional embedding lookup, a stack of recurrent layers run as
tf.nn.dynamic_rnn / bidirectional_dynamic_rnn run them, optional dense heads (tf.layers.dense) at every step;
lowered to the graph IR (lower.py) and run by the C executor in one call; streamed with the stack stepped directly
in C (graph/stream.py).

Input `input`: [batch, time, features] (time_major=False, dynamic_rnn's default) or [time, batch, features] with
time_major=True; int token ids [batch, time] with an embedding. Run option sequence_length (int [batch]): steps
past a row's length give zero outputs and leave the state at its last valid step, as dynamic_rnn does; the backward
direction starts at the row's last valid step (reverse_sequence). Outputs: `output` (fw and bw concatenated on the
last axis, then the heads), and the final states `state_h` and, for LSTMs, `state_c` [layers*directions, batch,
size] (layer-major, fw before bw; TF's LSTMStateTuple(c, h) per layer), present when every layer has one size.
"""
from __future__ import annotations

import numpy as np

from ... import engine
from ...model import TensorInfo
from ...pipeline import dense
from ..torch.graph import Embedding, TorchGraph

MAX_LISTED = 200  # variables describe() lists


class TF1Graph(TorchGraph):
    def __init__(self, layers, time_major=False, embedding=None, heads=(), name="", source="", defaults=(),
                 head_on_state=False, variables=()):
        emb = None if embedding is None else Embedding(embedding.name, embedding.table)
        super().__init__(layers, batch_first=not time_major, embedding=emb, head=None, name=name, source=source,
                         defaults=defaults)
        self.heads = list(heads)  # pipeline DenseStages, applied in order
        self._graphs = {}  # with a sequence_length input? -> CompiledGraph
        self.head_on_state = bool(head_on_state)  # the output is the top layer's final h (then the heads)
        self.variables = list(variables)  # (name, dtype, shape, how it was used) of every checkpoint entry
        self.inputs = self.inputs[:1]  # dynamic_rnn's initial state is zeros (dtype=...) in what this reads
        seq = ["batch", "seq_len"] if self.batch_first else ["seq_len", "batch"]
        last = self.layers[-1]
        features = self.heads[-1].output_size if self.heads else last.n_dirs * last.output_size
        self.outputs = [TensorInfo("output", (["batch"] if self.head_on_state else seq) + [features])]
        self.same_size = len({(l.output_size, l.hidden_size) for l in self.layers}) == 1
        if self.same_size:
            self.outputs.append(TensorInfo("state_h", [self.states, "batch", last.output_size]))
            if self.cell == "lstm":
                self.outputs.append(TensorInfo("state_c", [self.states, "batch", last.hidden_size]))
        self._compiled(False)  # lowered and compiled at load: what cannot run is refused here, not at the first run

    def quantized(self, weight_dtype: str) -> "TF1Graph":
        """The same model (inputs, outputs, heads), its recurrent weights stored in weight_dtype (Model.quantize)."""
        from ...pipeline import EmbeddingStage

        emb = None if self.embedding is None else EmbeddingStage(self.embedding.weight, name=self.embedding.name)
        return TF1Graph([layer.with_weight_dtype(weight_dtype) for layer in self.layers], not self.batch_first, emb,
                        self.heads, self.name, self.source, self.defaults, self.head_on_state, self.variables)

    def _compiled(self, with_lengths: bool):
        """The model lowered to the graph IR (lower.py) and compiled for the C executor; the variant with a
        sequence_length input is made on first use."""
        from ...pipeline import EmbeddingStage
        from .lower import build

        key = bool(with_lengths)
        if key not in self._graphs:
            emb = None if self.embedding is None else EmbeddingStage(self.embedding.weight, name=self.embedding.name)
            self._graphs[key] = build(self.layers, not self.batch_first, emb, self.heads, states=self.same_size,
                                      with_lengths=key, name=self._where(), head_on_state=self.head_on_state).compile()
        return self._graphs[key]

    @property
    def compiled(self):
        """What runs without sequence_length (cli.common.executor_info reads it)."""
        return self._compiled(False)

    def compiled_with_lengths(self):
        """What runs with sequence_length, as the graph input `sequence_lens` (for .rnnf 2 and export-c)."""
        return self._compiled(True)

    def run(self, feeds: dict, sequence_length=None, n_threads=None) -> list:
        from ...engine import _CALL_THREADS

        if "input" not in feeds:
            raise ValueError(f"{self._where()}: the input 'input' is required")
        x, batched = self._user_input(feeds["input"])
        arrays = [x]
        if sequence_length is not None:
            B = x.shape[1] if not self.batch_first else x.shape[0]
            T = x.shape[0] if not self.batch_first else x.shape[1]
            lens = np.asarray(sequence_length)
            if lens.shape != (B,) or lens.dtype.kind not in "iu":
                raise ValueError(f"{self._where()}: sequence_length must be int [{B}], got {lens.dtype} {lens.shape}")
            if lens.size and (lens.min() < 0 or lens.max() > T):
                raise ValueError(f"{self._where()}: sequence_length must lie in [0, {T}], got {lens}")
            arrays.append(lens.astype(np.int32))
        if n_threads is None:
            n_threads = _CALL_THREADS.get()
        if not engine.run_is_traced():
            outs = self._compiled(sequence_length is not None).run(arrays, n_threads=n_threads)
        else:  # rnnfast verify / inspect watch (or replace) the engine calls (cli/trace.py): run them layer by layer
            outs = self._run_layers(*arrays, n_threads=n_threads)
        if not batched:
            axis = 0 if self.batch_first or self.head_on_state else 1
            outs = [np.take(outs[0], 0, axis=axis)] + [s[:, 0] for s in outs[1:]]
        return outs

    def _run_layers(self, x, lens=None, n_threads=None) -> list:
        """What the compiled graph computes, one engine.run_layer call per layer (x batched, in the input layout)."""
        if self.embedding is not None:
            x = self.embedding.weight[x]
        if self.batch_first:
            x = x.transpose(1, 0, 2)
        T, B = x.shape[0], x.shape[1]
        h_n, c_n = [], []
        for layer in self.layers:
            y, y_h, y_c = engine.run_layer(layer, np.ascontiguousarray(x, np.float32), sequence_lens=lens,
                                           n_threads=n_threads)
            x = y.transpose(0, 2, 1, 3).reshape(T, B, layer.n_dirs * layer.output_size)
            h_n.append(y_h)
            if y_c is not None:
                c_n.append(y_c)
        if self.head_on_state:
            x = h_n[-1].transpose(1, 0, 2).reshape(B, -1)
        for s in self.heads:
            x = dense(s, x)
        outs = [np.ascontiguousarray(x.transpose(1, 0, 2) if self.batch_first and x.ndim == 3 else x, np.float32)]
        if self.same_size:
            outs.append(np.concatenate(h_n, axis=0))
            if c_n:
                outs.append(np.concatenate(c_n, axis=0))
        return outs

    def _user_input(self, x):
        """(the input in the declared layout, batched?): token ids checked against the vocabulary (an out-of-range
        id is an error, as embedding_lookup makes it), features as float32; unbatched input gets a batch axis."""
        x = np.asarray(x)
        if self.embedding is not None:
            if x.dtype.kind not in "iu" or x.ndim not in (1, 2):
                raise ValueError(f"{self._where()}: input holds token ids for the embedding {self.embedding.name!r}; "
                                 f"expected an integer array [batch, time] (or unbatched [time]), got {x.dtype} "
                                 f"{x.shape}")
            vocab = self.embedding.weight.shape[0]
            if x.size and (x.min() < 0 or x.max() >= vocab):
                raise ValueError(f"{self._where()}: token ids must lie in [0, {vocab}), got {x.min()}..{x.max()}")
            x = x.astype(np.int64, copy=False)
            batched = x.ndim == 2
        else:
            want = self.layers[0].input_size
            if x.dtype.kind not in "fiub" or x.ndim not in (2, 3) or x.shape[-1] != want:
                raise ValueError(f"{self._where()}: input must be numeric [batch, time, {want}] ([time, batch, "
                                 f"{want}] when time_major, or unbatched [time, {want}]), got {x.dtype} {x.shape}")
            x = x.astype(np.float32, copy=False)
            batched = x.ndim == 3
        if not batched:
            x = np.expand_dims(x, 0 if self.batch_first else 1)
        if x.shape[0 if not self.batch_first else 1] == 0:
            raise ValueError(f"{self._where()}: the input has no time steps")
        return x, batched

    def stream(self, batch=1, n_threads=None, states=None):
        """Step by step (graph/stream.py make_stream): the recurrent stack stepped directly in C, the embedding
        lookup before it and the heads after it in numpy."""
        from ...stream.step_input import TokenIds
        from ...graph.stream import layer_states_only, make_stream

        layer_states_only(self._where(), states)
        step_input = pre = post = None
        if self.embedding is not None:
            step_input = TokenIds(self.embedding.weight.shape[0], self._where())
            pre = lambda ids: self.embedding.weight[ids]
        if self.heads:
            def post(y):
                for s in self.heads:
                    y = dense(s, y)
                return y
        return make_stream(self._where(), batch, n_threads, layers=self.layers, step_input=step_input, pre=pre,
                           post=post)

    def to_pipeline(self):
        """Embedding -> the recurrent stack -> the heads (zero initial state, the output sequence only)."""
        from ...pipeline import EmbeddingStage, Pipeline, RecurrentStage

        stages = []
        if self.embedding is not None:
            stages.append(EmbeddingStage(self.embedding.weight, name=self.embedding.name))
        stages.append(RecurrentStage(list(self.layers), return_sequences=not self.head_on_state, name=self.name))
        stages += self.heads
        return Pipeline(stages, batch_first=self.batch_first, name=self.name, source=self._where())

    def _where(self):
        return self.source or "TensorFlow checkpoint"

    def describe(self) -> str:
        lines = [f"TensorFlow 1.x checkpoint {self.source or ''} (time_major={not self.batch_first})"]
        if self.embedding is not None:
            v, e = self.embedding.weight.shape
            lines.append(f"  embedding {self.embedding.name!r}: {v} tokens -> {e}")
        for layer in self.layers:
            acts = ",".join(a.name for a in layer.activations[0])
            extra = (f", num_proj={layer.proj_size}" if layer.proj_size else "") + (
                ", peepholes" if layer.peepholes is not None else "")
            lines.append(f"  {layer.name}: {layer.cell} {layer.direction}, input {layer.input_size}, hidden "
                         f"{layer.hidden_size}{extra}, activations {acts}")
        where = "on the final state" if self.head_on_state else "every time step"
        for s in self.heads:
            lines.append(f"  dense {s.name!r}: {s.input_size} -> {s.output_size} {s.activation} ({where})")
        for scope, option, value, why in self.defaults:
            lines.append(f"  assumed: {scope} {option} = {value!r} ({why})")
        if self.variables:
            lines.append(f"  variables in the checkpoint ({len(self.variables)}):")
            shown = self.variables if len(self.variables) <= MAX_LISTED else self.variables[:MAX_LISTED]
            lines += [f"    {n} {dtype} {shape} ({how})" for n, dtype, shape, how in shown]
            if len(shown) < len(self.variables):
                lines.append(f"    ... and {len(self.variables) - len(shown)} more")
        return "\n".join(lines)
