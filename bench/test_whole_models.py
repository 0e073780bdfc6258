"""pytest-benchmark suite of bench/whole_models.py's workloads: `pytest bench/test_whole_models.py` (bench/ is not
part of the default run, which is tests/). One test per model × exporter × workload × engine × threads, grouped by
model, exporter and workload, so rnnfast and onnxruntime sit side by side in one table. Every runner's outputs
(every chunk's, states included) are checked against torch's in the npz first; nothing here asserts on a time.

A stream workload's benchmark time is one whole 8-chunk loop (extra_info "chunks": divide by it for the time per
chunk). "rnnfast-stream" (model.stream with the states kept in the engine) is skipped where this rnnfast cannot
stream the whole graph. For ratios measured the project's way (interleaved rounds, typical and quietest, under
contention too) run bench/whole_models.py."""
import pytest

from whole_models import ENGINES, THREADS, Unavailable, check, workloads

NAMES = {"rnnfast": "rnnfast", "onnxruntime": "ort", "rnnfast-stream": "rnnfast stream"}
CASES = [pytest.param(w, engine, n, id=f"{w.name}-{engine}-{n}t".replace(" ", "-").replace("×", "x"))
         for w in workloads() for engine in NAMES if w.kind == "stream" or engine != "rnnfast-stream"
         for n in THREADS]


@pytest.mark.parametrize("w,engine,threads", CASES)
def test_whole_model(benchmark, w, engine, threads):
    try:
        runner = ENGINES[NAMES[engine]](w, threads)
    except Unavailable as e:
        pytest.skip(str(e))
    benchmark.extra_info["max_abs_diff"] = check(w, runner.outputs())
    benchmark.extra_info["chunks"] = w.per
    benchmark.group = w.name
    benchmark(runner.unit)
