"""Recognise a model file by its content (not only its name) and hand it to the right importer."""
from __future__ import annotations

import io
import os
import zipfile

from .errors import FormatError

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"  # pickle of the int 0x1950a86a20f9469cfc6c
RNNF_MAGIC = b"RNNF"


def read_source(path_or_bytes) -> tuple[bytes, str]:
    """(content, name for messages) of a path, bytes, or binary file object."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes), "<bytes>"
    if hasattr(path_or_bytes, "read"):
        return path_or_bytes.read(), getattr(path_or_bytes, "name", "<stream>")
    path = os.fspath(path_or_bytes)
    try:
        with open(path, "rb") as f:
            return f.read(), path
    except OSError as e:
        raise FormatError(f"{path}: cannot read the file: {e.strerror or e}") from e


def folder_of(path_or_bytes):
    """The folder a model file was read from (where its external data lives), or None for bytes."""
    if isinstance(path_or_bytes, (str, os.PathLike)):
        return os.path.dirname(os.path.abspath(os.fspath(path_or_bytes)))
    name = getattr(path_or_bytes, "name", None)  # a file object opened from a path
    if isinstance(name, str) and os.path.isfile(name):
        return os.path.dirname(os.path.abspath(name))
    return None


def detect(data: bytes, name: str) -> str:
    """One of: onnx, keras-h5, keras-zip, torch-zip, torch-legacy, safetensors, rnnf."""
    if data.startswith(RNNF_MAGIC):
        return "rnnf"
    if data.startswith(HDF5_MAGIC):
        return "keras-h5"
    if data.startswith(TORCH_LEGACY_MAGIC):
        return "torch-legacy"
    if data.startswith(b"PK"):
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except zipfile.BadZipFile as e:
            raise FormatError(f"{name}: looks like a zip archive but cannot be opened: {e}") from e
        if "config.json" in names and any(n.startswith("model.weights") for n in names):
            return "keras-zip"
        if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
            return "torch-zip"
        raise FormatError(f"{name}: a zip archive that is neither a Keras .keras file (config.json + "
                          f"model.weights.h5) nor a PyTorch file (*/data.pkl); it holds {names[:8]}")
    if len(data) >= 8:
        header_len = int.from_bytes(data[:8], "little")
        if 2 <= header_len <= len(data) - 8 and data[8:9] == b"{":
            return "safetensors"
    if name.endswith(".onnx") or _looks_like_onnx(data):
        return "onnx"
    raise FormatError(f"{name}: unrecognised model format (expected ONNX, Keras .h5/.keras, PyTorch .pt/.pth, "
                      f".safetensors or .rnnf)")


def _looks_like_onnx(data: bytes) -> bool:
    # ModelProto starts with field 1 (ir_version, varint: tag 0x08) or another low-numbered field.
    return len(data) > 2 and data[0] in (0x08, 0x12, 0x1a, 0x22, 0x3a, 0x42)
