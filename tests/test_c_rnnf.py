""".rnnf files in the standalone C library (no Python): tests/c/test_rnnf_file.c loads files written here by
save_rnnf, runs and steps them; its outputs are compared with rnnfast's model of the chain (run_chain). Damaged
files must get the same verdict from the C and the Python reader. The library and program are built with
AddressSanitizer and UBSan when gcc has them, so a read out of bounds fails the test instead of passing silently."""
import struct
import subprocess

import numpy as np
import pytest
from c_build import link, needs_gcc_and_make, sanitized_build
from conftest import assert_close
from pipeline_builders import PIPELINE_CASES, random_input, random_pipeline, run_chain

from rnnfast import rnnf_spec as spec
from rnnfast.errors import FormatError
from rnnfast.exporters.rnnf import save_rnnf, to_bytes
from rnnfast.importers.rnnf import load_rnnf

pytestmark = needs_gcc_and_make
RNNF_OK, RNNF_ERR_FORMAT = 0, 4


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    build, flags = sanitized_build(tmp_path_factory)
    return link(build, "test_rnnf_file.c", *flags)


def _run(exe, *args):
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True,
                          env={"ASAN_OPTIONS": "detect_leaks=1", "OMP_NUM_THREADS": "2"})


def c_run_matches_python(program, rng, p, case, tmp_path, T=6, B=3):
    """Save p, run the C reader's `run` on a random input and compare its output with run_chain's."""
    x = random_input(rng, p, seq_len=T, batch=B)
    save_rnnf(p, tmp_path / "m.rnnf")
    (tmp_path / "x.bin").write_bytes(np.ascontiguousarray(x, "<i4" if p.takes_ids else "<f4").tobytes())
    result = _run(program, "run", tmp_path / "m.rnnf", tmp_path / "x.bin", T, B, tmp_path / "y.bin")
    assert result.returncode == 0, result.stdout + result.stderr
    expected = run_chain(p, x)
    assert_close(np.fromfile(tmp_path / "y.bin", "<f4").reshape(expected.shape), expected, what=case)


@pytest.mark.parametrize("case", sorted(PIPELINE_CASES))
def test_c_runs_and_steps_python_written_files(program, rng, case, tmp_path):
    c_run_matches_python(program, rng, random_pipeline(rng, **PIPELINE_CASES[case]), case, tmp_path)


def _damaged(data: bytes, rng) -> list:
    """Truncations, flips in the tables and anywhere, and the offset damage the format must catch."""
    h = spec.HEADER.unpack_from(data, 0)
    blobs_at = h[6] + spec.STAGE.size * h[7] + spec.LAYER_SIZE * h[8]
    table_end = blobs_at + spec.BLOB.size * h[9]
    out = [data[:n] for n in sorted(set(rng.integers(0, len(data), 40).tolist()) | {0, 63, 64, len(data) - 1})]
    for pos in list(range(table_end)) + rng.integers(table_end, len(data), 40).tolist():
        bad = bytearray(data)
        bad[pos] ^= int(rng.integers(1, 256))
        out.append(bytes(bad))
    for field, value in ((0, len(data)), (0, (1 << 64) - 64), (0, 64), (8, 1 << 40), (16, 2), (16, 3), (20, 0)):
        for i in range(h[9]):
            bad = bytearray(data)
            fmt = "<Q" if field < 16 else "<I"
            struct.pack_into(fmt, bad, blobs_at + spec.BLOB.size * i + field, value)
            out.append(bytes(bad))
    second = struct.unpack_from("<Q", data, blobs_at)[0]
    out.append(bytes(_patched(data, "<Q", blobs_at + spec.BLOB.size, second)))  # blob 1 over blob 0
    return out


def _patched(data, fmt, at, value):
    bad = bytearray(data)
    struct.pack_into(fmt, bad, at, value)
    return bad


def readers_agree_on_damaged(program, p, rng, tmp_path):
    """Damaged copies of p's file get the same verdict from the Python and the C reader.
    Returns (Python verdicts, the C program's lines, its status codes)."""
    files, verdicts = [], []
    for i, bad in enumerate(_damaged(to_bytes(p), rng)):
        path = tmp_path / f"bad{i:04d}.rnnf"
        path.write_bytes(bad)
        files.append(path)
        try:
            load_rnnf(bad, str(path))
            verdicts.append(RNNF_OK)
        except FormatError:
            verdicts.append(RNNF_ERR_FORMAT)
    result = _run(program, "check", *files)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert len(lines) == len(files)
    got = [int(line.split(" ", 1)[0]) for line in lines]
    disagree = [(str(f.name), py, c, line) for f, py, c, line in zip(files, verdicts, got, lines) if py != c]
    assert not disagree, disagree[:5]
    return verdicts, lines, got


def test_c_and_python_readers_agree_on_damaged_files(program, rng, tmp_path):
    p = random_pipeline(rng, "lstm", "bidirectional", embedding="mask_zero", proj_size=2, peepholes=True,
                        clip=1.0, custom_acts=True, n_layers=2)
    verdicts, lines, got = readers_agree_on_damaged(program, p, rng, tmp_path)
    assert verdicts.count(RNNF_OK) and verdicts.count(RNNF_ERR_FORMAT) > len(verdicts) // 2
    named = [line for line, v in zip(lines, got) if v == RNNF_ERR_FORMAT]
    assert all(": header: " in l or ": blob " in l or ": stage" in l or ": layer " in l for l in named), named[:3]


def test_c_error_codes(program, rng, tmp_path):
    embed = random_pipeline(rng, "gru", embedding="mask_zero")
    bidi = random_pipeline(rng, "lstm", "bidirectional", head="tanh")
    stack = random_pipeline(rng, "lstm", n_layers=2, proj_size=3, head=None)
    for name, p in (("embed", embed), ("bidi", bidi), ("stack", stack)):
        save_rnnf(p, tmp_path / f"{name}.rnnf")
    result = _run(program, "errors", tmp_path / "embed.rnnf", tmp_path / "bidi.rnnf", tmp_path / "stack.rnnf")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "errors: 0 failed" in result.stdout
