"""`rnnfast score MODEL INPUTS... --out results.parquet|npz`: score many files, here or on a Dask cluster.

Without --scheduler / --local-workers the files are scored in this process (no Dask needed); with either, by
rnnfast/dask.py's file tasks, followed one task at a time for the progress bar. A file that cannot be read or
scored gets its reason in the results' error column and the others go on."""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from .codes import EXIT_CODES_NO_CHECK_HELP, EXIT_OK
from .common import CliError, add_model_arguments, load_model
from .progress import Progress, wanted


def add_parser(sub):
    p = sub.add_parser(
        "score", help="score many .npz/.npy/.wav files with a model, here or on a Dask cluster",
        description="Run MODEL on every input file, one sequence per file (.npz: the array named after the "
                    "model's first input, or its only array; .npy; .wav: PCM samples as float32 in [-1, 1), "
                    "[time] mono or [time, channels]), batching files of similar length, and write one row per "
                    "file in input order to --out: path, score (the chosen output with the batch axis taken out), "
                    "error (empty, or why that file has no score). .parquet needs pyarrow; .npz holds `path`, "
                    "`error`, and `score` [files, ...] (NaN rows for failed files) when every score has one "
                    "shape, else `score_<i>` per scored file. --scheduler ADDRESS uses a running dask.distributed "
                    "cluster, --local-workers N starts one on this machine (both need `pip install "
                    "\"rnnfast[dask]\"`; see docs/dask.md). A progress bar is shown on stderr when it is a terminal.",
        epilog=EXIT_CODES_NO_CHECK_HELP)
    add_model_arguments(p, metavar="MODEL")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="input files (.npz, .npy, .wav)")
    p.add_argument("--out", required=True, metavar="RESULTS.parquet|RESULTS.npz", help="where to write the results")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="a dask.distributed scheduler, e.g. tcp://host:8786")
    where.add_argument("--local-workers", type=int, metavar="N", help="start a local Dask cluster of N worker "
                                                                       "processes (one thread each)")
    p.add_argument("--feed", action="append", default=[], metavar="NAME=VALUE",
                   help="another input of the model, repeatable: a number, a JSON list, or zeros (the declared "
                        "shape, batch axis filled), e.g. --feed sr=16000 --feed state=zeros")
    p.add_argument("--output", metavar="NAME", help="the model output to keep (default: the first)")
    p.add_argument("--sample-rate", type=int, metavar="HZ", help="a .wav file at another rate is an error")
    p.add_argument("--batch-size", type=int, default=256, metavar="B", help="sequences per run (default 256)")
    p.add_argument("--files-per-task", type=int, default=64, metavar="K",
                   help="files per Dask task (default 64): fewer makes finer progress and retries, more amortizes "
                        "the scheduler's cost per task")
    p.add_argument("--threads", type=int, metavar="N", help="threads per run when scoring in this process "
                                                            "(workers use their cores)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show or hide the progress bar on stderr (default: shown when stderr is a terminal)")
    return p


def parse_feeds(items: list, model) -> dict:
    feeds = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"--feed {item!r}: expected NAME=VALUE")
        if value == "zeros":
            feeds[name] = "zeros"
            continue
        try:
            parsed = json.loads(value)
        except ValueError:
            raise CliError(f"--feed {item!r}: VALUE must be a number, a JSON list or zeros") from None
        info = {i.name: i for i in model.inputs}.get(name)
        dtype = np.int64 if info is not None and "int" in info.type else np.float32
        feeds[name] = np.asarray(parsed, dtype)
    return feeds


def _check_out(path: str) -> str:
    kind = os.path.splitext(path)[1].lower()
    if kind not in (".parquet", ".npz"):
        raise CliError(f"--out {path}: results are written as .parquet or .npz; give a name ending in one of them")
    if kind == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise CliError(f"--out {path}: writing .parquet needs pyarrow, which is not installed (pip install "
                           f"pyarrow); or write --out {os.path.splitext(path)[0]}.npz") from None
    return kind


