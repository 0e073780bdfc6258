"""Code size and step time of a whole-graph C export (rnnfast/exporters/c_graph.py) beside onnxruntime.

    python bench/export_c_graph.py [--model tests/data/onnx/graph/vad.ts.onnx] [--dim batch=1 --dim chunk=512]
                                   [--rounds 11] [--steps 300] [--isa "-mavx2 -mfma -mf16c"]

Exports the model, compiles it with gcc -std=c99 -O2 and the given target flags (the kernel table follows them;
"" is the portable reference), and reports `size` (text + data) of the generated model object and of the runtime's
objects, the generated sources' line counts, and, in interleaved rounds, the median time of one `<prefix>_step`
(measured inside the C driver, clock_gettime around each call) and of onnxruntime's run of the same chunk with the
state fed as an input (1 intra-op thread, and its default), and of rnnfast's own Stream.step from Python (the
same executor, 1 thread). Prints the median over the rounds of each.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import rnnfast  # noqa: E402
from c_graph_driver import compile_runtime, link_driver, write_inputs  # noqa: E402
from rnnfast.exporters.c_graph import export_c_graph  # noqa: E402


def sizes(objs):
    out = subprocess.run(["size", *map(str, objs)], capture_output=True, text=True, check=True).stdout.splitlines()
    text = data = 0
    for line in out[1:]:
        f = line.split()
        text, data = text + int(f[0]), data + int(f[1])
    return text, data


def ort_median(sess, feeds, n):
    times = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        sess.run(None, feeds)
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "tests" / "data" / "onnx" / "graph" / "vad.ts.onnx"))
    ap.add_argument("--dim", action="append", default=None)
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--isa", default="-mavx2 -mfma -mf16c")
    ap.add_argument("--feed", action="append", default=["sr=16000"], help="an int64 scalar input's value")
    args = ap.parse_args()
    import onnxruntime as ort

    dims = dict(d.split("=") for d in (args.dim or ["batch=1", "chunk=512"]))
    isa = tuple(args.isa.split())
    work = Path(tempfile.mkdtemp(prefix="export_c_graph_"))
    e = export_c_graph(rnnfast.load(args.model), work, prefix="m", dims={k: int(v) for k, v in dims.items()},
                       where=os.path.basename(args.model))
    objs = compile_runtime(e, work, isa)
    exe = link_driver(e, "m", work, objs, isa)
    model_obj = next(work.glob("m*.o"))
    t_model, d_model = sizes([model_obj])
    t_rt, d_rt = sizes(objs)
    lines = {p.name: sum(1 for _ in open(p)) for p in (e.source, e.header)}
    rt_lines = sum(sum(1 for _ in open(p)) for p in (work / "rnnf_runtime" / "src").rglob("*.[ch]"))
    print(f"model object (desc + weights): text {t_model} + data {d_model} bytes; runtime objects ({len(objs)}): "
          f"text {t_rt} + data {d_rt} bytes; generated lines {lines}; runtime source lines {rt_lines}")
    print(f"state struct pool: {e.mem_bytes} bytes; constants in the description: {e.weight_bytes} bytes")

    rng = np.random.default_rng(0)
    ints = {k: int(v) for k, v in (f.split("=") for f in args.feed)}
    step_feeds = {}
    for n, (shape, dt) in e.inputs.items():
        if n in e.states:
            continue
        step_feeds[n] = np.array(ints[n], dt) if n in ints else (rng.standard_normal(shape) * 0.3).astype(dt)
    write_inputs(work, step_feeds, chunk=0)
    feeds = dict(step_feeds)
    for n in e.states:
        feeds[n] = np.zeros(e.inputs[n][0], e.inputs[n][1])
    sessions = {}
    for threads in (1, 0):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        sessions[threads] = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
        ort_median(sessions[threads], feeds, 20)
    model = rnnfast.load(args.model)
    stream = model.stream(batch=int(dims.get("batch", 1)), n_threads=1, states=e.states)
    stream_feeds = {n: step_feeds[n] for n in stream.step_inputs}

    def stream_median(n):
        times = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            stream.step(stream_feeds)
            times.append(time.perf_counter_ns() - t0)
        return statistics.median(times)

    c_ns, o1_ns, o0_ns, s_ns = [], [], [], []
    for _ in range(args.rounds):
        r = subprocess.run([str(exe), str(work), "time", str(args.steps)], capture_output=True, text=True, check=True)
        c_ns.append(float(r.stdout.strip()))
        o1_ns.append(ort_median(sessions[1], feeds, args.steps))
        o0_ns.append(ort_median(sessions[0], feeds, args.steps))
        s_ns.append(stream_median(args.steps))
    med = statistics.median
    print(f"step ({args.rounds} interleaved rounds x {args.steps} calls, median of per-round medians): exported C "
          f"{med(c_ns) / 1e3:.1f} us; onnxruntime run {med(o1_ns) / 1e3:.1f} us (1 thread), "
          f"{med(o0_ns) / 1e3:.1f} us (default threads); rnnfast Stream.step {med(s_ns) / 1e3:.1f} us; "
          f"per round C: "
          + " ".join(f"{v / 1e3:.0f}" for v in c_ns))


if __name__ == "__main__":
    main()
