"""ONNX ModelProto -> the graph IR (rnnfast/graph/ir.py): values for the inputs (shapes in symbolic dimensions named
after the file's dim_params), the initializers and Constant nodes; one IR node per ONNX node with its attributes
decoded; If branches as Graphs of their own whose inputs are the outer values they read.

Only what the IR cannot hold is refused here (infer.Unfit: another domain, Loop/Scan, quantized LSTMs); whether
each operator can run in C is decided by the analysis and the lowering to C."""
from __future__ import annotations

import types

import numpy as np

from ...errors import FormatError
from ...graph.dims import Dim
from ...graph.infer import ONNX_DTYPES, Unfit
from ...graph.ir import Graph, Node, Value
from .defaults import state_defaults
from .quant import MS_DOMAIN, QuantizedLstmSpec
from .recurrent import OP_CELLS, RecurrentNodeSpec
from .graph import LOAD_CHECKS
from .protos import AttributeProto, attribute_value
from .tensors import to_array


def model_opset(proto, name) -> int:
    versions = {o.domain: o.version for o in proto.opset_import}
    opset = versions.get("") or versions.get("ai.onnx")
    if not opset:
        raise FormatError(f"{name}: the model imports no opset of the ai.onnx domain (opset_import: {versions})")
    return int(opset)


def lower_model(proto, name: str) -> tuple:
    """(Graph, opset) for a whole model."""
    opset = model_opset(proto, name)
    return _lower(proto.graph, name, opset, captured=None, kept=state_defaults(proto)), opset


def _decode_attrs(node, where) -> dict:
    attrs = {}
    for a in node.attribute:
        if a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
            continue
        v = attribute_value(a, where)
        attrs[a.name] = to_array(v, f"{where}: attribute {a.name!r}") if hasattr(v, "dims") else v
    return attrs


def _input_value(vi, name_prefix) -> Value:
    t = vi.type.tensor_type
    if not vi.type.HasField("tensor_type"):
        raise Unfit(f"{name_prefix}: graph input {vi.name!r} is not a tensor")
    if t.elem_type not in ONNX_DTYPES:
        raise Unfit(f"{name_prefix}: graph input {vi.name!r} has ONNX element type {t.elem_type}")
    shape = []
    for a, d in enumerate(t.shape.dim):
        if d.HasField("dim_value") and d.dim_value > 0:
            shape.append(int(d.dim_value))
        else:
            shape.append(Dim.symbol(d.dim_param or f"{vi.name}:{a}"))
    return Value(vi.name, np.dtype(ONNX_DTYPES[t.elem_type]), tuple(shape))


