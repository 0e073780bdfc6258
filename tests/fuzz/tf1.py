"""The fuzz target for TensorFlow 1.x checkpoints: one input holds both files of a checkpoint (the .index table and
its one data shard), written to a folder and loaded by prefix as a user's checkpoint is.

Input layout: a mode byte, the index's length (uint32 little-endian), the index, then the data shard. Every block
and tensor carries a crc32c, so a random mutation is almost always refused by the first checksum; with the mode
byte's low bit set the target first rewrites the checksums to match the mutated bytes (tensor crcs in the index
entries, then every block trailer), which lets mutations reach the table, entry and cell parsing behind them."""
from __future__ import annotations

import os
import struct
import tempfile

from tests.fuzz.targets import DATA, MAX_SEED_BYTES

_FOLDER = None


def pack(index: bytes, data: bytes, fix: bool = True) -> bytes:
    return bytes([1 if fix else 0]) + struct.pack("<I", len(index)) + index + data


def unpack(blob: bytes) -> tuple:
    """(fix checksums?, index, data); a mutated length is taken modulo what is there, so every input splits."""
    if len(blob) < 5:
        return False, blob, b""
    rest = blob[5:]
    n = struct.unpack_from("<I", blob, 1)[0] % (len(rest) + 1)
    return bool(blob[0] & 1), rest[:n], rest[n:]


def _field_offset(value, number: int, wire: int):
    """Byte offset of the first field `number` of wire type `wire` in a protobuf message, or None."""
    from rnnfast.importers.tf.table import _varint

    pos, end = 0, len(value)
    while pos < end:
        tag, pos = _varint(value, pos, end, "tag")
        kind = tag & 7
        if tag >> 3 == number and kind == wire:
            return pos
        if kind == 0:
            _, pos = _varint(value, pos, end, "varint")
        elif kind == 1:
            pos += 8
        elif kind == 2:
            n, pos = _varint(value, pos, end, "length")
            pos += n
        elif kind == 5:
            pos += 4
        else:
            return None
    return None


def fix_checksums(index: bytearray, data: bytes):
    """Rewrite, in place, each entry's tensor crc32c to match `data`, then each block's trailer; leaves whatever
    cannot be walked as it is (the reader then refuses it, which is fine)."""
    from rnnfast.importers.onnx.wire import parse
    from rnnfast.importers.tf import crc32c
    from rnnfast.importers.tf.bundle import BundleEntryProto
    from rnnfast.importers.tf.table import FOOTER_SIZE, _handle, block_entries, read_block

    def trailer(handle):
        off, size = handle
        if 0 <= off and off + size + 5 <= len(index):
            index[off + size + 1:off + size + 5] = struct.pack(
                "<I", crc32c.mask(crc32c.value(bytes(index[off:off + size + 1]))))

    try:
        foot = len(index) - FOOTER_SIZE
        _meta, pos = _handle(index, foot, foot + 40, "")
        ih, _ = _handle(index, pos, foot + 40, "")
        handles = [_handle(v, 0, len(v), "")[0]
                   for _, v in block_entries(read_block(index, ih, "", verify=False), "")]
        for h in handles:
            try:
                for key, value in block_entries(read_block(index, h, "", verify=False), ""):
                    if not key:
                        continue
                    at = _field_offset(value, 6, 5)
                    if at is None or at + 4 > len(value):
                        continue
                    e = parse(BundleEntryProto, bytes(value))
                    raw = data[e.offset:e.offset + e.size] if 0 <= e.offset and 0 <= e.size else b""
                    value[at:at + 4] = struct.pack("<I", crc32c.mask(crc32c.value(raw)))
            except Exception:  # noqa: BLE001 - a block that cannot be walked keeps its bytes
                pass
            trailer(h)
        trailer(ih)
    except Exception:  # noqa: BLE001
        return


def target(blob: bytes):
    import rnnfast
    from tests.fuzz.targets import _run_small

    global _FOLDER
    if _FOLDER is None:
        _FOLDER = tempfile.mkdtemp(prefix="rnnfast-fuzz-tf1-")
    fix, index, data = unpack(blob)
    index = bytearray(index)
    if fix:
        fix_checksums(index, data)
    prefix = os.path.join(_FOLDER, "model.ckpt")
    with open(prefix + ".index", "wb") as f:
        f.write(index)
    with open(prefix + ".data-00000-of-00001", "wb") as f:
        f.write(data)
    _run_small(rnnfast.load(prefix))


def seeds() -> list:
    out = []
    for folder in sorted(p for p in (DATA / "tf1").iterdir() if p.is_dir()):
        index = (folder / "model.ckpt.index").read_bytes()
        data = (folder / "model.ckpt.data-00000-of-00001").read_bytes()
        if len(index) + len(data) <= MAX_SEED_BYTES:
            out += [pack(index, data, fix=True), pack(index, data, fix=False)]
    return out
