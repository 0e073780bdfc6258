"""The stream workload's cells (bench/workloads.py) as chains (the form .rnnf 1 files, PyTorch modules and
quantized models load as: graph/chain.py ChainModel), stepped three ways in interleaved rounds: Model.stream()
(a lone recurrent stack: rnnfast.stream.Stream, one C step), the chain's one-step graph through the C executor
(graph/stream.py GraphStream, what such a stream took before), and onnxruntime's run of the seq_len-1 model with
the states fed back. All three are checked against the float64 reference over several steps first.

    python bench/chain_stream.py [--cells lstm,gru,rnn,lstm2] [--rounds 15] [--threads 1]"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from report import Local, interleaved_blocks  # noqa: E402
from timing import fmt_time as fmt  # noqa: E402
from workloads import check, expected_output, make_case, ort_runner, outputs_over_case  # noqa: E402


def chain_runners(case, n_threads):
    """(Model.stream step, the one-step graph's step) of the case's layers as a chain."""
    import rnnfast
    from rnnfast.graph.chain import ChainModel
    from rnnfast.graph.stream import GraphStream
    from rnnfast.pipeline import Pipeline, RecurrentStage

    model = rnnfast.Model(ChainModel(Pipeline([RecurrentStage(case.layers)])), source="bench")
    batch = case.x.shape[1]
    fast = model.stream(batch=batch, n_threads=n_threads)
    compiled = model.graph.variant(step=True)
    graph = GraphStream(compiled, batch, {i: o for o, i in compiled.graph.state_loops}, n_threads=n_threads)
    x0 = case.x[0]
    return (lambda x_t=None: fast.step(x0 if x_t is None else x_t),
            lambda x_t=None: graph.step(x0 if x_t is None else x_t))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", default="lstm,gru,rnn,lstm2")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    print("| cell | Model.stream (Stream) | one-step graph (GraphStream) | onnxruntime, states fed back | "
          "graph / stream | ort / stream |\n|---|---|---|---|---|---|")
    for cell in args.cells.split(","):
        case = make_case("stream", cell)
        want = expected_output(case)
        fast, graph = chain_runners(case, args.threads)
        runners = {"stream": Local(fast), "graph": Local(graph), "ort": Local(ort_runner(case, args.threads))}
        for name, run in runners.items():
            check(case, outputs_over_case(case, run), want, name)
        fast2, graph2 = chain_runners(case, args.threads)  # fresh states: the two paths give the same bits
        assert np.array_equal(outputs_over_case(case, fast2), outputs_over_case(case, graph2)), cell
        blocks = interleaved_blocks(runners, 0.0, min_rounds=args.rounds)
        med = {k: float(np.median([np.median(b) for b in v])) for k, v in blocks.items()}
        print(f"| {cell} | {fmt(med['stream'])} | {fmt(med['graph'])} | {fmt(med['ort'])} | "
              f"{med['graph'] / med['stream']:.2f}× | {med['ort'] / med['stream']:.2f}× |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
