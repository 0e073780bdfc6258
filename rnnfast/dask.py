"""Bulk scoring on Dask: a Dask array of sequences, a Bag or DataFrame column of variable-length sequences, or a list
of files (.npz / .npy / .wav), scored by one model, results in input order. Needs `pip install "rnnfast[dask]"`;
`import rnnfast` never imports this module or dask.

The model travels once per worker: it enters the task graph as one key holding its source bytes and load options
(rnnfast/portable.py), which each worker fetches once and keeps; every task on that worker asks the process cache for
the model with the worker's thread count, so the packed weights are built once per worker process. A worker's cores
are what Dask gives it (`--nthreads`, dask-jobqueue's cores / processes); its runs take turns (one lock per model per
process) and each runs on all of those cores, so a worker never asks for more threads than it has, while its other
task threads read and decode the next files. Without a distributed client (Dask's local schedulers) the cores are the
process's CPUs.

How sequences are batched and results cut per sequence: rnnfast/batching.py. Docs: docs/dask.md.
"""
from __future__ import annotations

import os
import threading

import numpy as np

import dask
import dask.array as da

from . import portable
from .batching import Plan, score_sequences
from .seqfiles import score_file_list

__all__ = ["ship", "score_array", "score_bag", "score_dataframe", "score_files"]

# (shipped model's key, cores) -> (model, lock its runs take turns on): a task finds its model without hashing the
# model bytes again.
_here: dict = {}
_run_locks_guard = threading.Lock()


def ship(model):
    """The model as one Dask key (its bytes and load options, named by their content hash): tasks that take it
    make each worker fetch it once. Refuses now, not on a worker, a model that cannot be pickled."""
    origin = portable.origin_of(model)
    return dask.delayed(origin, name=f"rnnfast-model-{origin.key[:20]}", pure=True, traverse=False)


def worker_cores() -> int:
    """The cores this task's worker has: a dask.distributed worker's thread count, else the process's CPUs."""
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _model_here(origin):
    """(model built in this process with this worker's thread count, the lock its runs take turns on)."""
    cores = worker_cores()
    with _run_locks_guard:
        here = _here.get((origin.key, cores))
    if here is not None:
        return here
    model = portable.load_origin(origin.with_options(n_threads=cores))
    with _run_locks_guard:
        here = _here.setdefault((origin.key, cores), (model, threading.Lock()))
        while len(_here) > portable.CACHE_SIZE:
            del _here[next(iter(_here))]
    return here


def _score_block(origin, plan: Plan, x):
    model, lock = _model_here(origin)
    with lock:
        return plan.run(model, np.asarray(x))


def _score_list(origin, plan: Plan, seqs: list) -> list:
    model, lock = _model_here(origin)
    with lock:
        return score_sequences(model, seqs, plan)


def score_array(model, x, feeds=None, output=None):
    """Score a Dask (or numpy) array laid out as the model's first input, chunked only along the batch axis (it is
    rechunked so), one run per chunk. Returns the chosen output (default: the first) as a Dask array, chunked along
    its batch axis like the input. feeds: the other inputs, each an array or 'zeros' (the declared shape, the
    batch axis the chunk's); e.g. a VAD: feeds={"state": "zeros", "sr": np.int64(16000)}."""
    plan = Plan(model, feeds, output)
    x = da.asarray(x)
    axis = plan.in_batch
    if x.ndim != len(plan.input.shape):
        raise ValueError(f"{model.source or 'model'}: input {plan.input.name!r} is {plan.input.shape}, got an array "
                         f"of {x.ndim} axes {x.shape}")
    if any(np.isnan(c) for c in x.chunks[axis]):
        raise ValueError("the array's chunk sizes along the batch axis are unknown; call x.compute_chunk_sizes()")
    x = x.rechunk({i: -1 for i in range(x.ndim) if i != axis})
    probe = plan.run(model, np.zeros(tuple(1 if i == axis else n for i, n in enumerate(x.shape)), x.dtype))
    out_chunks = tuple(x.chunks[axis] if i == plan.out_batch else (n,) for i, n in enumerate(probe.shape))
    # One task per block: every axis but the batch one leaves the block, the output's other axes come in.
    return da.map_blocks(_score_block, ship(model), plan, x, dtype=probe.dtype, chunks=out_chunks,
                         drop_axis=[i for i in range(x.ndim) if i != axis],
                         new_axis=[i for i in range(probe.ndim) if i != plan.out_batch] or None)


