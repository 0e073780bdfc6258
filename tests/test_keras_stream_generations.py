"""Model.stream() on Keras files of every generation (Keras 3, tf.keras, Keras 1/2.1/CuDNN; test_keras_stream.py
has the Keras 3 basics and layer_stream): stepping T times gives what run gives on the T steps,
stateful models go on across chunks as Keras' stateful layers do (the committed chunk outputs of model.predict),
stream.reset() is reset_states, a stream starts from zero state, and what cannot stream is refused naming the
layer."""
import os

import numpy as np
import pytest
from conftest import assert_close

import rnnfast

DATA = os.path.join(os.path.dirname(__file__), "data", "keras")
STATEFUL = ["k3_seed_stateful_lstm.keras", "k3_seed_stateful_lstm.h5", "tf2_seed_stateful_lstm.h5"]


def _load(name):
    return rnnfast.load(os.path.join(DATA, name))


def _npz(name):
    return np.load(os.path.join(DATA, name.split(".")[0] + ".npz"))


@pytest.mark.parametrize("name", STATEFUL)
def test_stateful_chunks_match_keras_predict(name):
    """Chunks fed step by step: the last step of each chunk is what Keras' predict gave on that chunk, with the
    state carried from the chunks before and zeroed where the fixture called reset_states."""
    model, npz = _load(name), _npz(name)
    stream = model.stream(batch=2)
    for k in range(4):
        if k == 3:  # the fixture reset the states before chunk 3
            stream.reset()
        x = npz[f"c{k}_x0"]
        for t in range(x.shape[1]):
            y = stream.step(x[:, t])
        assert_close(y, npz[f"c{k}_y0"], what=f"{name} chunk {k}")


@pytest.mark.parametrize("name", STATEFUL)
def test_stream_starts_from_zero_whatever_run_left(name):
    model, npz = _load(name), _npz(name)
    model.run(npz["c0_x0"])
    model.run(npz["c1_x0"])
    stream = model.stream(batch=2)
    x = npz["c3_x0"]  # the fixture reset the states before chunk 3
    for t in range(x.shape[1]):
        y = stream.step(x[:, t])
    assert_close(y, npz["c3_y0"], what=f"{name}: a new stream after run calls")
    assert_close(model.run(npz["c2_x0"])[0], npz["c2_y0"], what=f"{name}: the stream left run's state alone")


@pytest.mark.parametrize("name,batch", [
    ("tf2_seed_stacked_lstm.h5", 3), ("k3_seed_char_lstm.keras", 3), ("tf2_seed_imdb_embedding_simplernn.h5", 3),
    ("k3_seed_mnist_simplernn.keras", 3), ("tf2_use_bias_false.h5", 3), ("k3_gru_reset_after_False.keras", 3),
    ("keras2_sequential_chunked.h5", None), ("keras2_cudnn.h5", 3),
])
def test_step_t_times_equals_run_on_t_steps(name, batch):
    """Step t gives run's output at step t (return_sequences at the end), and step T gives run's output."""
    model, npz = _load(name), _npz(name)
    x = npz["x0"]
    if batch is None:  # keras2_sequential_chunked has a Masking layer: refused by name
        with pytest.raises(rnnfast.FormatError, match="masking_1"):
            model.stream(batch=3)
        return
    stream = model.stream(batch=batch)
    steps = np.stack([stream.step(x[:, t]) for t in range(x.shape[1])], axis=1)
    y = model.run(x)[0]
    if y.ndim == 3:
        assert_close(steps, y, what=f"{name}: every step")
    else:
        assert_close(steps[:, -1], y, what=f"{name}: last step")
    assert_close(steps[:, -1], npz["y0"] if npz["y0"].ndim == 2 else npz["y0"][:, -1], what=f"{name}: predict")


@pytest.mark.parametrize("name,layer", [
    ("tf2_seed_bidirectional.h5", "'bidirectional' (Bidirectional)"),
    ("k3_seed_masked_middle.keras", "(Embedding): mask_zero=True cannot stream"),
    ("tf2_go_backwards.h5", "go_backwards"),
    ("k3_seed_encoder_decoder.keras", "(RepeatVector)"),
    ("tf2_functional_mix.h5", "only Sequential"),
    ("keras1_bidirectional_gpu.h5", "(Bidirectional)"),
])
def test_refused_by_name(name, layer):
    with pytest.raises(rnnfast.FormatError) as e:
        _load(name).stream(batch=3)
    assert layer in str(e.value), str(e.value)


def test_step_shape_checked():
    stream = _load("tf2_seed_stacked_lstm.h5").stream(batch=3)
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        stream.step(np.zeros((3, 4), np.float32))
