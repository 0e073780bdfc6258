"""The C library built for aarch64 with Debian's cross compiler (`make -C src_c cross-aarch64`, static) and run
under qemu-user, once per kernel table (RNNFAST_ISA). Its outputs are compared with the float64 numpy reference
computed here on x86: .rnnf pipelines written by Python with float32, int8 and float16 weights (run and stepped,
1 and 2 threads bit-identical, checked by the C program), the packed GEMM on exact inputs, every activation on a
grid.
Needs aarch64-linux-gnu-gcc and qemu-aarch64 (Debian: gcc-aarch64-linux-gnu, qemu-user); skipped otherwise."""
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_close, random_layer
from pipeline_builders import PIPELINE_CASES, random_input, random_pipeline, reference_pipeline
from test_c_library import check_test_api_output
from test_engine import ACTIVATION_CASES, HIDDEN_TAILS, check_activation

from rnnfast.engine import ACTIVATION_CODES
from rnnfast.exporters.rnnf import save_rnnf
from rnnfast.pipeline import Pipeline, RecurrentStage, quantized_stages

ROOT = Path(__file__).resolve().parent.parent
CROSS_CC, QEMU = "aarch64-linux-gnu-gcc", "qemu-aarch64"
MISSING = [tool for tool in (CROSS_CC, QEMU, "make") if shutil.which(tool) is None]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"aarch64 cross-check needs {', '.join(MISSING)} on PATH "
                                "(Debian: apt-get install gcc-aarch64-linux-gnu qemu-user)")
ISAS = ["neon", "ref"]
UB = 16  # kernels.h RNNF_UB: the packed panel width


