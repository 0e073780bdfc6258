"""The contention table of issue 15: every workload of the report timed beside N busy processes (bench/busy.py).

    python bench/report.py --contention 0,1,2,4 [--quick] [--only stream,thru] [--out FILE.md]

Per workload and cell, and per N: rnnfast with its default threads, 1 and 2 threads; onnxruntime with its default,
1 and 2 intra-op threads; torch 1 and 2 threads when the report can time it. Each time is the median per call over
interleaved rounds (report.py's blocks, the busy processes running throughout) with the quietest round's median
beside it, so typical and best can be told apart. The ratios are the issue's targets:
  - default / 1t: rnnfast's default threads against its own 1-thread time (target ≤ 1.25×);
  - ort/rnnfast at the same request (default, 1t, 2t): onnxruntime's time over rnnfast's (target ≥ 1×).
Every runner's outputs are checked against the float64 reference (and rnnfast's for bit-identity across its thread
counts) once per case, before any timing; a runner that is off is reported and not timed."""
from __future__ import annotations

import datetime
import os
import time

import numpy as np

from busy import busy_processes
from others import OthersMeter
from report import Local, interleaved_blocks, start_torch, timed_quietly, versions
from timing import fmt_time as fmt
from workloads import (CELLS, WORKLOADS, checked_outputs, expected_output, make_case, ort_runner, rnnfast_runner,
                       spec_of, torch_runner)

REQUESTS = (None, 1, 2)  # None: the engine's default
QUICK_CELLS = ("lstm", "bilstm", "lstm2")  # one cell, a bidirectional layer and a stack: where the issue saw collapse
DEFAULT_LIMIT, SAME_LIMIT = 1.25, 1.0
SETTLE_S = 0.3  # the busy interpreters' start-up, so the first round already runs beside them


def _label(engine, n):
    return f"{engine} {'default' if n is None else f'{n}t'}"


def build_runners(case, torch_workers, problems):
    """{label: runner} for the case, each checked against the float64 reference; rnnfast's thread counts must
    also agree to the bit (its results do not depend on the thread count)."""
    want = expected_output(case)
    makers = {"rnnfast": (rnnfast_runner, REQUESTS), "ort": (ort_runner, REQUESTS)}
    if torch_workers == "in-process":
        makers["torch"] = (torch_runner, (1, 2))
    runners = {}
    for engine, (make, requests) in makers.items():
        for n in requests:
            runners[_label(engine, n)] = Local(make(case, n))
    if isinstance(torch_workers, dict):
        for n in (1, 2):
            runners[_label("torch", n)] = torch_workers[n].remote(f"{case.workload} {case.cell_name}", spec_of(case))
    outputs = checked_outputs(case, runners, want, problems)
    ours = [outputs[_label("rnnfast", n)] for n in REQUESTS if _label("rnnfast", n) in outputs]
    if any(not np.array_equal(ours[0], o) for o in ours[1:]):
        problems.append(f"{case.workload} {case.cell_name}: rnnfast's outputs differ between thread counts")
        print("  !", problems[-1], flush=True)
    return runners


def median_and_quietest(runners, budget):
    """{label: (median per call over all rounds, the quietest round's median)}."""
    blocks = interleaved_blocks(runners, budget)
    return {name: (float(np.median(np.concatenate(b))), min(float(np.median(x)) for x in b))
            for name, b in blocks.items()}


def ratios(t):
    """The issue's ratios from {label: (median, quietest)}, on the medians; None where a runner is missing."""
    med = {k: v[0] for k, v in t.items()}
    out = {"default/1t": med[_label("rnnfast", None)] / med[_label("rnnfast", 1)]
           if _label("rnnfast", None) in med and _label("rnnfast", 1) in med else None}
    for n in REQUESTS:
        ours, theirs = _label("rnnfast", n), _label("ort", n)
        out[f"ort/rnnfast {_label('', n).strip()}"] = med[theirs] / med[ours] if ours in med and theirs in med \
            else None
    return out


COLUMNS = [_label("rnnfast", n) for n in REQUESTS] + [_label("ort", n) for n in REQUESTS] + \
    [_label("torch", n) for n in (1, 2)]
RATIOS = ["default/1t"] + [f"ort/rnnfast {_label('', n).strip()}" for n in REQUESTS]


