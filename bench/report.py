"""Run every workload × cell with the engines interleaved in one process and print / write the ratio table.

    python bench/report.py [--quick] [--out docs/performance.md] [--png docs/performance.png]
                           [--torch-python /path/to/venv/bin/python]
    python bench/report.py --contention 0,1,2,4 [--quick] [--out FILE.md]   (bench/contention.py)

The machine is noisy (±20 % run to run), so only ratios from one run mean anything: each round times every
runner of a case for a short block, one after the other, and the medians come from the same rounds. Every runner's
outputs are checked against the float64 reference first; one that is off is reported and not timed.

torch is timed in-process when importable, else in worker processes of the --torch-python interpreter (one per
thread count; the worker times its own calls, so the pipe is never inside a timed call), else left out."""
from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the source tree, when not installed
from fma_peak import measured_peak  # noqa: E402
from machine import machine_line  # noqa: E402
from others import OthersMeter  # noqa: E402
from timing import fmt_time as fmt, time_block  # noqa: E402
from workloads import (CELLS, WORKLOADS, checked_outputs, engine_runner, expected_output, make_case,  # noqa: E402
                       ort_runner, rnnfast_runner, spec_of, torch_runner)

PEAK = {}  # "flops": the usable cores' FMA peak, "how": where it comes from (bench/fma_peak.py, measured in main)
L2_READ = 104e9  # L2 read bandwidth per core, PERFORMANCE.md
TARGETS = {"stream": 3.0, "lat-h128": 2.0, "lat-h256": 2.0, "lat-h512": 2.0, "thru": 1.3, "tiny": 4.0}
THRU_PEAK_SHARE = 0.75  # thru LSTM/GRU cells must also reach 75 % of the 2-core peak
THREADS = (1, 2)
PEERS = ("ort", "torch")


class Local:
    def __init__(self, run):
        self.run = run

    def __call__(self, x=None):
        return self.run() if x is None else self.run(x)

    def block(self, seconds):
        return time_block(self.run, seconds)


def interleaved_blocks(runners: dict, budget_s: float, block_s: float = 0.02, pause_s: float = 0.05,
                       min_rounds: int = 5) -> dict:
    """Rounds of short blocks, each runner in turn, the order rotated every round; {name: [each block's call
    times]}. Blocks rather than alternating single calls, and a pause after each block: an engine's idle threads
    spin on after its last call (measured after a thru block: onnxruntime's pool ~40 ms of CPU, torch's and
    rnnfast's OpenMP ~10 ms), and the next engine timed on a busy second core loses up to 3× (torch 2t thru rnn:
    54 ms against 17 ms alone)."""
    blocks = {name: [] for name in runners}
    order = list(runners)
    start, rounds = time.perf_counter(), 0
    while time.perf_counter() - start < budget_s or rounds < min_rounds:
        for name in order:
            blocks[name].append(runners[name].block(block_s))
            time.sleep(pause_s)
        order = order[1:] + order[:1]
        rounds += 1
    return blocks


def interleaved_medians(runners: dict, budget_s: float, **kw) -> dict:
    """The median per call of each runner over interleaved_blocks."""
    blocks = interleaved_blocks(runners, budget_s, **kw)
    return {name: float(np.median(np.concatenate(b))) for name, b in blocks.items()}


def best(med, engine):
    got = [med[k] for k in (f"{engine} {n}t" for n in THREADS) if k in med]
    return min(got) if got else None


def timed_quietly(runners, budget, meter, attempts=3, limit=0.15, measure=interleaved_medians):
    """measure(runners, budget) (interleaved_medians), repeated (up to `attempts`) while other processes held more
    than `limit` of the machine; the least disturbed attempt is kept and its share reported beside the row."""
    best_med, best_share = None, None
    for attempt in range(attempts):
        meter.start()
        med = measure(runners, budget)
        share = meter.share()
        if best_share is None or share < best_share:
            best_med, best_share = med, share
        if share <= limit or attempt == attempts - 1:
            break
        print(f"  ~ other processes used {100 * share:.0f} % of the machine; measuring again", flush=True)
        time.sleep(3)
    return best_med, best_share


def measure_case(workload, cell, budget, torch_workers, problems, meter):
    case = make_case(workload, cell)
    want = expected_output(case)
    makers = {"rnnfast": rnnfast_runner, "engine": engine_runner, "ort": ort_runner}
    if torch_workers == "in-process":
        makers["torch"] = torch_runner
    runners = {}
    for n in THREADS:
        for engine, make in makers.items():
            runners[f"{engine} {n}t"] = Local(make(case, n))
        if isinstance(torch_workers, dict):
            runners[f"torch {n}t"] = torch_workers[n].remote(f"{workload} {cell}", spec_of(case))
    outputs = checked_outputs(case, runners, want, problems)
    med, others = timed_quietly(runners, budget, meter)
    for r in runners.values():
        getattr(r, "close", lambda: None)()
    same = all(k in outputs for k in ("rnnfast 1t", "rnnfast 2t")) and \
        np.array_equal(outputs["rnnfast 1t"], outputs["rnnfast 2t"])
    return case, med, same, others


