"""A short run of every fuzz target (tests/fuzz/) with the plain driver: 2-3 s each, about 25 s in all when quiet. It
must find nothing; the long runs are `python -m tests.fuzz.run --minutes N` (docs/fuzzing.md). The plain "h5"
target is left to the long runs: libhdf5 itself can crash or loop on a mutated file, which h5_safe covers."""
import pytest

from fuzz import plain
from fuzz.targets import TARGETS

# seconds, and the fewest inputs even on a busy machine (h5_safe starts a process per input)
RUN = {"h5_safe": (3.0, 1)}


@pytest.mark.parametrize("target", [t for t in TARGETS if t != "h5"])
def test_fuzz_smoke(target, tmp_path):
    seconds, min_execs = RUN.get(target, (2.0, 10))
    result = plain.fuzz(target, seconds, tmp_path, seed=1, min_execs=min_execs)
    assert result["execs"] >= min_execs, result
    assert not result["findings"], [open(f + ".txt").read()[-1500:] for f in result["findings"]]
