"""Hostile model files, built at test time: pickles that attack the unpickler (BUILD on a checked tensor record,
memo and length bombs), tiny files declaring gigabytes (zero strides, zip bombs, HDF5 datasets never written or
compressed zeros, safetensors entries sharing one byte range), and damaged variants of every format. Shared by
tests/test_untrusted_files.py and the fuzz seeds (tests/fuzz/)."""
from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
LEGACY_MAGIC_PICKLE = b"\x80\x02\x8a\x0al\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19."


# --- a pickle assembler: opcodes by hand, so a file can say what no pickler writes ---------------------------------
def text(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def int32(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def tup(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def tensor_pickle(size=(4,), stride=(1,), numel=4, build_stride=None) -> bytes:
    """A state dict {"w": tensor} over storage "0" of `numel` floats; with build_stride, a BUILD opcode then tries
    to rewrite the checked record's stride (what a 739-byte file did to make rnnfast read heap memory)."""
    storage = tup(text("storage"), glob("torch", "FloatStorage"), text("0"), text("cpu"), int32(numel)) + b"Qq\x01"
    rebuild = (glob("torch._utils", "_rebuild_tensor_v2") + b"(" + storage + int32(0) + tup(*map(int32, size))
               + tup(*map(int32, stride)) + b"\x89" + glob("collections", "OrderedDict") + b")RtR")
    build = b""
    if build_stride is not None:
        build = tup(b"h\x01", int32(0), tup(*map(int32, size)), tup(*map(int32, build_stride))) + b"b"
    return b"\x80\x02}" + text("w") + rebuild + build + b"s."


def torch_zip(pkl: bytes, storage: bytes = b"\0" * 16) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a/data.pkl", pkl)
        z.writestr("a/byteorder", "little")
        z.writestr("a/data/0", storage)
    return buf.getvalue()


def legacy_memo_bomb() -> bytes:
    """The legacy magic number's pickle, storing it at memo index 2^31-1: the C unpickler would grow its memo
    array to 16 GB first."""
    return LEGACY_MAGIC_PICKLE[:-1] + b"r\xff\xff\xff\x7f."


def legacy_length_bomb() -> bytes:
    """Legacy magic, then a protocol-4 pickle whose BINBYTES8 declares 4.2 GB: allocated before it is read."""
    return LEGACY_MAGIC_PICKLE + b"\x80\x04\x8e" + struct.pack("<Q", 4_200_000_000) + b"abc."


# --- zip bombs: a deflate stream of N zeros, written without ever holding them ------------------------------------
def zeros_deflate(n: int) -> bytes:
    """Raw deflate of n zero bytes (n a multiple of 16 MiB): after a full flush the compressor's state repeats, so
    one chunk's bytes stand for all of them."""
    chunk = 16 << 20
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    zero = bytes(chunk)
    first = c.compress(zero) + c.flush(zlib.Z_FULL_FLUSH)
    second = c.compress(zero) + c.flush(zlib.Z_FULL_FLUSH)
    parts = [first] + [second] * (n // chunk - 1)
    return b"".join(parts) + c.flush()


def zip_with_member(members: dict, bomb_name: str, bomb_size: int) -> bytes:
    """A zip holding `members` stored, plus `bomb_name`: bomb_size zero bytes deflated (its crc is left 0: the
    reader must refuse it before inflating, so it never gets to check)."""
    entries, out = [], io.BytesIO()
    for name, data, method, size, crc in ([(n, d, 0, len(d), zlib.crc32(d)) for n, d in members.items()]
                                          + [(bomb_name, zeros_deflate(bomb_size), 8, bomb_size, 0)]):
        offset = out.tell()
        raw = name.encode()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc, len(data), size, len(raw), 0))
        out.write(raw + data)
        entries.append((raw, method, crc, len(data), size, offset))
    cd = out.tell()
    for raw, method, crc, csize, size, offset in entries:
        out.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc, csize, size, len(raw),
                              0, 0, 0, 0, 0, offset) + raw)
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), out.tell() - cd, cd, 0))
    return out.getvalue()


def torch_zip_bomb(size=3 << 30) -> bytes:
    return zip_with_member({"a/data.pkl": tensor_pickle(), "a/byteorder": b"little"}, "a/data/0", size)


def keras_zip_bomb(size=3 << 30) -> bytes:
    with zipfile.ZipFile(DATA / "keras" / "k3_go_backwards.keras") as z:
        members = {n: z.read(n) for n in z.namelist() if n != "model.weights.h5"}
    return zip_with_member(members, "model.weights.h5", size)


# --- HDF5: a real Keras file with one dataset swapped for a huge declared one ---------------------------------------
KERAS_H5 = DATA / "keras" / "k3_go_backwards.h5"
KERAS_KERNEL = "model_weights/lstm_10/sequential_11/lstm_10/lstm_cell/kernel"


def h5_with_dataset(shape, written: bool) -> bytes:
    """k3_go_backwards.h5 with its LSTM kernel declared as `shape` float32, gzip-chunked; its zeros written
    (compressed to almost nothing) or never written (HDF5 fills them in when read)."""
    import h5py
    import numpy as np

    buf = io.BytesIO(KERAS_H5.read_bytes())
    with h5py.File(buf, "r+") as f:
        del f[KERAS_KERNEL]
        ds = f.create_dataset(KERAS_KERNEL, shape=shape, dtype="f4", chunks=(min(shape[0], 1024), shape[1]),
                              compression="gzip")
        if written:
            ds[...] = np.zeros(shape, np.float32)
    return buf.getvalue()


# --- safetensors -----------------------------------------------------------------------------------------------------
def safetensors(header: bytes, body: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + body


def safetensors_nested(depth=100_000) -> bytes:
    return safetensors(b"{\"a\": " + b"[" * depth + b"]" * depth + b"}")


def safetensors_shared_bytes(entries=6000, mib=1) -> bytes:
    """`entries` tensors all naming the same `mib` MiB of data: each is copied out, so 6 GB from 1 MB."""
    n = (mib << 20) // 4
    header = "{" + ",".join(f'"t{i}": {{"dtype": "F32", "shape": [{n}], "data_offsets": [0, {4 * n}]}}'
                            for i in range(entries)) + "}"
    return safetensors(header.encode(), bytes(4 * n))
