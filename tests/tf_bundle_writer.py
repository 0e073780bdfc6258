"""A small TensorFlow checkpoint (TensorBundle) writer for tests that need checkpoints TensorFlow would not write
(damaged entries, unmatched scopes, odd dtypes) without importing TensorFlow. It follows table.cc's layout
(entries with shared key prefixes, restart points every 16 keys, block trailers with masked crc32c, the footer);
the fixtures TensorFlow itself wrote (tests/data/tf1) check that the reader reads that layout, so this writer only
has to produce the same structure.
"""
import struct

import numpy as np

from rnnfast.importers.tf import crc32c
from wire_encoders import ld, tag, varint

DTYPE_CODES = {np.dtype(np.float32): 1, np.dtype(np.float64): 2, np.dtype(np.int32): 3, np.dtype(np.int64): 9}
MAGIC = 0xDB4775248B80FB57


def entry_bytes(dtype=1, shape=(), shard_id=0, offset=0, size=0, crc=0, sliced=False) -> bytes:
    dims = b"".join(ld(2, tag(1, 0) + varint(d)) for d in shape)
    out = tag(1, 0) + varint(dtype) + ld(2, dims)
    if shard_id:
        out += tag(3, 0) + varint(shard_id)
    if offset:
        out += tag(4, 0) + varint(offset)
    if size:
        out += tag(5, 0) + varint(size)
    out += tag(6, 5) + struct.pack("<I", crc)
    if sliced:
        out += ld(7, b"")
    return out


def block(entries, restart_interval=16, compression=0) -> bytes:
    """Block contents plus the 5-byte trailer."""
    out, restarts, last = bytearray(), [], b""
    for k, (key, value) in enumerate(entries):
        shared = 0
        if k % restart_interval == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(key), len(last)) and key[shared] == last[shared]:
                shared += 1
        out += varint(shared) + varint(len(key) - shared) + varint(len(value)) + key[shared:] + value
        last = key
    if not restarts:
        restarts = [0]
    out += b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))
    body = bytes(out) + bytes([compression])
    return body + struct.pack("<I", crc32c.mask(crc32c.value(body)))


def table(entries, per_block=4) -> bytes:
    """A table of sorted (key, value) entries in data blocks of `per_block` entries, an empty metaindex block, the
    index block and the footer."""
    out, index = bytearray(), []
    for i in range(0, len(entries), per_block):
        chunk = entries[i:i + per_block]
        data = block(chunk)
        index.append((chunk[-1][0], varint(len(out)) + varint(len(data) - 5)))
        out += data
    meta = (len(out), len(block([])) - 5)
    out += block([])
    idx = block(index)
    handle = (len(out), len(idx) - 5)
    out += idx
    footer = varint(meta[0]) + varint(meta[1]) + varint(handle[0]) + varint(handle[1])
    return bytes(out) + footer.ljust(40, b"\0") + struct.pack("<Q", MAGIC)


def write_checkpoint(prefix, tensors: dict, overrides=None, num_shards=1, header=None):
    """Write prefix.index and prefix.data-0000K-of-0000N: tensors maps names to arrays, placed in the shards in
    turn; overrides maps a name to entry_bytes keyword arguments that replace what the array gives (to damage it)."""
    shards, entries = [bytearray() for _ in range(num_shards)], []
    for k, name in enumerate(sorted(tensors)):
        arr = np.ascontiguousarray(tensors[name])
        raw, data = arr.tobytes(), shards[k % num_shards]
        fields = dict(dtype=DTYPE_CODES[arr.dtype], shape=arr.shape, shard_id=k % num_shards, offset=len(data),
                      size=len(raw), crc=crc32c.mask(crc32c.value(raw)))
        fields.update((overrides or {}).get(name, {}))
        entries.append((name.encode(), entry_bytes(**fields)))
        data += raw
    head = header if header is not None else tag(1, 0) + varint(num_shards)
    with open(f"{prefix}.index", "wb") as f:
        f.write(table([(b"", head)] + entries))
    for k, data in enumerate(shards):
        with open(f"{prefix}.data-{k:05d}-of-{num_shards:05d}", "wb") as f:
            f.write(bytes(data))
