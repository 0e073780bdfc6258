"""rnnfast under two kernel tables, timed in one process with the tables interleaved, onnxruntime beside them.

    python bench/isa_ab.py [--tables avx2,avx512] [--only thru,tiny,stream] [--cells lstm,lstm2,gru,rnn,bilstm]
                           [--models crnn] [--threads 1,2] [--rounds 15] [--block 0.05]

The kernel table is process-wide; it is switched between blocks with rnnfast._core.isa_select (nothing runs while
it changes), so every table meets the same machine state round after round, which separate runs with RNNFAST_ISA
cannot give on a shared machine. Each round times every runner for a short block (one untimed call first), in an
order rotated every round, with a pause after each block (bench/report.py says why). Before timing, each model's
outputs under every table are compared: the tables must give the same bits (tests/test_isa_tables.py).
Prints per case the median call time of each runner and each table's time over the first table's."""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the source tree, when not installed
from timing import fmt_time, time_block  # noqa: E402


def recurrent_cases(only, cells, threads):
    """(label, {runner name: run}, whether a call's output depends only on its inputs) per workload x cell, from
    bench/workloads.py (a stream step carries its state to the next)."""
    import workloads as wl

    for workload in only:
        for cell in cells:
            case = wl.make_case(workload, cell)
            runners = {}
            for t in threads:
                runners[f"rnnfast {t}t"] = wl.rnnfast_runner(case, t)
                runners[f"ort {t}t"] = wl.ort_runner(case, t)
            yield f"{workload} {cell}", runners, workload != "stream"


def whole_model_cases(models, threads):
    import whole_models as wm

    for w in wm.workloads(models=models):
        runners = {}
        for t in threads:
            runners[f"rnnfast {t}t"] = wm.rnnfast_runner(w, t).unit
            runners[f"ort {t}t"] = wm.ort_runner(w, t).unit
        yield w.name, runners, True  # a streaming loop starts from the record's initial state each time


def same_bits(run, tables, select):
    outs = []
    for table in tables:
        select(table)
        out = run()
        outs.append([np.asarray(a).tobytes() for a in (out.values() if isinstance(out, dict) else
                                                         out if isinstance(out, (list, tuple)) else [out])])
    return all(o == outs[0] for o in outs[1:])


def time_case(runners, tables, select, rounds, block_s, pause_s=0.05):
    """{(runner, table or None): [median of each block]} over interleaved rounds."""
    keys = [(name, table) for name in runners for table in (tables if name.startswith("rnnfast") else [None])]
    blocks = {k: [] for k in keys}
    for r in range(rounds):
        for name, table in keys[r % len(keys):] + keys[:r % len(keys)]:
            if table:
                select(table)
            blocks[(name, table)].append(float(np.median(time_block(runners[name], block_s))))
            time.sleep(pause_s)
    return {k: float(np.median(v)) for k, v in blocks.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", default="avx2,avx512")
    parser.add_argument("--only", default="", help="recurrent workloads of bench/workloads.py (thru, tiny, stream...)")
    parser.add_argument("--cells", default="lstm,lstm2,gru,rnn,bilstm")
    parser.add_argument("--models", default="", help="whole models of bench/whole_models.py (crnn, vad, ...)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--block", type=float, default=0.05, help="seconds per block")
    args = parser.parse_args()

    from rnnfast import _core

    tables = args.tables.split(",")
    missing = [t for t in tables if t not in _core.isa_supported()]
    if missing:
        sys.exit(f"isa_ab: {missing} not supported here (supported: {_core.isa_supported()})")
    threads = [int(t) for t in args.threads.split(",")]
    before = _core.isa_selected()
    cases = []
    if args.only:
        cases += recurrent_cases(args.only.split(","), args.cells.split(","), threads)
    if args.models:
        cases += whole_model_cases(args.models.split(","), threads)
    head = f"{'case':<34} {'runner':<11}" + "".join(f"{t:>11}" for t in tables) + "".join(
        f" {t}/{tables[0]:<6}" for t in tables[1:]) + f"{'ort':>11}"
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} rounds {args.rounds} x {args.block * 1e3:.0f} ms blocks\n{head}")
    try:
        for label, runners, repeatable in cases:
            for name, run in runners.items():
                if repeatable and name.startswith("rnnfast") and not same_bits(run, tables, _core.isa_select):
                    print(f"{label}: {name} outputs differ between {tables}: not timed")
                    return 1
            med = time_case(runners, tables, _core.isa_select, args.rounds, args.block)
            for t in threads:
                times = [med[(f"rnnfast {t}t", table)] for table in tables]
                ort = fmt_time(med[(f"ort {t}t", None)])
                print(f"{label:<34} {f'{t}t':<11}" + "".join(f"{fmt_time(x):>11}" for x in times)
                      + "".join(f" {x / times[0]:>13.2f}" for x in times[1:]) + f"{ort:>11}", flush=True)
    finally:
        _core.isa_select(before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
