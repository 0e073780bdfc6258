"""Whole ONNX models (tests/data/onnx/graph/: vad, denoiser, stream_gru, crnn, each from both torch exporters) timed
in rnnfast and onnxruntime, interleaved in one process, per call and in a chunk-by-chunk streaming loop; then the
peak RSS of each engine for each model, in fresh processes.

    python bench/whole_models.py [--quick] [--contention N] [--out docs/whole_models.md]

Workloads, for each of the 8 model files:
- call: one `run` of the npz's record (vad: batch 1 × 512 samples at 16 kHz, and the sr8k record, 1 × 256 at
  8 kHz; denoiser 2 × 50 frames; stream_gru 2 × 4 frames; crnn 2 × 64 frames).
- stream: the npz's 8-chunk stream record run chunk by chunk in a Python loop, each state output fed back as the next
  chunk's state input (vad state <- stateN, denoiser h0 <- hn, stream_gru conv_cache <- conv_cache_out and
  h <- h_out); the time is per chunk. crnn has no stream record.
Engines: rnnfast (`rnnfast.load(path, n_threads=n).run(feeds)`), onnxruntime (CPU EP, ORT_ENABLE_ALL,
intra_op_num_threads = n, inter_op 1), each at 1 and 2 threads; in the streaming loop also rnnfast's
`model.stream(states=...)` (the states kept in the engine, a step passes only the chunk), where this rnnfast has it.

Every runner's outputs (every chunk's, states included, for a stream) are checked against torch's in the npz
(max abs diff <= 1e-4) before it is timed; one that disagrees is printed, reported and not timed. Then the runners
of a workload are timed in rounds, each in turn (the order rotated every round) for a short block of calls after
one untimed call and followed by a pause (bench/report.py: an engine's threads spin on after its last call), so
noise hits all alike. Per runner: typical = median over rounds of each round's median per call; quietest = the
least of the round medians. Ratio = onnxruntime / rnnfast, the best of 1 and 2 threads each (and of run/stream for
rnnfast in the loop). Targets (docs PERFORMANCE.md): >= 2x per call, >= 3x in the streaming loop, never slower;
peak RSS <= onnxruntime's.

--contention N starts N busy processes (a pure-Python spin loop each; bounded in time, ending with this script)
beside the timing, and adds rnnfast's default thread count as a runner (the target there: never slower than
onnxruntime for the same thread request; the default <= 1.25x rnnfast's own 1-thread time). The peak RSS is only
measured without contention. With --out, a run without --contention writes the file; a run with it appends its
table to the file (replacing an earlier table for the same N).
"""
from __future__ import annotations

import argparse
import atexit
import datetime
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
sys.path.insert(1, ROOT)  # the source tree, when not installed
from machine import machine_line  # noqa: E402
from others import OthersMeter  # noqa: E402
from timing import fmt_time, time_block  # noqa: E402

FIXTURES = os.path.join(ROOT, "tests", "data", "onnx", "graph")
MODELS = ("vad", "denoiser", "stream_gru", "crnn")
EXPORTERS = ("ts", "dynamo")
STATES = {  # state input: the output that feeds it on the next chunk
    "vad": {"state": "stateN"},
    "denoiser": {"h0": "hn"},
    "stream_gru": {"conv_cache": "conv_cache_out", "h": "h_out"},
    "crnn": {},
}
MAIN_INPUT = {"vad": ("input", 1), "denoiser": ("input", 1), "stream_gru": ("x", 2), "crnn": ("input", 3)}
TOLERANCE = 1e-4  # max abs diff against torch's outputs
THREADS = (1, 2)
TARGETS = {"call": 2.0, "stream": 3.0}
RSS_CALLS = 50
QUIET_SHARE = 0.15  # a workload timed while other processes held more of the machine is timed again (report.py)


# ---------------------------------------------------------------------------------------------------- workloads

