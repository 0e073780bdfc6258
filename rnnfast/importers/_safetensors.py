"""Read a .safetensors file into name -> numpy array, with json and numpy only.

Layout (huggingface/safetensors docs): 8-byte little-endian header length N, N bytes of JSON
`{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}`, then the raw
little-endian bytes; offsets are relative to the end of the header. Float types come back as float32.
"""
from __future__ import annotations

import json

import numpy as np

from ..errors import FormatError

DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": "bfloat16", "I64": np.int64,
    "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "U16": np.uint16, "U32": np.uint32,
    "U64": np.uint64, "BOOL": np.bool_,
}
MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's own limit


def read_safetensors(data: bytes, where: str) -> tuple[dict, dict]:
    """(tensors name -> array, metadata dict) of a whole .safetensors file held in memory."""
    if len(data) < 8:
        raise FormatError(f"{where}: {len(data)} bytes is too short for a safetensors header")
    n = int.from_bytes(data[:8], "little")
    if n > MAX_HEADER or 8 + n > len(data):
        raise FormatError(f"{where}: safetensors header length {n} does not fit the {len(data)}-byte file")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{where}: safetensors header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise FormatError(f"{where}: safetensors header is a {type(header).__name__}, expected an object")
    body = memoryview(data)[8 + n:]
    metadata = header.pop("__metadata__", None) or {}
    tensors = {}
    for name, info in header.items():
        tensors[name] = _tensor(body, info, f"{where}: tensor {name!r}")
    return tensors, metadata


def _tensor(body, info, where) -> np.ndarray:
    if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
        raise FormatError(f"{where}: entry needs dtype, shape and data_offsets, got {info!r}")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if dtype not in DTYPES:
        raise FormatError(f"{where}: dtype {dtype!r} not supported; expected one of {sorted(DTYPES)}")
    if not (isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)):
        raise FormatError(f"{where}: shape {shape!r} is not a list of non-negative ints")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= len(body)):
        raise FormatError(f"{where}: data_offsets {offsets!r} fall outside the {len(body)}-byte data section")
    np_dtype = np.uint16 if dtype == "BF16" else np.dtype(DTYPES[dtype])
    itemsize = np.dtype(np_dtype).itemsize
    count = int(np.prod(shape, dtype=np.int64))
    if offsets[1] - offsets[0] != count * itemsize:
        raise FormatError(f"{where}: shape {shape} of {dtype} needs {count * itemsize} bytes, "
                          f"data_offsets give {offsets[1] - offsets[0]}")
    arr = np.frombuffer(body[offsets[0]:offsets[1]], np.dtype(np_dtype).newbyteorder("<")).reshape(shape)
    if dtype == "BF16":
        return (arr.astype(np.uint32) << 16).view(np.float32)
    if arr.dtype.kind == "f":
        return arr.astype(np.float32)
    return arr.astype(arr.dtype.newbyteorder("="))
