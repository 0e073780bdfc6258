"""numpy .npz archives from untrusted files, read without np.load: every member must be a .npy of numbers.

np.load(allow_pickle=False) would refuse object arrays too, but it inflates members before anything is checked. Here
each member's declared size goes through the memory budget first (importers/_zip.py), its .npy header (a Python
literal: {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4)}) is read with ast.literal_eval, and the data must
fill the shape exactly. The arrays are views of the members' bytes, floating types converted to float32 unless the
caller keeps them as stored (a graph rnnfast wrote stores float16 blobs; importers/graph_arrays.py)."""
from __future__ import annotations

import ast
import struct

import numpy as np

from ..errors import FormatError
from ..limits import LoadBudget
from ._zip import open_zip, read_member

NPY_MAGIC = b"\x93NUMPY"


def read_npz(data: bytes, where: str, text_entries=(), as_stored: bool = False) -> dict:
    """name -> array for every `<name>.npy` member of the archive; the members named in text_entries may hold
    unicode text, and as_stored keeps float16 / float64 as they are."""
    archive = open_zip(data, where, "numpy .npz archive")
    budget = LoadBudget(where)
    out = {}
    for member in archive.namelist():
        if not member.endswith(".npy"):
            raise FormatError(f"{where}: member {member!r} is not a .npy array; an .npz holds only those")
        name = member[: -len(".npy")]
        out[name] = read_npy(read_member(archive, member, where, budget), f"{where}: {member}",
                             "biufU" if name in text_entries else "biuf", as_stored)
    return out


def read_npy(raw: bytes, where: str, kinds: str = "biuf", as_stored: bool = False) -> np.ndarray:
    if raw[:6] != NPY_MAGIC or len(raw) < 10:
        raise FormatError(f"{where}: not a .npy array (no \\x93NUMPY magic)")
    major = raw[6]
    if major == 1:
        (length,), start = struct.unpack("<H", raw[8:10]), 10
    elif major in (2, 3) and len(raw) >= 12:
        (length,), start = struct.unpack("<I", raw[8:12]), 12
    else:
        raise FormatError(f"{where}: .npy format version {major}.{raw[7]}, expected 1, 2 or 3")
    if start + length > len(raw):
        raise FormatError(f"{where}: .npy header of {length} bytes runs past the end of the member")
    try:
        header = ast.literal_eval(raw[start:start + length].decode("utf-8" if major == 3 else "latin1"))
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError, UnicodeDecodeError):
        raise FormatError(f"{where}: the .npy header is not a Python literal") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        got = sorted(map(str, header)) if isinstance(header, dict) else type(header).__name__
        raise FormatError(f"{where}: the .npy header holds {got}, expected a dict of descr, fortran_order and shape")
    descr, fortran, shape = header["descr"], header["fortran_order"], header["shape"]
    if not isinstance(descr, str):
        raise FormatError(f"{where}: a structured array ({descr!r}); only arrays of numbers are read")
    try:
        dtype = np.dtype(descr)
    except TypeError:
        raise FormatError(f"{where}: unknown .npy dtype {descr!r}") from None
    if dtype.kind not in kinds:
        raise FormatError(f"{where}: dtype {descr!r}; only arrays of numbers are read"
                          + (" (and text)" if "U" in kinds else ""))
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)) or type(fortran) is not bool:
        raise FormatError(f"{where}: .npy shape {shape!r} / fortran_order {fortran!r} are not non-negative ints / a "
                          f"bool")
    count = 1
    for n in shape:
        count *= n
    body = raw[start + length:]
    if len(body) != count * dtype.itemsize:
        raise FormatError(f"{where}: shape {shape} of {dtype} needs {count * dtype.itemsize} bytes, the member "
                          f"holds {len(body)}")
    arr = np.frombuffer(body, dtype).reshape(shape, order="F" if fortran else "C")
    if arr.dtype.kind == "f" and arr.dtype != np.float32 and not as_stored:
        return arr.astype(np.float32)
    return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))
