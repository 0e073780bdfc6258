"""File size and accuracy of quantized whole graphs: each graph fixture of tests/data/onnx/graph written as .rnnf 2
in float32 and with Model.quantize(dtype, scope) for int8 / float16 and both scopes, and the max abs difference of
the quantized model from the float32 one on the fixture's recorded inputs (and its reloaded file's, which must
compute the same numbers). Prints a markdown table (docs/quantization.md).

    python bench/quantized_graphs.py [--fixtures crnn.ts denoiser.ts ...]"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import rnnfast
from rnnfast.exporters.rnnf_graph import graph_to_bytes
from rnnfast.importers.rnnf_graph import load_rnnf_graph_model

GRAPH = Path(__file__).resolve().parent.parent / "tests" / "data" / "onnx" / "graph"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixtures", nargs="*", default=["crnn.ts", "crnn.dynamo", "denoiser.ts", "denoiser.dynamo"])
    args = ap.parse_args()
    print("| fixture | weights | scope | constants stored | .rnnf 2 bytes | of float32 | max abs diff vs float32 | "
          "reloaded file = model |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.fixtures:
        model = rnnfast.load(GRAPH / f"{name}.onnx")
        record = np.load(GRAPH / f"{name.split('.')[0]}.npz")
        feeds = {n: record[f"in:{n}"] for n in model.input_names}
        base = model.run(feeds)
        size = len(graph_to_bytes(model.graph.compiled, name))
        print(f"| `{name}` | float32 | | 0 | {size} | 100% | 0 | |")
        for dtype in ("int8", "float16"):
            for scope in ("recurrent", "all"):
                q = model.quantize(dtype, scope)
                data = graph_to_bytes(q.graph.compiled, name)
                got = q.run(feeds)
                diff = max(float(np.max(np.abs(a.astype(np.float64) - b))) for a, b in zip(got, base))
                same = all(np.array_equal(a, b) for a, b in zip(load_rnnf_graph_model(data, name).run(feeds), got))
                print(f"| `{name}` | {dtype} | {scope} | {q.graph.compiled.stored_constants} | {len(data)} | "
                      f"{len(data) / size:.1%} | {diff:.2e} | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
