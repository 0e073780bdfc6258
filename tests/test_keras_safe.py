"""rnnfast.load(..., safe=True) parses HDF5 in a child process: the same model as the plain load, and a file that
makes libhdf5 loop (tests/data/keras/hostile_hang.h5, found by tests/fuzz: the plain load does not return within
40 s) costs a FormatError after the time limit instead of the process."""
import time

import numpy as np
import pytest

import hostile
import rnnfast
from rnnfast.errors import DeclaredSizeError, FormatError

KERAS = hostile.DATA / "keras"


@pytest.mark.parametrize("name", ["k3_embedding_mask_pipeline.h5", "k3_bidirectional_modes.keras",
                                  "keras2_sequential_chunked.h5"])
def test_safe_mode_loads_the_same_model(name):
    plain, safe = rnnfast.load(KERAS / name), rnnfast.load(KERAS / name, safe=True)
    rng = np.random.default_rng(0)
    feeds = {}
    for info in plain.inputs:
        shape = [d if isinstance(d, int) else 3 for d in info.shape]
        feeds[info.name] = (rng.integers(0, 3, shape).astype(np.int32) if "int" in info.type
                            else rng.standard_normal(shape).astype(np.float32))
    for a, b in zip(plain.run(feeds), safe.run(feeds)):
        np.testing.assert_array_equal(a, b)


def test_a_file_that_makes_libhdf5_loop_is_refused_at_once():
    """The loop is in libhdf5's walk of a global heap collection: the same walk, bounded, finds it first."""
    with pytest.raises(FormatError, match=r"hostile_hang\.h5: damaged HDF5 file: the global heap collection at byte "
                                          r"2048 has a free-space object of size 0"):
        rnnfast.load(KERAS / "hostile_hang.h5")


def test_a_file_that_makes_libhdf5_loop_is_refused_after_the_time_limit(monkeypatch):
    """Safe mode bounds what no check foresees: with the heap check out of the way, libhdf5 loops in the child."""
    import rnnfast.importers.keras as keras_importer

    monkeypatch.setattr(keras_importer, "check_global_heaps", lambda data, where: None)
    start = time.monotonic()
    with pytest.raises(FormatError, match=r"hostile_hang\.h5: reading the HDF5 file did not finish in 3 s"):
        rnnfast.load(KERAS / "hostile_hang.h5", safe=3)
    assert time.monotonic() - start < 10


def test_safe_mode_keeps_the_size_checks():
    with pytest.raises(DeclaredSizeError, match=r"kernel of shape \[30000, 30000\] declares 3600000000 bytes"):
        rnnfast.load(hostile.h5_with_dataset((30000, 30000), written=False), safe=True)


def test_safe_takes_seconds_or_true():
    with pytest.raises(ValueError, match="option safe must be True or a number of seconds"):
        rnnfast.load(KERAS / "k3_go_backwards.h5", safe="yes")
