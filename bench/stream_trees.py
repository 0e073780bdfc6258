"""Model.stream().step of two rnnfast source trees (each built in place) in one interleaved run: a worker process
per tree, the parent asking each in turn for a timed block of steps, so both see the same machine load. For a
change to the stream code: its step time before and after, as a ratio from the same rounds.

Cases: the stream workload's cells (bench/workloads.py) as a chain of recurrent layers alone (the direct C step)
and as an ONNX model with h0 -> Yh0 state inputs and outputs (the direct step of a looped stack); the PyTorch
fixture emb_lstm_fc (token ids -> embedding -> LSTM -> Linear: the step graph's state loop), the TF 1.x fixture
lstm2_dense (two LSTM layers and a dense head) and the VAD fixture (a whole graph's state loop). Both trees' first steps are checked to give the same bits.

--callgrind counts instead the instructions per step of each case in each tree under valgrind's callgrind (exact,
so usable on a busy machine; collected only inside the exec that runs the steps): the arithmetic is the same in
both trees, so the difference is what the Python layer around the C step costs.

    python bench/stream_trees.py OLD_TREE NEW_TREE [--rounds 30] [--cells lstm,gru,rnn,lstm2] [--threads 1]
    python bench/stream_trees.py OLD_TREE NEW_TREE --callgrind [--cells ...]"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

WORKER = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
sys.path.insert(1, sys.argv[2])
import warnings
warnings.simplefilter("ignore")
import rnnfast
from rnnfast.exporters.rnnf import to_bytes
from rnnfast.pipeline import Pipeline, RecurrentStage
from workloads import make_case, onnx_model

threads = int(sys.argv[3])
data = sys.argv[4]
streams = {}

def make(name):
    kind, _, cell = name.partition(":")
    if kind == "chain":
        case = make_case("stream", cell)
        model = rnnfast.load(to_bytes(Pipeline([RecurrentStage(case.layers)])))  # a .rnnf 1 chain, in either tree
        return model.stream(batch=case.x.shape[1], n_threads=threads), case.x[0]
    if kind == "looped":
        case = make_case("stream", cell)
        model = rnnfast.load(onnx_model(case, with_states=True))
        pairs = {i: "Y" + i for i in model.input_names[1:]}
        return model.stream(batch=case.x.shape[1], n_threads=threads, states=pairs), case.x[0][None]
    if kind == "torch":
        model = rnnfast.load(data + "/torch/emb_lstm_fc.pt", embedding="emb", rnn="lstm", head="fc",
                             batch_first=True)
        return model.stream(batch=1, n_threads=threads), np.array([3])
    if kind == "tf1":
        model = rnnfast.load(data + "/tf1/lstm2_dense/model.ckpt")
        return model.stream(batch=3, n_threads=threads), np.load(data + "/tf1/lstm2_dense/expected.npz")["x"][:, 0]
    if kind == "vad":
        rec = np.load(data + "/onnx/graph/vad.npz")
        model = rnnfast.load(data + "/onnx/graph/vad.ts.onnx")
        return model.stream(batch=1, n_threads=threads), {"input": rec["in:input"], "sr": rec["in:sr"]}
    raise ValueError(name)

for line in sys.stdin:
    cmd = json.loads(line)
    name = cmd["case"]
    if name not in streams:
        streams[name] = make(name)
    stream, x = streams[name]
    if cmd["op"] == "check":
        stream.reset()
        ys = [np.asarray(stream.step(x)).tobytes().hex() for _ in range(4)]
        print(json.dumps(ys), flush=True)
        continue
    step, n = stream.step, cmd["n"]
    if cmd["op"] == "exec":  # what callgrind collects (--toggle-collect=builtin_exec), dumped as it returns
        exec("for _ in range(n):\n    step(x)", {"step": step, "x": x, "n": n})
        import glob
        dumps = glob.glob(cmd["dumps"] + ".*")  # other exec calls (dataclasses, lazy imports) dump too: the newest
        print(json.dumps(max(dumps, key=lambda f: int(f.rsplit(".", 1)[1]))), flush=True)
        continue
    t0 = time.perf_counter_ns()
    for _ in range(n):
        step(x)
    print(json.dumps((time.perf_counter_ns() - t0) / n), flush=True)
"""


class Worker:
    def __init__(self, tree, threads, data, prefix=()):
        self.p = subprocess.Popen(list(prefix) + [sys.executable, "-c", WORKER, tree, HERE, str(threads), data],
                                  cwd="/", stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, **cmd):
        self.p.stdin.write(json.dumps(cmd) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("a worker stopped (its error is above)")
        return json.loads(line)

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def instructions(trees, cases, threads, data, n=200) -> None:
    """Instructions per step of each case in each tree: one callgrind profile per exec of n steps."""
    counts = {}
    for label, tree in trees.items():
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "cg.out")
            w = Worker(tree, threads, data, ["valgrind", "--tool=callgrind", "--collect-atstart=no",
                                             "--toggle-collect=builtin_exec", "--dump-after=builtin_exec",
                                             f"--callgrind-out-file={out}", "--quiet"])
            files = []
            for case in cases:
                w.ask(op="exec", case=case, n=1, dumps=out)  # builds the stream and warms it
                files.append(w.ask(op="exec", case=case, n=n, dumps=out))
            w.close()
            totals = []
            for f in files:
                with open(f) as fh:
                    totals.append(next(int(l.split()[1]) for l in fh if l.startswith(("totals:", "summary:"))))
            counts[label] = [t / n for t in totals]
    print("| case | old tree, instructions/step | new tree | new - old | new / old |\n|---|---|---|---|---|")
    for k, case in enumerate(cases):
        old, new = counts["old"][k], counts["new"][k]
        print(f"| {case.rstrip(':')} | {old:.0f} | {new:.0f} | {new - old:+.0f} | {new / old:.4f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--cells", default="lstm,gru,rnn,lstm2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--callgrind", action="store_true")
    args = ap.parse_args(argv)
    data = os.path.join(os.path.dirname(HERE), "tests", "data")
    cases = [f"{k}:{c}" for c in args.cells.split(",") for k in ("chain", "looped")] + ["torch:", "tf1:", "vad:"]
    if args.callgrind:
        instructions({"old": os.path.abspath(args.old), "new": os.path.abspath(args.new)}, cases, args.threads, data)
        return 0
    trees = {"old": Worker(os.path.abspath(args.old), args.threads, data),
             "new": Worker(os.path.abspath(args.new), args.threads, data)}
    print(f"| case | old tree | new tree | new / old |\n|---|---|---|---|")
    try:
        for case in cases:
            same = trees["old"].ask(op="check", case=case) == trees["new"].ask(op="check", case=case)
            per = trees["new"].ask(op="time", case=case, n=50)
            n = max(20, int(20e6 / max(per, 1.0)))  # ~20 ms blocks
            times = {k: [] for k in trees}
            for r in range(args.rounds):
                order = ("old", "new") if r % 2 == 0 else ("new", "old")
                for k in order:
                    times[k].append(trees[k].ask(op="time", case=case, n=n))
            med = {k: float(np.median(v)) for k, v in times.items()}
            print(f"| {case.rstrip(':')} | {med['old'] / 1e3:.2f} us | {med['new'] / 1e3:.2f} us | "
                  f"{med['new'] / med['old']:.3f}{'' if same else ' (outputs differ!)'} |", flush=True)
    finally:
        for w in trees.values():
            w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