@dataclass
class Workload:
    model: str
    exporter: str
    kind: str  # "call" or "stream"
    prefix: str = ""  # "" or "sr8k/" (vad at 8 kHz)
    feeds: dict = field(default_factory=dict)  # call: the inputs
    want: dict = field(default_factory=dict)  # call: torch's outputs
    chunks: list = field(default_factory=list)  # stream: per chunk, the inputs that are not states
    init: dict = field(default_factory=dict)  # stream: the initial states
    want_chunks: list = field(default_factory=list)  # stream: per chunk, torch's outputs (states included)

    @property
    def path(self) -> str:
        return os.path.join(FIXTURES, f"{self.model}.{self.exporter}.onnx")

    @property
    def per(self) -> int:
        """Chunks per timed unit: a stream's unit is the whole 8-chunk loop, its time is reported per chunk."""
        return len(self.chunks) if self.kind == "stream" else 1

    @property
    def label(self) -> str:
        x = self.feeds if self.kind == "call" else self.chunks[0]
        main, frames_axis = MAIN_INPUT[self.model]
        s = x[main].shape
        shape = f"{s[0]}×{s[frames_axis]}"  # batch × samples (vad) or frames
        rate = {"": " 16k", "sr8k/": " 8k"}[self.prefix] if self.model == "vad" else ""
        if self.kind == "call":
            return f"call {shape}{rate}"
        return f"stream {len(self.chunks)}×({shape}){rate}"

    @property
    def name(self) -> str:
        return f"{self.model} {self.exporter} {self.label}"


def _records(z, prefix):
    """(feeds, want) of the call record; (chunks, init, want_chunks) of the stream record, or None."""
    take = lambda tag: {k[len(prefix) + len(tag):]: z[k] for k in z.files if k.startswith(prefix + tag)}
    call = (take("in:"), take("out:"))
    stream_in, init, stream_out = take("stream_in:"), take("stream_init:"), take("stream_out:")
    if not stream_in:
        return call, None
    n = len(next(iter(stream_in.values())))
    chunks = [{k: np.array(v[t]) for k, v in stream_in.items()} for t in range(n)]  # a copy: contiguous, 0-d sr
    want_chunks = [{k: v[t] for k, v in stream_out.items()} for t in range(n)]
    return call, (chunks, init, want_chunks)


def workloads(models=MODELS, exporters=EXPORTERS) -> list:
    out = []
    for model in models:
        z = np.load(os.path.join(FIXTURES, f"{model}.npz"))
        prefixes = [""] + (["sr8k/"] if any(k.startswith("sr8k/") for k in z.files) else [])
        for exporter in exporters:
            records = {p: _records(z, p) for p in prefixes}
            for p in prefixes:
                (feeds, want), _ = records[p]
                out.append(Workload(model, exporter, "call", p, feeds=feeds, want=want))
            for p in prefixes:
                _, stream = records[p]
                if stream is not None:
                    chunks, init, want_chunks = stream
                    out.append(Workload(model, exporter, "stream", p, chunks=chunks, init=init,
                                        want_chunks=want_chunks))
    return out


# ---------------------------------------------------------------------------------------------------- runners

class Runner:
    """unit(): what is timed (one call, or one whole streaming loop); outputs(): per chunk, {output: array}."""

    def __init__(self, unit, outputs):
        self.unit, self.outputs = unit, outputs


def _stateless(w: Workload, run, output_names) -> Runner:
    """A session that takes its states as inputs and returns them as outputs (onnxruntime; rnnfast's run)."""
    if w.kind == "call":
        feeds = w.feeds
        return Runner(lambda: run(feeds), lambda: [dict(zip(output_names, run(feeds)))])
    pairs = STATES[w.model]
    index = {o: output_names.index(o) for o in pairs.values()}
    chunks, init = w.chunks, w.init

    def loop(record=None):
        state = init
        for chunk in chunks:
            outs = run({**chunk, **state})
            state = {i: outs[index[o]] for i, o in pairs.items()}
            if record is not None:
                record.append({n: np.array(a) for n, a in zip(output_names, outs)})
        return state

    def outputs():
        record = []
        loop(record)
        return record
    return Runner(loop, outputs)


