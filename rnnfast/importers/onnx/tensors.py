"""A TensorProto (protos.py) as a numpy array, as onnx.numpy_helper.to_array gives it, checked against its declared
type and shape before anything is allocated: a tensor whose bytes do not match is a corrupt file, named as such.

raw_data is viewed in place (np.frombuffer over the file's bytes: no copy, read-only, as onnx's arrays from raw_data
are); external data is read from the folder the model was loaded from, as onnxruntime does, and never from outside
it. Element types numpy has no dtype for (bfloat16, float8, 4-bit, strings) go through onnx's own decoder."""
from __future__ import annotations

import os
import sys

import numpy as np

from ...errors import FormatError
from ...graph.infer import ONNX_DTYPES
from .protos import TensorProto, to_onnx

# ONNX_DTYPES (the types the graph computes with) and the other numeric element types a tensor may hold.
ARRAY_DTYPES = {**ONNX_DTYPES, 4: np.uint16, 12: np.uint32, 13: np.uint64, 14: np.complex64, 15: np.complex128}
# Where each element type is stored without raw_data (onnx.proto's comments on the typed fields); the default is
# int32_data, which holds every type of 32 bits or less (float16 and 16-bit integers as their bit patterns).
_TYPED_FIELD = {1: "float_data", 14: "float_data", 11: "double_data", 15: "double_data", 7: "int64_data",
                12: "uint64_data", 13: "uint64_data"}
_BIT_PATTERNS = {10: np.uint16, 5: np.uint16, 4: np.uint16, 9: np.uint8}  # int32_data holds these as raw bits
_LAST_ONNX_TYPE = 28  # TensorProto.DataType's last member (FLOAT6E3M2) in onnx.proto of IR version 13
_MAX_RANK = 32  # numpy's limit (before numpy 2)


def to_array(t: TensorProto, what: str) -> np.ndarray:
    """`what` names the tensor in messages ("model.onnx: initializer 'W'"). The array is read-only and made once:
    the graph lowering and the node-by-node path share it."""
    arr = getattr(t, "_array", None)
    if arr is None:
        arr = t._array = _decode(t, what)
        arr.flags.writeable = False
    return arr


def _decode(t: TensorProto, what: str) -> np.ndarray:
    if t.HasField("segment"):
        raise FormatError(f"{what}: the tensor is stored in segments, which rnnfast does not read")
    dtype = ARRAY_DTYPES.get(t.data_type)
    if dtype is None:
        if not 0 < t.data_type <= _LAST_ONNX_TYPE:
            _bad(t, what, f"element type {t.data_type} is not an ONNX type")
        return _through_onnx(t, what)
    dtype = np.dtype(dtype)
    if len(t.dims) > _MAX_RANK or any(d < 0 for d in t.dims):
        _bad(t, what, f"the shape {_dims(t)} has a negative dimension or more than {_MAX_RANK}")
    count = 1
    for d in t.dims:
        count *= d
    external = t.data_location == TensorProto.EXTERNAL
    if external or t.HasField("raw_data"):
        raw = read_external(t, what, count * dtype.itemsize) if external else t.raw_data
        if len(raw) != count * dtype.itemsize:
            _bad(t, what, f"{len(raw)} bytes of data; {count} {dtype.name} values need {count * dtype.itemsize}")
        arr = np.frombuffer(raw, dtype.newbyteorder("<"))
        if sys.byteorder == "big" or not arr.flags.aligned:  # C code reads constants in place: give it aligned data
            arr = arr.astype(dtype)
        return arr.reshape(t.dims)
    field = _TYPED_FIELD.get(t.data_type, "int32_data")
    values = getattr(t, field)
    per_value = 2 if dtype.kind == "c" else 1  # a complex number is two floats
    if len(values) != count * per_value:
        _bad(t, what, f"{len(values)} values in {field}; the shape {_dims(t)} holds {count * per_value}")
    if dtype.kind == "c":
        return values.astype(np.float32 if dtype == np.complex64 else np.float64).view(dtype).reshape(t.dims)
    if t.data_type in _BIT_PATTERNS:
        return values.view(np.uint32).astype(_BIT_PATTERNS[t.data_type]).view(dtype).reshape(t.dims)
    return values.astype(dtype).reshape(t.dims)


def read_external(t: TensorProto, what: str, nbytes: int) -> bytes:
    """The tensor's bytes from its external file (location, offset, length in external_data), which must lie in the
    model's folder; its declared size is checked against the file and the tensor before reading."""
    info = {e.key: e.value for e in t.external_data}
    location = info.get("location")
    if not location:
        raise FormatError(f"{what}: the tensor's data is external but external_data names no location")
    folder = t._folder
    if folder is None:
        raise FormatError(f"{what}: the tensor's data is in the external file {location!r}; load the model from its "
                          f"path so that the file is looked for beside it")
    offset, length = _whole_number(info, "offset", what), _whole_number(info, "length", what)
    base = os.path.realpath(folder)
    path = os.path.realpath(os.path.join(base, location))
    if os.path.isabs(location) or os.path.commonpath([base, path]) != base:
        raise FormatError(f"{what}: the external data file {location!r} is outside the model's folder {base}")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            offset = offset or 0
            length = size - offset if length is None else length
            if offset > size or length > size - offset:
                raise FormatError(f"{what}: external data at offset {offset}, length {length} runs past the end of "
                                  f"{location!r} ({size} bytes)")
            if length != nbytes:
                _bad(t, what, f"{length} bytes of external data in {location!r}; the tensor needs {nbytes}")
            f.seek(offset)
            data = f.read(length)
    except OSError as e:
        raise FormatError(f"{what}: cannot read the external data file {location!r}: {e.strerror or e}") from None
    if len(data) != length:
        raise FormatError(f"{what}: the external data file {location!r} changed while it was read")
    return data


def _whole_number(info, key, what):
    text = info.get(key)
    if text is None:
        return None
    if not text.isdigit() or len(text) > 19:
        raise FormatError(f"{what}: external_data {key} {text!r} is not a whole number of bytes")
    return int(text)


def _through_onnx(t, what):
    """Element types without a numpy dtype of their own: onnx's decoder (imported only for them)."""
    from onnx import numpy_helper

    if t.data_location == TensorProto.EXTERNAL and t._folder is None:
        raise FormatError(f"{what}: the tensor's data is in an external file; load the model from its path so that "
                          f"the file is looked for beside it")
    try:
        return numpy_helper.to_array(to_onnx(t), base_dir=t._folder or "")
    except FormatError as e:
        raise FormatError(f"{what}: {e}") from None
    except Exception as e:  # onnx's decoder raises what its helpers raise (ValueError, TypeError, KeyError, ...)
        _bad(t, what, f"{type(e).__name__}: {e}")


def _dims(t) -> str:
    dims = list(t.dims)
    return str(dims) if len(dims) <= 8 else f"[{', '.join(map(str, dims[:8]))}, ... ({len(dims)} dimensions)]"


def _bad(t, what, why):
    raise FormatError(f"{what}: cannot decode the tensor (type {t.data_type}, shape {_dims(t)}): {why} (corrupt "
                      f"file?)")
