"""The seed tutorials' trained Keras models and one TensorFlow 1.x checkpoint (rnnfast/examples_data/, made by
tools/train_tutorials.py), run by rnnfast without TensorFlow: each function loads one example, recomputes the
framework's metric from rnnfast's outputs and returns a Result with the agreement figures and a few lines that show
the result to a person. The examples/ scripts print them; `rnnfast demo` tabulates them."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "examples_data")
# rnnfast against Keras' recorded outputs: float32 rounding in a different order over a few dozen steps.
MAX_DIFF = 1e-4
TEMPERATURES = (0.2, 0.5, 1.0, 1.2)


@dataclass
class Result:
    example: str
    file: str
    metric: str
    keras_metric: float
    rnnfast_metric: float
    max_diff: float
    seconds: float  # rnnfast on the whole test set (median of a few runs)
    lines: list = field(default_factory=list)
    ort_seconds: Optional[float] = None
    framework: str = "Keras"  # who recorded keras_metric and the predictions

    @property
    def ok(self) -> bool:
        return self.max_diff <= MAX_DIFF and abs(self.rnnfast_metric - self.keras_metric) <= 1e-5 * max(
            1.0, abs(self.keras_metric))

    def show(self, out=print) -> None:
        for line in self.lines:
            out(line)
        out(f"{self.metric}: {self.framework} {fmt_metric(self.keras_metric)}, rnnfast "
            f"{fmt_metric(self.rnnfast_metric)}; max |rnnfast - {self.framework}| "
            f"= {self.max_diff:.2e} ({'agrees' if self.ok else 'DISAGREES'})")


def fmt_metric(value: float) -> str:
    return f"{value:.4f}" if value >= 0.01 else f"{value:.2e}"


def path(name: str) -> str:
    """The model file, or a checkpoint's prefix (<name>.ckpt, beside <name>.ckpt.index)."""
    for ext in (".keras", ".h5"):
        p = os.path.join(DATA, name + ext)
        if os.path.exists(p):
            return p
    p = os.path.join(DATA, name + ".ckpt")
    if os.path.exists(p + ".index"):
        return p
    raise FileNotFoundError(f"no tutorial model {name!r} in {DATA}")


def load(name: str):
    """(rnnfast Model, the recorded arrays) of one tutorial model; a recorded `load_options` (JSON) holds what
    the file does not store (a checkpoint's head activation)."""
    import json

    import rnnfast

    p = path(name)
    with np.load(os.path.join(DATA, name + ".npz")) as z:
        data = {k: z[k] for k in z}
    options = json.loads(str(data.pop("load_options"))) if "load_options" in data else {}
    return rnnfast.load(p, **options), data


def timed(fn, repeat=5):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def max_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def _classifier(example, name, describe, last_step=False):
    """last_step: the model gives a prediction at every step (dense on each output) and the class is read from
    the last one."""
    model, d = load(name)
    pred = model.run(d["x"])[0]
    final = pred[:, -1] if last_step else pred
    acc = float(np.mean(np.argmax(final, -1) == d["y_true"]))
    lines = [describe, f"test set: {len(d['x'])} images; first ten predicted {np.argmax(final[:10], -1).tolist()}, "
                       f"true {d['y_true'][:10].tolist()}"]
    return Result(example, os.path.basename(path(name)), "accuracy", float(d["keras_metric"]), acc,
                  max_diff(pred, d["keras_pred"]), timed(lambda: model.run(d["x"])), lines)


def digits_rnn() -> Result:
    """1: 8x8 digit images read row by row (8 steps of 8 pixels) by SimpleRNN(16, relu) + Dense softmax."""
    return _classifier("1 digits SimpleRNN", "digits_rnn", "SimpleRNN(16, relu) + Dense(10, softmax) over image rows")


def digits_variants() -> list:
    """6: the same task with a Bidirectional LSTM, two stacked Bidirectional LSTMs, and a GRU."""
    return [_classifier("6 digits BiLSTM", "digits_bilstm", "Bidirectional(LSTM(16)) + Dense softmax"),
            _classifier("6 digits deep BiLSTM", "digits_deep_bilstm",
                        "Bidirectional(LSTM(16), sequences) -> Bidirectional(LSTM(16)) + Dense softmax"),
            _classifier("6 digits GRU", "digits_gru", "GRU(24) + Dense softmax")]


