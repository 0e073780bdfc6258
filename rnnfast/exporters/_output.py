"""Where an exporter's bytes go: every writer takes a path (str or PathLike) or a binary file object alike."""
from __future__ import annotations

import os


def write_bytes(data: bytes, path) -> None:
    if hasattr(path, "write"):
        path.write(data)
        return
    with open(os.fspath(path), "wb") as f:
        f.write(data)
