"""Export any model rnnfast runs through its graph executor (ONNX, Keras, PyTorch, TF1, .rnnf 1 and 2, a Pipeline)
to ONNX, standard operators only, opset 17 by default (13 to what the installed onnx knows; LayerNormalization
needs 17).

The source is the analysed graph IR (graph/ir.py after graph/analysis.py), the one the C executor runs: every input
and output keeps its name, dtype and shape (symbolic sizes as dim_params), and `outputs` keeps only the outputs named
(the nodes that only fed the others are left out). The nodes are written by exporters/onnx_ops.py (ONNX operators,
fused products unfused), exporters/onnx_recurrent.py (recurrent stacks as RNN / GRU / LSTM nodes per layer) and
exporters/onnx_scan.py (what those nodes cannot say, as Scan: Keras masks, LSTM projection, Keras' selu / swish /
gelu / exponential). An If on a run-time condition is written with both branches. Sizes the analysis knows
symbolically are computed again from the inputs' shapes (exporters/onnx_sizes.py); constants become initializers.

A Keras model with stateful layers keeps its layers' states between calls, which an ONNX graph cannot: they become
inputs and outputs of the written graph (as in .rnnf 2), for the caller to feed back. Refused by name, saying what
would make it work: a model whose graph does not run in C (the reason the analysis gives). A .rnnf 2 file holds the
C executor's form of the graph: exporters/onnx_lift.py lifts it back to the IR first."""
from __future__ import annotations

import numpy as np

from ..errors import FormatError
from ..graph.dims import Dim, dim_str
from ..graph.ir import ZEROS
from ._onnx_graph import GraphWriter
from ._output import write_bytes
from .onnx_ops import write_node
from .onnx_sizes import Sizes, input_symbols

MIN_OPSET = 13  # Squeeze / Unsqueeze / ReduceSum / Split take their axes or sizes as an input from 13 on
DEFAULT_OPSET = 17


def export_onnx(source, path=None, opset: int = DEFAULT_OPSET, assume_suffix_padding: bool = False,
                outputs=None):
    """Write `source` (a rnnfast Model or a Pipeline) as an ONNX model to `path` (str, PathLike, binary file
    object, or None) and return the onnx.ModelProto. `outputs`: the names of the outputs to keep (default all).
    FormatError names whatever has no ONNX form."""
    graph, src_opset, where = source_graph(source)
    proto = graph_to_model_proto(graph, src_opset, where, opset, assume_suffix_padding, outputs)
    if path is not None:
        write_bytes(proto.SerializeToString(), path)
    return proto


def source_graph(source):
    """(analysed IR Graph, the opset its attributes follow, a name for messages) of a Model or Pipeline."""
    from ..pipeline import Pipeline

    if isinstance(source, Pipeline):
        from ..graph.chain import ChainGraph

        source = ChainGraph.of(source)
    graph = getattr(source, "graph", source)
    where = getattr(source, "source", "") or getattr(graph, "where", "") or "this model"
    compiled = getattr(graph, "compiled", None)
    if compiled is not None and hasattr(graph, "variant"):
        compiled = graph.variant()  # a chain's whole graph, whichever variant it ran last (graph/chain.py)
    if compiled is None:
        why = getattr(graph, "unfit_reason", None)
        raise FormatError(f"{where}: cannot be written as ONNX: " + (
            f"{why} (rnnfast runs such a graph node by node, in Python, and writes ONNX only from a graph the C "
            f"executor runs)" if why else f"{type(graph).__name__} models have no graph to write"))
    ir = compiled.graph
    # a .rnnf 2 file's graph is the C executor's description alone; a graph with quantized MatMul/Gemm/Conv weights
    # (Model.quantize scope "all") holds the values they stand for only there
    if (not ir.nodes and compiled.desc["nodes"]) or getattr(compiled, "stored_constants", 0):
        from .onnx_lift import OPSET, lift

        return lift(compiled.desc, ir.inputs, ir.outputs, ir.name), OPSET, where
    return ir, compiled.opset, where