def row_of(case, med, same, others):
    nan = float("nan")  # a runner that failed its check has no time; its ratios show as nan
    ours, engine = best(med, "rnnfast") or nan, best(med, "engine") or nan
    peer_times = {p: best(med, p) for p in PEERS if best(med, p) is not None} or {"none": nan}
    peer = min(peer_times, key=peer_times.get)
    speedup = peer_times[peer] / ours
    share = case.flops / ours / PEAK["flops"]
    target = TARGETS[case.workload]
    met = speedup >= target and not (case.workload == "thru" and case.cell_name != "rnn" and share < THRU_PEAK_SHARE)
    return dict(workload=case.workload, cell=case.cell_name, med=med, peer=peer, speedup=speedup,
                engine_speedup=peer_times[peer] / engine, gflops=case.flops / ours / 1e9, share=share,
                target=target, met=met, same=same, case=case, engine=engine, others=others)


HEADER = ("| workload | cell | rnnfast 1t | rnnfast 2t | engine (best) | ort 1t | ort 2t | torch 1t | torch 2t | "
          "fastest peer | **rnnfast speedup** | engine speedup | GFLOP/s | % of peak | target | met | 1t ≡ 2t | "
          "others' CPU |")


def table_line(r):
    m = r["med"]
    cells = [r["workload"], r["cell"], fmt(m.get("rnnfast 1t")), fmt(m.get("rnnfast 2t")), fmt(r["engine"]),
             fmt(m.get("ort 1t")), fmt(m.get("ort 2t")), fmt(m.get("torch 1t")), fmt(m.get("torch 2t")), r["peer"],
             f"**{r['speedup']:.2f}×**", f"{r['engine_speedup']:.2f}×", f"{r['gflops']:.1f}",
             f"{100 * r['share']:.0f} %", f"≥ {r['target']}×" + (" and ≥ 75 %" if r["workload"] == "thru" and
                                                                   r["cell"] != "rnn" else ""),
             "yes" if r["met"] else "**no**", "yes" if r["same"] else "**no**", f"{100 * r['others']:.0f} %"]
    return "| " + " | ".join(cells) + " |"


def stream_lines(rows):
    """PERFORMANCE.md's second stream target: the C step within 2× of reading the weights from both L2s."""
    out = ["| cell | engine step (best of 1t/2t) | L2 bound (weights / 2×104 GB/s) | step / bound |",
           "|---|---|---|---|"]
    for r in rows:
        if r["workload"] == "stream":
            bound = r["case"].weight_bytes / (2 * L2_READ)
            out.append(f"| {r['cell']} | {fmt(r['engine'])} | {fmt(bound)} | {r['engine'] / bound:.1f}× |")
    return out


def start_torch(torch_python):
    try:
        import torch

        return "in-process", torch.__version__
    except ImportError:
        pass
    if not torch_python:
        return None, None
    workers = {n: __import__("torch_peer").Worker(torch_python, n) for n in THREADS}
    return workers, workers[1].ask("version")


def versions():
    import onnxruntime

    git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True,
                                    cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "?"
    if git("status", "--porcelain", "--", "src_c", "include", "rnnfast", "setup.py"):  # others' work in progress
        commit += " (with uncommitted changes to the engine in the working tree)"
    return onnxruntime.__version__, commit


