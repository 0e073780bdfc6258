"""Recognise a model file by its content (not only its name) and hand it to the right importer."""
from __future__ import annotations

import json
import os
import re

from . import rnnf_spec as spec
from .errors import FormatError

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"  # pickle of the int 0x1950a86a20f9469cfc6c
RNNF_MAGIC = b"RNNF"
TF_TABLE_MAGIC = (0xDB4775248B80FB57).to_bytes(8, "little")  # ends a TensorFlow checkpoint .index table
_TF_DATA_SHARD = re.compile(r"\.data-\d{5}-of-\d{5}$")
_TF_STATE_LINE = re.compile(r'^model_checkpoint_path:\s*"(.*)"\s*$', re.M)


def checkpoint_prefix(path):
    """The prefix of the TensorFlow checkpoint that `path` names, or None: the prefix itself (`model.ckpt`, beside
    `model.ckpt.index`), the .index file, one of its data shards, or a folder whose `checkpoint` state file names
    one (model_checkpoint_path, as tf.train.latest_checkpoint reads it)."""
    if not isinstance(path, (str, os.PathLike)):
        return None
    path = os.fspath(path)
    if path.endswith(".index") and os.path.isfile(path):
        return path[: -len(".index")]
    if _TF_DATA_SHARD.search(path) and os.path.isfile(path):
        return _TF_DATA_SHARD.sub("", path)
    if os.path.isfile(path + ".index") and not os.path.isfile(path):
        return path
    state = os.path.join(path, "checkpoint")
    if os.path.isdir(path) and os.path.isfile(state):
        try:
            with open(state, encoding="utf-8") as f:
                m = _TF_STATE_LINE.search(f.read())
        except (OSError, UnicodeDecodeError) as e:
            raise FormatError(f"{state}: cannot read the checkpoint state file: {e}") from e
        if m is None:
            raise FormatError(f"{state}: no model_checkpoint_path line in the checkpoint state file")
        named = os.path.join(path, m.group(1))
        moved = os.path.join(path, os.path.basename(m.group(1)))  # an absolute path written on another machine
        return named if os.path.isfile(named + ".index") or not os.path.isfile(moved + ".index") else moved
    return None


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


def looks_like_pickle(data: bytes) -> bool:
    # A safetensors file starts with its header length, which can begin with these bytes too; its JSON cannot.
    return data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05") and data[8:9] != b"{"


def is_npz(names) -> bool:
    """Whether a zip archive's member names are those of a numpy .npz (every member a .npy array)."""
    return bool(names) and all(n.endswith(".npy") for n in names)


def detect(data: bytes, name: str) -> str:
    """One of: onnx, keras-h5, keras-zip, torch-zip, torch-legacy, safetensors, npz, pickle, rnnf, rnnf-npz,
    rnnf-safetensors (a graph rnnfast wrote as .npz / .safetensors: their structure entry says so; a TensorFlow
    checkpoint is recognised from its path by checkpoint_prefix; its .index bytes alone are refused here)."""
    if data.startswith(RNNF_MAGIC):
        return "rnnf"
    if data.startswith(HDF5_MAGIC):
        return "keras-h5"
    if data.startswith(TORCH_LEGACY_MAGIC):
        return "torch-legacy"
    if data.startswith(b"PK"):
        from .importers._zip import open_zip

        names = open_zip(data, name, "zip archive (it starts like one)").namelist()
        if f"{spec.NPZ_STRUCTURE}.npy" in names:  # a graph rnnfast wrote, whatever else the archive holds
            return "rnnf-npz"
        if "config.json" in names and any(n.startswith("model.weights") for n in names):
            return "keras-zip"
        if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
            return "torch-zip"
        if is_npz(names):
            return "npz"
        raise FormatError(f"{name}: a zip archive that is neither a Keras .keras file (config.json + "
                          f"model.weights.h5), a PyTorch file (*/data.pkl) nor a numpy .npz (*.npy); it holds "
                          f"{names[:8]}")
    if len(data) >= 8:
        header_len = int.from_bytes(data[:8], "little")
        if 2 <= header_len <= len(data) - 8 and data[8:9] == b"{":
            return "rnnf-safetensors" if _graph_metadata(data[8:8 + header_len]) else "safetensors"
    if looks_like_pickle(data):
        return "pickle"  # a pickled dict of numpy arrays (read by the restricted unpickler, importers/_pickle.py)
    if len(data) >= 48 and data.endswith(TF_TABLE_MAGIC):
        raise FormatError(f"{name}: a TensorFlow checkpoint index; load the checkpoint by its path (the prefix, e.g. "
                          f"model.ckpt), so its .data-NNNNN-of-NNNNN shards are found beside it")
    if name.endswith(".onnx") or _looks_like_onnx(data):
        return "onnx"
    raise FormatError(f"{name}: unrecognised model format (expected ONNX, Keras .h5/.keras, PyTorch .pt/.pth, "
                      f".safetensors, .npz or a pickled dict of numpy arrays, .rnnf, or a TensorFlow checkpoint's "
                      f"prefix)")


def _graph_metadata(header: bytes) -> bool:
    """Whether a safetensors header's __metadata__ holds the structure of a graph rnnfast wrote; a header that does
    not parse is left for the safetensors reader to refuse by name."""
    if spec.SAFETENSORS_STRUCTURE.encode() not in header:  # most files: no JSON parse here
        return False
    try:
        meta = json.loads(header.decode("utf-8")).get("__metadata__")
    except (ValueError, RecursionError, AttributeError):
        return False
    return isinstance(meta, dict) and spec.SAFETENSORS_STRUCTURE in meta


def _looks_like_onnx(data: bytes) -> bool:
    # ModelProto starts with field 1 (ir_version, varint: tag 0x08) or another low-numbered field.
    return len(data) > 2 and data[0] in (0x08, 0x12, 0x1a, 0x22, 0x3a, 0x42)