def graph_to_model_proto(graph, src_opset: int, where: str, opset: int = DEFAULT_OPSET,
                         assume_suffix_padding: bool = False, outputs=None):
    from onnx import defs, helper

    if not MIN_OPSET <= opset <= defs.onnx_opset_version():
        raise ValueError(f"{where}: opset {opset} is not supported; expected {MIN_OPSET} to "
                         f"{defs.onnx_opset_version()}")
    keep = list(graph.outputs)
    if outputs is not None:
        outputs = [outputs] if isinstance(outputs, str) else list(outputs)
        unknown = [n for n in outputs if n not in graph.outputs]
        if unknown or not outputs:
            raise ValueError(f"{where}: no output named {', '.join(map(repr, unknown)) or '(none given)'}; the "
                             f"model's outputs are {list(graph.outputs)}")
        keep = outputs
    w = _Writer(graph, src_opset, opset, where, assume_suffix_padding, GraphWriter("rnnfast::"))
    _input_defaults(w, graph)
    w.write(keep)
    produced = {n for node in w.g.nodes for n in node.output}
    for name in keep:
        if name in produced:
            continue
        if name in graph.inputs:
            raise FormatError(f"{where}: output {name!r} is the input of that name itself, which an ONNX graph "
                              f"cannot have; leave it out with outputs=[...]")
        w.g.emit("Identity", [w.name(name)], [name])  # a constant output
    inputs = [value_info(graph.values[n]) for n in graph.inputs]
    outs = [value_info(graph.values[n]) for n in keep]
    onnx_graph = helper.make_graph(w.g.nodes, graph.name or "rnnfast", inputs, outs, w.g.inits)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(onnx_graph, opset_imports=opsets, producer_name="rnnfast")
    model.ir_version = helper.find_min_ir_version_for(opsets)  # the oldest runtime that knows the opset reads it
    return model


def _input_defaults(w, graph):
    """Inputs with a default as ONNX's overridable initializers (an input and an initializer of one name, IR version
    >= 4): a value as it is; zeros of a shape with symbolic sizes as zeros with a 1 for each, which an Expand to the
    input's full shape (from the other inputs' shapes) broadcasts when the input is left out and leaves as it is when
    it is given."""
    from onnx import numpy_helper

    for name in graph.inputs:
        default, v = graph.defaults.get(name), graph.values[name]
        if default is None:
            continue
        if default is not ZEROS:
            w.g.inits.append(numpy_helper.from_array(np.asarray(default, v.dtype), name))
            continue
        fixed = [d if isinstance(d, (int, np.integer)) else 1 for d in v.shape]
        w.g.inits.append(numpy_helper.from_array(np.zeros(fixed, v.dtype), name))
        if fixed != list(v.shape):
            w._names[name] = w.g.op("Expand", [name, w.sizes.shape(v.shape)], f"{name}_or_zeros")


def value_info(v, name=None):
    from onnx import helper

    shape = [d if isinstance(d, (int, np.integer)) else dim_str(d) for d in v.shape]
    return helper.make_tensor_value_info(name or v.name, helper.np_dtype_to_tensor_dtype(np.dtype(v.dtype)), shape)


class _Writer:
    """One graph (the model or an If branch) being written into `g`; IR value names map to ONNX names."""

    def __init__(self, graph, src_opset, opset, where, assume_suffix_padding, g, symbols=None):
        self.graph, self.src_opset, self.opset, self.where = graph, src_opset, opset, where
        self.assume_suffix_padding, self.g = assume_suffix_padding, g
        self.symbols = input_symbols(graph) if symbols is None else symbols
        self.sizes = Sizes(g, self.symbols, where)
        self._names = {}
        self._branches = 0

    def write(self, keep):
        needed = set(keep)
        nodes = []
        for node in reversed(self.graph.nodes):
            if any(n in needed for n in node.outputs if n):
                nodes.append(node)
                needed.update(n for n in node.inputs if n)
        for node in reversed(nodes):
            write_node(self, node)

    def name(self, value: str) -> str:
        """The ONNX name of IR value `value`: its own when a node or the caller makes it, else a constant or a size
        vector written here."""
        if value in self._names:
            return self._names[value]
        v = self.graph.values[value]
        out = value
        if v.const is not None:
            arr = np.asarray(v.const)
            out = self.g.const(arr, "const", arr.dtype)
        elif v.sym is not None:
            out = self.sizes.shape(v.sym)
            if tuple(v.shape) != (len(v.sym),):
                out = self.g.op("Reshape", [out, self.g.ints([int(d) for d in v.shape])], "sizes")
            if np.dtype(v.dtype) != np.int64:
                from onnx import helper

                out = self.g.op("Cast", [out], "sizes", to=helper.np_dtype_to_tensor_dtype(np.dtype(v.dtype)))
        self._names[value] = out
        return out

    def branch(self, branch, tag: str):
        """An If branch (an analysed Graph reading outer values by name) as a GraphProto with no inputs."""
        from onnx import helper

        self._branches += 1
        g = GraphWriter(f"{self.g.prefix}{tag}{self._branches}/")
        sub = _Writer(branch, self.src_opset, self.opset, self.where, self.assume_suffix_padding, g, self.symbols)
        sub.write(branch.outputs)
        produced = {n for node in g.nodes for n in node.output}
        outs = []
        for name in branch.outputs:
            onnx_name = sub.name(name)
            if onnx_name not in produced:  # an outer value or a constant: ONNX wants a branch's own output
                onnx_name = g.op("Identity", [onnx_name], "branch_output")
            outs.append(value_info(branch.values[name], onnx_name))
        return helper.make_graph(g.nodes, g.prefix.rstrip("/").replace("/", "_"), [], outs, g.inits)
