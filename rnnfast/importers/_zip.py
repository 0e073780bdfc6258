"""Zip archives from untrusted files (PyTorch .pt, Keras .keras): opened and read with every failure a FormatError
naming the file and the member, and each member's declared size checked before it is inflated.

zipfile raises a zoo of exceptions on damaged archives (BadZipFile, NotImplementedError for an unknown compression
method or version, RuntimeError for the encrypted flag, zlib.error, OverflowError and struct.error on bad offsets,
EOFError); none of them means anything but "this file is damaged". zipfile stops inflating at the declared size,
so checking that size (against the memory budget, and against what its compressed bytes can honestly inflate to)
bounds what a read allocates."""
from __future__ import annotations

import io
import zipfile

from ..errors import FormatError
from ..limits import LoadBudget


def open_zip(data: bytes, where: str, what: str = "zip archive") -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except Exception as e:  # noqa: BLE001 - see the module docstring
        raise FormatError(f"{where}: not a readable {what} ({type(e).__name__}: {e})") from None


def read_member(archive: zipfile.ZipFile, name: str, where: str, budget: LoadBudget) -> bytes:
    """The bytes of member `name`; FormatError if it is missing or damaged, DeclaredSizeError if its declared size
    does not fit the budget (shared by the archive's members) or would inflate like a bomb."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise FormatError(f"{where}: record {name!r} is missing from the archive") from None
    budget.take(info.file_size, f"record {name!r}")
    if info.compress_type != zipfile.ZIP_STORED:
        budget.inflate(info.file_size, info.compress_size, f"record {name!r}")
    try:
        return archive.read(info)
    except Exception as e:  # noqa: BLE001 - see the module docstring
        raise FormatError(f"{where}: record {name!r} cannot be read ({type(e).__name__}: {e})") from None
