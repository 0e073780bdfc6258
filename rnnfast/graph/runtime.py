"""A graph compiled for the C executor: analysed once, described to C once, run in one C call per run.

`compile_graph` takes an IR Graph; `CompiledGraph.from_desc` a description read from a .rnnf 2 file (with a Graph
that holds only the inputs and outputs). `CompiledGraph.run` takes the feeds in the graph's input order, converts what
needs converting (a float feed of another precision, non-contiguous arrays) and returns the outputs in order."""
from __future__ import annotations

import numpy as np

from .. import _core
from .analysis import analyse
from .compile import lower_graph
from .infer import Unfit
from .ir import Graph

__all__ = ["CompiledGraph", "compile_graph", "Unfit"]


class CompiledGraph:
    def __init__(self, graph: Graph, opset: int, n_threads=None, checks=None):
        """checks: given for a graph analysed already (then it is not analysed again)."""
        self.checks = analyse(graph, opset) if checks is None else checks
        self.graph, self.opset = graph, opset
        self.desc = lower_graph(graph, self.checks, opset)
        self.c_graph = _core.CGraph(self.desc, graph.name)
        self.input_names = list(graph.inputs)
        self.output_names = list(graph.outputs)
        self.n_threads = int(n_threads or 0)
        self.state_pairs = None  # {input: output} when the source says which outputs feed which inputs back

    @classmethod
    def from_desc(cls, desc: dict, graph: Graph, n_threads=None, where: str = "", state_pairs=None):
        """A description already lowered (a .rnnf 2 file's); `graph` names the inputs and outputs, in order, with
        their dtypes and shapes (no nodes)."""
        self = cls.__new__(cls)
        self.graph, self.desc = graph, desc
        self.c_graph = _core.CGraph(desc, where or graph.name)
        self.input_names, self.output_names = list(graph.inputs), list(graph.outputs)
        self.n_threads = int(n_threads or 0)
        self.state_pairs = None if state_pairs is None else dict(state_pairs)
        return self

    def quantized(self, weight_dtype: str, scope: str = "recurrent") -> "CompiledGraph":
        """A copy storing its weights in weight_dtype by rnnfast/quantize.py's rule (int8 with a float32 scale per
        row or output channel, or float16): the recurrent stacks' w_ih, w_hh, w_hr (in If branches too) and, with
        scope "all", the MatMul / Gemm / Conv / ConvTranspose weights graph/quantized.py picks; everything
        else, inputs and outputs included, stays as it is. A recurrent node the analysis left outside a stack
        (batch-major, layout 1, or weights computed at run time) is refused by name (FormatError)."""
        from ..quantize import check_scope
        from .quantized import quantize_desc

        scope = check_scope(scope, self.graph.name)
        if not self.graph.nodes:  # read from a file: the description is all there is
            desc = quantize_desc(self.desc, weight_dtype, scope, self.graph.name)
            return CompiledGraph.from_desc(desc, self.graph, self.n_threads, self.graph.name, self.state_pairs)
        graph, new = _quantized_graph(self.graph, weight_dtype)
        checks = [(new.get(id(n), n),) + tuple(rest) for n, *rest in self.checks]
        desc = lower_graph(graph, checks, self.opset)
        if scope == "all":  # the constants, before the executor is built: it is built once
            desc = quantize_desc(desc, weight_dtype, scope, graph.name)
        compiled = CompiledGraph.from_desc(desc, graph, self.n_threads, graph.name, self.state_pairs)
        compiled.checks, compiled.opset = checks, self.opset
        return compiled

    @property
    def stored_constants(self) -> int:
        """How many constants (in every branch) the description holds quantized (quantize.quantize_desc): the IR
        graph still has their float32 originals, so what reads the IR instead of the description must not be used
        for them."""
        todo, n = [self.desc], 0
        while todo:
            d = todo.pop()
            n += len(d.get("quantized") or {})
            todo += d["subgraphs"]
        return n

    def watched(self) -> "CompiledGraph":
        """This graph with every recurrent layer run through engine.CompiledStack.run (graph/watched.py), for what
        watches the engine (cli/trace.py); itself when it has none. Built on first use."""
        from .watched import watched_desc

        if self.__dict__.get("_watched") is None:
            desc = watched_desc(self.desc, self.c_graph.where)
            self._watched = self if desc is None else CompiledGraph.from_desc(
                desc, self.graph, self.n_threads, self.c_graph.where, self.state_pairs)
        return self._watched

    @property
    def input_dtypes(self) -> list:
        """The numpy dtype of each input as the executor takes it, in order (other dtypes are converted)."""
        return [np.dtype(_core.GRAPH_DTYPES[self.desc["tensors"][t][0]]) for t in self.desc["inputs"]]

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
        if not self.graph.nodes:  # read from a file: the C nodes are all there is
            from .compile import OP_NAMES

            ops = {}
            for node in self.desc["nodes"]:
                ops[OP_NAMES[node[0]]] = ops.get(OP_NAMES[node[0]], 0) + 1
            return (f"compiled for the C executor: {len(self.desc['nodes'])} C node(s) "
                    f"({', '.join(f'{k} x{v}' for k, v in sorted(ops.items()))})")
        ops = {}
        for node in self.graph.nodes:
            ops[node.op] = ops.get(node.op, 0) + 1
        return (f"compiled for the C executor: {len(self.graph.nodes)} node(s) "
                f"({', '.join(f'{k} x{v}' for k, v in sorted(ops.items()))}), {len(self.desc['nodes'])} C node(s)")


