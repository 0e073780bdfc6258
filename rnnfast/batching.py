"""Scoring many variable-length sequences with one model, batch by batch: no Dask here (rnnfast/dask.py and
`rnnfast score` run this in each task, a plain loop runs it directly).

A sequence is an array [time, ...] (audio samples [time], features [time, features], token ids [time]). Sequences
are stacked along the model's batch axis (from the first input's declared shape: the axis named like "batch",
else 0) and their time axis becomes the input's time axis. A model whose run takes `sequence_lens` (PyTorch
files: a post-padded PackedSequence) gets sequences of similar length padded with zeros to the longest in the
batch and their lengths; any other model gets batches of sequences of equal shape only, so padding never changes
a result. One result per sequence, in input order: the chosen output with the batch axis taken out and, for a
padded batch, the output's time axis cut back to the sequence's length. A batch that fails is run again one
sequence at a time, so one bad sequence gives its own error and the others still get their results.
"""
from __future__ import annotations

import inspect
import re

import numpy as np

# Dimension names that mean the batch axis (the command line's random inputs read them the same way).
BATCH_DIM = re.compile(r"^(batch.*|n|b|N|B|unk__\d+_batch|.*_batch)$")
_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16}


def batch_axis(shape) -> int:
    """The axis of a declared shape named like a batch axis, else 0."""
    for i, d in enumerate(shape):
        if isinstance(d, str) and BATCH_DIM.match(d):
            return i
    return 0


def takes_sequence_lens(model) -> bool:
    """Whether the model's run takes sequence_lens (then padding is exact); otherwise sequences of equal shape
    are batched together."""
    try:
        return "sequence_lens" in inspect.signature(model.graph.run).parameters
    except (TypeError, ValueError, AttributeError):
        return False


class Plan:
    """How sequences meet one model: which input they feed, along which axes, what the other inputs get, and which
    output is the result."""

    def __init__(self, model, feeds=None, output=None, batch_size: int = 256):
        inputs, outputs = model.inputs, model.outputs
        if not inputs:
            raise ValueError(f"{model.source or 'model'}: has no inputs to feed sequences to")
        self.input = inputs[0]
        self.in_batch = batch_axis(self.input.shape)
        if len(self.input.shape) < 2 and self.input.shape:
            raise ValueError(f"{model.source or 'model'}: input {self.input.name!r} has shape {self.input.shape}; "
                             f"scoring needs a batch axis and a time axis")
        names = [o.name for o in outputs]
        if output is None:
            self.out_index = 0
        elif output in names:
            self.out_index = names.index(output)
        else:
            raise ValueError(f"{model.source or 'model'}: no output {output!r}; its outputs are {names}")
        out = outputs[self.out_index]
        self.out_batch = batch_axis(out.shape)
        in_time = [d for i, d in enumerate(self.input.shape) if i != self.in_batch][:1]
        self.out_time = None  # the output axis that follows the input's time axis (cut back after padding)
        if in_time and isinstance(in_time[0], str):
            rest = [d for i, d in enumerate(out.shape) if i != self.out_batch]
            if in_time[0] in rest:
                self.out_time = rest.index(in_time[0])
        self.dtype = _FLOAT_TYPES.get(self.input.type)
        self.feeds = dict(feeds or {})
        known = {i.name: i for i in inputs}
        for name, value in self.feeds.items():
            if name not in known or name == self.input.name:
                raise ValueError(f"{model.source or 'model'}: feeds names {name!r}, which is not one of the other "
                                 f"inputs {[i.name for i in inputs[1:]]}")
            if isinstance(value, str) and value != "zeros":
                raise ValueError(f"feeds[{name!r}]: an array or 'zeros', got {value!r}")
        self.infos = known
        self.pad = takes_sequence_lens(model)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.batch_size = batch_size

    def other_feeds(self, batch: int) -> dict:
        """The other inputs for a batch of `batch` rows; 'zeros' is the declared shape with the batch axis filled."""
        feeds = {}
        for name, value in self.feeds.items():
            if isinstance(value, str):
                info = self.infos[name]
                axis = batch_axis(info.shape)
                shape = []
                for i, d in enumerate(info.shape):
                    if i == axis:
                        shape.append(batch)
                    elif isinstance(d, int) and d >= 0:
                        shape.append(d)
                    else:
                        raise ValueError(f"feeds[{name!r}] = 'zeros': axis {i} of {info.shape} is not fixed; give "
                                         f"an array")
                value = np.zeros(shape, _FLOAT_TYPES.get(info.type, np.float32))
            feeds[name] = value
        return feeds

    def stack(self, seqs: list) -> np.ndarray:
        """[batch, time, ...] moved so the batch axis is where the model's input has it."""
        x = np.stack(seqs)
        if self.dtype is not None and x.dtype.kind in "fiub" and x.dtype != self.dtype:
            x = x.astype(self.dtype)
        return np.moveaxis(x, 0, self.in_batch) if self.in_batch else x

    def run(self, model, x: np.ndarray, lens=None) -> np.ndarray:
        feeds = {self.input.name: x, **self.other_feeds(x.shape[self.in_batch])}
        outs = model.run(feeds) if lens is None else model.run(feeds, sequence_lens=lens)
        return np.asarray(outs[self.out_index])

    def split(self, y: np.ndarray, lengths) -> list:
        """One result per row of the batch output; a padded row's time axis cut back to its length."""
        rows = np.moveaxis(y, self.out_batch, 0)
        results = []
        for row, n in zip(rows, lengths):
            if n is not None and self.out_time is not None:
                row = np.take(row, np.arange(n), axis=self.out_time)
            results.append(np.array(row))
        return results


def score_sequences(model, seqs: list, plan: Plan) -> list:
    """[(result or None, error text or None)] per sequence, in order. A sequence given as an Exception (a file that
    could not be read) keeps its error."""
    results: list = [None] * len(seqs)
    groups: dict = {}
    for i, s in enumerate(seqs):
        if isinstance(s, BaseException):
            results[i] = (None, str(s) or type(s).__name__)
            continue
        if isinstance(s, (str, bytes)):
            results[i] = (None, f"a {type(s).__name__}, not a sequence (an array [time, ...])")
            continue
        s = np.asarray(s)
        if s.ndim == 0:
            results[i] = (None, "a sequence needs a time axis, got a scalar")
            continue
        key = (s.shape[1:], s.dtype.str) if plan.pad else (s.shape, s.dtype.str)
        groups.setdefault(key, []).append((i, s))
    for members in groups.values():
        members.sort(key=lambda m: len(m[1]))  # similar lengths share a padded batch
        for start in range(0, len(members), plan.batch_size):
            _score_batch(model, plan, members[start:start + plan.batch_size], results)
    return results


def _score_batch(model, plan: Plan, members: list, results: list):
    lengths = [len(s) for _, s in members]
    try:
        if plan.pad and len(set(lengths)) > 1:
            longest = max(lengths)
            padded = [np.concatenate([s, np.zeros((longest - len(s),) + s.shape[1:], s.dtype)]) for _, s in members]
            y = plan.run(model, plan.stack(padded), lens=np.asarray(lengths, np.int64))
            rows = plan.split(y, lengths)
        else:
            rows = plan.split(plan.run(model, plan.stack([s for _, s in members])), [None] * len(members))
    except (ValueError, MemoryError) as e:
        if len(members) == 1:
            results[members[0][0]] = (None, str(e) or type(e).__name__)
            return
        for m in members:  # find which sequence is at fault; the others keep their results
            _score_batch(model, plan, [m], results)
        return
    for (i, _), row in zip(members, rows):
        results[i] = (row, None)