def score_bag(model, bag, feeds=None, output=None, batch_size: int = 256):
    """Score a Dask Bag of sequences (arrays [time, ...], lengths free): a Bag of results in the same order, each the
    output for one sequence (batch axis taken out). A sequence that fails raises ValueError naming its position in
    its partition and the reason; score_dataframe reports such rows instead."""
    plan = Plan(model, feeds, output, batch_size)
    return bag.map_partitions(_bag_partition, ship(model), plan)


def _bag_partition(seqs, origin, plan):
    out = []
    for i, (row, error) in enumerate(_score_list(origin, plan, list(seqs))):
        if error is not None:
            raise ValueError(f"sequence {i} of its partition: {error}")
        out.append(row)
    return out


def score_dataframe(model, df, column: str, feeds=None, output=None, batch_size: int = 256):
    """Score the sequences in one column of a Dask DataFrame (arrays in an object column). Returns a DataFrame with
    the same index and partitions: `score` (the output for that row's sequence, an array) and `error` (None, or why
    that row has no score)."""
    import pandas as pd

    if column not in df.columns:
        raise ValueError(f"the DataFrame has no column {column!r}; its columns are {list(df.columns)}")
    if df[column].dtype != object:
        raise ValueError(f"column {column!r} is of dtype {df[column].dtype}, not object (arrays): Dask turns object "
                         f"columns into strings unless the DataFrame is made under dask.config.set("
                         f"{{'dataframe.convert-string': False}})")
    plan = Plan(model, feeds, output, batch_size)
    meta = pd.DataFrame({"score": pd.Series([], dtype=object), "error": pd.Series([], dtype=object)})
    return df[column].map_partitions(_frame_partition, ship(model), plan, meta=meta)


def _frame_partition(series, origin, plan):
    import pandas as pd

    results = _score_list(origin, plan, list(series))
    return pd.DataFrame({"score": pd.Series([r for r, _ in results], index=series.index, dtype=object),
                         "error": pd.Series([e for _, e in results], index=series.index, dtype=object)})


def score_files(model, paths, feeds=None, output=None, batch_size: int = 256, files_per_task: int = 64,
                sample_rate: int | None = None):
    """Score files, one sequence each (.npz: the array named after the model's first input, or its only one; .npy;
    .wav: samples as float32, [time] mono or [time, channels]), `files_per_task` files to a task. Returns a Dask
    DataFrame in the order of `paths`: `path`, `score` (an array) and `error` (None, or the reason naming the file:
    it could not be read, a .wav at another rate than `sample_rate`, or the model refused it). A bad file never
    stops the others."""
    import dask.dataframe as dd
    import pandas as pd

    meta = pd.DataFrame({"path": pd.Series([], dtype=object), "score": pd.Series([], dtype=object),
                         "error": pd.Series([], dtype=object)})
    parts = [dask.delayed(pd.DataFrame.from_records, pure=True)(part, columns=list(meta.columns))
             for part in file_tasks(model, paths, feeds, output, batch_size, files_per_task, sample_rate)]
    with dask.config.set({"dataframe.convert-string": False}):  # else Dask turns the arrays into their text
        return dd.from_delayed(parts, meta=meta, verify_meta=False)


def file_tasks(model, paths, feeds=None, output=None, batch_size: int = 256, files_per_task: int = 64,
               sample_rate: int | None = None) -> list:
    """score_files' work as Delayed objects, one per `files_per_task` files in order, each computing to a list of
    {"path", "score", "error"} records (what `rnnfast score` follows for its progress bar)."""
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("no input files")
    if isinstance(files_per_task, bool) or not isinstance(files_per_task, int) or files_per_task < 1:
        raise ValueError(f"files_per_task must be an integer >= 1, got {files_per_task!r}")
    plan = Plan(model, feeds, output, batch_size)
    shipped = ship(model)
    return [dask.delayed(_files_partition, pure=True)(paths[i:i + files_per_task], shipped, plan, sample_rate)
            for i in range(0, len(paths), files_per_task)]


def _files_partition(paths, origin, plan, sample_rate):
    model, lock = _model_here(origin)
    return score_file_list(model, plan, paths, sample_rate, lock)