def main(args) -> int:
    kind = _check_out(args.out)
    for name, value in (("--batch-size", args.batch_size), ("--files-per-task", args.files_per_task)):
        if value < 1:
            raise CliError(f"{name} must be at least 1, got {value}")
    model, _ = load_model(args, n_threads=args.threads)
    feeds = parse_feeds(args.feed, model)
    progress = Progress(len(args.inputs), "score", wanted(args.progress), unit="files")
    try:
        if args.scheduler is None and args.local_workers is None:
            records = _score_here(model, args, feeds, progress)
        else:
            records = _score_on_dask(model, args, feeds, progress)
    finally:
        progress.close()
    write_results(records, args.out, kind)
    failed = [r for r in records if r["error"] is not None]
    print(f"scored {len(records) - len(failed)} of {len(records)} files; wrote {args.out}")
    for r in failed[:5]:
        print(f"  failed: {r['error']}", file=sys.stderr)
    if len(failed) > 5:
        print(f"  ... and {len(failed) - 5} more (see the error column)", file=sys.stderr)
    return EXIT_OK


def _plan(model, args, feeds):
    from ..batching import Plan

    return Plan(model, feeds, args.output, args.batch_size)


def _score_here(model, args, feeds, progress) -> list:
    from ..seqfiles import score_file_list

    plan = _plan(model, args, feeds)
    records = []
    step = args.batch_size
    for i in range(0, len(args.inputs), step):
        records += score_file_list(model, plan, args.inputs[i:i + step], args.sample_rate)
        progress.update(len(records), f"{sum(r['error'] is not None for r in records)} failed")
    return records


def _score_on_dask(model, args, feeds, progress) -> list:
    try:
        from distributed import Client, LocalCluster, as_completed

        from .. import dask as rdask
    except ImportError as e:
        raise CliError(f"--scheduler / --local-workers need dask.distributed ({e}); pip install \"rnnfast[dask]\"") \
            from None
    _plan(model, args, feeds)  # bad --feed / --output fail here, before a cluster starts
    if args.local_workers is not None and args.local_workers < 1:
        raise CliError(f"--local-workers must be at least 1, got {args.local_workers}")
    cluster = None
    try:
        if args.scheduler is not None:
            try:
                client = Client(args.scheduler, timeout="20s")
            except OSError as e:
                raise CliError(f"--scheduler {args.scheduler}: cannot connect: {e}") from None
        else:
            cluster = LocalCluster(n_workers=args.local_workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
        with client:
            tasks = rdask.file_tasks(model, args.inputs, feeds, args.output, args.batch_size, args.files_per_task,
                                     args.sample_rate)
            futures = client.compute(tasks)
            index = {f.key: i for i, f in enumerate(futures)}
            parts: list = [None] * len(futures)
            done = 0
            for future in as_completed(futures):
                parts[index[future.key]] = future.result()
                done += len(parts[index[future.key]])
                progress.update(done)
    finally:
        if cluster is not None:
            cluster.close()
    return [r for part in parts for r in part]


def write_results(records: list, path: str, kind: str) -> None:
    scores = [r["score"] for r in records if r["score"] is not None]
    shapes = {s.shape for s in scores}
    try:
        if kind == ".npz":
            _write_npz(records, path, shapes)
        else:
            _write_parquet(records, path, shapes)
    except OSError as e:
        raise CliError(f"{path}: cannot write: {e.strerror or e}") from None


def _write_npz(records, path, shapes):
    arrays = {"path": np.array([r["path"] for r in records]),
              "error": np.array([r["error"] or "" for r in records])}
    if len(shapes) <= 1:
        shape = next(iter(shapes), ())
        stacked = np.full((len(records),) + shape, np.nan, np.float32)
        for i, r in enumerate(records):
            if r["score"] is not None:
                stacked[i] = r["score"]
        arrays["score"] = stacked
    else:
        for i, r in enumerate(records):
            if r["score"] is not None:
                arrays[f"score_{i}"] = r["score"]
    np.savez(path, **arrays)


def _write_parquet(records, path, shapes):
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {"path": pa.array([r["path"] for r in records], pa.string()),
               "error": pa.array([r["error"] for r in records], pa.string())}
    if all(int(np.prod(s)) == 1 for s in shapes):  # one number per file (a VAD's probability): a float column
        columns["score"] = pa.array([None if r["score"] is None else float(r["score"].reshape(-1)[0])
                                     for r in records], pa.float32())
    else:
        columns["score"] = pa.array([None if r["score"] is None else r["score"].reshape(-1).tolist()
                                     for r in records], pa.list_(pa.float32()))
        columns["shape"] = pa.array([None if r["score"] is None else list(r["score"].shape) for r in records],
                                    pa.list_(pa.int64()))
    pq.write_table(pa.table(columns), path)
