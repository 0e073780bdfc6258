"""A stream stepped in real time: one step every `--every` ms, as an audio or sensor app calls it, not back to back.

    python bench/paced_stream.py [--every 0,1,10,30] [--cells lstm,gru,rnn,lstm2,bilstm] [--rounds 12] [--busy N]

Between two steps the engines' threads have gone to sleep and the CPU's caches hold other work, so a paced step
costs more than a step of a tight loop, and a second thread can cost far more than it gives: it must be woken (on
a VM its vCPU may be halted) at every step. This times the stream workload of bench/workloads.py (batch 1, input 64,
hidden 256) for rnnfast (the public API, default threads, 1 and 2) and onnxruntime (1 and 2 threads), each step
after a sleep of `every` ms. Runners take turns step by step (rnnfast default, 1t, 2t, ort 1t, 2t, then again), so
what the machine does hits them alike. Every runner's outputs over the case are checked against the float64
reference first (workloads.checked_outputs); one that is off is reported and not timed.

Per runner: the median step time over all rounds, and the least round median in brackets. ratio = onnxruntime's
best of 1/2 threads over rnnfast's default. --busy N runs it all beside N busy processes (bench/busy.py), as a
user's machine often is.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

import numpy as np

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
sys.path.insert(1, os.path.dirname(BENCH))  # the source tree, when not installed
from busy import busy_processes  # noqa: E402
from machine import machine_line  # noqa: E402
from timing import fmt_time  # noqa: E402
from workloads import checked_outputs, expected_output, make_case, ort_runner, rnnfast_runner  # noqa: E402

RUNNERS = (("rnnfast default", rnnfast_runner, None), ("rnnfast 1t", rnnfast_runner, 1),
           ("rnnfast 2t", rnnfast_runner, 2), ("ort 1t", ort_runner, 1), ("ort 2t", ort_runner, 2))
STEPS_PER_ROUND = 8


def paced_times(runners: dict, every_s: float, rounds: int) -> dict:
    """{name: [round medians of a step's seconds]}: each round steps every runner STEPS_PER_ROUND times in turn,
    sleeping every_s before each step."""
    per_round = {name: [] for name in runners}
    for _ in range(rounds):
        steps = {name: [] for name in runners}
        for _ in range(STEPS_PER_ROUND):
            for name, step in runners.items():
                time.sleep(every_s)
                t0 = time.perf_counter()
                step()
                steps[name].append(time.perf_counter() - t0)
        for name, ts in steps.items():
            per_round[name].append(float(np.median(ts)))
    return per_round


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--every", default="0,1,10,30", help="ms between steps, comma-separated (0: back to back)")
    p.add_argument("--cells", default="lstm,gru,rnn,lstm2,bilstm")
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--busy", type=int, default=0, metavar="N", help="N busy processes beside the timing")
    args = p.parse_args()
    print(machine_line() + (f"; {args.busy} busy processes beside" if args.busy else ""))
    with busy_processes(args.busy) if args.busy else contextlib.nullcontext():
        return paced_table(args)


def paced_table(args) -> int:
    problems = []
    names = [name for name, _, _ in RUNNERS]
    print("| cell | every | " + " | ".join(names) + " | ort best / rnnfast default |")
    print("|---|---|" + "---|" * (len(names) + 1))
    for cell in args.cells.split(","):
        case = make_case("stream", cell)
        runners = {name: make(case, n) for name, make, n in RUNNERS}
        checked_outputs(case, runners, expected_output(case), problems)
        for every in (float(e) for e in args.every.split(",")):
            times = paced_times(runners, every / 1e3, args.rounds)
            median = {n: float(np.median(t)) for n, t in times.items()}
            cells = [f"{fmt_time(median[n])} ({fmt_time(min(times[n]))})" if n in times else "–" for n in names]
            ort_best = min((median[n] for n in ("ort 1t", "ort 2t") if n in median), default=None)
            ours = median.get("rnnfast default")
            ratio = f"{ort_best / ours:.2f}×" if ort_best and ours else "–"
            print(f"| {cell} | {every:g} ms | " + " | ".join(cells) + f" | {ratio} |", flush=True)
    for problem in problems:
        print("!", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
