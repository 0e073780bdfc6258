"""Per-call time of PyTorch fixtures run the old way (main before #20's chain lowering, commit 15fac56: TorchGraph.run
stepping engine.run_layer per layer, the head in numpy) and the new way (the model's graph in the C executor,
graph/chain.py), interleaved in one process, median of 400 blocks of 10 calls; batch 1, 50 steps.

    python bench/torch_chain_vs_graph.py [lstm.pt gru_2layer.pt emb_lstm_fc.pt ...]

The old TorchGraph is read from git history (the checkout must hold commit 15fac56) and run on the same layers.
Also prints whether the two give the same bits (a numpy head and the C MatMul round differently)."""
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

import rnnfast

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "torch"
OLD = "15fac56"


def old_torch_graph_module():
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{OLD}:rnnfast/importers/torch/graph.py"],
                         capture_output=True, text=True, check=True).stdout
    old = types.ModuleType("rnnfast.importers.torch.old_graph")
    old.__package__ = "rnnfast.importers.torch"
    sys.modules[old.__name__] = old  # dataclasses look their module up
    exec(compile(src, "old_graph.py", "exec"), old.__dict__)
    return old


def main(fixtures):
    old = old_torch_graph_module()
    for fixture in fixtures:
        opts = dict(embedding="emb", rnn="lstm", head="fc", batch_first=True) if fixture.startswith("emb") else {}
        model = rnnfast.load(DATA / fixture, **opts)
        g = model.graph
        emb = g.embedding
        og = old.TorchGraph(g.layers, g.batch_first, emb and old.Embedding(emb.name, emb.weight),
                            g.head and old.Linear(g.head.name, g.head.weight, g.head.bias), name=g.name,
                            source=g.source)
        rng = np.random.default_rng(0)
        T, B = 50, 1
        if emb is not None:
            x = rng.integers(0, emb.weight.shape[0], (B, T) if g.batch_first else (T, B))
        else:
            shape = (B, T, g.layers[0].input_size) if g.batch_first else (T, B, g.layers[0].input_size)
            x = rng.standard_normal(shape).astype(np.float32)
        a, b = og.run({"input": x}), model.run(x)
        same = all(np.array_equal(p, q) for p, q in zip(a, b))
        diff = max(float(np.max(np.abs(p - q))) for p, q in zip(a, b))
        times = {"old chain": [], "graph": []}
        for _ in range(400):
            for key, fn in (("old chain", lambda: og.run({"input": x})), ("graph", lambda: model.run(x))):
                t0 = time.perf_counter()
                for _ in range(10):
                    fn()
                times[key].append((time.perf_counter() - t0) / 10)
        med = {k: np.median(v) * 1e6 for k, v in times.items()}
        print(f"{fixture}: T={T} B={B}: old chain {med['old chain']:.1f} us, graph {med['graph']:.1f} us "
              f"(graph / old {med['graph'] / med['old chain']:.2f}); same bits: {same} (max diff {diff:.1e})")


if __name__ == "__main__":
    main(sys.argv[1:] or ["lstm.pt", "gru_2layer.pt", "lstm_proj.pt", "emb_lstm_fc.pt"])