def _lower(gproto, name, opset, captured, kept=frozenset()) -> Graph:
    """captured: None for the main graph, else the list the branch's free names are appended to. kept: the
    initializer-backed inputs that stay inputs, the initializer their default (defaults.py)."""
    from .graph import _refuse_duplicates

    _refuse_duplicates(name, "initializer", [init.name for init in gproto.initializer])
    _refuse_duplicates(name, "graph input", [v.name for v in gproto.input])
    values = {}
    for init in gproto.initializer:
        arr = to_array(init, f"{name}: initializer {init.name!r}")
        values[init.name] = Value(init.name, arr.dtype, tuple(arr.shape), const=arr)
    inputs, defaults = [], {}
    for vi in gproto.input:
        if vi.name in values and vi.name not in kept:
            continue
        if vi.name in values:
            defaults[vi.name] = default = values[vi.name].const
            values[vi.name] = v = _input_value(vi, name)
            # a feed's shape may differ from the initializer's (onnxruntime takes any, a graph's Expand broadcasts
            # it): an axis not declared as the initializer's fixed size is a size of this input's own
            declared = v.shape if len(v.shape) == default.ndim else (None,) * default.ndim
            v.shape = tuple(d if d == n else Dim.symbol(f"{vi.name}:{a}")
                            for a, (d, n) in enumerate(zip(declared, default.shape)))
        else:
            values[vi.name] = _input_value(vi, name)
        inputs.append(vi.name)
    produced = set(values)
    nodes = []
    for i, node in enumerate(gproto.node):
        where = f"{name}: node {node.name or '#' + str(i)} ({node.op_type})"
        quantized = (node.domain, node.op_type) == (MS_DOMAIN, "DynamicQuantizeLSTM")
        if node.domain not in ("", "ai.onnx") and not quantized:
            raise Unfit(f"{where}: operator domain {node.domain!r}")
        for inp in node.input:
            if inp and inp not in produced:
                if captured is None:
                    raise Unfit(f"{where}: input {inp!r} is not produced before it is read")
                if inp not in captured:
                    captured.append(inp)
        attrs = _decode_attrs(node, where)
        if node.op_type in LOAD_CHECKS:  # attribute forms refused at load, whichever path runs the node
            LOAD_CHECKS[node.op_type](types.SimpleNamespace(attrs=attrs, where=where, opset=opset, node=node))
        for out in node.output:
            if out and out in produced:
                raise FormatError(f"{where}: output {out!r} is produced twice")
        if node.op_type == "Constant":
            arr = _constant(attrs, where)
            values[node.output[0]] = Value(node.output[0], arr.dtype, tuple(arr.shape), const=arr)
            produced.add(node.output[0])
            continue
        ir = Node(node.op_type, list(node.input), list(node.output), attrs, node.name, where, proto=node)
        if quantized:
            ir = _dequantized_lstm(ir, node, opset, where, values)
        elif node.op_type in OP_CELLS:
            ir.payload = RecurrentNodeSpec(node, opset, where)
        elif node.op_type == "If":
            ir.payload, ir.inputs = _lower_if(node, where, opset, produced, captured)
        elif node.op_type in ("Loop", "Scan", "SequenceMap"):
            raise Unfit(f"{where}: {node.op_type} runs outside the C executor")
        nodes.append(ir)
        produced.update(o for o in node.output if o)
    graph = Graph(name, inputs, [o.name for o in gproto.output], values, nodes, defaults=defaults)
    return graph


def _dequantized_lstm(ir, node, opset, where, values) -> Node:
    """com.microsoft.DynamicQuantizeLSTM as the float LSTM on its dequantized weights, which is what rnnfast runs
    for it (quant.py), as new constants beside the integer ones."""
    dequantized = QuantizedLstmSpec(node, opset, where).dequantized(
        lambda n: values[n].const if n in values else None)
    if dequantized is None:
        raise Unfit(f"{where}: weights, scales or zero points computed at run time")
    ir.payload, w, r = dequantized
    ir.op, ir.inputs = "LSTM", ir.inputs[:8]
    for k, arr in ((1, w), (2, r)):
        name = f"{ir.inputs[k]}:dequantized"
        values[name] = Value(name, arr.dtype, tuple(arr.shape), const=arr)
        ir.inputs[k] = name
    return ir


def _lower_if(node, where, opset, outer_produced, outer_captured):
    branches = {a.name: a.g for a in node.attribute if a.name in ("then_branch", "else_branch")}
    if set(branches) != {"then_branch", "else_branch"}:
        raise FormatError(f"{where}: If needs then_branch and else_branch graphs")
    free = []
    graphs = []
    for key in ("then_branch", "else_branch"):
        g = _lower(branches[key], f"{where} {key}", opset, captured=free)
        if len(g.outputs) != len(node.output):
            raise FormatError(f"{where}: {key} has {len(g.outputs)} outputs, the node {len(node.output)}")
        graphs.append(g)
    for n in free:  # what the branches read from outside must exist out here (or further out)
        if n not in outer_produced:
            if outer_captured is None:
                raise Unfit(f"{where}: a branch reads {n!r}, which is not produced before the If")
            if n not in outer_captured:
                outer_captured.append(n)
    for g in graphs:
        g.inputs = list(free)
    return tuple(graphs), [node.input[0]] + list(free)


def _constant(attrs, where) -> np.ndarray:
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in attrs:
            v = attrs[key]
            if isinstance(v, np.ndarray):
                return v
            return np.asarray(v, np.float32 if "float" in key else np.int64)
    raise Unfit(f"{where}: Constant without a supported value attribute ({sorted(attrs)})")
