"""The protobuf wire format (protobuf.dev/programming-guides/encoding), read without the protobuf package: enough to
decode the messages protos.py declares, and nothing ONNX-specific.

A message class lists its fields (number -> Field); `parse` fills an instance from bytes. Protobuf's semantics are
kept where a file can tell them apart: the last value of a singular field wins, a singular message field given twice
is the merge of both (parsed here from their concatenation, which protobuf defines as the merge; all merges of one
file together may copy at most the file's size), repeated scalars
are read packed or not, members of a oneof clear each other, an enum value outside the enum leaves the field unset
(proto2's closed enums, as onnx.load reads them), and unknown fields are skipped. Every length is checked against
the bytes that hold it and nesting is bounded, so a damaged file ends in WireError (the caller names the file), never
a huge allocation or a RecursionError. Groups (wire types 3 and 4, deprecated and unused by ONNX) are refused."""
from __future__ import annotations

import struct

import numpy as np

MAX_DEPTH = 100  # nested messages: protobuf's own default limit, so what onnx.load reads is read here too
_PACKED_CHUNK = 1 << 20  # at most this many bytes of packed varints decoded per numpy pass (bounds the temporaries)
_FLOAT, _DOUBLE, _FIXED32 = struct.Struct("<f"), struct.Struct("<d"), struct.Struct("<I")
VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5
_WIRE_OF = {"int64": VARINT, "int32": VARINT, "uint64": VARINT, "enum": VARINT, "float": FIXED32, "double": FIXED64,
            "fixed32": FIXED32,
            "string": LEN, "bytes": LEN, "view": LEN, "message": LEN}
_ARRAY_DTYPES = {"int64": np.int64, "int32": np.int32, "uint64": np.uint64, "float": np.float32, "double": np.float64,
                 "fixed32": np.uint32}


class WireError(Exception):
    """The bytes are not a well-formed message of the expected type; the text says which field, where and why."""


class Field:
    """One field of a message: `kind` is int64, int32, uint64, enum, float, double, fixed32 (uint32), string
    (UTF-8 text, decoded), bytes, view (bytes kept as a memoryview of the file: no copy) or message (of class
    `message`). Repeated fields are lists, or numpy arrays when `array` is set (a tensor's data). `values`: an enum's
    members."""

    __slots__ = ("number", "name", "kind", "repeated", "message", "array", "values", "oneof", "default")

    def __init__(self, name, kind, repeated=False, message=None, array=False, values=None):
        self.name, self.kind, self.repeated, self.message = name, kind, repeated, message
        self.array, self.values, self.oneof, self.number = array, values, (), 0
        self.default = {"string": "", "bytes": b"", "view": b"", "float": 0.0, "double": 0.0}.get(kind, 0)


class Message:
    """Base of the message classes: FIELDS maps field numbers to Fields; ONEOFS lists groups of field numbers of which
    at most one is set. KEEP_RAW classes keep their own encoded bytes (`_raw`, a memoryview) and the folder the model
    was loaded from (`_folder`), for what needs the message itself later (external data, the onnx package)."""

    __slots__ = ("_present",)
    FIELDS: dict = {}
    ONEOFS: tuple = ()
    KEEP_RAW = False
    _NUMBERS: dict = {}
    EMPTY = None  # the instance read where the field is absent (never changed)

    def HasField(self, name: str) -> bool:
        """Whether the field was in the bytes (protobuf's HasField, for singular fields)."""
        return bool(self._present >> self._NUMBERS[name] & 1)

    def __repr__(self):
        shown = {f.name: getattr(self, f.name) for f in self.FIELDS.values() if self._present >> f.number & 1}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


def declare(cls, fields: dict, oneofs=()):
    """Attach the field table to a message class (after all classes exist, so messages can contain each other)."""
    for number, f in fields.items():
        f.number = number
        for group in oneofs:
            if number in group:
                f.oneof = tuple(n for n in group if n != number)
    cls.FIELDS, cls.ONEOFS = fields, tuple(oneofs)
    cls._NUMBERS = {f.name: n for n, f in fields.items()}


def seal(classes):
    """Make each class's EMPTY instance, the value of an absent message field (they may refer to each other, as
    TypeProto and its Sequence do: never changed, so sharing them is safe)."""
    for cls in classes:
        cls.EMPTY = cls.__new__(cls)
    for cls in classes:
        _finish(cls, cls.EMPTY, 0, {}, {}, None, None, 0, _Context(None, 0))
        if cls.KEEP_RAW:
            cls.EMPTY._raw, cls.EMPTY._folder = memoryview(b""), None


class _Context:
    """What every level of one parse shares: the model's folder, and the bytes merged messages may still copy (each
    merge copies its parts; duplicates nested in duplicates would otherwise copy the file once per level)."""

    __slots__ = ("folder", "merge_budget")

    def __init__(self, folder, size):
        self.folder, self.merge_budget = folder, size


