"""`rnnfast bench FILE`: this model's speed in rnnfast against onnxruntime, on the same input."""
from __future__ import annotations

import argparse
import statistics
import time

from .codes import EXIT_CODES_HELP
from .common import (add_model_arguments, executor_info, executor_line, feeds_text, inputs_info, load_model,
                     non_negative_float, non_negative_int, positive_float, positive_int, report)
from .compare import (DEFAULT_TOLERANCE, TOLERANCE_HELP, OnnxRuntime, error_line, errors, onnx_bytes,
                      paired_outputs, with_zero_states, within)
from .inputs import add_input_arguments, input_plan, make_feeds, run_checked
from .progress import Progress, wanted

BLOCK_SECONDS = 0.1  # each timing block runs about this long, so blocks of the two runtimes interleave finely


def add_parser(sub):
    p = sub.add_parser(
        "bench", help="time a model in rnnfast against onnxruntime on the same input",
        description="Run FILE in rnnfast and in onnxruntime (on the ONNX file itself, or on the model's ONNX "
                    "export) on the same input (random where --inputs / --input / --value do not set it). The "
                    "outputs are compared first; if they disagree beyond the tolerance nothing is timed and the "
                    "command exits 1. Then the two runtimes alternate in "
                    "timing blocks of about 0.1 s each until --seconds have passed, so that both see the same "
                    "machine load; the median time per call of each runtime and their ratio are printed. Both "
                    "use --threads threads (default: rnnfast's default, OMP_NUM_THREADS or every core). When "
                    "onnxruntime cannot run the model (not installed, no ONNX form, refused), rnnfast is timed "
                    "alone and the reason printed. A progress bar is shown on stderr when it is a terminal.",
        epilog=EXIT_CODES_HELP)
    add_model_arguments(p)
    add_input_arguments(p)
    p.add_argument("--seq-len", type=positive_int, default=100, metavar="T",
                   help="sequence length where the model leaves it open (default 100)")
    p.add_argument("--batch", type=positive_int, default=1, metavar="B", help="batch size (default 1)")
    p.add_argument("--threads", type=positive_int, metavar="N", help="threads for both runtimes")
    p.add_argument("--seconds", type=positive_float, default=5.0, metavar="S", help="total timing time (default 5)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the random input (default 0)")
    p.add_argument("--tolerance", type=non_negative_float, default=DEFAULT_TOLERANCE, metavar="TOL",
                   help=f"for the output check: {TOLERANCE_HELP} (default {DEFAULT_TOLERANCE:g})")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show or hide the progress bar on stderr (default: shown when stderr is a terminal)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return p


def _reps(fn) -> int:
    start = time.perf_counter()
    fn()
    return max(1, int(BLOCK_SECONDS / max(time.perf_counter() - start, 1e-7)))


def _time_blocks(runners: dict, seconds: float, progress: Progress) -> dict:
    """Interleaved blocks: per runtime, the list of per-call times of each block."""
    reps = {name: _reps(fn) for name, fn in runners.items()}
    times = {name: [] for name in runners}
    start = time.perf_counter()
    while True:
        for name, fn in runners.items():
            t0 = time.perf_counter()
            for _ in range(reps[name]):
                fn()
            times[name].append((time.perf_counter() - t0) / reps[name])
        elapsed = time.perf_counter() - start
        progress.update(elapsed, "  ".join(f"{n} {statistics.median(t) * 1e3:.3f} ms" for n, t in times.items()))
        if elapsed >= seconds:
            return {"reps": reps, "times": times}