def digits_tf1() -> Result:
    """8: the MNIST-rows LSTM of the TensorFlow 1.x tutorials (BasicLSTMCell + dynamic_rnn + tf.layers.dense,
    saved by tf.train.Saver with its Adam slots) on the same digits, read from the checkpoint without TensorFlow;
    the dense head runs at every step and the class is read from the last one."""
    result = _classifier("8 digits TF1 LSTM", "digits_tf1_lstm", "TF 1.x checkpoint: BasicLSTMCell(32) + dense(10) "
                         "softmax on the last output", last_step=True)
    result.framework = "TF 1.x"
    return result


def sentiment() -> Result:
    """2: synthetic reviews (template grammar, see tools/train_tutorials.py), Embedding(mask_zero) + SimpleRNN +
    Dense sigmoid; the reviews are zero-padded at the end and Keras' mask skips the padding."""
    model, d = load("sentiment_rnn")
    pred = model.run(d["x"])[0]
    acc = float(np.mean((pred[:, 0] > 0.5) == d["y_true"]))
    words = d["words"]
    lines = ["Embedding(mask_zero) + SimpleRNN(32) + Dense(1, sigmoid) on synthetic reviews"]
    for i in range(3):
        text = " ".join(words[t] for t in d["x"][i] if t)
        lines.append(f"  {pred[i, 0]:.2f} {'positive' if pred[i, 0] > 0.5 else 'negative'}: {text}")
    return Result("2 sentiment SimpleRNN", os.path.basename(path("sentiment_rnn")), "accuracy",
                  float(d["keras_metric"]), acc, max_diff(pred, d["keras_pred"]), timed(lambda: model.run(d["x"])),
                  lines)


def sample(probs, temperature, rng) -> int:
    logp = np.log(np.maximum(np.asarray(probs, np.float64), 1e-12)) / temperature
    p = np.exp(logp - logp.max())
    return int(rng.choice(len(p), p=p / p.sum()))


def generate(model, chars, seed_text, n, temperature, rng) -> str:
    """Feed the seed one character per stream.step, then sample n characters, each fed back in."""
    index = {c: i for i, c in enumerate(chars)}
    stream = model.stream(batch=1)
    for c in seed_text:
        probs = stream.step(np.array([index[c]]))
    out = []
    for _ in range(n):
        k = sample(probs[0], temperature, rng)
        out.append(chars[k])
        probs = stream.step(np.array([k]))
    return "".join(out)


def char_lstm(n_chars=80, seed=0) -> Result:
    """3: a character-level LSTM trained on the Zen of Python generates text, one character per step."""
    model, d = load("char_lstm")
    pred = model.run(d["x"])[0]
    acc = float(np.mean(np.argmax(pred, -1) == d["y_true"]))
    chars = [str(c) for c in d["chars"]]
    seed_text = "".join(chars[i] for i in d["x"][0])
    rng = np.random.default_rng(seed)
    lines = ["Embedding -> LSTM(128) -> Dense softmax, next character of the Zen of Python",
             f"seed: {seed_text!r}"]
    for t in TEMPERATURES:
        lines.append(f"  T={t}: {generate(model, chars, seed_text, n_chars, t, rng)!r}")
    return Result("3 char LSTM text", os.path.basename(path("char_lstm")), "next-char accuracy",
                  float(d["keras_metric"]), acc, max_diff(pred, d["keras_pred"]), timed(lambda: model.run(d["x"])),
                  lines)


def sine_lstm(png: Optional[str] = None) -> Result:
    """4: LSTM(32) -> Dense: the next value of a noisy sine from the 20 before it; a PNG plot when asked and
    matplotlib is there."""
    model, d = load("sine_lstm")
    pred = model.run(d["x"])[0]
    mse = float(np.mean((pred[:, 0] - d["y_true"]) ** 2))
    lines = ["LSTM(32) -> Dense(1), next value of a noisy sine (noise sd 0.1, so the best MSE is about 0.01)"]
    if png:
        lines.append(plot_series(png, d["y_true"], pred[:, 0]))
    return Result("4 sine LSTM", os.path.basename(path("sine_lstm")), "MSE", float(d["keras_metric"]), mse,
                  max_diff(pred, d["keras_pred"]), timed(lambda: model.run(d["x"])), lines)


