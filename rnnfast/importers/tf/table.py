"""The `.index` file of a TensorFlow checkpoint: a LevelDB-style sorted table (tensorflow/core/lib/io/table.cc,
format.cc, block.cc), read without TensorFlow.

Layout: data blocks, a metaindex block, an index block, then a 48-byte footer (two varint block handles padded to 40
bytes, then the 8-byte magic). Each block is followed by a 5-byte trailer: its compression type and the masked
CRC-32C of the block and that byte. A block holds prefix-compressed entries (varint shared, non-shared and value
lengths, the key's new bytes, the value) and ends with its restart offsets (uint32 each, then their count). The index
block maps keys to the handles of the data blocks, in key order.

Every length, offset and count is checked against the bytes that hold it before it is used; anything out of place
is a TableError naming the block and the field, which the caller turns into a FormatError naming the file.
"""
from __future__ import annotations

import struct

from . import crc32c

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
TRAILER_SIZE = 5
NO_COMPRESSION, SNAPPY = 0, 1
_U32 = struct.Struct("<I")


class TableError(Exception):
    """The table's bytes are not what table.cc writes; the text says where and which field."""


def _varint(data, pos: int, end: int, what: str) -> tuple:
    result = shift = 0
    while True:
        if pos >= end:
            raise TableError(f"{what}: the data ends inside a varint at byte {pos}")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise TableError(f"{what}: a varint longer than 64 bits at byte {pos}")


def _handle(data, pos: int, end: int, what: str) -> tuple:
    """((offset, size), position after it)."""
    offset, pos = _varint(data, pos, end, f"{what} offset")
    size, pos = _varint(data, pos, end, f"{what} size")
    return (offset, size), pos


def read_block(data, handle: tuple, what: str, verify: bool = True) -> memoryview:
    """The contents of the block at handle (offset, size), its trailer's checksum verified."""
    offset, size = handle
    if offset + size + TRAILER_SIZE > len(data) - FOOTER_SIZE:
        raise TableError(f"{what}: block at offset {offset} with size {size} (+{TRAILER_SIZE} trailer bytes) runs "
                         f"past the table's data ({len(data) - FOOTER_SIZE} bytes before the footer)")
    view = memoryview(data)
    kind = data[offset + size]
    if verify:
        stored = crc32c.unmask(_U32.unpack_from(data, offset + size + 1)[0])
        actual = crc32c.value(view[offset:offset + size + 1])
        if stored != actual:
            raise TableError(f"{what}: block at offset {offset} fails its crc32c check (stored {stored:#010x}, "
                             f"computed {actual:#010x})")
    if kind == SNAPPY:
        raise TableError(f"{what}: block at offset {offset} is Snappy-compressed; TensorFlow writes checkpoint "
                         f"index blocks uncompressed and rnnfast does not implement Snappy")
    if kind != NO_COMPRESSION:
        raise TableError(f"{what}: block at offset {offset} has compression type {kind}; expected 0 (none)")
    return view[offset:offset + size]


def block_entries(block: memoryview, what: str):
    """(key bytes, value memoryview) of every entry of a block, in order."""
    n = len(block)
    if n < 4:
        raise TableError(f"{what}: {n} bytes, too short for the restart count")
    restarts = _U32.unpack_from(block, n - 4)[0]
    limit = n - 4 - 4 * restarts
    if restarts == 0 or limit < 0:
        raise TableError(f"{what}: restart count {restarts} does not fit a block of {n} bytes")
    first = _U32.unpack_from(block, limit)[0]
    if first != 0:
        raise TableError(f"{what}: first restart point is {first}, expected 0")
    key = b""
    pos = 0
    while pos < limit:
        shared, pos = _varint(block, pos, limit, f"{what} entry at byte {pos} shared length")
        fresh, pos = _varint(block, pos, limit, f"{what} entry at byte {pos} key length")
        size, pos = _varint(block, pos, limit, f"{what} entry at byte {pos} value length")
        if shared > len(key):
            raise TableError(f"{what}: entry at byte {pos} shares {shared} key bytes with a key of {len(key)}")
        if fresh + size > limit - pos:
            raise TableError(f"{what}: entry at byte {pos} needs {fresh + size} bytes, {limit - pos} are left "
                             f"before the restart array")
        key = key[:shared] + bytes(block[pos:pos + fresh])
        pos += fresh
        yield key, block[pos:pos + size]
        pos += size


def read_table(data, name: str = "table", verify: bool = True) -> list:
    """[(key, value bytes)] of every entry of the table in `data`, in key order."""
    if len(data) < FOOTER_SIZE:
        raise TableError(f"{name}: {len(data)} bytes, shorter than the {FOOTER_SIZE}-byte footer")
    foot = len(data) - FOOTER_SIZE
    magic = struct.unpack_from("<Q", data, foot + 40)[0]
    if magic != MAGIC:
        raise TableError(f"{name}: footer magic {magic:#018x}, expected {MAGIC:#018x} (not a TensorFlow "
                         f"checkpoint index, or truncated)")
    _meta, pos = _handle(data, foot, foot + 40, "footer metaindex handle")
    index, _ = _handle(data, pos, foot + 40, "footer index handle")
    entries = []
    last = None
    for k, (key, value) in enumerate(block_entries(read_block(data, index, "index block", verify), "index block")):
        handle, end = _handle(value, 0, len(value), f"index entry {k} block handle")
        if end != len(value):
            raise TableError(f"index entry {k}: {len(value) - end} bytes after its block handle")
        where = f"data block {k}"
        for key, value in block_entries(read_block(data, handle, where, verify), where):
            if last is not None and key <= last:
                raise TableError(f"{where}: key {key!r} is not after the previous key {last!r}")
            last = key
            entries.append((key, bytes(value)))
    return entries
