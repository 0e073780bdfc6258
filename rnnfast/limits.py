"""How much memory a file may make rnnfast allocate: one budget for what a load reads (tensors, zip members, HDF5
datasets, pickle memo), for what the C executor plans per run, and for what the load may compute from constants.

The budget is rnnfast.load's `max_memory` option while that load runs (and for the runs of the model it compiles),
else RNNFAST_MAX_MEMORY, else the smaller of 4 GiB and half the physical memory. Every size a file declares is
checked against it before anything is allocated. Two more rules catch what a budget cannot: a 146-byte ONNX file can
declare ConstantOfShape([40000, 40000]), so constants larger than FOLD_MAX_BYTES are left to the run; and a 3 MB zip
member (or compressed HDF5 dataset) can inflate to 3 GB, so data that would inflate more than MAX_INFLATE_RATIO times
is refused once it passes INFLATE_FLOOR bytes (the rule Apache POI applies to zip bombs; real weights compress
less than 2x)."""
from __future__ import annotations

import contextlib
import contextvars
import os

import numpy as np

from .errors import DeclaredSizeError, MemoryLimitError

FOLD_MAX_BYTES = 64 << 20  # a constant computed at load; weights are stored in the file, not computed
MAX_INFLATE_RATIO = 100
INFLATE_FLOOR = 16 << 20

_OVERRIDE = contextvars.ContextVar("rnnfast_max_memory", default=0)


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 8 << 30


DEFAULT_MAX_MEMORY = min(4 << 30, _physical_memory() // 2)


def parse_size(value, what: str) -> int:
    """Bytes from an int or a text with an optional K/M/G suffix ("2G", "500M")."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip().upper()
    else:
        raise ValueError(f"{what}={value!r}: expected a number of bytes, e.g. 2G or 500M")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    try:
        size = int(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise ValueError(f"{what}={value!r}: expected a number of bytes, e.g. 2G or 500M") from None
    if size < 0:
        raise ValueError(f"{what}={value!r}: expected a positive size")
    return size


def memory_limit_from_env() -> int:
    """The budget set for this load (max_memory) or by RNNFAST_MAX_MEMORY (bytes, or with a K/M/G suffix); 0 when
    neither is set (the C executor then applies its own 4 GiB default)."""
    override = _OVERRIDE.get()
    if override:
        return override
    text = os.environ.get("RNNFAST_MAX_MEMORY", "").strip()
    return parse_size(text, "RNNFAST_MAX_MEMORY") if text else 0


def memory_limit() -> int:
    """The budget in effect: max_memory, RNNFAST_MAX_MEMORY, or DEFAULT_MAX_MEMORY."""
    return memory_limit_from_env() or DEFAULT_MAX_MEMORY


@contextlib.contextmanager
def memory_budget(max_memory):
    """rnnfast.load's max_memory option, in effect for what runs inside (None: leave the budget as it is)."""
    if max_memory is None:
        yield
        return
    token = _OVERRIDE.set(parse_size(max_memory, "max_memory") or 0)
    try:
        yield
    finally:
        _OVERRIDE.reset(token)


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
    limit = memory_limit()
    if size is not None and size > limit:
        raise MemoryLimitError(f"{where}: {what} would need {int(size)} bytes, more than the memory limit ({limit} "
                               f"bytes; RNNFAST_MAX_MEMORY sets it)")


class LoadBudget:
    """What one file's load has declared so far: each entry (a tensor, a record, a dataset) is checked alone and
    added to the running total against the memory budget before it is allocated; and what inflates (zip members,
    compressed or never-written HDF5 datasets) is added up against what is stored, so many small entries below
    INFLATE_FLOOR cannot add up to a bomb either."""

    def __init__(self, where: str):
        self.where, self.used, self.limit = where, 0, memory_limit()
        self.declared = self.stored = 0

    def take(self, size, entry: str):
        size = int(size)
        if size > self.limit or self.used + size > self.limit:
            so_far = f" after {self.used} bytes of earlier entries" if self.used else ""
            raise DeclaredSizeError(f"{self.where}: {entry} declares {size} bytes{so_far}, more than the memory "
                                    f"budget ({self.limit} bytes; rnnfast.load(..., max_memory=...) or "
                                    f"RNNFAST_MAX_MEMORY sets it)")
        self.used += size

    def inflate(self, declared: int, stored: int, entry: str):
        """Refuse, before inflating, data that would take the file's total past MAX_INFLATE_RATIO times what it
        stores (once past INFLATE_FLOOR)."""
        self.declared += int(declared)
        self.stored += max(int(stored), 0)
        if self.declared > INFLATE_FLOOR and self.declared > MAX_INFLATE_RATIO * self.stored:
            how = ("stores none of them (HDF5 would fill them in)" if stored <= 0
                   else f"stores {stored} bytes")
            raise DeclaredSizeError(f"{self.where}: {entry} declares {declared} bytes and {how}; the file's entries "
                                    f"so far would inflate {self.stored} stored bytes to {self.declared} bytes (more "
                                    f"than {MAX_INFLATE_RATIO}x; real weights compress less than 2x): refused as a "
                                    f"decompression bomb")
