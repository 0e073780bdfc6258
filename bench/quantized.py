"""int8 and float16 weight storage beside float32: accuracy on the tutorial models, error on random models, speed
and size on the PERFORMANCE.md workloads.

    python bench/quantized.py [--seconds 0.5] [--threads 1] [--skip-speed]

Accuracy: each tutorial model of rnnfast/examples_data is run with float32, int8 and float16 recurrent weights
(Embedding and Dense stay float32) and scored with the tutorial's own metric against the true labels.
Random models: seeded layers with weights uniform in +-1/sqrt(H) (as the frameworks initialise them), T = 100,
batch 4, inputs N(0, 1); the max abs output difference from the float32 model is printed beside the first-order
bound of one step: int8 moves each weight by at most scale/2 = max|row|/254, so a pre-activation moves by at most
sum_k |x_k| * max|row|/254 (float16: |w| * 2**-11 per weight); the recurrence does not amplify it for contracting
(trained or initialised) weights, which the printed ratio shows.
Speed: float32, int8 and float16 models of the same weights, timed in interleaved blocks (bench/timing.py),
median per call, and the size of each .rnnf file.
"""
from __future__ import annotations

import argparse
import io
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from timing import fmt_time, time_block  # noqa: E402

from rnnfast import tutorials  # noqa: E402
from rnnfast.engine import CompiledStack  # noqa: E402
from rnnfast.exporters.rnnf import save_rnnf  # noqa: E402
from rnnfast.layers import RecurrentLayer  # noqa: E402
from rnnfast.pipeline import Pipeline, RecurrentStage  # noqa: E402

DTYPES = ("float32", "int8", "float16")


def quantized_model(name, dtype):
    """A tutorial model with its recurrent layers stored in dtype. Pipelines go through Model.quantize; the two
    models that are no pipeline (RepeatVector, stateful) get their Keras layers' RecurrentLayers swapped."""
    model, data = tutorials.load(name)
    if dtype == "float32":
        return model, data
    try:
        return model.quantize(dtype), data
    except Exception:
        for _, obj in model.graph.graph.order:
            if isinstance(getattr(obj, "layer", None), RecurrentLayer):
                obj.layer = obj.layer.with_weight_dtype(dtype)
        return model, data


def tutorial_metrics(name, model, d):
    if name.startswith("digits"):
        return "accuracy", float(np.mean(np.argmax(model.run(d["x"])[0], -1) == d["y_true"]))
    if name == "sentiment_rnn":
        return "accuracy", float(np.mean((model.run(d["x"])[0][:, 0] > 0.5) == d["y_true"]))
    if name == "char_lstm":
        return "next-char accuracy", float(np.mean(np.argmax(model.run(d["x"])[0], -1) == d["y_true"]))
    if name == "addition_seq2seq":
        pred = model.run(d["x"])[0]
        return "exact answers", float(np.mean(np.all(np.argmax(pred, -1) == d["y_true"], axis=1)))
    if name == "sine_lstm":
        return "MSE", float(np.mean((model.run(d["x"])[0][:, 0] - d["y_true"]) ** 2))
    if name == "running_mean_stateful":
        outs = []
        for k, chunk in enumerate(d["x"]):
            if k in set(d["reset_before"].tolist()):
                model.reset_states()
            outs.append(model.run(chunk)[0])
        return "MSE", float(np.mean((np.stack(outs) - d["y_true"]) ** 2))
    raise KeyError(name)


TUTORIALS = ("digits_rnn", "digits_gru", "digits_bilstm", "digits_deep_bilstm", "sentiment_rnn", "char_lstm",
             "addition_seq2seq", "sine_lstm", "running_mean_stateful")


def accuracy_table():
    rows = []
    for name in TUTORIALS:
        vals = {}
        for dt in DTYPES:
            model, d = quantized_model(name, dt)
            metric, vals[dt] = tutorial_metrics(name, model, d)
        rows.append((name, metric, vals))
    return rows


def random_layer(rng, cell, hidden, inp, direction="forward"):
    G = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    D = 2 if direction == "bidirectional" else 1
    s = 1 / np.sqrt(hidden)
    u = lambda *shape: rng.uniform(-s, s, shape).astype(np.float32)  # noqa: E731
    return RecurrentLayer(cell=cell, direction=direction, hidden_size=hidden, input_size=inp,
                          w_ih=u(D, G * hidden, inp), w_hh=u(D, G * hidden, hidden), b_ih=u(D, G * hidden),
                          b_hh=u(D, G * hidden), linear_before_reset=cell == "gru")


