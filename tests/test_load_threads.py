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


def _config_in_subprocess(tmp_path, value):
    import json
    import subprocess
    import sys

    from conftest import package_env

    code = ("import json, rnnfast\nfrom rnnfast import _core, config\nc = config.config()\n"
            "try:\n    rnnfast.load(b'')\n    err = None\nexcept ValueError as e:\n    err = str(e)\n"
            "print(json.dumps([_core.default_threads(), c['default_threads'], err]))")
    env = package_env(RNNFAST_NUM_THREADS=value)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("value, threads", [("1", 1), ("3", 3)])
def test_rnnfast_num_threads_sets_the_process_default(tmp_path, value, threads):
    n, shown, _ = _config_in_subprocess(tmp_path, value)
    assert n == threads and shown == f"{threads} (RNNFAST_NUM_THREADS)"


@pytest.mark.parametrize("value", ["two", "0", "-1", "1.5"])
def test_bad_rnnfast_num_threads_is_named(tmp_path, value):
    """The C core ignores a malformed value; show_config says so and load refuses to run with it."""
    n, shown, err = _config_in_subprocess(tmp_path, value)
    assert n >= 1 and "RNNFAST_NUM_THREADS ignored" in shown
    assert err == f"RNNFAST_NUM_THREADS must be an integer from 1 to 4096, got {value!r}"


def test_graph_runs_say_which_thread_count_they_use():
    """Model.thread_choice(): one thread or the asked count, whichever measured faster; both measured after a
    few runs (the executor starts with the asked count, then tries one)."""
    model = rnnfast.load(os.path.join(DATA, "onnx/bilstm_head.ts.onnx"), n_threads=2)
    feeds = feeds_for(model, np.random.default_rng(0))
    first = model.run(feeds)
    for _ in range(6):
        np.testing.assert_array_equal(model.run(feeds)[0], first[0])
    choice = model.thread_choice()
    assert choice["threads"] in (1, 2)
    assert choice["seconds_1_thread"] > 0 and choice["seconds_asked"] > 0
