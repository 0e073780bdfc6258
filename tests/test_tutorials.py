"""The tutorials' trained Keras models (rnnfast/examples_data/, from tools/train_tutorials.py with real Keras 3):
rnnfast gives Keras' recorded predictions and metric, streams step by step as `run` does, and `rnnfast demo` exits 0."""
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import assert_close, package_env

import rnnfast
from rnnfast import tutorials
from rnnfast.importers.keras.stream import layer_stream

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSIFIERS = ["digits_rnn", "digits_bilstm", "digits_deep_bilstm", "digits_gru"]


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_matches_keras(name):
    model, d = tutorials.load(name)
    pred = model.run(d["x"])[0]
    assert_close(pred, d["keras_pred"], what=name)
    assert np.mean(np.argmax(pred, -1) == d["y_true"]) == pytest.approx(float(d["keras_metric"]), abs=1e-12)
    assert d["keras_metric"] > 0.85, "the model was trained: far better than chance (0.1)"


def test_files_are_both_formats_and_small():
    files = [f for f in os.listdir(tutorials.DATA) if not f.endswith(".npz")]
    assert {os.path.splitext(f)[1] for f in files} == {".keras", ".h5", ".index", ".data-00000-of-00001"}
    total = sum(os.path.getsize(os.path.join(tutorials.DATA, f)) for f in os.listdir(tutorials.DATA))
    assert total < 3 * 2 ** 20, total


def test_tf1_checkpoint_tutorial_matches_tensorflow():
    model, d = tutorials.load("digits_tf1_lstm")
    pred = model.run(d["x"])[0]
    assert_close(pred, d["keras_pred"], what="digits TF1 LSTM, every step")
    assert np.mean(np.argmax(pred[:, -1], -1) == d["y_true"]) == pytest.approx(float(d["keras_metric"]), abs=1e-12)
    assert d["keras_metric"] > 0.85, "the model was trained: far better than chance (0.1)"
    result = tutorials.digits_tf1()
    assert result.ok and result.file == "digits_tf1_lstm.ckpt"


def test_sentiment_matches_keras():
    model, d = tutorials.load("sentiment_rnn")
    pred = model.run(d["x"])[0]
    assert_close(pred, d["keras_pred"], what="sentiment")
    assert np.mean((pred[:, 0] > 0.5) == d["y_true"]) == pytest.approx(float(d["keras_metric"]), abs=1e-12)


def test_sentiment_refuses_to_stream_masked_embedding():
    model, _ = tutorials.load("sentiment_rnn")
    with pytest.raises(rnnfast.FormatError, match="mask_zero"):
        model.stream()


def test_char_lstm_matches_keras_and_steps_equal_run():
    model, d = tutorials.load("char_lstm")
    pred = model.run(d["x"])[0]
    assert_close(pred, d["keras_pred"], what="char lstm")
    assert np.mean(np.argmax(pred, -1) == d["y_true"]) == pytest.approx(float(d["keras_metric"]), abs=1e-12)
    x = d["x"][:3]
    stream = model.stream(batch=3)
    steps = np.stack([stream.step(x[:, t]) for t in range(x.shape[1])], axis=1)
    assert_close(steps, model.run(x)[0], what="step x T vs run")
    single = model.stream()
    one = np.stack([single.step(np.array([c])) for c in x[1]])
    assert_close(one[:, 0], pred[1], what="batch-1 stream vs run")


def test_char_lstm_stream_refuses_bad_ids_and_keeps_state():
    model, d = tutorials.load("char_lstm")
    stream = model.stream()
    stream.step(np.array([int(d["x"][0, 0])]))
    before = stream.state
    with pytest.raises(ValueError, match="token id"):
        stream.step(np.array([len(d["chars"])]))
    with pytest.raises(ValueError, match="token id"):
        stream.step(np.array([0.5]))
    for key, value in stream.state.items():
        np.testing.assert_array_equal(value, before[key])


def test_generation_is_text_of_the_vocabulary():
    result = tutorials.char_lstm(n_chars=30, seed=1)
    assert result.ok
    generated = [line for line in result.lines if line.startswith("  T=")]
    assert [g.split(":")[0].strip() for g in generated] == [f"T={t}" for t in tutorials.TEMPERATURES]
    model, d = tutorials.load("char_lstm")
    text = tutorials.generate(model, [str(c) for c in d["chars"]], "Beautiful is ", 40, 0.2, np.random.default_rng(0))
    assert len(text) == 40 and set(text) <= set(str(c) for c in d["chars"])


