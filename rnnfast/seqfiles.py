"""Reading one sequence per file for bulk scoring (rnnfast/dask.py, `rnnfast score`): .npz / .npy with numpy
(never unpickling), .wav with the standard library's wave module (PCM 8/16/24/32-bit, as float32 in [-1, 1),
[time] for mono, [time, channels] otherwise). Errors are FileError (a ValueError) naming the file."""
from __future__ import annotations

import os
import wave
import zipfile
import zlib

import numpy as np


class FileError(ValueError):
    """An input file that cannot be read as a sequence; the message names it."""


def read_sequence(path, key: str | None = None, sample_rate: int | None = None) -> np.ndarray:
    """The sequence in `path`. A .npz holds it under `key` (the model's first input name), or as its only array.
    sample_rate: a .wav at another rate is an error (the model was trained at one rate)."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".wav":
            return _read_wav(path, sample_rate)
        if ext in (".npz", ".npy"):
            return _read_numpy(path, key)
    except OSError as e:
        raise FileError(f"{path}: cannot read: {e.strerror or e}") from None
    raise FileError(f"{path}: not a .npz, .npy or .wav file")


def _read_numpy(path: str, key) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, zipfile.BadZipFile) as e:
        raise FileError(f"{path}: not a file numpy can read: {e}") from None
    if isinstance(data, np.ndarray):
        return data
    with data:
        names = list(data.keys())
        if key is not None and key in names:
            name = key
        elif len(names) == 1:
            name = names[0]
        else:
            raise FileError(f"{path}: holds {names}; expected one array, or one named {key!r}")
        try:
            return data[name]
        except (ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:  # a damaged member
            raise FileError(f"{path}: array {name!r} cannot be read: {type(e).__name__}: {e}") from None


_PCM = {1: ("u1", 128.0, 128), 2: ("<i2", 32768.0, 0), 4: ("<i4", 2147483648.0, 0)}


def _read_wav(path: str, sample_rate) -> np.ndarray:
    try:
        with wave.open(path, "rb") as w:
            channels, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(n)
    except (wave.Error, EOFError) as e:
        raise FileError(f"{path}: not a PCM .wav file the wave module reads: {e}") from None
    if sample_rate is not None and rate != sample_rate:
        raise FileError(f"{path}: sampled at {rate} Hz, expected {sample_rate} Hz")
    if len(raw) != n * channels * width:
        raise FileError(f"{path}: truncated: {len(raw)} bytes of samples, the header says {n * channels * width}")
    if width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16))
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        x = (ints / 8388608.0).astype(np.float32)
    elif width in _PCM:
        dtype, scale, offset = _PCM[width]
        x = ((np.frombuffer(raw, dtype).astype(np.float64) - offset) / scale).astype(np.float32)
    else:
        raise FileError(f"{path}: {8 * width}-bit samples; expected 8, 16, 24 or 32-bit PCM")
    return x if channels == 1 else x.reshape(-1, channels)


def score_file_list(model, plan, paths: list, sample_rate=None, lock=None) -> list:
    """[{"path", "score" (array or None), "error" (None, or the reason naming the file)}] in the order of `paths`;
    files are read first (outside `lock`, which the model's runs take)."""
    import contextlib

    from .batching import score_sequences

    seqs = []
    for p in paths:
        try:
            seqs.append(read_sequence(p, key=plan.input.name, sample_rate=sample_rate))
        except ValueError as e:
            seqs.append(e)
    with lock if lock is not None else contextlib.nullcontext():
        results = score_sequences(model, seqs, plan)
    return [{"path": p, "score": r, "error": None if e is None else e if p in e else f"{p}: {e}"}
            for p, (r, e) in zip(paths, results)]
