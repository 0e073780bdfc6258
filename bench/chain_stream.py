"""The stream workload's cells (bench/workloads.py) as chains (the form .rnnf 1 files, PyTorch modules and
quantized models load as: graph/chain.py ChainGraph) and as an ONNX model with its states as inputs and outputs
(h0 -> Yh0, as torch.onnx.export writes them), stepped in interleaved rounds: Model.stream() (a lone recurrent
stack: the direct C step, rnnfast/stream/direct.py), the same graph's state loop through the C executor
(make_stream(direct=False), what such a stream took before), and onnxruntime's run of the seq_len-1 model with the
states fed back. All are checked against the float64 reference over several steps first, and each direct step
against its graph loop to the bit.

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
from workloads import check, expected_output, make_case, onnx_model, ort_runner, outputs_over_case  # noqa: E402


def chain_runners(case, n_threads):
    """(Model.stream step, the one-step graph's step) of the case's layers as a chain."""
    import rnnfast
    from rnnfast.graph.chain import ChainGraph
    from rnnfast.stream.step_input import Features
    from rnnfast.graph.stream import make_stream
    from rnnfast.pipeline import Pipeline, RecurrentStage

    model = rnnfast.Model(ChainGraph.of(Pipeline([RecurrentStage(case.layers)])), source="bench")
    batch = case.x.shape[1]
    fast = model.stream(batch=batch, n_threads=n_threads)
    compiled = model.graph.variant(step=True)
    graph = make_stream("bench", batch, n_threads, compiled=compiled, direct=False,
                        step_input=Features(case.layers[0].input_size, "bench"))
    x0 = case.x[0]
    return (lambda x_t=None: fast.step(x0 if x_t is None else x_t),
            lambda x_t=None: graph.step(x0 if x_t is None else x_t))


def looped_runners(case, n_threads):
    """(Model.stream step, the graph loop's step) of the case as an ONNX model whose states are inputs and outputs
    (h0 -> Yh0, ...; the direct step for one stack of layers), and the way Model.stream chose."""
    import rnnfast
    from rnnfast.graph.stream import make_stream

    model = rnnfast.load(onnx_model(case, with_states=True))
    pairs = {i: "Y" + i for i in model.input_names[1:]}
    batch = case.x.shape[1]
    fast = model.stream(batch=batch, n_threads=n_threads, states=pairs)
    graph = make_stream("bench", batch, n_threads, compiled=model.graph.compiled, states=pairs, direct=False)
    x0 = case.x[0]
    return (lambda x_t=None: fast.step((x0 if x_t is None else x_t)[None]),
            lambda x_t=None: graph.step((x0 if x_t is None else x_t)[None]), "direct" if fast.direct else "graph loop")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", default="lstm,gru,rnn,lstm2")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    print("| cell | chain: Model.stream (direct) | chain: one-step graph loop | ONNX with states: "
          "Model.stream | ONNX with states: graph loop | onnxruntime, states fed back | chain graph / stream | "
          "ONNX graph / stream | ort / chain stream | ort / ONNX stream |\n|---|---|---|---|---|---|---|---|---|---|")
    for cell in args.cells.split(","):
        case = make_case("stream", cell)
        want = expected_output(case)
        fast, graph = chain_runners(case, args.threads)
        looped, looped_graph, kind = looped_runners(case, args.threads)
        runners = {"stream": Local(fast), "graph": Local(graph), "looped": Local(looped),
                   "looped graph": Local(looped_graph), "ort": Local(ort_runner(case, args.threads))}
        for name, run in runners.items():
            check(case, outputs_over_case(case, run), want, name)
        fast2, graph2 = chain_runners(case, args.threads)  # fresh states: the two paths give the same bits
        assert np.array_equal(outputs_over_case(case, fast2), outputs_over_case(case, graph2)), cell
        looped2, looped_graph2, _ = looped_runners(case, args.threads)
        assert np.array_equal(outputs_over_case(case, looped2), outputs_over_case(case, looped_graph2)), cell
        blocks = interleaved_blocks(runners, 0.0, min_rounds=args.rounds)
        med = {k: float(np.median([np.median(b) for b in v])) for k, v in blocks.items()}
        print(f"| {cell} | {fmt(med['stream'])} | {fmt(med['graph'])} | {fmt(med['looped'])} ({kind}) | "
              f"{fmt(med['looped graph'])} | {fmt(med['ort'])} | {med['graph'] / med['stream']:.2f}× | "
              f"{med['looped graph'] / med['looped']:.2f}× | {med['ort'] / med['stream']:.2f}× | "
              f"{med['ort'] / med['looped']:.2f}× |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
