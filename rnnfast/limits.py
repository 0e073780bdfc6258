"""How much memory a file may make rnnfast allocate: one place for the limit the C executor plans against
(RNNFAST_MAX_MEMORY, default 4 GiB per run) and for what the load may compute from constants.

A 146-byte ONNX file can declare ConstantOfShape([40000, 40000]): computing such a constant at load would allocate
6.4 GB before any input arrived. Constants larger than FOLD_MAX_BYTES are therefore left to the run, where the
executor's plan (or the node-by-node op) checks them against the limit before allocating."""
from __future__ import annotations

import os

import numpy as np

from .errors import MemoryLimitError

DEFAULT_MAX_MEMORY = 4 << 30
FOLD_MAX_BYTES = 64 << 20  # a constant computed at load; weights are stored in the file, not computed


def memory_limit_from_env() -> int:
    """RNNFAST_MAX_MEMORY (bytes, or with a K/M/G suffix): the most one graph run may allocate; 0 or unset: the
    default (4 GiB)."""
    text = os.environ.get("RNNFAST_MAX_MEMORY", "").strip().upper()
    if not text:
        return 0
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1], 1)
    try:
        value = int(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise ValueError(f"RNNFAST_MAX_MEMORY={text!r}: expected a number of bytes, e.g. 2G or 500M") from None
    if value < 0:
        raise ValueError(f"RNNFAST_MAX_MEMORY={text!r}: expected a positive size")
    return value


def nbytes(shape, dtype) -> int:
    n = np.dtype(dtype).itemsize
    for d in shape:
        n *= max(int(d), 0)
    return n


def generated_bytes(op: str, args):
    """The output size (bytes, a float: a declared size may not fit an int64) of the operators that make large
    arrays from small inputs without a shape rule of rnnfast's own (Tile, Range, OneHot: they run through
    onnx.reference, which would allocate first), from their input arrays; None for other ops or unreadable inputs."""
    try:
        x = np.asarray(args[0])
        if op == "Tile":
            return float(x.nbytes) * float(np.prod(np.asarray(args[1]).astype(np.float64)))
        if op == "Range":
            start, limit, delta = (float(np.asarray(v).reshape(-1)[0]) for v in args[:3])
            return max(np.ceil((limit - start) / delta), 0.0) * x.itemsize if delta else None
        if op == "OneHot":
            depth = abs(float(np.asarray(args[1]).reshape(-1)[0]))
            return float(x.size) * depth * np.asarray(args[2]).itemsize
    except (AttributeError, IndexError, TypeError, ValueError, ArithmeticError):
        return None
    return None


def check_allocation(shape, dtype, where: str):
    """MemoryLimitError (a ValueError) naming `where` if an array of this shape would exceed the memory limit,
    before it is made."""
    check_bytes(nbytes(shape, dtype), where, f"an output of shape {[int(d) for d in shape]}")


def check_bytes(size, where: str, what: str = "an output"):
    limit = memory_limit_from_env() or DEFAULT_MAX_MEMORY
    if size is not None and size > limit:
        raise MemoryLimitError(f"{where}: {what} would need {int(size)} bytes, more than the memory limit ({limit} "
                               f"bytes; RNNFAST_MAX_MEMORY sets it)")
