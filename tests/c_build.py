"""Builds of the standalone C library for the tests that drive it from C programs (test_c_library.py,
test_c_rnnf.py). The sources are copied into a scratch directory first, so a test build never writes into the
checkout or races another one."""
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
needs_gcc_and_make = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("make") is None,
                                        reason="needs gcc and make")


def copy_sources(dest: Path, with_c_tests=False) -> Path:
    """src_c/ and include/ (and tests/c/) under `dest`, without build output; skips outside a source checkout."""
    if not (ROOT / "src_c" / "Makefile").exists():
        pytest.skip("not a source checkout")
    shutil.copytree(ROOT / "src_c", dest / "src_c", ignore=shutil.ignore_patterns("build", "*.a", "*.so"))
    shutil.copytree(ROOT / "include", dest / "include")
    if with_c_tests:
        shutil.copytree(ROOT / "tests" / "c", dest / "tests" / "c")
    return dest


def link(build: Path, source: str, *flags) -> Path:
    """tests/c/<source> compiled against build/src_c/librnnfast.a (strict warnings); the executable's path."""
    exe = build / Path(source).stem
    made = subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", *flags, f"-I{build / 'include'}",
                           str(ROOT / "tests" / "c" / source), str(build / "src_c" / "librnnfast.a"), "-fopenmp",
                           "-lm", "-o", str(exe)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    return exe


SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]
_SANITIZED = {}


def _sanitizers_work(build):
    probe = build / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    made = subprocess.run(["gcc", *SANITIZE, str(probe), "-o", str(build / "probe")], capture_output=True)
    return made.returncode == 0 and subprocess.run([str(build / "probe")], capture_output=True).returncode == 0


def sanitized_build(tmp_path_factory):
    """src_c's librnnfast.a built once per session with AddressSanitizer and UBSan when gcc has them, so a read out
    of bounds fails a test instead of passing silently: (build directory, the flags to link programs with)."""
    if "build" not in _SANITIZED:
        build = copy_sources(tmp_path_factory.mktemp("csan"))
        flags = SANITIZE if _sanitizers_work(build) else []
        subprocess.run(["make", "-s", "-C", str(build / "src_c"), "librnnfast.a", f"CFLAGS=-O1 -g {' '.join(flags)}"],
                       check=True, capture_output=True)
        _SANITIZED["build"] = (build, flags)
    return _SANITIZED["build"]
