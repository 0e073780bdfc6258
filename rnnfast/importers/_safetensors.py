"""Read a .safetensors file into name -> numpy array, with json and numpy only.

Layout (huggingface/safetensors docs): 8-byte little-endian header length N, N bytes of JSON
`{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}`, then the raw
little-endian bytes; offsets are relative to the end of the header. Float types come back as float32.
"""
from __future__ import annotations

import json
import reprlib

import numpy as np

from ..errors import FormatError, file_errors
from ..limits import LoadBudget

DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": "bfloat16", "I64": np.int64,
    "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "U16": np.uint16, "U32": np.uint32,
    "U64": np.uint64, "BOOL": np.bool_,
}
MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's own limit


def read_safetensors(data: bytes, where: str, as_stored: bool = False) -> tuple[dict, dict]:
    """(tensors name -> array, metadata dict) of a whole .safetensors file held in memory; as_stored keeps float16
    and the other float types as they are instead of float32."""
    with file_errors(where, "damaged safetensors file"):
        return _read(data, where, as_stored)


def _read(data: bytes, where: str, as_stored: bool = False) -> tuple[dict, dict]:
    if len(data) < 8:
        raise FormatError(f"{where}: {len(data)} bytes is too short for a safetensors header")
    n = int.from_bytes(data[:8], "little")
    if n > MAX_HEADER or 8 + n > len(data):
        raise FormatError(f"{where}: safetensors header length {n} does not fit the {len(data)}-byte file")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{where}: safetensors header is not JSON ({e})") from None
    except RecursionError:
        raise FormatError(f"{where}: safetensors header nests too deeply to be a header") from None
    if not isinstance(header, dict):
        raise FormatError(f"{where}: safetensors header is a {type(header).__name__}, expected an object")
    body = memoryview(data)[8 + n:]
    metadata = header.pop("__metadata__", None) or {}
    _check_disjoint(header, where)
    tensors = {}
    budget = LoadBudget(where)
    for name, info in header.items():
        tensors[name] = _tensor(body, info, f"{where}: tensor {name!r}", budget, f"tensor {name!r}", as_stored)
    return tensors, metadata


def _check_disjoint(header: dict, where: str):
    """Entries may not share bytes (the reference implementation refuses overlapping offsets too): each entry is
    copied out, so thousands of entries naming one megabyte would make gigabytes."""
    spans = sorted((info["data_offsets"][0], info["data_offsets"][1], name) for name, info in header.items()
                   if isinstance(info, dict) and _offsets(info.get("data_offsets")))  # _tensor refuses the others
    for (_, end, first), (begin, _, second) in zip(spans, spans[1:]):
        if begin < end:
            raise FormatError(f"{where}: tensors {first!r} and {second!r} share bytes (data_offsets overlap at "
                              f"{begin}); each tensor must have its own range")


def _offsets(offsets) -> bool:
    return (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
            and 0 <= offsets[0] <= offsets[1])


def _tensor(body, info, where, budget, entry, as_stored=False) -> np.ndarray:
    if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
        raise FormatError(f"{where}: entry needs dtype, shape and data_offsets, got {reprlib.repr(info)}")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if dtype not in DTYPES:
        raise FormatError(f"{where}: dtype {dtype!r} not supported; expected one of {sorted(DTYPES)}")
    if not (isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)):
        raise FormatError(f"{where}: shape {reprlib.repr(shape)} is not a list of non-negative ints")
    if not (_offsets(offsets) and offsets[1] <= len(body)):
        raise FormatError(f"{where}: data_offsets {reprlib.repr(offsets)} fall outside the {len(body)}-byte data "
                          f"section")
    np_dtype = np.uint16 if dtype == "BF16" else np.dtype(DTYPES[dtype])
    itemsize = np.dtype(np_dtype).itemsize
    count = 1
    for s in shape:  # Python ints: a product of declared dims must not wrap around as an int64 would
        count *= s
    if offsets[1] - offsets[0] != count * itemsize:
        raise FormatError(f"{where}: shape {shape} of {dtype} needs {count * itemsize} bytes, "
                          f"data_offsets give {offsets[1] - offsets[0]}")
    budget.take(count * max(itemsize, 4), f"{entry} of shape {shape}")
    arr = np.frombuffer(body[offsets[0]:offsets[1]], np.dtype(np_dtype).newbyteorder("<")).reshape(shape)
    if dtype == "BF16":
        return (arr.astype(np.uint32) << 16).view(np.float32)
    if arr.dtype.kind == "f" and not as_stored:
        return arr.astype(np.float32)
    return arr.astype(arr.dtype.newbyteorder("="))