def write_markdown(path, rows, problems, command, torch_note, ort_version, commit, png):
    met = [f"{r['workload']} {r['cell']}" for r in rows if r["met"]]
    losing = [f"{r['workload']} {r['cell']} ({r['speedup']:.2f}×)" for r in rows if r["speedup"] < 1]
    with open(path, "w") as f:
        f.write(f"# Performance\n\nMeasured {datetime.date.today()} at commit {commit} with\n\n    {command}\n\n"
                f"on the project machine ({machine_line()}; shared and noisy: compare ratios within this table "
                "only). Each time is the median per call over interleaved rounds of ~20 ms blocks "
                "per runner in one process, each block after an untimed call and followed by a 50 ms pause so the "
                "engine's spinning threads park before the next one runs. Every runner's outputs were checked "
                "against the float64 reference (rtol 1e-4, atol 1e-5) before timing.\n\n"
                "- **rnnfast**: the public API on the same ONNX model as onnxruntime: `rnnfast.InferenceSession("
                "model, n_threads=n).run(None, {'X': x})`; for stream, `rnnfast.load(model).stream().step(x_t)` "
                "(state kept in C) for the forward models (lstm/gru/rnn and the stacked lstm2), and for bilstm "
                "the session fed its states back every call, as an onnxruntime user streams.\n"
                "- **engine**: `rnnfast.engine.CompiledStack` (and its C stream) without the Python API above it: "
                "the gap between the two columns is the cost of the Python layer.\n"
                f"- **ort**: onnxruntime {ort_version}, CPU EP, ORT_ENABLE_ALL, intra_op_num_threads = 1 or 2; "
                "stream: a seq_len-1 model with initial_h/initial_c inputs, its outputs fed back each call.\n"
                f"- **torch**: {torch_note}\n\n"
                "Speedup = time of the fastest peer (best of its 1 and 2 threads) / time of rnnfast (best of 1 and "
                "2 threads); above 1 rnnfast is faster. GFLOP/s and % of peak (of "
                f"{PEAK['flops'] / 1e9:.0f} GFLOP/s, the FMA peak of the cores: {PEAK['how']}) are rnnfast's, counting 2·seq·batch·n_gates·H·(I+H) per layer and direction. Targets from "
                "PERFORMANCE.md; 1t ≡ 2t: rnnfast's outputs bit-identical for 1 and 2 threads. Others' CPU: the "
                "share of the machine other processes (or the hypervisor) used while the row was timed; a row above "
                "15 % was measured again (up to 3 times) and the quietest attempt kept, since a 2-thread engine whose "
                "second core is taken loses several times over.\n\n")
        f.write(HEADER + "\n|" + "---|" * 18 + "\n")
        f.write("\n".join(table_line(r) for r in rows) + "\n\n")
        f.write("Stream, the engine's step against reading every weight once from both cores' L2 (target: ≤ 2×; "
                "bilstm has no C stream, its step is a seq_len-1 CompiledStack.run with the states fed back, and "
                "lstm2's 3.4 MB of weights do not fit the two L2s):\n\n")
        f.write("\n".join(stream_lines(rows)) + "\n\n")
        f.write(f"Targets met in {len(met)} of {len(rows)} cells" + (f": {', '.join(met)}." if met else ".") + "\n")
        f.write(f"\nrnnfast slower than the fastest peer in: {', '.join(losing) or 'no cell'}.\n")
        if problems:
            f.write("\nNot timed, outputs off the reference:\n\n" + "".join(f"- {p}\n" for p in problems))
        if png:
            f.write(f"\n![speedup over the fastest peer]({os.path.basename(png)})\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="at least 5 rounds, 0.3 s per case, instead of 4 s")
    parser.add_argument("--out", help="write the markdown table here")
    parser.add_argument("--png", help="write a bar chart of the speedups here")
    parser.add_argument("--torch-python", default=os.environ.get("RNNFAST_BENCH_TORCH_PYTHON"),
                        help="an interpreter with torch, used when torch is not importable here")
    parser.add_argument("--only", help="comma-separated workloads to run (default: all)")
    parser.add_argument("--contention", metavar="N[,N...]",
                        help="the contention table instead (bench/contention.py): every workload beside N busy "
                             "processes, for each N given (e.g. 0,1,2,4); with --quick 3 cells per workload")
    args = parser.parse_args(argv)
    command = " ".join(["python bench/report.py"] + (sys.argv[1:] if argv is None else list(argv)))
    if args.contention is not None:
        from contention import run

        try:
            counts = [int(n) for n in args.contention.split(",")]
        except ValueError:
            parser.error(f"--contention takes busy-process counts like 0,1,2,4, got {args.contention!r}")
        if any(n < 0 for n in counts):
            parser.error(f"--contention: counts must be >= 0, got {args.contention!r}")
        return run(counts, args.quick, args.only, args.torch_python, args.out, command)
    budget = 0.3 if args.quick else 4.0
    PEAK["flops"], PEAK["how"] = measured_peak()
    torch_workers, torch_version = start_torch(args.torch_python)
    ort_version, commit = versions()
    rows, problems = [], []
    worker_pids = [w.proc.pid for w in torch_workers.values()] if isinstance(torch_workers, dict) else []
    meter = OthersMeter([os.getpid()] + worker_pids)
    print(HEADER + "\n|" + "---|" * 18, flush=True)
    for workload in (args.only.split(",") if args.only else WORKLOADS):
        for cell in CELLS:
            rows.append(row_of(*measure_case(workload, cell, budget, torch_workers, problems, meter)))
            print(table_line(rows[-1]), flush=True)
    print("\n" + "\n".join(stream_lines(rows)))
    if isinstance(torch_workers, dict):
        for w in torch_workers.values():
            w.close()
    if torch_workers is None:
        torch_note = "not timed: torch is not importable here and no --torch-python was given."
    elif torch_workers == "in-process":
        torch_note = f"torch {torch_version} in this process, nn.LSTM/GRU/RNN in inference_mode, set_num_threads."
    else:
        torch_note = (f"torch {torch_version} in worker processes of another interpreter (one per thread count, "
                      "set_num_threads), nn.LSTM/GRU/RNN in inference_mode with the same weights; stream: "
                      "seq_len-1 calls with (h, c) fed back. The workers time their own calls with the same loop.")
    if args.png:
        from chart import speedup_chart

        speedup_chart(rows, args.png)
    if args.out:
        write_markdown(args.out, rows, problems, command, torch_note, ort_version, commit, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
