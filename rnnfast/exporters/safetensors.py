"""Write a Pipeline's canonical float32 weights to .safetensors (names in docs/format.md), with its options
as JSON in the `rnnfast.pipeline` metadata entry. Layout per the huggingface spec: 8-byte little-endian header
length, JSON header (padded with spaces to a multiple of 8), raw little-endian data."""
from __future__ import annotations

import json

import numpy as np

from ._canonical import canonical_arrays, pipeline_config
from ._output import write_bytes


def to_bytes(pipeline) -> bytes:
    arrays = canonical_arrays(pipeline)
    header, offset, chunks = {"__metadata__": {"rnnfast.pipeline": pipeline_config(pipeline)}}, 0, []
    for name, arr in arrays.items():
        raw = np.ascontiguousarray(arr, "<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def save_safetensors(pipeline, path) -> None:
    """Write `pipeline` to `path` (str, PathLike, or a binary file object)."""
    write_bytes(to_bytes(pipeline), path)