def compile_graph(graph: Graph, opset: int, n_threads=None) -> CompiledGraph:
    return CompiledGraph(graph, opset, n_threads)


def compiled_graph_of(model, where: str = "", purpose: str = "a whole-graph export", lengths: bool = False):
    """The CompiledGraph a Model (or a CompiledGraph) runs through the C executor; with `lengths`, the variant that
    takes the run option sequence lengths as a graph input (`sequence_lens`; `sequence_length` for TF 1.x; PyTorch
    packed sequences). FormatError naming `where` and what `purpose` needs when there is none."""
    from ..errors import FormatError

    graph = getattr(model, "graph", model)
    where = where or getattr(model, "source", "") or "this model"
    if lengths:
        variant = getattr(graph, "compiled_with_lengths", None)
        if variant is None:
            raise FormatError(f"{where}: this model takes no sequence lengths when it runs, so {purpose} has none "
                              f"to take (leave out the sequence-lengths option)")
        return variant()
    compiled = getattr(graph, "compiled", None)
    if compiled is None and hasattr(graph, "c_graph") and hasattr(graph, "desc"):
        compiled = graph
    if compiled is None:
        why = getattr(graph, "unfit_reason", None) or "rnnfast has no whole-graph form of this kind of model yet"
        raise FormatError(f"{where}: the C executor does not run this model whole, so {purpose} cannot hold it: "
                          f"{why}")
    return compiled


def _quantized_graph(graph: Graph, weight_dtype: str):
    """(graph with its Recurrent stacks quantized, branches included; {id(old node): new node})."""
    import dataclasses

    from .build import LayerSpec
    from .stack import CELL_OPS, StackLayer

    new = {}
    for node in graph.nodes:
        if node.op in CELL_OPS:
            from ..errors import FormatError

            raise FormatError(f"{node.where}: cannot quantize this {node.op} node: only recurrent layers with "
                              f"constant weights in the sequence-major layout (ONNX layout 0) are quantized; "
                              f"keep this model in float32")
        if node.op == "Recurrent":
            payload = []
            for layer in node.payload:
                spec = LayerSpec(layer.spec.build_layer(*layer.weights).with_weight_dtype(weight_dtype))
                payload.append(StackLayer(spec, spec.weights(), layer.y_h, layer.y_c, layer.name, layer.folded))
            new[id(node)] = dataclasses.replace(node, payload=payload)
        elif node.op == "If":
            branches = []
            for branch in node.payload:
                quantized, inner = _quantized_graph(branch, weight_dtype)
                quantized.checks = [(inner.get(id(n), n),) + tuple(rest) for n, *rest in getattr(branch, "checks", [])]
                branches.append(quantized)
            new[id(node)] = dataclasses.replace(node, payload=tuple(branches))
    return dataclasses.replace(graph, nodes=[new.get(id(n), n) for n in graph.nodes]), new