def quantized_chain(p, dtype):
    """The pipeline with its recurrent weights stored in dtype, as Model.quantize stores them."""
    return replace(p, stages=quantized_stages(p.stages, dtype))


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    if not (ROOT / "src_c" / "Makefile").exists():
        pytest.skip("not a source checkout")
    build = tmp_path_factory.mktemp("aarch64")
    shutil.copytree(ROOT / "src_c", build / "src_c", ignore=shutil.ignore_patterns("build", "*.a", "*.so"))
    shutil.copytree(ROOT / "include", build / "include")
    shutil.copytree(ROOT / "tests" / "c", build / "tests" / "c")
    made = subprocess.run(["make", "-s", "-j2", "-C", str(build / "src_c"), "cross-aarch64", "CFLAGS=-O2"],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr[-3000:]
    return build / "src_c" / "build" / "aarch64"


def qemu(programs, isa, name, *args):
    env = {**os.environ, "RNNFAST_ISA": isa, "OMP_NUM_THREADS": "2"}
    return subprocess.run([QEMU, str(programs / name), *map(str, args)], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("isa", ISAS)
def test_the_forced_table_is_the_one_that_runs(programs, isa):
    result = qemu(programs, isa, "test_kernels", "isa")
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines["selected"] == isa and isa in lines["supported"].split(","), result.stdout


@pytest.mark.parametrize("isa", ISAS)
def test_c_api_program_passes_and_matches_the_reference(programs, isa):
    check_test_api_output(qemu(programs, isa, "test_api"), what=isa)


def run_file(programs, isa, p, x, T, B, tmp_path, what):
    """The C program runs the file (from the path and a buffer, 1 and 2 threads, stepped when it can step, all
    required bit-identical) and writes the output, which must match the float64 walk."""
    save_rnnf(p, tmp_path / "m.rnnf")
    (tmp_path / "x.bin").write_bytes(np.ascontiguousarray(x, "<i4" if p.takes_ids else "<f4").tobytes())
    result = qemu(programs, isa, "test_rnnf_file", "run", tmp_path / "m.rnnf", tmp_path / "x.bin", T, B,
                  tmp_path / "y.bin")
    assert result.returncode == 0, result.stdout + result.stderr
    expected = reference_pipeline(p, x)
    assert_close(np.fromfile(tmp_path / "y.bin", "<f4").reshape(expected.shape), expected, what=what)


@pytest.mark.parametrize("isa", ISAS)
def test_python_written_pipelines_match_the_reference(programs, rng, isa, tmp_path):
    for case in sorted(PIPELINE_CASES):
        p = random_pipeline(rng, **PIPELINE_CASES[case])
        for T, B in ((6, 3), (5, 1)):  # batch 1 takes the one-row GEMM
            run_file(programs, isa, p, random_input(rng, p, seq_len=T, batch=B), T, B, tmp_path, f"{isa} {case}")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", ["int8", "float16"])
def test_quantized_pipelines_match_the_reference_of_the_stored_weights(programs, rng, isa, dtype, tmp_path):
    """The table's gate math over the quantized GEMM (the scalar one on aarch64)."""
    for case in ("lstm-proj-peep-clip-acts", "gru-lbr-bi", "rnn-custom-acts-bi", "embed-mask-gru"):
        p = quantized_chain(random_pipeline(rng, **PIPELINE_CASES[case]), dtype)
        for T, B in ((6, 3), (5, 1)):
            run_file(programs, isa, p, random_input(rng, p, seq_len=T, batch=B), T, B, tmp_path,
                     f"{isa} {dtype} {case}")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("cell,options", [("lstm", dict(peepholes=True)), ("gru", {}),
                                          ("gru", dict(linear_before_reset=True)), ("rnn", {})])
def test_hidden_sizes_at_every_block_tail(programs, rng, isa, cell, options, tmp_path):
    layers, width = [], 5
    for h in HIDDEN_TAILS:
        layers.append(random_layer(rng, cell, "bidirectional" if h % 2 else "forward", input_size=width,
                                   hidden_size=h, **options))
        width = layers[-1].n_dirs * h
    p = Pipeline([RecurrentStage(layers)])
    for T, B in ((4, 7), (3, 1)):
        x = rng.standard_normal((T, B, 5)).astype(np.float32)
        run_file(programs, isa, p, x, T, B, tmp_path, f"{isa} {cell} {options}")


@pytest.mark.parametrize("isa", ISAS)
def test_packed_gemm_on_exact_inputs(programs, rng, isa, tmp_path):
    """Small dyadic inputs make every float32 sum exact, so any lost or misplaced term shows; sizes cover every
    row tail of the microkernels and a panel range split between two calls."""
    for M, K, P, split in ((1, 1, 1, 0), (1, 37, 3, 1), (1, 4, 4, 2), (2, 5, 2, 2), (3, 2, 1, 1), (4, 11, 2, 1),
                           (5, 8, 1, 1), (6, 3, 3, 0), (7, 13, 3, 2), (9, 5, 2, 1), (11, 7, 1, 0), (13, 64, 2, 1),
                           (35, 9, 4, 3), (97, 6, 2, 1), (200, 3, 1, 0)):
        a = rng.integers(-8, 9, (M, K)) / 8
        w = rng.integers(-16, 17, (P * UB, K)) / 16
        bias = rng.integers(-8, 9, P * UB) / 4
        packed = w.reshape(P, UB, K).transpose(0, 2, 1)
        data = np.concatenate([a.ravel(), packed.ravel(), bias]).astype("<f4")
        (tmp_path / "in.bin").write_bytes(data.tobytes())
        result = qemu(programs, isa, "test_kernels", "gemm", M, K, P, split, tmp_path / "in.bin", tmp_path / "out.bin")
        assert result.returncode == 0, result.stderr
        out = np.fromfile(tmp_path / "out.bin", "<f4").reshape(2, M, P * UB)
        assert_close(out[0], a @ w.T + bias, what=f"{isa} gemm {M}x{K}x{P} split {split}")
        assert_close(out[1], a @ w.T, what=f"{isa} gemm {M}x{K}x{P} without bias")


@pytest.mark.parametrize("isa", ISAS)
def test_activations_against_float64(programs, isa, tmp_path):
    grid = np.linspace(-20, 20, 40001).astype(np.float32)
    specials = np.array([0.0, -0.0, 25.0, -25.0, 1e-8, -1e-8, np.inf, -np.inf], np.float32)
    for name, alpha, beta, exact in ACTIVATION_CASES:
        x = np.concatenate([grid, specials, [np.nan]]).astype(np.float32)
        if name == "Exp":
            x = x[~(x >= 80)]
        x.astype("<f4").tofile(tmp_path / "x.bin")
        result = qemu(programs, isa, "test_kernels", "act", ACTIVATION_CODES[name], alpha, beta, tmp_path / "x.bin",
                      tmp_path / "y.bin")
        assert result.returncode == 0, result.stderr
        check_activation(name, alpha, beta, exact, x, np.fromfile(tmp_path / "y.bin", "<f4"), f"{isa} {name}")