def collect(args) -> dict:
    from .. import _core

    plan = input_plan(args)
    model, kind = load_model(args, n_threads=args.threads)
    threads = args.threads or _core.default_threads()
    feeds, source, unsure = make_feeds(plan, model, args.seq_len, args.batch, args.seed)
    names = model.output_names
    notes, checks = [f"dims guessed: {u}" for u in unsure], []
    data, how = onnx_bytes(model, args.file)
    ort = None
    if data is None:
        notes.append(f"rnnfast timed alone: {how}")
    else:
        ort = OnnxRuntime(data, threads)
        if ort.session is None:
            notes.append(f"rnnfast timed alone: {ort.error}")
            ort = None
    if ort is not None:
        ort_feeds = ort.feeds(with_zero_states(data, feeds))
        if len(ort_feeds) < len(feeds):  # an export reads only the main input and starts from zero state
            feeds = dict(zip(feeds, ort_feeds.values()))
        try:
            ort_outs = ort.session.run(None, ort_feeds)
        except Exception as e:  # onnxruntime's own exception types
            notes.append(f"rnnfast timed alone: onnxruntime refused to run it: {error_line(e)}")
            ort = None
    outs = run_checked(model, feeds, unsure, source)
    if ort is not None:
        for name, got, want in paired_outputs(names, outs, ort.output_names, ort_outs):
            err = errors(got, want)
            checks.append({"output": name, **err, "ok": within(err, args.tolerance)})
    info = {"file": args.file, "format": kind, "threads": threads, "onnx": how if ort is not None else None,
            "inputs": inputs_info(feeds),
            "checks": checks, "notes": notes, "ok": all(c["ok"] for c in checks), "_feeds": feeds}
    if not info["ok"]:
        return info
    runners = {"rnnfast": lambda: model.run(feeds)}
    if ort is not None:
        runners["onnxruntime"] = lambda: ort.session.run(None, ort_feeds)
    progress = Progress(args.seconds, "bench", wanted(args.progress) and not args.json)
    try:
        timing = _time_blocks(runners, args.seconds, progress)
    finally:
        progress.close()
    info["blocks"] = len(timing["times"]["rnnfast"])
    info["calls_per_block"] = timing["reps"]
    info["median_ms"] = {n: statistics.median(t) * 1e3 for n, t in timing["times"].items()}
    info["min_ms"] = {n: min(t) * 1e3 for n, t in timing["times"].items()}
    if ort is not None:
        info["ratio"] = info["median_ms"]["onnxruntime"] / info["median_ms"]["rnnfast"]
    info.update(executor_info(model))
    compiled = getattr(model.graph, "compiled", None)
    if compiled is not None:  # where the C call's time goes, by op
        call = getattr(model.graph, "compiled_call", None)  # a chain's compiled variant for these feeds
        compiled, arrays = call(feeds) if call else (compiled, [feeds[n] for n in compiled.input_names])
        per_node = compiled.profile(arrays, n_runs=20)
        total = sum(t for _, _, t in per_node) or 1.0
        shares = {}
        for _, op, t in per_node:
            shares[op] = shares.get(op, 0.0) + t / total
        info["op_share"] = dict(sorted(shares.items(), key=lambda kv: -kv[1]))
    return info


def print_text(info: dict, feeds: dict):
    print(f"{info['file']} ({info['format']}), {info['threads']} thread(s)")
    if "executor" in info:
        print(executor_line(info))
    if info.get("op_share"):
        print("time in the C call by op: " + ", ".join(
            f"{'outside C (onnx.reference)' if op == 'HOST' else op.lower()} {share:.0%}"
            for op, share in info["op_share"].items()))
    print(f"input: {feeds_text(feeds)}")
    if info["checks"]:
        print(f"outputs checked against onnxruntime ({info['onnx']}) before timing: " + ", ".join(
            f"{c['output']} max abs {c['max_abs']:.3g} {'ok' if c['ok'] else 'OVER TOLERANCE'}"
            for c in info["checks"]))
    for note in info["notes"]:
        print(f"note: {note}")
    if not info["ok"]:
        print("result: FAIL, the outputs disagree; nothing was timed")
        return
    print(f"timing: {info['blocks']} interleaved blocks per runtime, calls per block "
          + ", ".join(f"{n} {r}" for n, r in info["calls_per_block"].items()))
    print(f"{'runtime':<12}  {'median ms':>12}  {'min ms':>12}")
    for name, median in info["median_ms"].items():
        print(f"{name:<12}  {median:>12.4f}  {info['min_ms'][name]:>12.4f}")
    if "ratio" in info:
        r = info["ratio"]
        print(f"ratio: {r:.2f} (onnxruntime median / rnnfast median: rnnfast is "
              f"{f'{r:.2f}x faster' if r >= 1 else f'{1 / r:.2f}x slower'})")


def main(args) -> int:
    return report(args, collect(args), print_text)
