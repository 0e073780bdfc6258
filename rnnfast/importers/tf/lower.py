"""A TensorFlow 1.x checkpoint model as a graph IR (graph/build.py), compiled for the C executor like every other
format: [embedding Gather] -> Transpose to time-major (unless time_major) -> one Recurrent stack (with
sequence_length as ONNX sequence_lens: zeros past a row's end, the state of its last valid step, the backward
direction starting there, exactly dynamic_rnn's rules) -> Transpose back -> the dense heads at every step (or on
the top layer's final state)."""
from __future__ import annotations

import numpy as np

from ...graph.build import GraphBuilder


def build(layers, time_major: bool, embedding=None, heads=(), states: bool = True, with_lengths: bool = False,
          name: str = "tf1", head_on_state: bool = False):
    """The GraphBuilder of the model; inputs `input` (and `sequence_length`, int32 [batch], when with_lengths),
    outputs `output` (and `state_h`, `state_c` for an LSTM, when `states`). head_on_state: the heads read the top
    layer's final h, directions concatenated ([batch, D*P]), instead of every step's output."""
    b = GraphBuilder(name)
    seq = ["seq_len", "batch"] if time_major else ["batch", "seq_len"]
    if embedding is not None:
        x = b.embedding(b.input("input", np.int64, seq), embedding.table, name=embedding.name)
    else:
        x = b.input("input", np.float32, seq + [layers[0].input_size])
    lens = b.input("sequence_length", np.int32, ["batch"]) if with_lengths else ""
    if not time_major:
        x = b.node("Transpose", [x], {"perm": [1, 0, 2]}, name="to_time_major")
    if head_on_state and not states:
        raise ValueError(f"{name}: head_on='state' needs layers of one size (the stack's final states are one "
                         f"tensor); these have {sorted({(l.hidden_size, l.output_size) for l in layers})}")
    y, h_n, c_n = b.recurrent(x, layers, sequence_lens=lens, states=states, sequence=not head_on_state, name="rnn")
    if head_on_state:  # the last layer's D rows of h_n [L*D, B, P] -> [B, D*P]
        D, L = layers[-1].n_dirs, len(layers)
        top = b.node("Slice", [h_n, np.array([(L - 1) * D], np.int64), np.array([L * D], np.int64),
                               np.array([0], np.int64)], name="top_layer_state")
        top = b.node("Transpose", [top], {"perm": [1, 0, 2]}, name="state_batch_major")
        y = b.node("Reshape", [top, np.array([0, -1], np.int64)], name="join_directions")
    elif not time_major:
        y = b.node("Transpose", [y], {"perm": [1, 0, 2]}, name="to_batch_major")
    for s in heads:
        y = b.dense(y, s.weight, s.bias, s.activation, name=s.name)
    b.output(y, "output")
    if states:
        b.output(h_n, "state_h")
        if c_n is not None:
            b.output(c_n, "state_c")
    return b
