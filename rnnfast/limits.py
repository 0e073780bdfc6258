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


def check_allocation(shape, dtype, where: str):
    """MemoryLimitError (a ValueError) naming `where` if an array of this shape would exceed the memory limit,
    before it is made."""
    limit = memory_limit_from_env() or DEFAULT_MAX_MEMORY
    size = nbytes(shape, dtype)
    if size > limit:
        raise MemoryLimitError(f"{where}: an output of shape {[int(d) for d in shape]} would need {size} bytes, more "
                         f"than the memory limit ({limit} bytes; RNNFAST_MAX_MEMORY sets it)")