def rnnfast_runner(w: Workload, n_threads):
    import rnnfast

    model = rnnfast.load(w.path, n_threads=n_threads)
    return _stateless(w, model.run, model.output_names)


def ort_runner(w: Workload, n_threads):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = n_threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # not the dynamo files' warnings about unused initializers
    sess = ort.InferenceSession(w.path, options, providers=["CPUExecutionProvider"])
    return _stateless(w, lambda feeds: sess.run(None, feeds), [o.name for o in sess.get_outputs()])


class Unavailable(Exception):
    """This rnnfast cannot run the workload this way (not a wrong answer: the runner is left out)."""


def rnnfast_stream_runner(w: Workload, n_threads):
    """model.stream(states=...) where this rnnfast streams whole graphs: the states stay in the engine, a step
    passes only the chunk's other inputs and returns the other outputs. Unavailable otherwise."""
    import rnnfast

    if w.kind != "stream":
        raise Unavailable("only for the streaming loop")
    model = rnnfast.load(w.path, n_threads=n_threads)
    batch = len(next(iter(w.chunks[0].values())))
    try:
        stream = model.stream(batch=batch, n_threads=n_threads, states=STATES[w.model])
    except (NotImplementedError, TypeError) as e:
        raise Unavailable(f"model.stream: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    step_outputs = getattr(stream, "step_outputs", None)
    if step_outputs is None or not hasattr(stream, "reset"):
        raise Unavailable(f"model.stream gave a {type(stream).__name__}, not a whole-graph stream")
    if any(np.any(v) for v in w.init.values()):
        raise Unavailable("the record's initial state is not zero (the loop resets the stream to zeros)")
    chunks, pairs = w.chunks, STATES[w.model]

    def loop(record=None):
        stream.reset()
        for chunk in chunks:
            y = stream.step(chunk)
            if record is not None:
                ys = y if len(step_outputs) > 1 else [y]
                state = stream.state
                record.append({**{n: np.array(a) for n, a in zip(step_outputs, ys)},
                               **{o: state[i] for i, o in pairs.items()}})

    def outputs():
        record = []
        loop(record)
        return record
    return Runner(loop, outputs)


ENGINES = {"ort": ort_runner, "rnnfast": rnnfast_runner, "rnnfast stream": rnnfast_stream_runner}


def check(w: Workload, got: list) -> float:
    """The max abs diff of every output of every chunk against torch's; raise when one is off or missing."""
    want = [w.want] if w.kind == "call" else w.want_chunks
    if len(got) != len(want):
        raise AssertionError(f"{len(got)} chunks of outputs, torch has {len(want)}")
    worst = 0.0
    for t, (g, ref) in enumerate(zip(got, want)):
        for name, r in ref.items():
            if name not in g:
                raise AssertionError(f"no output {name!r}")
            a = np.asarray(g[name])
            if a.shape != r.shape:
                raise AssertionError(f"chunk {t} {name}: shape {a.shape}, torch's {r.shape}")
            d = float(np.max(np.abs(a.astype(np.float64) - r))) if r.size else 0.0
            if not d <= TOLERANCE:  # NaN fails too
                raise AssertionError(f"chunk {t} {name}: max abs diff {d:.3g} > {TOLERANCE}")
            worst = max(worst, d)
    return worst


def make_runners(w: Workload, engines, threads, problems: list, skipped: list) -> tuple:
    """{runner name: Runner} of the engines that agree with torch, and {runner name: max abs diff}."""
    runners, diffs = {}, {}
    for engine in engines:
        for n in threads:
            name = f"{engine} {n}t" if n else f"{engine} def"
            try:
                r = ENGINES[engine](w, n or None)
            except Unavailable as e:
                if n == threads[0]:
                    skipped.append(f"{w.name}, {engine}: {e}")
                    print("  -", skipped[-1], flush=True)
                break
            except Exception as e:  # a model the engine cannot load is reported like a wrong answer
                problems.append(f"{w.name}, {name}: load failed: {type(e).__name__}: {str(e).splitlines()[0]}")
                print("  !", problems[-1], flush=True)
                continue
            try:
                diffs[name] = check(w, r.outputs())
                runners[name] = r
            except Exception as e:
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                problems.append(f"{w.name}, {name}: disagrees with torch, not timed: {msg}")
                print("  !", problems[-1], flush=True)
    return runners, diffs


# ---------------------------------------------------------------------------------------------------- timing

def interleaved_rounds(runners: dict, rounds: int, block_s: float, pause_s: float) -> dict:
    """{runner: [each round's median time per call]}: every round times each runner in turn for a block of about
    block_s (after one untimed call, timing.time_block), the order rotated every round, with a pause after each
    block so the last engine's spinning threads park before the next one runs."""
    per_round = {name: [] for name in runners}
    order = list(runners)
    for _ in range(rounds):
        for name in order:
            per_round[name].append(float(np.median(time_block(runners[name].unit, block_s))))
            time.sleep(pause_s)
        order = order[1:] + order[:1]
    return per_round


def spread_note(values: list):
    """A note when the round medians fall into two clusters (a gap of > 25 % with at least a fifth of the rounds on
    either side: the 2-thread speed modes of this VM, or a neighbour's load), else None."""
    v = sorted(values)
    k = max(2, len(v) // 5)
    for i in range(k, len(v) - k + 1):
        if v[i] > 1.25 * v[i - 1]:
            return (f"bimodal: {i} rounds near {fmt_time(float(np.median(v[:i])))}, {len(v) - i} near "
                    f"{fmt_time(float(np.median(v[i:])))}")
    return None


@dataclass
class Row:
    w: Workload
    typical: dict  # runner: seconds per chunk
    quietest: dict
    diffs: dict
    others: float
    notes: list

    def best(self, engine_prefix: str, stat: str, exact: bool = False) -> float | None:
        d = getattr(self, stat)
        got = [t for name, t in d.items()
               if (name.rsplit(" ", 1)[0] == engine_prefix if exact else name.startswith(engine_prefix))
               and not name.endswith(" def")]
        return min(got) if got else None

    def ratio(self, stat: str, ours: str = "rnnfast") -> float | None:
        """onnxruntime / rnnfast, the best of 1 and 2 threads each (ours="rnnfast": run or stream, whichever is
        faster; "rnnfast run": run only)."""
        peer = self.best("ort", stat)
        mine = self.best("rnnfast", stat, exact=True) if ours == "rnnfast run" else self.best("rnnfast", stat)
        return peer / mine if peer and mine else None

    def same_thread(self, n: int, stat: str = "typical"):
        d = getattr(self, stat)
        mine = [d[k] for k in (f"rnnfast {n}t", f"rnnfast stream {n}t") if k in d]
        return d[f"ort {n}t"] / min(mine) if mine and f"ort {n}t" in d else None


def measure(w: Workload, args, meter, problems, skipped, contention: bool) -> Row:
    engines = [e for e in ENGINES if w.kind == "stream" or e != "rnnfast stream"]
    threads = list(THREADS)
    runners, diffs = make_runners(w, engines, threads, problems, skipped)
    if contention:  # rnnfast's default thread count, for the contention target
        for engine in ("rnnfast", "rnnfast stream"):
            if any(k.startswith(engine + " ") and k.rsplit(" ", 1)[0] == engine for k in runners):
                more, d = make_runners(w, [engine], [0], problems, [])
                runners.update(more)
                diffs.update(d)
    rounds, others = {}, 0.0
    for attempt in range(args.attempts if runners else 0):  # as report.py's timed_quietly: the least disturbed kept
        meter.start()
        got = interleaved_rounds(runners, args.rounds, args.block, args.pause)
        share = meter.share()
        if not rounds or share < others:
            rounds, others = got, share
        if share <= QUIET_SHARE:
            break
        if attempt + 1 < args.attempts:
            print(f"  ~ other processes used {100 * share:.0f} % of the machine; measuring again", flush=True)
            time.sleep(3)
    typical = {k: float(np.median(v)) / w.per for k, v in rounds.items()}
    quietest = {k: float(np.min(v)) / w.per for k, v in rounds.items()}
    notes = []
    for k, v in rounds.items():
        note = spread_note(v)
        if note:
            notes.append(f"{w.name}, {k}: {note} per {'loop of ' + str(w.per) + ' chunks' if w.per > 1 else 'call'}")
    return Row(w, typical, quietest, diffs, others, notes)


# ---------------------------------------------------------------------------------------------------- table

def _time_cell(row: Row, name: str) -> str:
    if name not in row.typical:
        return "–"
    return f"{fmt_time(row.typical[name])} ({fmt_time(row.quietest[name])})"


def _ratio(x) -> str:
    return "–" if x is None else f"{x:.2f}×"


def _met(row: Row) -> str:
    target, r = TARGETS[row.w.kind], row.ratio("typical")
    if r is None:
        return "–"
    if r < 1:
        return "**no: slower**"
    return "yes" if r >= target else "**no**"


def header(contention: bool) -> list:
    cols = ["model", "exporter", "workload", "ort 1t", "ort 2t", "rnnfast 1t", "rnnfast 2t", "rnnfast stream 1t",
            "rnnfast stream 2t"]
    if contention:
        cols += ["rnnfast default"]
    cols += ["**ratio typical**", "ratio quietest", "ratio run only", "same threads 1t / 2t"]
    if contention:
        cols += ["default / own 1t"]
    cols += ["target", "met", "others' CPU"]
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]


def table_line(row: Row, contention: bool) -> str:
    w = row.w
    cells = [w.model, w.exporter, w.label] + [_time_cell(row, n) for n in
                                              ("ort 1t", "ort 2t", "rnnfast 1t", "rnnfast 2t", "rnnfast stream 1t",
                                               "rnnfast stream 2t")]
    if contention:
        default = min([k for k in row.typical if k.endswith(" def")], key=row.typical.get, default=None)
        cells.append(_time_cell(row, default) + (" stream" if default and "stream" in default else "")
                     if default else "–")
    typ = row.ratio("typical")
    cells += [f"**{_ratio(typ)}**" if typ else "–", _ratio(row.ratio("quietest")),
              _ratio(row.ratio("typical", "rnnfast run")) if w.kind == "stream" else "=",
              f"{_ratio(row.same_thread(1))} / {_ratio(row.same_thread(2))}"]
    if contention:
        own1 = min([row.typical[k] for k in ("rnnfast 1t", "rnnfast stream 1t") if k in row.typical], default=None)
        default_t = min([t for k, t in row.typical.items() if k.endswith(" def")], default=None)
        cells.append(f"{default_t / own1:.2f}×" if default_t and own1 else "–")
    cells += [f"≥ {TARGETS[w.kind]:g}×", _met(row), f"{100 * row.others:.0f} %"]
    return "| " + " | ".join(cells) + " |"


# ---------------------------------------------------------------------------------------------------- peak RSS

RSS_CHILD = r"""
import json, os, resource, sys
import numpy as np
engine, root, path, npz, prefix, n_threads, calls = sys.argv[1:8]
n_threads, calls = int(n_threads), int(calls)
sys.path.insert(0, root)
z = np.load(npz)
feeds = {k[len(prefix) + 3:]: z[k] for k in z.files if k.startswith(prefix + "in:")}
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
if engine == "rnnfast":
    import rnnfast
    base = peak()
    import rnnfast.importers.onnx.graph  # what load imports on first use (the onnx package only for a model needing it)
    imports = peak() - base
    model = rnnfast.load(path, n_threads=n_threads)
    run = model.run
else:
    import onnxruntime as ort
    base = peak()
    imports = 0
    o = ort.SessionOptions()
    o.intra_op_num_threads = n_threads
    o.inter_op_num_threads = 1
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    o.log_severity_level = 3
    sess = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    run = lambda f: sess.run(None, f)
for _ in range(calls):
    run(feeds)
hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")]
print(json.dumps(dict(base=base, imports=imports, peak=peak(), hwm=hwm[0] if hwm else None,
                      onnx="onnx" in sys.modules)))
"""


def peak_rss(model, exporter, engine, n_threads, calls=RSS_CALLS) -> dict:
    """ru_maxrss of a fresh interpreter that imported numpy and the engine (base), then loaded the model and ran its
    call record `calls` times (peak), in KiB; for rnnfast also what importing the ONNX importer added and whether
    the onnx package was imported."""
    path = os.path.join(FIXTURES, f"{model}.{exporter}.onnx")
    npz = os.path.join(FIXTURES, f"{model}.npz")
    # Through a shell that forks the interpreter rather than exec'ing it: Linux carries ru_maxrss across execve from
    # the image it replaces, and a child spawned straight from this (large) process would start at our peak.
    out = subprocess.run(["/bin/sh", "-c", '"$0" "$@"; exit $?', sys.executable, "-c", RSS_CHILD, engine, ROOT,
                          path, npz, "", str(n_threads), str(calls)], capture_output=True, text=True, timeout=300)
    if out.returncode:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}")
    got = json.loads(out.stdout.strip().splitlines()[-1])
    if got["hwm"] is not None and abs(got["hwm"] - got["peak"]) > 0.05 * got["peak"]:
        raise RuntimeError(f"ru_maxrss {got['peak']} KiB but VmHWM {got['hwm']} KiB: the peak is not this process's")
    return got