def random_error_table(seed=0):
    rows = []
    for cell in ("rnn", "gru", "lstm"):
        for hidden in (16, 64, 256):
            rng = np.random.default_rng(seed + hidden)
            layer = random_layer(rng, cell, hidden, 64)
            x = rng.standard_normal((100, 4, 64)).astype(np.float32)
            y32 = CompiledStack([layer]).run(x)[0]
            # first-order bound of one step's pre-activation change, inputs N(0,1) and h in (-1, 1)
            row_max = np.abs(np.concatenate([layer.w_ih, layer.w_hh], axis=2)).max(axis=2)
            sum_in = np.abs(x).sum(axis=2).max() + hidden
            errs = {}
            for dt in ("int8", "float16"):
                y = CompiledStack([layer.with_weight_dtype(dt)]).run(x)[0]
                errs[dt] = float(np.abs(y - y32).max())
            bound8 = float(row_max.max() / 254 * sum_in)
            bound16 = float(row_max.max() * 2.0 ** -11 * sum_in)
            rows.append((cell, hidden, errs["int8"], bound8, errs["float16"], bound16))
    return rows


SPEED = (("lat-h256 lstm", "lstm", 100, 1, 64, 256), ("lat-h256 gru", "gru", 100, 1, 64, 256),
         ("lat-h512 lstm", "lstm", 100, 1, 64, 512), ("thru lstm", "lstm", 100, 64, 128, 256),
         ("stream lstm", "lstm", 1, 1, 64, 256), ("tiny lstm", "lstm", 50, 1, 8, 32))


def speed_table(seconds, threads):
    rows = []
    for label, cell, T, B, I, H in SPEED:
        rng = np.random.default_rng(1)
        layer = random_layer(rng, cell, H, I)
        x = rng.standard_normal((T, B, I)).astype(np.float32)
        runners, sizes = {}, {}
        for dt in DTYPES:
            l = layer.with_weight_dtype(dt)
            stack = CompiledStack([l])
            if T == 1:
                stream, out = stack.stream(B), np.empty((B, H), np.float32)
                runners[dt] = lambda s=stream, o=out: s.step(x[0], o, threads)
            else:
                runners[dt] = lambda s=stack: s.run(x, n_threads=threads)
            buf = io.BytesIO()
            save_rnnf(Pipeline([RecurrentStage([l])]), buf)
            sizes[dt] = len(buf.getvalue())
        times = {dt: [] for dt in DTYPES}
        for _ in range(3):  # interleaved blocks: the machine's drift hits every dtype alike
            for dt in DTYPES:
                times[dt] += time_block(runners[dt], seconds / 3)
        rows.append((label, {dt: float(np.median(times[dt])) for dt in DTYPES}, sizes))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args(argv)
    print("## Tutorial models (recurrent weights quantized; Embedding/Dense float32)\n")
    print("| model | metric | float32 | int8 | float16 |\n|---|---|---|---|---|")
    for name, metric, v in accuracy_table():
        print(f"| {name} | {metric} | " + " | ".join(f"{v[dt]:.4g}" for dt in DTYPES) + " |")
    print("\n## Random models, T=100, batch 4, input 64: max |y - y_float32| and the one-step bound\n")
    print("| cell | hidden | int8 error | int8 one-step bound | float16 error | float16 one-step bound |")
    print("|---|---|---|---|---|---|")
    for cell, h, e8, b8, e16, b16 in random_error_table():
        print(f"| {cell} | {h} | {e8:.2e} | {b8:.2e} | {e16:.2e} | {b16:.2e} |")
    if args.skip_speed:
        return
    print(f"\n## Speed (median per call, {args.threads} thread(s)) and .rnnf size\n")
    print("| workload | float32 | int8 | float16 | int8 speed-up | f16 speed-up | size f32 / int8 / f16 |")
    print("|---|---|---|---|---|---|---|")
    for label, t, s in speed_table(args.seconds, args.threads):
        print(f"| {label} | {fmt_time(t['float32'])} | {fmt_time(t['int8'])} | {fmt_time(t['float16'])} | "
              f"{t['float32'] / t['int8']:.2f}x | {t['float32'] / t['float16']:.2f}x | "
              f"{s['float32'] / 1024:.0f} / {s['int8'] / 1024:.0f} / {s['float16'] / 1024:.0f} KiB |")


if __name__ == "__main__":
    main()