def test_sine_matches_keras():
    model, d = tutorials.load("sine_lstm")
    pred = model.run(d["x"])[0]
    assert_close(pred, d["keras_pred"], what="sine")
    mse = np.mean((pred[:, 0] - d["y_true"]) ** 2)
    assert mse == pytest.approx(float(d["keras_metric"]), rel=1e-5)
    assert mse < 0.05, "trained: near the noise floor (0.01), far below the series' variance (0.5)"


def test_sine_example_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "sine.png"
    result = tutorials.sine_lstm(png=str(png))
    assert result.ok
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_addition_decoded_with_steps_matches_keras():
    model, d = tutorials.load("addition_seq2seq")
    x = d["x"][:64]
    by_steps = tutorials.decode_steps(model, x)
    assert_close(by_steps, d["keras_pred"][:64], what="seq2seq step decoding")
    assert_close(model.run(x)[0], d["keras_pred"][:64], what="seq2seq run")
    result = tutorials.addition()
    assert result.ok and result.rnnfast_metric == pytest.approx(float(d["keras_metric"]), abs=1e-12)


def test_layer_stream_refusals():
    model, _ = tutorials.load("digits_bilstm")
    with pytest.raises(rnnfast.FormatError, match="Bidirectional reads the sequence backward"):
        model.stream()
    seq2seq, _ = tutorials.load("addition_seq2seq")
    with pytest.raises(rnnfast.FormatError, match="RepeatVector"):
        seq2seq.stream()
    with pytest.raises(ValueError, match="no layer named"):
        layer_stream(seq2seq, last="nope")


def test_stateful_chunks_match_keras():
    model, d = tutorials.load("running_mean_stateful")
    resets = set(d["reset_before"].tolist())
    stream = model.stream(batch=d["x"].shape[1])
    for k, chunk in enumerate(d["x"]):
        if k in resets:
            stream.reset()
            model.reset_states()
        assert_close(stream.feed(chunk.transpose(1, 0, 2)).transpose(1, 0, 2), d["keras_pred"][k],
                     what=f"stream chunk {k}")
        assert_close(model.run(chunk)[0], d["keras_pred"][k], what=f"run chunk {k}")
    result = tutorials.running_mean()
    assert result.ok and result.rnnfast_metric == pytest.approx(float(d["keras_metric"]), rel=1e-5)


def test_stateful_without_reset_differs():
    """The reset matters: carrying the state into the next set of sequences gives other outputs than Keras'."""
    model, d = tutorials.load("running_mean_stateful")
    first_reset = sorted(d["reset_before"].tolist())[1]
    stream = model.stream(batch=d["x"].shape[1])
    for chunk in d["x"][:first_reset + 1]:
        y = stream.feed(chunk.transpose(1, 0, 2)).transpose(1, 0, 2)
    assert np.abs(y - d["keras_pred"][first_reset]).max() > 1e-3


def test_demo_runs_and_agrees(tmp_path):
    # One thread: on a machine shared with other jobs, OpenMP barriers per step make the timings crawl.
    done = subprocess.run([sys.executable, "-m", "rnnfast", "demo"], capture_output=True, text=True,
                          env=package_env(OMP_NUM_THREADS="1"), cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all results agree" in done.stdout
    for example in ("1 digits SimpleRNN", "3 char LSTM text", "5 seq2seq addition", "7 stateful chunks"):
        assert example in done.stdout
    digits_row = next(line for line in done.stdout.splitlines() if line.startswith("1 digits SimpleRNN"))
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        assert digits_row.endswith("n/a")
    else:
        # the ONNX export of a plain SimpleRNN model is timed with onnxruntime, and the ratio is the two times'
        rnnfast_ms, ort_ms, speedup = digits_row.split()[-3:]
        assert rnnfast_ms.endswith("ms") and ort_ms.endswith("ms") and speedup.endswith("x"), digits_row
        r, o, ratio = float(rnnfast_ms[:-2]), float(ort_ms[:-2]), float(speedup[:-1])
        half = 0.005  # each figure is rounded to 2 decimals
        assert (o - half) / (r + half) - half <= ratio <= (o + half) / (r - half) + half, digits_row


def test_example_script_runs(tmp_path):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "05_seq2seq_addition.py")],
                          capture_output=True, text=True, env=package_env(), cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "exact answers: Keras" in done.stdout and "agrees" in done.stdout