def plot_series(png, truth, pred) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot"
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.plot(truth, label="truth (noisy sine)", lw=1)
    ax.plot(pred, label="rnnfast prediction", lw=1.5)
    ax.set_xlabel("step")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    plt.close(fig)
    return f"plot written to {png}"


def decode_steps(model, x):
    """Greedy seq2seq decoding with streams: the encoder reads the question one step at a time, the decoder is
    stepped once per answer character with the encoder's final output (what RepeatVector feeds it)."""
    from .importers.keras.stream import layer_stream

    batch, t_in = x.shape[0], x.shape[1]
    t_out = next(obj.n for _, obj in model.graph.graph.order if obj.cls == "RepeatVector")
    encoder = layer_stream(model, last="encoder", batch=batch)
    for t in range(t_in):
        v = encoder.step(x[:, t])
    decoder = layer_stream(model, first="decoder", batch=batch)
    return np.stack([decoder.step(v) for _ in range(t_out)], axis=1)


def addition() -> Result:
    """5: "a+b" as text -> the sum as text, LSTM encoder / RepeatVector / LSTM decoder, decoded with step."""
    model, d = load("addition_seq2seq")
    x, y = d["x"], d["y_true"]
    pred = decode_steps(model, x)
    exact = float(np.mean(np.all(np.argmax(pred, -1) == y, axis=1)))
    chars = [str(c) for c in d["chars"]]
    text = lambda ids: "".join(chars[i] for i in ids).strip()
    lines = ["LSTM(96) encoder -> RepeatVector(3) -> LSTM(96) decoder -> Dense softmax, decoded step by step"]
    for i in range(4):
        q = text(np.argmax(x[i], -1))
        a = text(np.argmax(pred[i], -1))
        lines.append(f"  {q} = {a}  ({'right' if a == text(y[i]) else 'wrong, ' + text(y[i])})")
    diff = max(max_diff(pred, d["keras_pred"]), max_diff(model.run(x)[0], d["keras_pred"]))
    return Result("5 seq2seq addition", os.path.basename(path("addition_seq2seq")), "exact answers",
                  float(d["keras_metric"]), exact, diff, timed(lambda: model.run(x)), lines)


def running_mean() -> Result:
    """7: a stateful LSTM fed chunk by chunk, reset between sequences: with a stream (feed / reset) and with
    Model.run + reset_states, both against Keras' stateful predict."""
    model, d = load("running_mean_stateful")
    xs, resets = d["x"], set(d["reset_before"].tolist())
    stream = model.stream(batch=xs.shape[1])
    by_stream, by_run = [], []
    for k, chunk in enumerate(xs):
        if k in resets:
            stream.reset()
            model.reset_states()
        by_stream.append(stream.feed(chunk.transpose(1, 0, 2)).transpose(1, 0, 2))
        by_run.append(model.run(chunk)[0])
    by_stream, by_run = np.stack(by_stream), np.stack(by_run)
    mse = float(np.mean((by_stream - d["y_true"]) ** 2))
    n_chunks = len(xs) // len(resets)
    lines = [f"stateful LSTM(24) -> Dense: the mean of the inputs so far; {len(resets)} sets of {xs.shape[1]} "
             f"sequences, each fed in {n_chunks} chunks of {xs.shape[2]} steps, reset between sets",
             f"  row 0, end of each chunk: rnnfast {_values(by_stream[:n_chunks, 0, -1, 0])}, "
             f"truth {_values(d['y_true'][:n_chunks, 0, -1, 0])}"]

    def whole():
        model.reset_states()
        for chunk in xs:
            model.run(chunk)

    return Result("7 stateful chunks", os.path.basename(path("running_mean_stateful")), "MSE",
                  float(d["keras_metric"]), mse, max(max_diff(by_stream, d["keras_pred"]),
                                                     max_diff(by_run, d["keras_pred"])), timed(whole), lines)


def _values(a) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in a) + "]"


def all_results() -> list:
    out = [digits_rnn(), sentiment(), char_lstm(), sine_lstm(), addition()]
    out += digits_variants()
    out.append(running_mean())
    out.append(digits_tf1())
    return out