def header(with_torch):
    cols = [c for c in COLUMNS if with_torch or not c.startswith("torch")]
    names = ["workload", "cell"] + [f"{c} median (quietest)" for c in cols] + \
        ["**default / 1t** (≤ 1.25)", "ort / rnnfast default", "ort / rnnfast 1t", "ort / rnnfast 2t (≥ 1)",
         "others' CPU"]
    return "| " + " | ".join(names) + " |\n|" + "---|" * len(names), cols


def line(case, t, share, cols):
    r = ratios(t)

    def ratio(key):
        v = r[key]
        if v is None:
            return "–"
        bad = v > DEFAULT_LIMIT if key == "default/1t" else v < SAME_LIMIT
        return f"**{v:.2f}×**" if bad else f"{v:.2f}×"

    cells = [case.workload, case.cell_name] + [f"{fmt(t[c][0])} ({fmt(t[c][1])})" if c in t else "–" for c in cols]
    cells += [ratio(k) for k in RATIOS] + [f"{100 * share:.0f} %"]
    return "| " + " | ".join(cells) + " |", r


def summary(rows):
    """One line per N: how many cells meet each target."""
    out = []
    for n_busy, results in rows.items():
        total = len(results)
        ok_default = sum(1 for r in results if r["default/1t"] is not None and r["default/1t"] <= DEFAULT_LIMIT)
        ok_same = sum(1 for r in results if all(r[k] is not None and r[k] >= SAME_LIMIT for k in RATIOS[1:]))
        out.append(f"- {n_busy} busy: default ≤ 1.25× own 1t in {ok_default} of {total} cells; rnnfast not slower "
                   f"than onnxruntime at every request (default, 1t, 2t) in {ok_same} of {total}.")
    return out


def run(busy_counts, quick, only, torch_python, out_path, command):
    budget = 0.3 if quick else 3.0
    attempts = 1 if quick else 2  # busy processes of our own are expected; others' load is still re-measured
    cells = QUICK_CELLS if quick else tuple(CELLS)
    torch_workers, torch_version = start_torch(torch_python)
    with_torch = torch_workers is not None
    worker_pids = [w.proc.pid for w in torch_workers.values()] if isinstance(torch_workers, dict) else []
    problems, lines, results = [], {n: [] for n in busy_counts}, {n: [] for n in busy_counts}
    head, cols = header(with_torch)
    try:
        for workload in (only.split(",") if only else WORKLOADS):
            for cell in cells:
                case = make_case(workload, cell)
                runners = build_runners(case, torch_workers, problems)
                for n_busy in busy_counts:
                    with busy_processes(n_busy) as pids:
                        time.sleep(SETTLE_S if n_busy else 0)
                        meter = OthersMeter([os.getpid()] + worker_pids + pids)
                        t, share = timed_quietly(runners, budget, meter, attempts=attempts,
                                                 measure=median_and_quietest)
                    text, r = line(case, t, share, cols)
                    lines[n_busy].append(text)
                    results[n_busy].append(r)
                    print(f"{n_busy} busy {text}", flush=True)
                for r in runners.values():
                    getattr(r, "close", lambda: None)()
    finally:
        if isinstance(torch_workers, dict):
            for w in torch_workers.values():
                w.close()
    text = [f"\n## Beside {n} busy process{'es' if n != 1 else ''}\n\n{head}\n" + "\n".join(lines[n])
            for n in busy_counts]
    report = "\n".join(text) + "\n\n" + "\n".join(summary(results)) + "\n"
    if problems:
        report += "\nNot timed or not bit-identical:\n\n" + "".join(f"- {p}\n" for p in problems)
    print(report)
    if out_path:
        ort_version, commit = versions()
        torch_note = f"torch {torch_version}" if with_torch else "torch not timed (not importable, no --torch-python)"
        with open(out_path, "w") as f:
            f.write(f"# Contention\n\nMeasured {datetime.date.today()} at commit {commit} with\n\n    {command}\n\n"
                    f"onnxruntime {ort_version}; {torch_note}. The machine has 2 cores and is shared with other "
                    "work: times are noisy (others' CPU says how much of the machine other processes held while a "
                    "row was timed, beside our own busy processes); compare within a row only. Each time is the "
                    "median per call over interleaved rounds, the quietest round's median in brackets. Ratios "
                    "from medians: default / 1t is rnnfast's default threads over its own 1-thread time (target "
                    "≤ 1.25×); ort / rnnfast is onnxruntime's time over rnnfast's for the same thread request "
                    "(target ≥ 1×). Misses in bold.\n" + report)
    return 0