def rss_table(threads) -> tuple:
    mb = lambda kib: f"{kib / 1024:.1f}"
    lines = ["| model | exporter | threads | ort base | ort peak | **ort Δ** | rnnfast base | rnnfast peak | "
             "**rnnfast Δ** | of which importing the importer | onnx imported | rnnfast Δ ≤ ort Δ |",
             "|" + "---|" * 12]
    problems = []
    print("\n".join(lines), flush=True)
    for model in MODELS:
        for exporter in EXPORTERS:
            for n in threads:
                got = {}
                for engine in ("ort", "rnnfast"):
                    try:
                        got[engine] = peak_rss(model, exporter, engine, n)
                    except Exception as e:
                        problems.append(f"peak RSS {model} {exporter} {engine} {n}t: {e}")
                        print("  !", problems[-1], flush=True)
                if len(got) < 2:
                    continue
                o, r = got["ort"], got["rnnfast"]
                od, rd = o["peak"] - o["base"], r["peak"] - r["base"]
                ok = "yes" if rd <= od else "**no**"
                lines.append(f"| {model} | {exporter} | {n} | {mb(o['base'])} | {mb(o['peak'])} | **{mb(od)}** | "
                             f"{mb(r['base'])} | {mb(r['peak'])} | **{mb(rd)}** | {mb(r['imports'])} | "
                             f"{'**yes**' if r.get('onnx') else 'no'} | {ok} |")
                print(lines[-1], flush=True)
    return lines, problems


