"""Write a whole graph as .safetensors (docs/format.md, "Graphs in .npz and .safetensors"): one tensor per blob,
named as exporters/graph_arrays.py names it, and the structure JSON in the `rnnfast.graph` metadata entry. Layout
per the huggingface spec: 8-byte little-endian header length, JSON header (padded with spaces to a multiple of 8),
raw little-endian data."""
from __future__ import annotations

import json

import numpy as np

from .. import rnnf_spec as spec
from ._output import write_bytes
from .graph_arrays import graph_entries

DTYPES = {"<f4": "F32", "<f2": "F16", "|i1": "I8", "<i8": "I64", "<i4": "I32", "|u1": "U8"}


def to_bytes(model, weight_dtype: str | None = None, lengths: bool = False, scope: str = "recurrent") -> bytes:
    text, arrays = graph_entries(model, weight_dtype, lengths, scope)
    header, offset, chunks = {"__metadata__": {spec.SAFETENSORS_STRUCTURE: text}}, 0, []
    for name, arr in arrays.items():
        raw = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": DTYPES[arr.dtype.str], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)
    return len(head).to_bytes(8, "little") + head + b"".join(chunks)


def save_safetensors(model, path, weight_dtype: str | None = None, lengths: bool = False,
                     scope: str = "recurrent") -> None:
    """Write a Model whose graph runs fully in C to `path` (str, PathLike, or a binary file object); `lengths`:
    the variant with a sequence_lens input."""
    write_bytes(to_bytes(model, weight_dtype, lengths, scope), path)
