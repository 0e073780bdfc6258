"""Per-call time of Keras fixtures on the numpy layer path vs the C graph executor, interleaved in one process
(round k times both paths once each, so a busy machine slows both alike); prints the medians.

    PYTHONPATH=. python tools/bench_keras_graph.py [rounds]
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

import rnnfast

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "keras")
CASES = ["k3_seed_stacked_lstm", "k3_seed_char_lstm", "k3_functional_mix", "k3_seq2seq_attention"]


def per_call(model, xs, n):
    t0 = time.perf_counter()
    for _ in range(n):
        model.run(xs)
    return (time.perf_counter() - t0) / n


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 21
    for name in CASES:
        with np.load(os.path.join(DATA, name + ".npz")) as z:
            xs = [z[f"x{i}"] for i in range(sum(k.startswith("x") for k in z))]
        xs = xs if len(xs) > 1 else xs[0]
        compiled = rnnfast.load(os.path.join(DATA, name + ".keras"))
        layers = rnnfast.load(os.path.join(DATA, name + ".keras"))
        layers.graph.use_layer_path()
        assert compiled.graph.compiled is not None
        for a, b in zip(compiled.run(xs), layers.run(xs)):
            assert np.abs(a - b).max() < 1e-5
        n = max(1, int(0.02 / per_call(layers, xs, 3)))  # ~20 ms of calls per measurement
        times = {"layers": [], "graph": []}
        for _ in range(rounds):
            times["layers"].append(per_call(layers, xs, n))
            times["graph"].append(per_call(compiled, xs, n))
        med = {k: float(np.median(v)) * 1e6 for k, v in times.items()}
        shape = [list(np.shape(x)) for x in (xs if isinstance(xs, list) else [xs])]
        print(f"{name:28s} inputs {shape}: numpy layer path {med['layers']:8.1f} us, C graph {med['graph']:7.1f} us "
              f"({med['layers'] / med['graph']:.1f}x), median of {rounds} interleaved rounds of {n} calls")


if __name__ == "__main__":
    main()