# ---------------------------------------------------------------------------------------------------- contention

SPIN = r"""
import os, sys, time
end, parent = time.monotonic() + float(sys.argv[1]), os.getppid()
while time.monotonic() < end and os.getppid() == parent:
    for _ in range(200000):
        pass
"""


class Spinners:
    """N busy processes (a pure-Python loop each) for the length of the measurement: each ends by itself after
    limit_s or when this process is gone, and is killed when stop() runs (also at exit)."""

    def __init__(self, n: int, limit_s: float):
        self.procs = [subprocess.Popen([sys.executable, "-c", SPIN, str(limit_s)]) for _ in range(n)]
        atexit.register(self.stop)

    @property
    def pids(self):
        return [p.pid for p in self.procs]

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        self.procs = []


# ---------------------------------------------------------------------------------------------------- report

def loadavg() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def intro(command, args, commit, versions_line, machine, load_before, load_after, contention) -> str:
    rounds = (f"{args.rounds} rounds of ~{args.block * 1e3:.0f} ms blocks per runner, a {args.pause * 1e3:.0f} ms "
              "pause after each")
    return (f"Measured {datetime.date.today()} at commit {commit} with\n\n    {command}\n\n"
            f"- machine: {machine}\n- {versions_line}\n"
            f"- load average (1/5/15 min) before: {load_before}, after: {load_after}"
            + (f"; {contention} busy processes of ours running throughout" if contention else "") + "\n"
            f"- timing: {rounds}; the runners of a workload interleaved in one process, order rotated every round. "
            "Each time cell is **typical** (median over rounds of each round's median) and, in brackets, "
            "**quietest** (the least round median); stream times are per chunk of the 8-chunk loop.\n"
            "- engines: `ort` onnxruntime (CPU EP, ORT_ENABLE_ALL, intra_op_num_threads = n, inter_op 1); "
            "`rnnfast` `rnnfast.load(path, n_threads=n).run(feeds)`, the states fed back by the loop as for ort; "
            "`rnnfast stream` `model.stream(states=...)`, the states kept in the engine (– where not available).\n"
            "- every runner's outputs (every chunk's, states included) matched torch's within 1e-4 before it was "
            "timed (max abs diffs below).\n"
            "- ratio = onnxruntime / rnnfast, each the best of its 1 and 2 threads (rnnfast: of run and stream; "
            "'ratio run only' leaves the stream out); same threads = ort nt / rnnfast nt. Targets from "
            "PERFORMANCE.md: ≥ 2× per call, ≥ 3× in the streaming loop, never slower.\n"
            "- others' CPU: the share of the machine that processes other than this one"
            + (" and its busy processes" if contention else "") + " used while the row was timed; a workload "
            f"timed while they held more than {100 * QUIET_SHARE:.0f} % was timed again (up to {args.attempts} "
            "attempts) and the least disturbed attempt kept.\n\n")


