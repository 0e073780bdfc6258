"""Per-call overhead of the engine's Python entry points: instructions per call under callgrind (exact, so usable on
this noisy machine) and CPU time per call (time.thread_time, the calling thread only).

    python bench/overhead.py               # both tables
    python bench/overhead.py --no-callgrind
    python bench/overhead.py --only stack  # cases whose name contains 'stack'

Cases: CompiledStack.run (seq_len 1 with the states in and out, and seq_len 50), CStream.step, Model.stream().step,
rnnfast.InferenceSession.run on a one-LSTM-node ONNX model (seq_len 1 with the states fed, seq_len 50), and on the
graphs bench/workloads.py gives onnxruntime (recurrent nodes joined by Transpose + Reshape): a bidirectional LSTM and
two stacked LSTMs at seq_len 1 with every state fed in and out, one LSTM at seq_len 50. Each at hidden 32 (input 8,
the tiny workload) and hidden 256 (input 64, the stream workload), batch 1, 1 thread. Then bench/workloads.py's
rnnfast_runner (the public API) and engine_runner (CompiledStack / CStream) side by side for a few workload cells:
their difference is what the Python layer costs report.py's rnnfast column.

Instruction counts: the script runs itself under `valgrind --tool=callgrind`, collecting only inside `exec`, through
which each case's loop of calls is run; --dump-after=builtin_exec writes one profile per loop and the count per call
is its total over the number of calls. Arithmetic is included: compare a case with its CStream.step twin (same
arithmetic, one C call) to see the overhead.
"""
from __future__ import annotations

import argparse
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the source tree, when not installed
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/, for workloads.py

SIZES = {32: 8, 256: 64}  # hidden: input
WORKLOAD_CELLS = (("stream", "lstm"), ("stream", "lstm2"), ("stream", "bilstm"), ("tiny", "lstm"), ("tiny", "rnn"))
SEQ = 50


def _layer(H, I, seed=0):
    from rnnfast.layers import RecurrentLayer

    rng = np.random.default_rng(seed)
    s = 1 / np.sqrt(H)
    u = lambda *shape: rng.uniform(-s, s, shape).astype(np.float32)
    return RecurrentLayer("lstm", "forward", H, I, u(1, 4 * H, I), u(1, 4 * H, H), u(1, 4 * H), u(1, 4 * H))


def _onnx_lstm(layer, with_states: bool) -> bytes:
    """One LSTM node; with_states: initial_h/initial_c are graph inputs and Y_h/Y_c outputs, as a streaming
    onnxruntime user feeds them."""
    from onnx import TensorProto, helper, numpy_helper

    H, I = layer.hidden_size, layer.input_size
    inits = [numpy_helper.from_array(layer.w_ih, "W"), numpy_helper.from_array(layer.w_hh, "R"),
             numpy_helper.from_array(np.concatenate([layer.b_ih, layer.b_hh], axis=1), "B")]
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 1, I])]
    node_in, node_out = ["X", "W", "R", "B"], ["Y"]
    if with_states:
        node_in += ["", "h0", "c0"]
        node_out += ["Y_h", "Y_c"]
        inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 1, H]) for n in ("h0", "c0")]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in node_out]
    node = helper.make_node("LSTM", node_in, node_out, hidden_size=H)
    graph = helper.make_graph([node], "overhead", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]).SerializeToString()


def _workload_graph(layers, x, with_states: bool) -> bytes:
    """The ONNX graph bench/workloads.py gives every engine for these layers."""
    from workloads import Case, onnx_model

    return onnx_model(Case("stream" if with_states else "tiny", "", layers, x), with_states=with_states)


def _fed_states(sess, x):
    """One call of a stateless streaming user: every state in, every final state out and fed to the next call."""
    feeds = {"X": x, **{i.name: np.zeros(i.shape, np.float32) for i in sess.get_inputs() if i.name != "X"}}
    names = list(feeds)[1:]

    def step():
        outs = sess.run(None, feeds)
        feeds.update(zip(names, outs[1:]))
        return outs[0]
    return step


