"""The kernel table is chosen at first use from whichever thread gets there first: built under ThreadSanitizer
(dispatch.c alone, with stand-in tables), eight threads asking at once must draw no data-race report."""
import platform
import subprocess

import pytest
from c_build import ROOT, needs_gcc_and_make

pytestmark = needs_gcc_and_make


def test_first_use_of_the_kernel_table_is_race_free(tmp_path):
    exe = tmp_path / "race"
    isa = ["-DRNNF_HAVE_AVX2=1"] if platform.machine() in ("x86_64", "AMD64") else []
    made = subprocess.run(["gcc", "-std=c99", "-D_POSIX_C_SOURCE=200112L", "-O1", "-g", "-fsanitize=thread", *isa,
                           f"-I{ROOT / 'include'}", f"-I{ROOT / 'src_c'}", str(ROOT / "src_c" / "dispatch.c"),
                           str(ROOT / "tests" / "c" / "race_kernel_table.c"), "-lpthread", "-o", str(exe)],
                          capture_output=True, text=True)
    if made.returncode != 0 and "tsan" in made.stderr.lower():
        pytest.skip(f"no ThreadSanitizer runtime: {made.stderr[-200:]}")
    assert made.returncode == 0, made.stderr
    for _ in range(5):
        run = subprocess.run([str(exe)], capture_output=True, text=True, env={"TSAN_OPTIONS": "halt_on_error=1"})
        assert "ThreadSanitizer" not in run.stderr, run.stderr
        assert run.returncode == 0 and run.stdout.strip() in ("avx2", "ref"), (run.returncode, run.stdout)