def write_report(path, text, contention):
    if not contention:
        with open(path, "w") as f:
            f.write(text)
        return
    begin, end = f"<!-- contention {contention} -->", f"<!-- /contention {contention} -->"
    old = open(path).read() if os.path.exists(path) else "# Whole models\n"
    old = re.sub(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", "", old, flags=re.S)
    with open(path, "w") as f:
        f.write(old.rstrip("\n") + "\n\n" + begin + "\n" + text.rstrip("\n") + "\n" + end + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 rounds of 5 ms blocks, RSS at 1 thread only")
    parser.add_argument("--contention", type=int, default=0, metavar="N", help="N busy processes beside the timing")
    parser.add_argument("--out", help="write (or, with --contention, append to) this markdown file")
    parser.add_argument("--only", help="comma-separated models (default: all)")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak RSS table")
    parser.add_argument("--rss-only", action="store_true", help="only the peak RSS table (printed, not written)")
    parser.add_argument("--note", help="a line for the report about what was measured (e.g. the build)")
    args = parser.parse_args(argv)
    args.rounds, args.block, args.pause, args.attempts = (5, 0.005, 0.02, 1) if args.quick else (30, 0.03, 0.05, 3)
    models = tuple(args.only.split(",")) if args.only else MODELS
    command = " ".join(["python bench/whole_models.py"] + (sys.argv[1:] if argv is None else list(argv)))

    from report import versions

    ort_version, commit = versions()
    import rnnfast

    versions_line = (f"onnxruntime {ort_version}; rnnfast from {os.path.dirname(rnnfast.__file__)}; numpy "
                     f"{np.__version__}")
    machine, load_before = machine_line(), loadavg()
    print(machine, "\n" + versions_line, f"\ncommit {commit}, load average {load_before}", flush=True)
    if args.rss_only:
        print("\npeak RSS (MiB), fresh process per engine, load + %d calls:" % RSS_CALLS, flush=True)
        return 1 if rss_table((1,) if args.quick else THREADS)[1] else 0

    spinners = None
    all_work = workloads(models)
    if args.contention:
        per_workload = args.attempts * (7 * args.rounds * (args.block + args.pause) + 5)  # up to 7 runners
        spinners = Spinners(args.contention, limit_s=max(120.0, 3 * per_workload * len(all_work)))
        print(f"{args.contention} busy processes: pids {spinners.pids}", flush=True)
        time.sleep(1)
    meter = OthersMeter([os.getpid()] + (spinners.pids if spinners else []))
    rows, problems, skipped = [], [], []
    contention = args.contention
    try:
        print("\n".join(header(bool(contention))), flush=True)
        for w in all_work:
            rows.append(measure(w, args, meter, problems, skipped, bool(contention)))
            print(table_line(rows[-1], bool(contention)), flush=True)
    finally:
        if spinners:
            spinners.stop()
    load_after = loadavg()
    notes = [n for r in rows for n in r.notes]
    for n in notes:
        print("  ~", n)

    rss_lines, rss_problems = [], []
    if not contention and not args.no_rss:
        print("\npeak RSS (MiB), fresh process per engine, load + %d calls:" % RSS_CALLS, flush=True)
        rss_lines, rss_problems = rss_table((1,) if args.quick else THREADS)
    problems += rss_problems

    met = [r for r in rows if _met(r) == "yes"]
    slower = [f"{r.w.name} ({_ratio(r.ratio('typical'))})" for r in rows if (r.ratio("typical") or 1) < 1]
    diffs = {}
    for r in rows:
        for k, d in r.diffs.items():
            diffs[k] = max(diffs.get(k, 0.0), d)
    summary = (f"Targets met in {len(met)} of {len(rows)} workloads; rnnfast slower than onnxruntime in: "
               f"{', '.join(slower) or 'none'}.\n\nMax abs diff against torch over all workloads: "
               + ", ".join(f"{k} {v:.2g}" for k, v in sorted(diffs.items())) + ".\n")
    print("\n" + summary)
    if not args.out:
        return 0
    title = (f"## Beside {contention} busy processes\n\n" if contention else
             "# Whole models: rnnfast against onnxruntime\n\n")
    text = title + intro(command, args, commit, versions_line + (f"; {args.note}" if args.note else ""), machine,
                         load_before, load_after, contention)
    text += "\n".join(header(bool(contention)) + [table_line(r, bool(contention)) for r in rows]) + "\n\n" + summary
    if contention:
        text += ("\nPERFORMANCE.md beside busy processes: never slower than onnxruntime for the same thread request "
                 "(same threads column), rnnfast's default ≤ 1.25× its own 1-thread time (default / own 1t).\n")
    if notes:
        text += "\nRound medians that fell into two clusters:\n\n" + "".join(f"- {n}\n" for n in notes)
    if skipped:
        text += "\nNot run:\n\n" + "".join(f"- {s}\n" for s in skipped)
    if problems:
        text += "\nProblems (not timed):\n\n" + "".join(f"- {p}\n" for p in problems)
    if rss_lines:
        text += (f"\n## Peak RSS\n\nMiB from `ru_maxrss`, each in a fresh interpreter: base = after importing numpy "
                 f"and the engine; Δ peak = the high-water mark after loading the model and running its call record "
                 f"{RSS_CALLS} times, minus base. rnnfast's Δ includes importing its ONNX importer on first load "
                 f"(shown apart; the `onnx` package, ~22 MB, is imported only by a model that needs it, as the "
                 f"'onnx imported' column says). Target: rnnfast's ≤ onnxruntime's. Each child is started through a "
                 f"shell that forks it, since Linux carries ru_maxrss across execve from the process image it "
                 f"replaces; "
                 f"each peak was checked against the child's VmHWM.\n\n" + "\n".join(rss_lines) + "\n")
    write_report(args.out, text, contention)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
