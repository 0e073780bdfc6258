"""A TensorFlow 1.x checkpoint model as a graph IR (graph/build.py), compiled for the C executor like every other
format: [embedding Gather] -> Transpose to time-major (unless time_major) -> one Recurrent stack (with
sequence_length as ONNX sequence_lens: zeros past a row's end, the state of its last valid step, the backward
direction starting there, exactly dynamic_rnn's rules) -> Transpose back -> the dense heads at every step."""
from __future__ import annotations

import numpy as np

from ...graph.build import GraphBuilder


def build(layers, time_major: bool, embedding=None, heads=(), states: bool = True, with_lengths: bool = False,
          name: str = "tf1"):
    """The GraphBuilder of the model; inputs `input` (and `sequence_length`, int32 [batch], when with_lengths),
    outputs `output` (and `state_h`, `state_c` for an LSTM, when `states`)."""
    b = GraphBuilder(name)
    seq = ["seq_len", "batch"] if time_major else ["batch", "seq_len"]
    if embedding is not None:
        x = b.embedding(b.input("input", np.int64, seq), embedding.table, name=embedding.name)
    else:
        x = b.input("input", np.float32, seq + [layers[0].input_size])
    lens = b.input("sequence_length", np.int32, ["batch"]) if with_lengths else ""
    if not time_major:
        x = b.node("Transpose", [x], {"perm": [1, 0, 2]}, name="to_time_major")
    y, h_n, c_n = b.recurrent(x, layers, sequence_lens=lens, states=states, name="rnn")
    if not time_major:
        y = b.node("Transpose", [y], {"perm": [1, 0, 2]}, name="to_batch_major")
    for s in heads:
        y = b.dense(y, s.weight, s.bias, s.activation, name=s.name)
    b.output(y, "output")
    if states:
        b.output(h_n, "state_h")
        if c_n is not None:
            b.output(c_n, "state_c")
    return b
