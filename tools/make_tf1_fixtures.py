"""Write TensorFlow 1.x checkpoint fixtures with real TensorFlow (tf.compat.v1 graph mode, the legacy rnn_cell
classes): tests/data/tf1/<name>/model.ckpt.{index,data-00000-of-00001} plus <name>/expected.npz.

Run with a separate environment that has TensorFlow and tf-keras (never the package's own):
    python -m venv /work/venv-tf && /work/venv-tf/bin/pip install tensorflow tf-keras
    TF_USE_LEGACY_KERAS=1 /work/venv-tf/bin/python tools/make_tf1_fixtures.py
(TF_USE_LEGACY_KERAS=1: with Keras 3, tf.compat.v1.nn.rnn_cell.MultiRNNCell and friends are not available.)

Every trainable variable is set to uniform(-0.6, 0.6) values after initialisation (so biases, peepholes and the
forget bias all matter), TensorFlow's own outputs are recorded, and the checkpoint is written by tf.train.Saver
(without the .meta graph or the `checkpoint` state file). Each expected.npz holds the input `x`, optionally
`sequence_length`, TensorFlow's `output` (after the dense head, fw/bw concatenated for the bidirectional model;
[batch, units] when the head reads the final state),
`state_h` and for LSTMs `state_c` ([layers*directions, batch, size]: layer-major, fw before bw; only when all
layers have one size), and two JSON
strings: load_options (for rnnfast.load) and run_options (for Model.run). The tests never import TensorFlow.
"""
from __future__ import annotations

import json
import os
import shutil
import zlib

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

tf1 = tf.compat.v1
tf1.disable_eager_execution()
cells = tf1.nn.rnn_cell
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "tf1")
B, T, I = 3, 6, 4


def states_of(state):
    """(h list, c list) of a (possibly nested) TF state: LSTMStateTuple(c, h) or a plain h tensor."""
    if isinstance(state, cells.LSTMStateTuple):
        return [state.h], [state.c]
    if isinstance(state, (tuple, list)):
        hs, cs = [], []
        for s in state:
            h, c = states_of(s)
            hs += h
            cs += c
        return hs, cs
    return [state], []


def write(name, build, ids=False, seq_len=None, optimizer=False, load_options=None, run_options=None):
    tf1.reset_default_graph()
    tf1.set_random_seed(0)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    if ids:
        x_val = rng.integers(0, 11, (B, T)).astype(np.int64)
        x = tf1.placeholder(tf.int64, [None, T])
    else:
        x_val = rng.standard_normal((B, T, I)).astype(np.float32)
        x = tf1.placeholder(tf.float32, [None, T, I])
    lens = tf1.placeholder(tf.int32, [None]) if seq_len is not None else None
    output, state = build(x, lens)
    feed = {x: x_val}
    if lens is not None:
        feed[lens] = np.asarray(seq_len, np.int32)
    hs, cs = states_of(state)
    if optimizer:
        step = tf1.train.get_or_create_global_step()
        tf1.train.AdamOptimizer(0.01).minimize(tf.reduce_sum(output), global_step=step)
    with tf1.Session() as sess:
        sess.run(tf1.global_variables_initializer())
        for v in tf1.trainable_variables():
            v.load(rng.uniform(-0.6, 0.6, v.shape.as_list()).astype(np.float32), sess)
        out, h_vals, c_vals = sess.run([output, hs, cs], feed)
        folder = os.path.join(OUT, name)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        tf1.train.Saver().save(sess, os.path.join(folder, "model.ckpt"), write_meta_graph=False, write_state=False)
    record = {"x": x_val, "output": out, "load_options": json.dumps(load_options or {}),
              "run_options": json.dumps(run_options or {})}
    if len({np.shape(h) for h in h_vals}) == 1:  # layers of different sizes have no stacked state output
        record["state_h"] = np.stack(h_vals)
        if c_vals:
            record["state_c"] = np.stack(c_vals)
    if seq_len is not None:
        record["sequence_length"] = np.asarray(seq_len, np.int64)
    np.savez(os.path.join(folder, "expected.npz"), **record)
    print(name, {k: np.shape(v) for k, v in record.items()})


