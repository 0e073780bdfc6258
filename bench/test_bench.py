"""pytest-benchmark suite: `pytest bench` (not part of the default run). One group per workload and cell, so
one table compares rnnfast at 1 and 2 threads with onnxruntime at 1 and 2 threads on the same inputs.
Every runner's output is checked against the float64 reference before it is timed."""
import numpy as np
import pytest

from rnnfast import reference
from workloads import CELLS, WORKLOADS, make_case, ort_runner, rnnfast_runner

CASES = [(w, c) for w in WORKLOADS for c in CELLS if not (w == "stream" and c == "bilstm")]


def expected_output(case):
    x = case.x.astype(np.float64)
    for layer in case.layers:
        y, _, _ = reference.run_layer(layer, x)
        x = y.transpose(0, 2, 1, 3).reshape(y.shape[0], y.shape[2], -1)
    return x


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("engine", ["rnnfast", "onnxruntime"])
@pytest.mark.parametrize("workload,cell", CASES)
def test_workload(benchmark, workload, cell, engine, threads):
    case = make_case(workload, cell)
    runner = (rnnfast_runner if engine == "rnnfast" else ort_runner)(case, threads)
    want = expected_output(case)
    # The first call starts from zero state, so even the stream's single step is checked against the reference.
    np.testing.assert_allclose(np.asarray(runner()).reshape(want.shape), want, rtol=1e-4, atol=1e-5)
    benchmark.group = f"{workload} {cell}"
    benchmark.extra_info["gflop"] = case.flops / 1e9
    benchmark(runner)