def parse(cls, data: bytes, folder=None):
    """An instance of message class `cls` from its encoded bytes (which the result may view without copying)."""
    return _parse(cls, data, memoryview(data), 0, len(data), 0, _Context(folder, len(data)))


def _parse(cls, data, view, pos, end, depth, ctx):
    if depth > MAX_DEPTH:
        raise WireError(f"{cls.__name__} at byte {pos}: messages nested more than {MAX_DEPTH} deep")
    start = pos
    obj = cls.__new__(cls)
    fields = cls.FIELDS
    present = 0
    lists = {}    # repeated fields' values as they come
    pending = {}  # singular message fields: the (start, end) of each occurrence, merged at the end
    while pos < end:
        tag = data[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = read_varint(data, pos, end, cls)
        number, wire = tag >> 3, tag & 7
        if number == 0 or tag >> 32:
            raise WireError(f"{cls.__name__} at byte {pos}: field number {number} is not valid")
        f = fields.get(number)
        if f is None or (wire != _WIRE_OF[f.kind] and not (f.repeated and wire == LEN)):
            pos = _skip(data, pos, end, wire, number, cls)  # unknown here (or of a form protobuf skips too)
            continue
        if wire == LEN:
            n, pos = read_varint(data, pos, end, cls)
            if n > end - pos:
                raise WireError(f"{cls.__name__}.{f.name} at byte {pos}: length {n} runs past the end of the "
                                f"enclosing message ({end - pos} bytes left)")
            a, pos = pos, pos + n
            kind = f.kind
            if kind == "message":
                if f.repeated:
                    lists.setdefault(number, []).append(_parse(f.message, data, view, a, pos, depth + 1, ctx))
                else:
                    pending.setdefault(number, []).append((a, pos))
                    present |= 1 << number
                    present = _clear_oneof(obj, f, present, pending)
                continue
            if kind == "string":
                try:
                    value = str(view[a:pos], "utf-8")
                except UnicodeDecodeError:
                    raise WireError(f"{cls.__name__}.{f.name} at byte {a}: not valid UTF-8 text") from None
            elif kind == "bytes":
                value = bytes(view[a:pos])
            elif kind == "view":
                value = view[a:pos]
            else:  # a packed run of scalars
                lists.setdefault(number, []).append(_packed(f, data, view, a, pos, cls))
                continue
        elif wire == VARINT:
            value, pos = read_varint(data, pos, end, cls)
            kind = f.kind
            if kind == "int64":
                value = value - (1 << 64) if value >> 63 else value
            elif kind == "int32":
                value &= 0xFFFFFFFF
                value = value - (1 << 32) if value >> 31 else value
            elif kind == "enum":
                value &= 0xFFFFFFFF
                value = value - (1 << 32) if value >> 31 else value
                if value not in f.values:
                    continue  # proto2: an unknown enum value is an unknown field; the field reads as unset
        elif wire == FIXED32:
            if end - pos < 4:
                raise WireError(f"{cls.__name__}.{f.name} at byte {pos}: truncated 4-byte value")
            value = (_FIXED32 if f.kind == "fixed32" else _FLOAT).unpack_from(data, pos)[0]
            pos += 4
        else:  # FIXED64
            if end - pos < 8:
                raise WireError(f"{cls.__name__}.{f.name} at byte {pos}: truncated 8-byte value")
            value = _DOUBLE.unpack_from(data, pos)[0]
            pos += 8
        if f.repeated:
            lists.setdefault(number, []).append(value)
        else:
            setattr(obj, f.name, value)
            present |= 1 << number
            if f.oneof:
                present = _clear_oneof(obj, f, present, pending)
    obj = _finish(cls, obj, present, lists, pending, data, view, depth, ctx)
    if cls.KEEP_RAW:
        obj._raw, obj._folder = view[start:end], ctx.folder
    return obj


def _clear_oneof(obj, f, present, pending):
    """Setting a member of a oneof unsets the others (the last one in the bytes wins)."""
    for other in f.oneof:
        if present >> other & 1:
            present &= ~(1 << other)
            pending.pop(other, None)
            setattr(obj, type(obj).FIELDS[other].name, type(obj).FIELDS[other].default)
    return present


def _finish(cls, obj, present, lists, pending, data, view, depth, ctx):
    for number, f in cls.FIELDS.items():
        if f.repeated:
            got = lists.get(number)
            if f.array:
                setattr(obj, f.name, _join_array(f, got))
            elif got is None:
                setattr(obj, f.name, [])
            elif f.kind == "message" or all(type(v) is not list for v in got):
                setattr(obj, f.name, got)
            else:  # packed runs (lists) among single values
                setattr(obj, f.name, [x for v in got for x in (v if type(v) is list else (v,))])
        elif f.kind == "message":
            spans = pending.get(number)
            if spans is None:
                setattr(obj, f.name, f.message.EMPTY)
            elif len(spans) == 1:
                setattr(obj, f.name, _parse(f.message, data, view, spans[0][0], spans[0][1], depth + 1, ctx))
            else:  # given more than once: protobuf merges them, which is parsing their concatenation
                size = sum(b - a for a, b in spans)
                if size > ctx.merge_budget:
                    raise WireError(f"{cls.__name__}.{f.name}: message fields given more than once, within others "
                                    f"given more than once, merge to more bytes than the file holds")
                ctx.merge_budget -= size
                merged = b"".join(view[a:b] for a, b in spans)
                setattr(obj, f.name, _parse(f.message, merged, memoryview(merged), 0, len(merged), depth + 1, ctx))
        elif not present >> number & 1:
            setattr(obj, f.name, f.default)
    obj._present = present
    return obj


def _join_array(f, parts):
    """One array from packed runs (arrays) and single values, in order."""
    dtype = _ARRAY_DTYPES[f.kind]
    if not parts:
        return np.zeros(0, dtype)
    if len(parts) == 1 and isinstance(parts[0], np.ndarray):
        return parts[0]
    pieces, run = [], []
    for p in parts:
        if isinstance(p, np.ndarray):
            if run:
                pieces.append(np.array(run, dtype))
                run = []
            pieces.append(p)
        else:
            run.append(p)
    if run:
        pieces.append(np.array(run, dtype))
    return np.concatenate(pieces)


def read_varint(data, pos, end, cls=None):
    """(value, position after it): at most 10 bytes and 64 bits."""
    result = shift = 0
    while True:
        if pos >= end:
            raise WireError(f"{_where(cls)}at byte {pos}: the data ends inside a varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift >= 70:
            raise WireError(f"{_where(cls)}at byte {pos}: a varint longer than 10 bytes")
    if result >> 64:
        raise WireError(f"{_where(cls)}at byte {pos}: a varint that overflows 64 bits")
    return result, pos


def _where(cls):
    return f"{cls.__name__} " if cls is not None else ""


def _skip(data, pos, end, wire, number, cls):
    if wire == VARINT:
        return read_varint(data, pos, end, cls)[1]
    if wire == LEN:
        n, pos = read_varint(data, pos, end, cls)
        size = n
    elif wire == FIXED64:
        size = 8
    elif wire == FIXED32:
        size = 4
    elif wire in (3, 4):
        raise WireError(f"{cls.__name__} field {number} at byte {pos}: a group (wire type {wire}), which ONNX does "
                        f"not use")
    else:
        raise WireError(f"{cls.__name__} field {number} at byte {pos}: wire type {wire} does not exist")
    if size > end - pos:
        raise WireError(f"{cls.__name__} field {number} at byte {pos}: {size} bytes run past the end of the "
                        f"enclosing message ({end - pos} bytes left)")
    return pos + size


def _packed(f, data, view, a, b, cls):
    """A packed run of f's scalars in data[a:b]: a numpy array for array fields, else a list."""
    kind = f.kind
    if kind in ("float", "double", "fixed32"):
        size = 8 if kind == "double" else 4
        if (b - a) % size:
            raise WireError(f"{cls.__name__}.{f.name} at byte {a}: {b - a} bytes of packed {kind}s is not a "
                            f"multiple of {size}")
        arr = np.frombuffer(view[a:b], {"float": "<f4", "double": "<f8", "fixed32": "<u4"}[kind]).astype(
            _ARRAY_DTYPES[kind], copy=False)
    else:
        raw = _varints(view, a, b, cls, f)
        if kind == "int64" or kind == "enum":
            arr = raw.view(np.int64)
        elif kind == "int32":
            arr = raw.astype(np.uint32).view(np.int32)
        else:
            arr = raw
    return arr if f.array else arr.tolist()


def _varints(view, a, b, cls, f) -> np.ndarray:
    """The varints of data[a:b] as uint64, decoded with numpy in bounded chunks."""
    arr = np.frombuffer(view[a:b], np.uint8)
    if not arr.size:
        return np.zeros(0, np.uint64)
    if arr[-1] >= 0x80:
        raise WireError(f"{cls.__name__}.{f.name} at byte {a}: the packed values end inside a varint")
    ends = np.flatnonzero(arr < 0x80)
    out = np.empty(ends.size, np.uint64)
    step = max(1, _PACKED_CHUNK // 10)
    for i in range(0, ends.size, step):
        e = ends[i:i + step]
        first = ends[i - 1] + 1 if i else 0
        chunk = arr[first:e[-1] + 1]
        starts = np.empty_like(e)
        starts[0] = 0
        starts[1:] = e[:-1] + 1 - first
        lengths = e - first - starts + 1
        if lengths.max() > 10:
            raise WireError(f"{cls.__name__}.{f.name} at byte {a}: a varint longer than 10 bytes")
        if (chunk[starts[lengths == 10] + 9] > 1).any():
            raise WireError(f"{cls.__name__}.{f.name} at byte {a}: a varint that overflows 64 bits")
        k = np.arange(chunk.size, dtype=np.uint64) - np.repeat(starts, lengths).astype(np.uint64)
        out[i:i + e.size] = np.add.reduceat((chunk & 0x7F).astype(np.uint64) << (np.uint64(7) * k), starts)
    return out
