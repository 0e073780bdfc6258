"""The bounded walk of HDF5 global heap collections (importers/keras/h5_heaps.py) that runs before libhdf5 sees a
file: what libhdf5 would loop on or read past is refused by offset, and no valid fixture is refused."""
import glob
import os
import zipfile

import pytest

import rnnfast
from rnnfast.errors import FormatError
from rnnfast.importers.keras.h5_heaps import GCOL, check_global_heaps

KERAS = os.path.join(os.path.dirname(__file__), "data", "keras")


def _h5_bytes(path):
    return zipfile.ZipFile(path).read("model.weights.h5") if path.endswith(".keras") else open(path, "rb").read()


def test_every_valid_fixture_passes():
    paths = [p for p in sorted(glob.glob(os.path.join(KERAS, "*.h5")) + glob.glob(os.path.join(KERAS, "*.keras")))
             if "hostile" not in p]
    walked = 0
    for path in paths:
        data = _h5_bytes(path)
        walked += GCOL in data  # variable-length strings (Keras 2 and 3) live in a global heap: work for the walk
        check_global_heaps(data, path)
    assert walked > 40


def _first_object(data: bytes) -> int:
    at = data.find(GCOL)
    return at + 16  # after the collection's header (signature, version, reserved, 8-byte size)


def test_an_object_past_the_collection_is_refused(tmp_path):
    data = bytearray(_h5_bytes(os.path.join(KERAS, "k3_go_backwards.h5")))
    p = _first_object(data)
    data[p + 8:p + 16] = (1 << 40).to_bytes(8, "little")
    path = tmp_path / "overrun.h5"
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=r"overrun\.h5: damaged HDF5 file: object \d+ of the global heap collection "
                                          r"at byte \d+ ends past the collection"):
        rnnfast.load(path)


def test_a_free_space_object_that_does_not_advance_is_refused():
    data = bytearray(_h5_bytes(os.path.join(KERAS, "k3_go_backwards.h5")))
    p = _first_object(data)
    data[p:p + 2] = b"\x00\x00"  # the first object made index 0 (free space) of size 0
    data[p + 8:p + 16] = bytes(8)
    with pytest.raises(FormatError, match="free-space object of size 0"):
        check_global_heaps(bytes(data), "zero.h5")
