"""A TensorFlow checkpoint (TensorBundle, tensorflow/core/util/tensor_bundle/): the `.index` table of entries and the
`.data-NNNNN-of-NNNNN` shards they point into, read without TensorFlow.

The index's entry with the empty key is a BundleHeaderProto (num_shards, endianness, version); every other key is a
tensor name whose value is a BundleEntryProto (dtype, shape, shard_id, offset, size, masked crc32c of the bytes;
tensor_bundle.proto). Tensors are read only when asked for: each offset and size is checked against its shard's
length, the size against the dtype and shape and against the memory limit (rnnfast/limits.py) before any bytes are
read, and the bytes against their crc32c. Every refusal is a FormatError naming the file, the tensor and the field.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ...errors import FormatError
from ...limits import check_bytes
from ..onnx.wire import Field, Message, WireError, declare, parse, seal
from . import crc32c
from .table import TableError, read_table

# tensorflow/core/framework/types.proto DataType -> (name, numpy little-endian dtype or None when not readable)
DTYPES = {
    1: ("float32", "<f4"), 2: ("float64", "<f8"), 3: ("int32", "<i4"), 4: ("uint8", "u1"), 5: ("int16", "<i2"),
    6: ("int8", "i1"), 7: ("string", None), 8: ("complex64", None), 9: ("int64", "<i8"), 10: ("bool", "?"),
    14: ("bfloat16", "<u2"), 17: ("uint16", "<u2"), 18: ("complex128", None), 19: ("float16", "<f2"),
    20: ("resource", None), 21: ("variant", None), 22: ("uint32", "<u4"), 23: ("uint64", "<u8"),
}
MAX_SHARDS = 99999  # the file names spell the shard count in five digits


class Dim(Message):
    __slots__ = ("size", "name")


class TensorShapeProto(Message):
    __slots__ = ("dim", "unknown_rank")


class VersionDef(Message):
    __slots__ = ("producer", "min_consumer", "bad_consumers")


class BundleHeaderProto(Message):
    __slots__ = ("num_shards", "endianness", "version")


class BundleEntryProto(Message):
    __slots__ = ("dtype", "shape", "shard_id", "offset", "size", "crc32c", "slices")


class TensorSliceProto(Message):
    __slots__ = ()


declare(Dim, {1: Field("size", "int64"), 2: Field("name", "string")})
declare(TensorShapeProto, {2: Field("dim", "message", repeated=True, message=Dim), 3: Field("unknown_rank", "int32")})
declare(VersionDef, {1: Field("producer", "int32"), 2: Field("min_consumer", "int32"),
                     3: Field("bad_consumers", "int32", repeated=True)})
declare(BundleHeaderProto, {1: Field("num_shards", "int32"), 2: Field("endianness", "int32"),
                            3: Field("version", "message", message=VersionDef)})
declare(TensorSliceProto, {})
declare(BundleEntryProto, {1: Field("dtype", "int32"), 2: Field("shape", "message", message=TensorShapeProto),
                           3: Field("shard_id", "int32"), 4: Field("offset", "int64"), 5: Field("size", "int64"),
                           6: Field("crc32c", "fixed32"),
                           7: Field("slices", "message", repeated=True, message=TensorSliceProto)})
seal([Dim, TensorShapeProto, VersionDef, BundleHeaderProto, TensorSliceProto, BundleEntryProto])


@dataclass
class Entry:
    """One tensor as the index describes it."""

    name: str
    dtype: str
    shape: tuple
    shard_id: int
    offset: int
    size: int
    crc32c: int  # masked, as stored
    sliced: bool


class Bundle:
    """The checkpoint with prefix `prefix`: `entries` (name -> Entry, in key order) and `read(name)`."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.index_path = prefix + ".index"
        try:
            with open(self.index_path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise FormatError(f"{self.index_path}: cannot read the checkpoint index: {e.strerror or e}") from e
        try:
            rows = read_table(data, "index")
        except TableError as e:
            raise FormatError(f"{self.index_path}: {e}") from None
        if not rows or rows[0][0] != b"":
            raise FormatError(f"{self.index_path}: no header entry (the empty key with a BundleHeaderProto); not a "
                              f"TensorFlow V2 checkpoint index")
        header = self._parse(BundleHeaderProto, rows[0][1], "header entry")
        if not 1 <= header.num_shards <= MAX_SHARDS:
            raise FormatError(f"{self.index_path}: header num_shards is {header.num_shards}, expected 1..{MAX_SHARDS}")
        if header.endianness != 0:
            raise FormatError(f"{self.index_path}: header endianness is {header.endianness} (big-endian); rnnfast "
                              f"reads little-endian checkpoints only")
        self.num_shards = header.num_shards
        self.shards = [f"{prefix}.data-{k:05d}-of-{self.num_shards:05d}" for k in range(self.num_shards)]
        self._shard_sizes = {}
        self.entries = {}
        for key, value in rows[1:]:
            try:
                name = key.decode("utf-8")
            except UnicodeDecodeError:
                raise FormatError(f"{self.index_path}: tensor key {key!r} is not UTF-8 text") from None
            self.entries[name] = self._entry(name, value)

    def _parse(self, cls, value, what):
        try:
            return parse(cls, value)
        except WireError as e:
            raise FormatError(f"{self.index_path}: {what}: {e}") from None

    def _entry(self, name: str, value: bytes) -> Entry:
        e = self._parse(BundleEntryProto, value, f"tensor {name!r}")
        where = f"{self.index_path}: tensor {name!r}"
        if e.dtype not in DTYPES:
            raise FormatError(f"{where}: field dtype is {e.dtype}, not a TensorFlow DataType rnnfast knows")
        if e.shape.unknown_rank:
            raise FormatError(f"{where}: field shape has unknown rank")
        shape = tuple(d.size for d in e.shape.dim)
        if any(d < 0 for d in shape):
            raise FormatError(f"{where}: field shape {list(shape)} has a negative dimension")
        if not 0 <= e.shard_id < self.num_shards:
            raise FormatError(f"{where}: field shard_id is {e.shard_id}, the header declares {self.num_shards} "
                              f"shard(s)")
        if e.offset < 0 or e.size < 0:
            raise FormatError(f"{where}: field {'offset' if e.offset < 0 else 'size'} is negative "
                              f"({e.offset if e.offset < 0 else e.size})")
        return Entry(name, DTYPES[e.dtype][0], shape, e.shard_id, e.offset, e.size, e.crc32c,
                     bool(e.slices))

    def _shard_size(self, k: int) -> int:
        if k not in self._shard_sizes:
            path = self.shards[k]
            try:
                self._shard_sizes[k] = os.path.getsize(path)
            except OSError as e:
                raise FormatError(f"{path}: data shard {k} of the checkpoint {self.prefix} cannot be read: "
                                  f"{e.strerror or e}") from None
        return self._shard_sizes[k]

    def read(self, name: str) -> np.ndarray:
        """The tensor as a numpy array (bfloat16 widened to float32), its bytes checked first."""
        e = self.entries[name]
        where = f"{self.index_path}: tensor {name!r}"
        np_dtype = dict(DTYPES.values())[e.dtype]
        if e.sliced:
            raise FormatError(f"{where}: is a partitioned variable (field slices); rnnfast does not read sliced "
                              f"checkpoint entries")
        if np_dtype is None:
            raise FormatError(f"{where}: field dtype is {e.dtype}, which rnnfast does not read")
        count = 1
        for d in e.shape:
            count *= d
        expected = count * np.dtype(np_dtype).itemsize
        if e.size != expected:
            raise FormatError(f"{where}: field size is {e.size} bytes; {e.dtype} of shape {list(e.shape)} takes "
                              f"{expected}")
        shard = self.shards[e.shard_id]
        available = self._shard_size(e.shard_id)
        if e.offset + e.size > available:
            raise FormatError(f"{shard}: tensor {name!r}: fields offset {e.offset} + size {e.size} run past the end "
                              f"of the shard ({available} bytes)")
        check_bytes(e.size, where, f"a tensor of shape {list(e.shape)}")
        with open(shard, "rb") as f:
            f.seek(e.offset)
            raw = f.read(e.size)
        if len(raw) != e.size:
            raise FormatError(f"{shard}: tensor {name!r}: read {len(raw)} of {e.size} bytes at offset {e.offset}")
        actual = crc32c.value(raw)  # an absent field reads as 0 and is checked too, as TensorFlow does
        if crc32c.mask(actual) != e.crc32c:
            raise FormatError(f"{shard}: tensor {name!r}: the bytes fail the index's crc32c check (field "
                              f"crc32c {crc32c.unmask(e.crc32c):#010x}, computed {actual:#010x})")
        arr = np.frombuffer(raw, np_dtype).reshape(e.shape)
        if e.dtype == "bfloat16":
            return (arr.astype(np.uint32) << 16).view(np.float32)
        return arr
