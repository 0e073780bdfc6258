"""pytest-benchmark suite: `pytest bench` (not part of the default run, which is tests/). One group per workload
and cell, so one table compares rnnfast (public API, and its engine alone) with onnxruntime and torch, each at 1
and 2 threads, on the same inputs and weights. Every runner's outputs are checked against the float64 reference
before it is timed; nothing here asserts on a time.

torch is skipped when it is not importable (it is kept out of the package's environment); bench/report.py can
time it from another interpreter."""
import pytest

from workloads import CELLS, WORKLOADS, check, engine_runner, expected_output, make_case, ort_runner, \
    outputs_over_case, rnnfast_runner, torch_runner

CASES = [(w, c) for w in WORKLOADS for c in CELLS]
ENGINES = {"rnnfast": rnnfast_runner, "rnnfast-engine": engine_runner, "onnxruntime": ort_runner,
           "torch": torch_runner}


@pytest.fixture(scope="module")
def reference_outputs():
    return {}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("workload,cell", CASES)
def test_workload(benchmark, reference_outputs, workload, cell, engine, threads):
    if engine == "torch":
        pytest.importorskip("torch")
    case = make_case(workload, cell)
    if (workload, cell) not in reference_outputs:  # the float64 reference is slow: once per case
        reference_outputs[workload, cell] = expected_output(case)
    run = ENGINES[engine](case, threads)
    check(case, outputs_over_case(case, run), reference_outputs[workload, cell], engine)  # from zero state
    benchmark.group = f"{workload} {cell}"
    benchmark.extra_info["gflop"] = case.flops / 1e9
    benchmark(run)
