"""The C .rnnf readers' fuzz target (tests/c/fuzz_rnnf_readers.c), built here with gcc as a replayer under
ASan/UBSan: version 1 and 2 files written by rnnfast (a 2.1 file with int8 MatMul / Conv weights and their scales
and a 2.2 file whose h0 / c0 inputs default to zeros among them), their truncations and bit flips go through both
readers; a read out of bounds or undefined behaviour fails the run. With clang the same file is a libFuzzer
target."""
import os
import subprocess

import numpy as np
import pytest
from c_build import link, needs_gcc_and_make, sanitized_build

import rnnfast
from rnnfast.exporters.rnnf import to_bytes
from rnnfast.exporters.rnnf_graph import graph_to_bytes

pytestmark = needs_gcc_and_make
DATA = os.path.join(os.path.dirname(__file__), "data")


def seeds():
    graph = rnnfast.load(os.path.join(DATA, "onnx", "graph", "stream_gru.ts.onnx"))
    chain = rnnfast.load(os.path.join(DATA, "torch", "emb_lstm_fc.pt"), embedding="emb", rnn="lstm", head="fc",
                         batch_first=True)
    quantized = graph.quantize("int8", scope="all")
    states = rnnfast.load(os.path.join(DATA, "torch", "lstm.pt"), batch_first=False)  # h0, c0 default to zeros
    return [graph_to_bytes(graph.graph.compiled), to_bytes(chain.to_pipeline()),
            graph_to_bytes(quantized.graph.compiled), graph_to_bytes(states.graph.compiled)]


def test_both_readers_survive_damaged_files(tmp_path_factory, tmp_path):
    build, flags = sanitized_build(tmp_path_factory)
    exe = link(build, "fuzz_rnnf_readers.c", "-DRNNF_REPLAY", *flags)
    rng = np.random.default_rng(5)
    paths = []
    for k, data in enumerate(seeds()):
        assert data[:4] == b"RNNF"
        variants = [data] + [data[:n] for n in rng.integers(0, len(data), 40)]
        for _ in range(120):
            damaged = bytearray(data)
            for pos in rng.integers(0, len(data), rng.integers(1, 4)):
                damaged[pos] ^= 1 << int(rng.integers(0, 8))
            variants.append(bytes(damaged))
        for i, v in enumerate(variants):
            path = tmp_path / f"seed{k}-{i}.rnnf"
            path.write_bytes(v)
            paths.append(str(path))
    done = subprocess.run([str(exe), *paths], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"replayed {len(paths)} inputs"
