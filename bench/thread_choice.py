"""Thread counts on a busy machine: one whole-model ONNX fixture run by rnnfast (default threads, 1, 2) and
onnxruntime (1, 2 intra-op threads), interleaved in one process, median and best of the rounds.

    python bench/thread_choice.py [MODEL.onnx] [--rounds 31] [--busy N]

--busy N starts N pure-Python spin loops beside the timing (bench/busy.py: ended with the script, even on Ctrl-C),
so the effect of contention can be seen on a quiet machine too. rnnfast's executor times its runs with one thread
and with the count asked and keeps the faster (src_c/graph/adapt.c); before that, 2 threads beside busy processes
collapsed to 10-100x their quiet time.
Outputs are checked against onnxruntime before anything is timed."""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from busy import busy_processes  # noqa: E402

DEFAULT_MODEL = os.path.join(HERE, "..", "tests", "data", "onnx", "graph", "crnn.dynamo.onnx")


def main(argv=None) -> int:
    import onnxruntime as ort

    import rnnfast

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL)
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--busy", type=int, default=0, help="busy processes beside the timing")
    args = parser.parse_args(argv)

    probe = rnnfast.load(args.model)
    rng = np.random.default_rng(0)
    def size(d):  # batch axes 2, other dynamic axes (time) 64
        return d if isinstance(d, int) else 2 if "batch" in str(d) else 64

    feeds = {i.name: rng.standard_normal([size(d) for d in i.shape]).astype(np.float32) for i in probe.inputs}
    runs = {}
    for nt in (None, 1, 2):
        model = rnnfast.load(args.model, n_threads=nt)
        runs[f"rnnfast threads={nt or 'default'}"] = (lambda m=model: m.run(feeds))
    for nt in (1, 2):
        options = ort.SessionOptions()
        options.intra_op_num_threads = nt
        session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
        runs[f"onnxruntime threads={nt}"] = (lambda s=session: s.run(None, feeds))
    theirs = runs["onnxruntime threads=1"]()
    for name, run in runs.items():
        gap = max(float(np.abs(a - b).max()) for a, b in zip(run(), theirs))
        assert gap < 1e-4, f"{name} differs from onnxruntime by {gap}"
    with busy_processes(args.busy):
        times = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, run in runs.items():
                t = time.perf_counter()
                for _ in range(10):
                    run()
                times[name].append((time.perf_counter() - t) / 10 * 1e6)
    print(f"{os.path.basename(args.model)}, {args.rounds} interleaved rounds of 10 calls, {args.busy} busy "
          f"processes, load average {os.getloadavg()[0]:.1f}")
    for name, v in times.items():
        print(f"  {name:26s} median {np.median(v):9.1f} us   best {min(v):9.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