def lstm2_dense(x, lens):
    cell = cells.MultiRNNCell([cells.BasicLSTMCell(8), cells.BasicLSTMCell(8)])
    out, state = tf1.nn.dynamic_rnn(cell, x, dtype=tf.float32)
    return tf1.layers.dense(out, 3), state


def gru(x, lens):
    return tf1.nn.dynamic_rnn(cells.GRUCell(6), x, dtype=tf.float32)


def basic_rnn(x, lens):
    return tf1.nn.dynamic_rnn(cells.BasicRNNCell(5), x, dtype=tf.float32)


def lstm_peephole_proj(x, lens):
    return tf1.nn.dynamic_rnn(cells.LSTMCell(8, use_peepholes=True, num_proj=5), x, dtype=tf.float32)


def bidirectional(x, lens):
    (fw, bw), (s_fw, s_bw) = tf1.nn.bidirectional_dynamic_rnn(cells.BasicLSTMCell(6), cells.BasicLSTMCell(6), x,
                                                              sequence_length=lens, dtype=tf.float32)
    return tf.concat([fw, bw], 2), (s_fw, s_bw)


def embedding_seqlen(x, lens):
    table = tf1.get_variable("embedding", [11, I])
    cell = cells.MultiRNNCell([cells.GRUCell(7), cells.GRUCell(5)])
    return tf1.nn.dynamic_rnn(cell, tf1.nn.embedding_lookup(table, x), sequence_length=lens, dtype=tf.float32)


def basic_rnn_relu(x, lens):
    return tf1.nn.dynamic_rnn(cells.BasicRNNCell(5, activation=tf.nn.relu), x, dtype=tf.float32)


def stack_bidirectional(x, lens):
    """What tf.contrib.rnn.stack_bidirectional_dynamic_rnn builds (contrib is gone from TF 2): each layer a
    bidirectional_dynamic_rnn under `cell_N`, reading the previous layer's fw/bw outputs concatenated; then two
    dense layers (relu, then linear)."""
    states = []
    with tf1.variable_scope("stack_bidirectional_rnn"):
        for k in range(2):
            with tf1.variable_scope(f"cell_{k}"):
                (fw, bw), (s_fw, s_bw) = tf1.nn.bidirectional_dynamic_rnn(
                    cells.GRUCell(5), cells.GRUCell(5), x, sequence_length=lens, dtype=tf.float32)
                x = tf.concat([fw, bw], 2)
                states += [s_fw, s_bw]
    hidden = tf1.layers.dense(x, 6, activation=tf.nn.relu)
    return tf1.layers.dense(hidden, 3), tuple(states)


def state_head(x, lens):
    """The head reads the top layer's final state (dense(states[-1].h), as the TF1 books' MNIST RNN does), which
    with sequence_length is not the last step's output."""
    cell = cells.MultiRNNCell([cells.BasicLSTMCell(6), cells.BasicLSTMCell(6)])
    _, state = tf1.nn.dynamic_rnn(cell, x, sequence_length=lens, dtype=tf.float32)
    return tf1.layers.dense(state[-1].h, 4), state


def forget_half(x, lens):
    return tf1.nn.dynamic_rnn(cells.BasicLSTMCell(4, forget_bias=0.5), x, dtype=tf.float32)


if __name__ == "__main__":
    write("lstm2_dense", lstm2_dense, optimizer=True)
    write("gru", gru)
    write("basic_rnn", basic_rnn)
    write("lstm_peephole_proj", lstm_peephole_proj)
    write("bidirectional", bidirectional, seq_len=[6, 2, 4], run_options={"sequence_length": [6, 2, 4]})
    write("embedding_seqlen", embedding_seqlen, ids=True, seq_len=[5, 0, 3],
          run_options={"sequence_length": [5, 0, 3]})
    write("forget_half", forget_half, load_options={"forget_bias": 0.5})
    write("state_head", state_head, seq_len=[6, 3, 1], run_options={"sequence_length": [6, 3, 1]},
          load_options={"head_on": "state"})
    write("basic_rnn_relu", basic_rnn_relu, load_options={"activation": "relu"})
    write("stack_bidirectional", stack_bidirectional, seq_len=[3, 6, 5], run_options={"sequence_length": [3, 6, 5]},
          load_options={"head_activation": ["relu", "linear"]})
