"""Keras Sequential models streamed step by step (rnnfast/importers/keras/stream.py), on the real-Keras fixtures
of tests/data/keras/: the steps give what `run` and Keras' predict give, and what cannot stream is refused by name."""
import os

import numpy as np
import pytest
from conftest import assert_close

import rnnfast
from rnnfast.importers.keras.stream import layer_stream

DATA = os.path.join(os.path.dirname(__file__), "data", "keras")


def _fixture(name, ext=".keras"):
    with np.load(os.path.join(DATA, name + ".npz")) as z:
        arrays = {k: z[k] for k in z}
    return rnnfast.load(os.path.join(DATA, name + ext)), arrays


@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_stacked_lstm_last_step_is_keras_predict(ext):
    model, d = _fixture("k3_seed_stacked_lstm", ext)
    x = d["x0"]
    stream = model.stream(batch=x.shape[0])
    for t in range(x.shape[1]):
        y = stream.step(x[:, t])
    assert_close(y, d["y0"], what="stacked LSTM stream")
    assert_close(y, model.run(x)[0], what="stream vs run")


def test_embedding_model_streams_token_ids():
    model, d = _fixture("k3_seed_imdb_embedding_simplernn")
    ids = d["x0"]
    stream = model.stream(batch=ids.shape[0])
    for t in range(ids.shape[1]):
        y = stream.step(ids[:, t])
    assert_close(y, d["y0"], what="Embedding -> SimpleRNN -> Dense stream")
    one = model.stream()
    for token in ids[1]:
        y1 = one.step(token)  # a scalar id for batch 1; [id] would keep the batch axis
    assert_close(y1, d["y0"][1], what="batch-1 stream takes one id per step")


def test_stateful_chunks_with_reset_are_keras_predict():
    model, d = _fixture("k3_seed_stateful_lstm")
    stream = model.stream(batch=2)
    for k in range(4):
        if k == 3:  # the fixture calls reset_states() before chunk 3
            stream.reset()
        y = stream.feed(d[f"c{k}_x0"].transpose(1, 0, 2))[-1]
        assert_close(y, d[f"c{k}_y0"], what=f"chunk {k}")


def test_stream_state_has_every_layer():
    model, _ = _fixture("k3_seed_stateful_lstm")
    assert sorted(model.stream(batch=2).state) == ["layer0.c", "layer0.h", "layer1.h"]


@pytest.mark.parametrize("name, match", [("k3_go_backwards", "go_backwards"),
                                         ("k3_functional_mix", "only Sequential"),
                                         ("k3_seed_bidirectional", "Bidirectional reads the sequence backward")])
def test_refused_by_name(name, match):
    model = rnnfast.load(os.path.join(DATA, name + ".keras"))
    with pytest.raises(rnnfast.FormatError, match=match):
        model.stream()


def test_layer_stream_takes_only_keras_models():
    onnx_model = rnnfast.load(os.path.join(os.path.dirname(__file__), "data", "keras", "k3_seed_stacked_lstm.keras"))
    with pytest.raises(ValueError, match="no layer named 'x'"):
        layer_stream(onnx_model, first="x")
    with pytest.raises(rnnfast.FormatError, match="takes a Keras model"):
        layer_stream(object())
