"""The standalone C library (`make -C src_c`, no Python) built and exercised by a C program; its printed outputs
are compared with the float64 reference on the same weights."""
import os
import subprocess

import numpy as np
import pytest
from c_build import copy_sources, link, needs_gcc_and_make

from conftest import assert_close
from rnnfast.engine import ACTIVATION_CODES
from rnnfast.layers import RecurrentLayer
from rnnfast.reference import run_layer

pytestmark = needs_gcc_and_make


def filled(n, seed):  # the C program's weight formula
    return (0.5 * np.sin(0.37 * np.arange(n) + seed)).astype(np.float32)


@pytest.fixture(scope="module")
def c_library(tmp_path_factory):
    """A build directory holding include/ and src_c/librnnfast.a, made by `make -C src_c`."""
    build = copy_sources(tmp_path_factory.mktemp("cbuild"))
    subprocess.run(["make", "-s", "-C", str(build / "src_c")], check=True, capture_output=True)
    return build


@pytest.fixture(scope="module")
def c_program(c_library):
    return link(c_library, "test_api.c")


def test_step_allocates_nothing(c_library):
    """Every allocation the library makes goes through counters (ld --wrap); 50 steps of each cell, stacked, with
    a projection, at 1 and 2 threads, must make none."""
    wraps = ",".join(f"--wrap={f}" for f in ("malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc"))
    result = subprocess.run([str(link(c_library, "test_step_no_alloc.c", f"-Wl,{wraps}"))], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    cases = [line.split() for line in result.stdout.splitlines() if line.startswith("cell")]
    assert len(cases) == 8, result.stdout
    for fields in cases:
        assert fields[fields.index("steps") + 1] == "50" and fields[-1] == "ok", fields
        assert int(fields[fields.index("create_allocations") + 1]) > 0, "the allocation counters see nothing"
        assert fields[fields.index("allocations") + 1] == "0", " ".join(fields)


def check_test_api_output(result, what=""):
    """tests/c/test_api.c passed its own checks, and the run it printed matches the float64 reference on the
    same weights (an LSTM T=6, B=2, I=3, H=5 filled by `filled`)."""
    assert result.returncode == 0, result.stderr
    assert "1 passed, 0 failed" in result.stdout
    values = {"y": [], "c": []}
    for line in result.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key in values:
            values[key].append(float(value))
    T, B, I, H = 6, 2, 3, 5
    layer = RecurrentLayer("lstm", "forward", H, I, filled(4 * H * I, 0.1).reshape(1, 4 * H, I),
                           filled(4 * H * H, 0.2).reshape(1, 4 * H, H), filled(4 * H, 0.3).reshape(1, -1),
                           filled(4 * H, 0.4).reshape(1, -1))
    y, _, y_c = run_layer(layer, filled(T * B * I, 0.5).reshape(T, B, I))
    assert_close(np.array(values["y"]).reshape(T, B, H), y[:, 0], what=what)
    assert_close(np.array(values["c"]).reshape(B, H), y_c[0], what=what)


def test_c_api_checks_pass_and_outputs_match_the_reference(c_program):
    check_test_api_output(subprocess.run([str(c_program)], capture_output=True, text=True))


def test_every_table_this_cpu_runs_passes_the_c_api_checks(c_library, c_program):
    """`make -C src_c` builds every table the compiler can (AVX-512 beside AVX2 on x86-64): test_kernels isa names
    them and picks the best this CPU runs, RNNFAST_ISA forces each in turn, and test_api passes on each."""
    kernels = link(c_library, "test_kernels.c", "-D_POSIX_C_SOURCE=200112L", f"-I{c_library / 'src_c'}")
    words = subprocess.run([str(kernels), "isa"], capture_output=True, text=True, check=True).stdout.split()
    compiled, supported, selected = words[1].split(","), words[3].split(","), words[5]
    assert words[0::2] == ["compiled", "supported", "selected"] and set(supported) <= set(compiled), words
    assert selected == supported[-1], words  # the chain of supported tables ends with the best one
    for table in supported:
        env = dict(os.environ, RNNFAST_ISA=table)
        forced = subprocess.run([str(kernels), "isa"], capture_output=True, text=True, env=env).stdout.split()
        assert forced[5] == table, forced
        check_test_api_output(subprocess.run([str(c_program)], capture_output=True, text=True, env=env), what=table)


def gru_gates_float64(gx, gh, h_prev, f, g, clip):
    """linear_before_reset = 1 gates of gx, gh [N][3][16] (z, r, candidate) in float64."""
    act = {"Sigmoid": lambda v: 1 / (1 + np.exp(-v)), "Tanh": np.tanh,
           "HardSigmoid": lambda v: np.clip(0.2 * v + 0.5, 0, 1)}
    c = (lambda v: np.clip(v, -clip, clip)) if clip > 0 else (lambda v: v)
    gx, gh = gx.astype(np.float64), gh.astype(np.float64)
    z, r = act[f](c(gx[:, 0] + gh[:, 0])), act[f](c(gx[:, 1] + gh[:, 1]))
    n = act[g](c(gx[:, 2] + r * gh[:, 2]))
    return (1 - z) * n + z * h_prev


@pytest.mark.parametrize("f,g,clip", [("Sigmoid", "Tanh", 0.0), ("Sigmoid", "Tanh", 1.5), ("HardSigmoid", "Tanh", 0.0)])
def test_gru_row_kernel_gives_the_block_kernels_bits_in_every_table(c_library, f, g, clip, tmp_path):
    """The row kernel of the GRU gates (kernels.h gru_lbr_rows: the engine runs a row's unit blocks through it as
    rows, and a batch's rows) against the same table's block kernel, bit for bit, for 1..9 rows with inactive rows
    left alone (the AVX-512 table takes the common gates two rows at a time, so every pairing and tail), and against
    float64 within the tests' tolerance; the ref table's scalar block kernel too."""
    kernels = link(c_library, "test_kernels.c", "-D_POSIX_C_SOURCE=200112L", f"-I{c_library / 'src_c'}")
    words = subprocess.run([str(kernels), "isa"], capture_output=True, text=True, check=True).stdout.split()
    rng = np.random.default_rng(5)
    for table in words[3].split(","):
        env = dict(os.environ, RNNFAST_ISA=table)
        for n in range(1, 10):
            gx, gh = (rng.standard_normal((n, 3, 16)).astype(np.float32) * 2 for _ in range(2))
            h_prev = rng.standard_normal((n, 16)).astype(np.float32)
            active = (rng.random(n) < 0.7).astype(np.float32)
            np.concatenate([gx.ravel(), gh.ravel(), h_prev.ravel(), active]).astype("<f4").tofile(tmp_path / "in.bin")
            result = subprocess.run([str(kernels), "gru", str(ACTIVATION_CODES[f]), str(ACTIVATION_CODES[g]),
                                     str(clip), str(n), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")],
                                    capture_output=True, text=True, env=env)
            assert result.returncode == 0, result.stderr
            rows, blocks = np.fromfile(tmp_path / "out.bin", "<f4").reshape(2, n, 16)
            what = f"{table} {f}/{g} clip {clip}, {n} rows, active {active.astype(int).tolist()}"
            assert rows.tobytes() == blocks.tobytes(), what
            on = active != 0
            assert (rows[~on] == 7).all(), f"{what}: an inactive row was written"
            assert_close(rows[on], gru_gates_float64(gx, gh, h_prev, f, g, clip)[on], what=what)


def test_portable_build_has_no_simd_and_no_openmp(tmp_path):
    """`make PORTABLE=1`: plain C99 (-pedantic), only the ref table, no OpenMP; the C API program still passes."""
    copy_sources(tmp_path, with_c_tests=True)
    made = subprocess.run(["make", "-s", "-j2", "-C", str(tmp_path / "src_c"), "PORTABLE=1", "all", "tests",
                           "CFLAGS=-O2 -pedantic"], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr[-3000:]
    out = tmp_path / "src_c" / "build" / "portable"
    symbols = subprocess.run(["nm", str(out / "librnnfast.a")], capture_output=True, text=True).stdout
    assert "rnnf_kernels_ref" in symbols and "avx2" not in symbols and "avx512" not in symbols and "GOMP" not in symbols
    isa = subprocess.run([str(out / "test_kernels"), "isa"], capture_output=True, text=True)
    assert isa.stdout.split() == ["compiled", "ref", "supported", "ref", "selected", "ref"]
    check_test_api_output(subprocess.run([str(out / "test_api")], capture_output=True, text=True), what="portable")


def test_contention_backoff_policy(c_library):
    """The recurrent calls' back-off to one thread when their barrier waits slept (src_c/threads.c), driven by a C
    program with synthetic tallies: a window of time that doubles while the machine stays busy, up to 1 s, and is
    short again after a call with threads went well."""
    exe = link(c_library, "test_contention_backoff.c", f"-I{c_library / 'src_c'}")
    result = subprocess.run([str(exe)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.rstrip().endswith("all ok"), result.stdout + result.stderr
    assert "FAILED" not in result.stdout and result.stdout.count(" ok\n") >= 8, result.stdout


def test_barrier_absorbs_a_slow_wake(c_library):
    """The step barrier (src_c/threads.c) when a woken thread takes 2 ms to run again, as a halted vCPU does: one late
    arrival must not turn into a sleep and a wake-up at every later step."""
    exe = link(c_library, "test_barrier_wake.c", f"-I{c_library / 'src_c'}")
    result = subprocess.run([str(exe)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.rstrip().endswith("all ok"), result.stdout + result.stderr


def test_thread_choice_policy(c_library):
    """The executor's choice between one thread and the asked count (src_c/graph/adapt.c), driven by a C program with
    synthetic run times: quiet, busy (a second thread 500x slower), and back, bursts of slow short runs, and the
    return to two threads after a busy moment."""
    exe = link(c_library, "test_thread_choice.c", f"-I{c_library / 'src_c'}")
    result = subprocess.run([str(exe)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.rstrip().endswith("all ok"), result.stdout + result.stderr
    assert result.stdout.count(") ok\n") == 12, result.stdout
