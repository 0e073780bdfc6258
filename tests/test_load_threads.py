"""One thread setting for every format: `rnnfast.load(path, n_threads=n)` and `InferenceSession(path)` take it for
ONNX, Keras, PyTorch and .rnnf files alike, the engine calls a run makes use it, and any count gives the same bits."""
from __future__ import annotations

import os

import numpy as np
import pytest

import rnnfast
from rnnfast import engine

DATA = os.path.join(os.path.dirname(__file__), "data")
FILES = ["keras/k3_bidirectional_modes.h5", "keras/k3_activations.keras", "torch/lstm_proj_no_bias.pt",
         "onnx/bilstm_head.ts.onnx"]


def feeds_for(model, rng):
    feeds = {}
    for info in model.inputs:
        shape = [d if isinstance(d, int) else 3 for d in info.shape]
        if info.type.startswith("tensor(int"):
            feeds[info.name] = rng.integers(0, 5, shape).astype(np.int64)
        else:
            feeds[info.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


@pytest.mark.parametrize("path", FILES)
def test_every_format_takes_n_threads_and_gives_the_same_bits(path):
    full = os.path.join(DATA, path)
    rng = np.random.default_rng(0)
    one = rnnfast.load(full, n_threads=1)
    feeds = feeds_for(one, rng)
    want = one.run(feeds)
    for n in (2, 0, None):
        got = rnnfast.load(full, n_threads=n).run(feeds)
        assert [g.tobytes() for g in got] == [w.tobytes() for w in want], n
    sess = rnnfast.InferenceSession(full)  # no thread count at all: the default
    assert [g.tobytes() for g in sess.run(None, feeds)] == [w.tobytes() for w in want]


def test_a_rnnf_file_takes_n_threads():
    from rnnfast.exporters.rnnf import to_bytes

    data = to_bytes(rnnfast.load(os.path.join(DATA, "onnx", "bilstm_head.ts.onnx")).to_pipeline())
    loaded = rnnfast.load(data, n_threads=2)
    assert loaded.n_threads == 2
    x = np.random.default_rng(1).standard_normal([d if isinstance(d, int) else 3
                                                  for d in loaded.inputs[0].shape]).astype(np.float32)
    assert loaded.run(x)[0].tobytes() == rnnfast.load(data, n_threads=1).run(x)[0].tobytes()
    assert rnnfast.InferenceSession(data).run(None, {loaded.input_names[0]: x})[0].tobytes() == \
        loaded.run(x)[0].tobytes()


def test_the_engine_calls_of_a_keras_run_get_the_models_count(monkeypatch):
    seen = []
    real = engine.CompiledStack.run

    def watch(self, *args, **kwargs):
        seen.append(engine._CALL_THREADS.get())
        return real(self, *args, **kwargs)

    model = rnnfast.load(os.path.join(DATA, "keras", "k3_bidirectional_modes.h5"), n_threads=2)
    monkeypatch.setattr(engine.CompiledStack, "run", watch)
    model.run(feeds_for(model, np.random.default_rng(2)))
    assert seen and set(seen) == {2}
    assert engine._CALL_THREADS.get() is None  # and only during the run


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True])
def test_a_bad_thread_count_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="n_threads must be None or an integer >= 0"):
        rnnfast.load(os.path.join(DATA, "torch", "lstm_proj_no_bias.pt"), n_threads=bad)
