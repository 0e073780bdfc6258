"""Write a Pipeline's canonical float32 weights to .npz (names in docs/format.md), with its options as JSON
in the `__pipeline__` entry (a unicode array: np.load reads it without pickle)."""
from __future__ import annotations

import os

import numpy as np

from ._canonical import canonical_arrays, pipeline_config


def save_npz(pipeline, path) -> None:
    arrays = canonical_arrays(pipeline)
    arrays["__pipeline__"] = np.array(pipeline_config(pipeline))
    if hasattr(path, "write"):
        np.savez(path, **arrays)
        return
    with open(os.fspath(path), "wb") as f:  # np.savez would append ".npz" to a name without it
        np.savez(f, **arrays)
