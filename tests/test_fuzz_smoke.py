"""A short run of every fuzz target (tests/fuzz/) with the plain driver: a few seconds each, about 30 s in all. It
must find nothing; the long runs are `python -m tests.fuzz.run --minutes N` (docs/fuzzing.md). The plain "h5"
target is left to the long runs: libhdf5 itself can crash or loop on a mutated file, which h5_safe covers."""
import pytest

from fuzz import plain
from fuzz.targets import TARGETS

SECONDS = {"h5_safe": 4.0}


@pytest.mark.parametrize("target", [t for t in TARGETS if t != "h5"])
def test_fuzz_smoke(target, tmp_path):
    result = plain.fuzz(target, SECONDS.get(target, 3.0), tmp_path, seed=1)
    assert result["execs"] > 0, result
    assert not result["findings"], [open(f + ".txt").read()[-1500:] for f in result["findings"]]
