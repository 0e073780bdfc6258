"""Bulk scoring throughput on Dask (rnnfast/dask.py) against a plain loop, for the VAD whole-model fixture
(tests/data/onnx/graph/vad.ts.onnx: STFT front end + LSTM + head, 512-sample chunks at 16 kHz, zero state).

    python bench/dask_scoring.py                   # 4000 chunks, 250 a task, 5 interleaved rounds
    python bench/dask_scoring.py --chunks 2000 --rounds 3

What it prints:
  1. Sequences per second of a plain loop in this process (one model.run per task-sized batch, 1 thread: what one
     worker does), of a LocalCluster of 1 worker process and of 2 worker processes (1 thread each), over the same
     synthetic chunks. On the clusters the chunks are in the workers' memory first (persisted, as if read there), so
     the time is the scoring and the scheduling, not the transfer of the input from this process. The three are run
     in turn, round after round, with both clusters started first, so a spell of load from the machine's other
     users hits all three alike: compare the ratios from one run, which say more than the absolute figures on a
     shared machine.
  2. The scheduler's cost per task: 1-worker wall time minus the loop's, divided by the number of tasks, for
     several rows-per-task sizes (the array is split along the batch axis), and the smallest size at which that
     cost is under 10% of a task's compute (the chunk size that amortizes it); and the cost of a task that does
     nothing (400 of them through the 1-worker cluster), with the rows a task needs for it to be under 10%.
Every Dask result is checked equal to the loop's before its time counts.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # an in-place build of rnnfast

import numpy as np  # noqa: E402

VAD = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "data", "onnx", "graph",
                   "vad.ts.onnx")
FEEDS = {"state": "zeros", "sr": np.int64(16000)}


def loop(model, x, rows):
    return np.concatenate([model.run({"input": x[i:i + rows], "state": np.zeros((2, len(x[i:i + rows]), 64),
                                                                               np.float32),
                                      "sr": np.int64(16000)})[0] for i in range(0, len(x), rows)])


def _noop(i):
    return i


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=4000, help="synthetic 512-sample chunks (default 4000)")
    parser.add_argument("--rows", type=int, default=250, help="chunks per task in part 1 (default 250)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--sizes", default="5,25,100,250,1000", help="rows per task in part 2")
    args = parser.parse_args(argv)

    import dask.array as da
    import distributed
    from distributed import Client, LocalCluster

    import rnnfast
    from rnnfast import dask as rdask

    model = rnnfast.load(VAD, n_threads=1)
    x = (np.random.default_rng(0).standard_normal((args.chunks, 512)) * 0.1).astype(np.float32)
    clusters = {n: LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
                for n in (1, 2)}
    clients = {n: Client(c, set_as_default=False) for n, c in clusters.items()}
    try:
        resident = {}

        def on(n, rows):
            """Score the chunks, already in the workers' memory (as if read there), rows a task; result to here."""
            if (n, rows) not in resident:
                resident[n, rows] = clients[n].persist(da.from_array(x, chunks=(rows, -1)))
                with clients[n].as_current():
                    distributed.wait(resident[n, rows])

            def run():
                return clients[n].compute(rdask.score_array(model, resident[n, rows], feeds=FEEDS)).result()
            return run

        expected = loop(model, x, args.rows)
        for n in clients:  # warm: each worker fetches and builds the model once, outside the timings
            assert np.array_equal(on(n, args.rows)(), expected)
        times = {"loop": [], "1 worker": [], "2 workers": []}
        for _ in range(args.rounds):
            for name, fn in (("loop", lambda: loop(model, x, args.rows)), ("1 worker", on(1, args.rows)),
                             ("2 workers", on(2, args.rows))):
                t, out = timed(fn)
                assert np.array_equal(out, expected), name
                times[name].append(t)
        base = statistics.median(times["loop"])
        print(f"{args.chunks} chunks of 512 samples, {args.rows} a task ({-(-args.chunks // args.rows)} tasks), "
              f"median of {args.rounds} interleaved rounds (shared machine: read the ratios)")
        print(f"{'':10} {'seq/s':>9} {'vs loop':>8}")
        for name, ts in times.items():
            t = statistics.median(ts)
            print(f"{name:10} {args.chunks / t:9.0f} {base / t:7.2f}x")

        print("\nscheduler cost per task (1 worker - loop, over the tasks), interleaved per size:")
        print(f"{'rows/task':>9} {'tasks':>6} {'loop ms':>8} {'1 worker ms':>11} {'per task ms':>11} "
              f"{'of compute':>10}")
        amortized = None
        for rows in [int(s) for s in args.sizes.split(",")]:
            ref = loop(model, x, rows)
            lt, wt = [], []
            for _ in range(args.rounds):
                t, _ = timed(lambda: loop(model, x, rows))
                lt.append(t)
                t, out = timed(on(1, rows))
                assert np.array_equal(out, ref), rows
                wt.append(t)
            n_tasks = -(-args.chunks // rows)
            lm, wm = statistics.median(lt), statistics.median(wt)
            per_task = (wm - lm) / n_tasks
            share = per_task / (lm / n_tasks)
            if amortized is None and share < 0.1:
                amortized = rows
            print(f"{rows:9d} {n_tasks:6d} {lm * 1e3:8.1f} {wm * 1e3:11.1f} {per_task * 1e3:11.2f} {share:9.0%}")
        print(f"\nsmallest size tried whose scheduler cost is under 10% of the task's compute: "
              f"{amortized if amortized is not None else 'none'} rows per task")

        # The same cost without the model's compute in it: tasks that do nothing, through the 1-worker cluster.
        n_noop = 400
        noop = []
        for _ in range(args.rounds):
            t, _ = timed(lambda: clients[1].gather(clients[1].map(_noop, range(n_noop), pure=False)))
            noop.append(t / n_noop)
        per_row = base / args.chunks
        overhead = statistics.median(noop)
        print(f"no-op tasks: {overhead * 1e3:.2f} ms each (median of {args.rounds} rounds of {n_noop}); the loop "
              f"computes a chunk in {per_row * 1e6:.0f} us, so a task needs >= {10 * overhead / per_row:.0f} chunks "
              f"for the scheduler to cost under 10%")
    finally:
        for c in clients.values():
            c.close()
        for c in clusters.values():
            c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
