"""A graph compiled for the C executor: analysed once, described to C once, run in one C call per run.

`compile_graph` takes an IR Graph; `CompiledGraph.run` takes the feeds in the graph's input order, converts what
needs converting (a float feed of another precision, non-contiguous arrays) and returns the outputs in order."""
from __future__ import annotations

from .. import _core
from .analysis import analyse
from .compile import lower_graph
from .infer import Unfit
from .ir import Graph

__all__ = ["CompiledGraph", "compile_graph", "Unfit"]


class CompiledGraph:
    def __init__(self, graph: Graph, opset: int, n_threads=None):
        checks = analyse(graph, opset)
        self.graph = graph
        self.desc = lower_graph(graph, checks, opset)
        self.c_graph = _core.CGraph(self.desc, graph.name)
        self.input_names = list(graph.inputs)
        self.output_names = list(graph.outputs)
        self.n_threads = int(n_threads or 0)

    def run(self, arrays: list, n_threads=None, into=None) -> list:
        """arrays: the inputs in order (the binding converts any that are not C-contiguous of the declared dtype)."""
        return self.c_graph.run(arrays, int(n_threads or self.n_threads), into)

    def profile(self, arrays: list, n_runs: int = 20, n_threads=None) -> list:
        """[(C node name, op, seconds per run)] in the order the nodes run."""
        from .compile import OP_NAMES

        seconds = self.c_graph.profile(list(arrays), n_runs, int(n_threads or self.n_threads))
        return [(node[1], OP_NAMES[node[0]], t) for node, t in zip(self.desc["nodes"], seconds)]

    def thread_choice(self) -> dict:
        """What the executor chose for the last input shapes: the threads runs use now, and the recent median
        seconds per run with one thread and with the asked count (None until measured)."""
        n, one, asked = self.c_graph.thread_choice()
        return {"threads": n, "seconds_1_thread": one, "seconds_asked": asked}

    def describe(self) -> str:
        ops = {}
        for node in self.graph.nodes:
            ops[node.op] = ops.get(node.op, 0) + 1
        return (f"compiled for the C executor: {len(self.graph.nodes)} node(s) "
                f"({', '.join(f'{k} x{v}' for k, v in sorted(ops.items()))}), {len(self.desc['nodes'])} C node(s)")


def compile_graph(graph: Graph, opset: int, n_threads=None) -> CompiledGraph:
    return CompiledGraph(graph, opset, n_threads)
