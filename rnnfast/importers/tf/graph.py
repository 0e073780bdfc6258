"""The graph a TensorFlow 1.x checkpoint becomes: optional embedding lookup, a stack of recurrent layers run as
tf.nn.dynamic_rnn / bidirectional_dynamic_rnn run them, optional dense heads (tf.layers.dense) at every step or on
the top layer's final state; built as a graph (graph/chain.py) and run by the C executor in one call.

Input `input`: [batch, time, features] (time_major=False, dynamic_rnn's default) or [time, batch, features] with
time_major=True; int token ids [batch, time] with an embedding. Run option sequence_length (int [batch]): steps
past a row's length give zero outputs and leave the state at its last valid step, as dynamic_rnn does; the backward
direction starts at the row's last valid step (reverse_sequence), as ONNX's sequence_lens does. Outputs: `output`
(fw and bw concatenated on the last axis, then the heads), and the final states `state_h` and, for LSTMs, `state_c`
[layers*directions, batch, size] (layer-major, fw before bw; TF's LSTMStateTuple(c, h) per layer), present when
every layer has one size.
"""
from __future__ import annotations

from ...graph.chain import TF1, ChainGraph
from ...pipeline import RecurrentStage
from ..torch.graph import Embedding

MAX_LISTED = 200  # variables describe() lists


class TF1Graph(ChainGraph):
    """embedding: an EmbeddingStage or None; heads: DenseStages, applied in order."""

    framework = "tf1"

    def __init__(self, layers, time_major=False, embedding=None, heads=(), name="", source="", defaults=(),
                 head_on_state=False, variables=()):
        self.heads, self.defaults, self.source = list(heads), list(defaults), source
        self.embedding = None if embedding is None else Embedding(embedding.name, embedding.table)
        self.head_on_state = bool(head_on_state)  # the output is the top layer's final h (then the heads)
        self.variables = list(variables)  # (name, dtype, shape, how it was used) of every checkpoint entry
        self.cell = layers[0].cell
        stages = ([embedding] if embedding is not None else []) + [
            RecurrentStage(list(layers), return_sequences=not self.head_on_state, name=name)] + self.heads
        super().__init__(stages, not time_major, source or "TensorFlow checkpoint", TF1, name)

    def quantized(self, weight_dtype: str) -> "TF1Graph":
        """The same model (inputs, outputs, heads), its recurrent weights stored in weight_dtype (Model.quantize)."""
        emb = self.stages[0] if self.takes_ids else None
        return TF1Graph([layer.with_weight_dtype(weight_dtype) for layer in self.layers], not self.batch_first, emb,
                        self.heads, self.name, self.source, self.defaults, self.head_on_state, self.variables)

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
