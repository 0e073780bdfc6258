"""Bounded checks of HDF5 structures libhdf5 is known to mishandle, run on a file's bytes before h5py opens it.

Global heap collections ("GCOL": where variable-length strings live, so every Keras .h5 file has them, for
model_config, layer_names and weight_names) are decoded by libhdf5 (H5HG__cache_heap_deserialize, HDF5 1.10 to
2.0) in a loop that advances by each object's declared size: a free-space object (index 0) of size 0 never advances
and the load hangs for good (tests/data/keras/hostile_hang.h5), and a size past the collection's end sends its
later reads outside the buffer. Here every collection in the file is walked the same way, with work bounded by its
size, and one that libhdf5 would loop on or overrun is refused by its offset. Candidates are found by their
signature and version; a valid file never fails the walk (collections are whole multiples of 8-byte aligned
objects, the last one the free space)."""
from __future__ import annotations

from ...errors import FormatError

SIGNATURE = b"\x89HDF\r\n\x1a\n"
GCOL = b"GCOL\x01\x00\x00\x00"  # signature, version 1, three reserved zero bytes
MIN_COLLECTION = 4096  # H5HG_MINSIZE: libhdf5 reads no smaller collection


def check_global_heaps(data: bytes, where: str) -> None:
    lengths = _size_of_lengths(data)
    if lengths is None:
        return  # no superblock libhdf5 would accept either: h5py's own refusal names it
    at = data.find(GCOL)
    while at >= 0:
        if at + 8 + lengths <= len(data):
            size = int.from_bytes(data[at + 8:at + 8 + lengths], "little")
            if MIN_COLLECTION <= size <= len(data) - at:  # else libhdf5 fails reading it, without looping
                _walk(data, at, size, lengths, where)
        at = data.find(GCOL, at + 1)


def _size_of_lengths(data: bytes):
    """The superblock's size of lengths (2, 4 or 8 bytes); it starts at 0, 512, 1024, 2048... (after a user block)."""
    base = 0
    while base + 16 <= len(data):
        if data[base:base + 8] == SIGNATURE:
            version = data[base + 8]
            size = data[base + 14] if version in (0, 1) else data[base + 10] if version in (2, 3) else None
            return size if size in (2, 4, 8) else None
        base = 512 if base == 0 else base * 2
    return None


def _walk(data: bytes, at: int, size: int, lengths: int, where: str) -> None:
    header = 8 + lengths  # object: index u16, reference count u16, 4 reserved, size
    p, end = at + 8 + lengths, at + size
    while p < end:
        if p + header > end:
            return  # a tail too small for an object header is free space
        index = int.from_bytes(data[p:p + 2], "little")
        object_size = int.from_bytes(data[p + 8:p + 8 + lengths], "little")
        step = header + (object_size + 7) // 8 * 8 if index else object_size
        if index == 0 and (object_size == 0 or object_size % 8):
            raise FormatError(f"{where}: damaged HDF5 file: the global heap collection at byte {at} has a free-space "
                              f"object of size {object_size} at byte {p} (libhdf5 would not get past it)")
        if p + step > end:
            raise FormatError(f"{where}: damaged HDF5 file: object {index} of the global heap collection at byte "
                              f"{at} ends past the collection ({object_size} bytes at byte {p}, the collection ends "
                              f"at {end})")
        p += step
