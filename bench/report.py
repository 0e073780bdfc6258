"""Run every workload × cell with the peers interleaved in one process and print / write the ratio table.

    python bench/report.py [--quick] [--out docs/performance.md]

The machine is noisy (±20 % run to run), so each round times every runner of a case back to back and the
medians come from the same rounds; only ratios from one run are meaningful."""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the source tree, when not installed
from workloads import CELLS, WORKLOADS, make_case, ort_runner, rnnfast_runner  # noqa: E402

PEAK_2CORE = 200e9  # FMA peak of the 2 cores, PERFORMANCE.md
TARGETS = {"stream": 3.0, "lat-h128": 2.0, "lat-h256": 2.0, "lat-h512": 2.0, "thru": 1.3, "tiny": 4.0}


def interleaved_medians(runners: dict, budget_s: float, block_s: float = 0.02) -> dict:
    """Rounds of short blocks: each runner runs back to back for ~block_s, then the next. Alternating single
    calls would time each engine against the other's thread pool still spinning on the second core."""
    times = {name: [] for name in runners}
    start = time.perf_counter()
    while time.perf_counter() - start < budget_s or min(len(t) for t in times.values()) < 5:
        for name, run in runners.items():
            run()  # the first call after a switch wakes this engine's threads: not timed
            block_start = time.perf_counter()
            while time.perf_counter() - block_start < block_s:
                t0 = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t)) for name, t in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="0.3 s per case instead of 2 s")
    parser.add_argument("--out", help="write the markdown table here")
    args = parser.parse_args(argv)
    budget = 0.3 if args.quick else 2.0
    rows = []
    header = ("| workload | cell | rnnfast 1t | rnnfast 2t | ort 1t | ort 2t | best rnnfast / best peer | "
              "GFLOP/s | % of 2-core peak | target | met |")
    print(header)
    print("|" + "---|" * 11)
    for workload in WORKLOADS:
        for cell in CELLS:
            if workload == "stream" and cell == "bilstm":
                continue
            case = make_case(workload, cell)
            runners = {f"rnnfast {n}t": rnnfast_runner(case, n) for n in (1, 2)}
            runners.update({f"ort {n}t": ort_runner(case, n) for n in (1, 2)})
            med = interleaved_medians(runners, budget)
            ours = min(med["rnnfast 1t"], med["rnnfast 2t"])
            peer = min(med["ort 1t"], med["ort 2t"])
            ratio = peer / ours
            gflops = case.flops / ours / 1e9
            fmt = lambda s: f"{s * 1e6:.1f} µs" if s < 1e-3 else f"{s * 1e3:.2f} ms"
            row = (f"| {workload} | {cell} | {fmt(med['rnnfast 1t'])} | {fmt(med['rnnfast 2t'])} | "
                   f"{fmt(med['ort 1t'])} | {fmt(med['ort 2t'])} | {ratio:.2f}× | {gflops:.1f} | "
                   f"{100 * gflops * 1e9 / PEAK_2CORE:.0f} % | ≥ {TARGETS[workload]}× | "
                   f"{'yes' if ratio >= TARGETS[workload] else 'no'} |")
            print(row, flush=True)
            rows.append(row)
    if args.out:
        cmd = "python bench/report.py" + (" --quick" if args.quick else "")
        with open(args.out, "w") as f:
            f.write(f"# Performance\n\nMeasured {datetime.date.today()} with `{cmd}` on the project machine "
                    f"(2 cores of an AMD EPYC Zen 3, AVX2 + FMA). Medians of interleaved rounds in one run; "
                    f"peers: onnxruntime (CPU EP, all optimisations). torch is not installed in the package's "
                    f"environment and is left out of this table.\n\n{header}\n|" + "---|" * 11 + "\n")
            f.write("\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
