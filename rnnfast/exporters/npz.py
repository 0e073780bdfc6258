"""Write a whole graph as .npz (docs/format.md, "Graphs in .npz and .safetensors"): one .npy member per blob, named
as exporters/graph_arrays.py names it, and the structure JSON in the `__rnnfast_graph__` member, a 0-d unicode array
np.load reads without pickle. Members are written here rather than by np.savez, whose keyword arguments would
clash with an array named `file` or `allow_pickle`."""
from __future__ import annotations

import io
import zipfile

import numpy as np

from .. import rnnf_spec as spec
from ._output import write_bytes
from .graph_arrays import graph_entries


def to_bytes(model, weight_dtype: str | None = None, lengths: bool = False, scope: str = "recurrent") -> bytes:
    text, arrays = graph_entries(model, weight_dtype, lengths, scope)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, arr in [(spec.NPZ_STRUCTURE, np.array(text))] + list(arrays.items()):
            member = io.BytesIO()
            np.lib.format.write_array(member, arr, allow_pickle=False)
            # The structure is text in 4 bytes a character (numpy's unicode): deflated; the weights stay stored.
            info = zipfile.ZipInfo(f"{name}.npy", (1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED if name == spec.NPZ_STRUCTURE else zipfile.ZIP_STORED
            z.writestr(info, member.getvalue())
    return buf.getvalue()


def save_npz(model, path, weight_dtype: str | None = None, lengths: bool = False,
             scope: str = "recurrent") -> None:
    """Write a Model whose graph runs fully in C to `path` (str, PathLike, or a binary file object); `lengths`:
    the variant with a sequence_lens input."""
    write_bytes(to_bytes(model, weight_dtype, lengths, scope), path)