def make_cases(n_threads: int) -> dict:
    """name -> a zero-argument callable doing one call as a user makes it."""
    import rnnfast
    from rnnfast.layers import RecurrentLayer
    from rnnfast.engine import Y_SEQ_BATCH_DIR, CompiledStack

    cases = {}
    for H, I in SIZES.items():
        layer = _layer(H, I)
        stack = CompiledStack([layer])
        rng = np.random.default_rng(1)
        x1 = rng.standard_normal((1, 1, I)).astype(np.float32)
        xs = rng.standard_normal((SEQ, 1, I)).astype(np.float32)
        h0, c0 = np.zeros((1, 1, H), np.float32), np.zeros((1, 1, H), np.float32)

        def run1(stack=stack, x1=x1, h0=[h0], c0=[c0]):
            # state in and out, as a stateless caller streams
            y, h, c = stack.run(x1, initial_h=h0, initial_c=c0, y_layout=Y_SEQ_BATCH_DIR, n_threads=n_threads)
            return y
        cases[f"stack.run    T=1  H={H}"] = run1
        cases[f"stack.run    T={SEQ} H={H}"] = (
            lambda stack=stack, xs=xs: stack.run(xs, y_layout=Y_SEQ_BATCH_DIR, n_threads=n_threads))

        stream = stack.stream(1)
        out = np.empty((1, H), np.float32)
        cases[f"cstream.step T=1  H={H}"] = lambda stream=stream, x=x1[0], out=out: stream.step(x, out, n_threads)
        model_stream = rnnfast.load(_onnx_lstm(layer, False), n_threads=n_threads).stream(1)
        cases[f"Model.stream.step T=1 H={H}"] = lambda s=model_stream, x=x1[0]: s.step(x)

        sess1 = rnnfast.InferenceSession(_onnx_lstm(layer, True), n_threads=n_threads)
        feeds = {"X": x1, "h0": h0, "c0": c0}

        def sess_step(sess=sess1, feeds=feeds):
            y, feeds["h0"], feeds["c0"] = sess.run(None, feeds)
            return y
        cases[f"session.run  T=1  H={H}"] = sess_step
        sess = rnnfast.InferenceSession(_onnx_lstm(layer, False), n_threads=n_threads)
        cases[f"session.run  T={SEQ} H={H}"] = lambda sess=sess, xs=xs: sess.run(None, {"X": xs})
        rng = np.random.default_rng(2)
        s = 1 / np.sqrt(H)
        u = lambda *shape: rng.uniform(-s, s, shape).astype(np.float32)
        bilstm = [RecurrentLayer("lstm", "bidirectional", H, I, u(2, 4 * H, I), u(2, 4 * H, H), u(2, 4 * H),
                                 u(2, 4 * H))]
        lstm2 = [layer, RecurrentLayer("lstm", "forward", H, H, u(1, 4 * H, H), u(1, 4 * H, H), u(1, 4 * H),
                                       u(1, 4 * H))]
        for name, layers in (("bilstm", bilstm), ("lstm2", lstm2)):
            graph = rnnfast.InferenceSession(_workload_graph(layers, x1, True), n_threads=n_threads)
            cases[f"graph {name} T=1  H={H}"] = _fed_states(graph, x1)
        graph = rnnfast.InferenceSession(_workload_graph([layer], xs, False), n_threads=n_threads)
        cases[f"graph lstm   T={SEQ} H={H}"] = lambda sess=graph, xs=xs: sess.run(None, {"X": xs})
    from workloads import engine_runner, make_case, rnnfast_runner

    for workload, cell in WORKLOAD_CELLS:
        case = make_case(workload, cell)
        cases[f"{workload} {cell} rnnfast"] = rnnfast_runner(case, n_threads)
        cases[f"{workload} {cell} engine"] = engine_runner(case, n_threads)
    return cases


def child(only: str, calls: int, n_threads: int, out_dir: str) -> None:
    """Under callgrind: one exec per case; print each case's profile total over its call count."""
    cases = {k: v for k, v in make_cases(n_threads).items() if only in k}
    for name, fn in cases.items():
        for _ in range(3):
            fn()
        before = set(glob.glob(os.path.join(out_dir, "cg.out*")))
        exec("for _ in range(calls): fn()", {"fn": fn, "calls": calls})
        new = set(glob.glob(os.path.join(out_dir, "cg.out*"))) - before
        if len(new) != 1:
            raise SystemExit(f"expected one new callgrind dump after {name}, got {sorted(new)}")
        total = None
        with open(new.pop()) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    total = int(line.split()[1])
        print(f"{name}\t{total / calls:.0f}", flush=True)


def callgrind_table(only: str, calls: int, n_threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=builtin_exec",
               "--dump-after=builtin_exec", f"--callgrind-out-file={tmp}/cg.out", sys.executable,
               os.path.abspath(__file__), "--child", "--only", only, "--calls", str(calls), "--threads", str(n_threads),
               "--out-dir", tmp]
        env = dict(os.environ, OMP_NUM_THREADS=str(n_threads), PYTHONHASHSEED="0")
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if res.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    return {name: int(v) for name, v in (line.split("\t") for line in res.stdout.splitlines() if "\t" in line)}


def timing_table(only: str, seconds: float, n_threads: int) -> dict:
    """Median over blocks of the calling thread's CPU time per call (time.thread_time), and wall time per call."""
    cases = {k: v for k, v in make_cases(n_threads).items() if only in k}
    samples = {k: ([], []) for k in cases}
    n = {k: 1 for k in cases}
    for name, fn in cases.items():  # calls per block: about 5 ms
        fn()
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.005:
            fn()
            n[name] += 1
    rounds = max(3, int(seconds / (0.005 * len(cases))))
    for _ in range(rounds):  # interleaved, so a busy moment of the machine hits every case alike
        for name, fn in cases.items():
            fn()
            c0, w0 = time.thread_time(), time.perf_counter()
            for _ in range(n[name]):
                fn()
            c1, w1 = time.thread_time(), time.perf_counter()
            samples[name][0].append((c1 - c0) / n[name])
            samples[name][1].append((w1 - w0) / n[name])
    return {k: (statistics.median(c), min(w)) for k, (c, w) in samples.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="only the cases whose name contains this")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--calls", type=int, default=200, help="calls per case under callgrind")
    ap.add_argument("--seconds", type=float, default=4.0, help="total timing time")
    ap.add_argument("--no-callgrind", action="store_true")
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out-dir", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a.only, a.calls, a.threads, a.out_dir)
    import rnnfast._core as core

    print(f"rnnfast ISA {core.isa_selected()}, n_threads {a.threads}, LSTM batch 1")
    instr = {} if a.no_callgrind else callgrind_table(a.only, a.calls, a.threads)
    times = {} if a.no_timing else timing_table(a.only, a.seconds, a.threads)
    names = list(instr or times)
    print(f"{'case':28s} {'instr/call':>11s} {'CPU µs/call':>12s} {'best wall µs':>13s}")
    for name in names:
        i = f"{instr[name]:11d}" if name in instr else f"{'-':>11s}"
        t = f"{times[name][0] * 1e6:12.2f} {times[name][1] * 1e6:13.2f}" if name in times else ""
        print(f"{name:28s} {i} {t}")


if __name__ == "__main__":
    main()
