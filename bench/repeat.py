"""One workload cell's engine call timed in consecutive blocks, to show how a 2-thread run drifts between speed
modes on this VM (the same call, the same buffers, e.g. 32 ms in one block and 39 ms in the next for thru lstm).

    python bench/repeat.py thru lstm [--threads 2] [--blocks 6] [--calls 15]

Prints each block's median and minimum per call, its GFLOP/s and CPU/wall ratio (near the thread count when
no other process took a core). The output is checked against the float64 reference first, as in report.py.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the source tree, when not installed

from timing import fmt_time  # noqa: E402
from workloads import WORKLOADS, CELLS, check, engine_runner, expected_output, make_case, outputs_over_case  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", choices=sorted(w for w in WORKLOADS if w != "stream"))
    parser.add_argument("cell", choices=sorted(CELLS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--calls", type=int, default=15)
    args = parser.parse_args()
    case = make_case(args.workload, args.cell)
    run = engine_runner(case, args.threads)
    check(case, outputs_over_case(case, run), expected_output(case), f"engine {args.threads}t")
    for block in range(args.blocks):
        wall, cpu = [], []
        for _ in range(args.calls):
            t, c = time.perf_counter(), time.process_time()
            run()
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        med = float(np.median(wall))
        print(f"block {block}: median {fmt_time(med)}, min {fmt_time(min(wall))}, "
              f"{case.flops / med / 1e9:.0f} GFLOP/s, CPU/wall {np.median(cpu) / med:.2f}")


if __name__ == "__main__":
    main()
