"""The one analysis every graph goes through before it runs: infer shapes (symbolic in the inputs' dimensions),
fold constants and shape arithmetic, resolve an If whose condition is known at load, keep the others as branch
nodes, drop dead nodes, then fuse (graph/fuse.py) and stack the recurrent layers (graph/stack.py).

The result is the same Graph, every value typed and shaped, plus the run-time checks (node, dim, dim) that the
symbolic broadcasts need. Anything the C executor cannot take raises infer.Unfit naming the node."""
from __future__ import annotations

import types

import numpy as np

from ..errors import FormatError
from ..limits import FOLD_MAX_BYTES, generated_bytes, nbytes
from .dims import Dim
from .infer import RULES, Ctx, Unfit, infer_stack
from .ir import Graph, Node, Value

# Inputs an op reads as data at run time; the others (shapes, axes, pads, split sizes) are known at load.
RUNTIME_INPUTS = {
    "Reshape": (0,), "Squeeze": (0,), "Unsqueeze": (0,), "Slice": (0,), "Expand": (0,), "ConstantOfShape": (),
    "Pad": (0, 2), "Split": (0,), "Shape": (), "Size": (), "ReduceMean": (0,), "ReduceSum": (0,), "ReduceMax": (0,),
    "ReduceMin": (0,), "ReduceProd": (0,), "ReduceL2": (0,), "ReduceL1": (0,), "ReduceSumSquare": (0,),
    "Dropout": (0,), "View": (0,),
}


def runtime_inputs(node: Node) -> list:
    keep = RUNTIME_INPUTS.get(node.op)
    return [n for i, n in enumerate(node.inputs) if n and (keep is None or i in keep)]


def analyse(graph: Graph, opset: int) -> list:
    """Types, shapes and folding in place; returns the run-time dimension checks [(node, dim_a, dim_b, kind)]."""
    checks = []
    nodes = []
    for node in graph.nodes:
        nodes += _visit(graph, node, opset, checks)
    graph.nodes = nodes
    for name in graph.outputs:
        v = graph.values.get(name)
        if v is None or v.shape is None:
            raise Unfit(f"{graph.name}: graph output {name!r} has no inferred shape")
    remove_dead(graph)
    from .fuse import fuse
    from .stack import stack_recurrent

    fuse(graph)
    stack_recurrent(graph, opset)
    remove_dead(graph)
    return [(n, a, b, kind) for n, a, b, kind in checks if any(n is m for m in graph.nodes)]


def _visit(graph, node, opset, checks) -> list:
    values = graph.values
    ins = [values[n] if n else None for n in node.inputs]
    if node.op == "If":
        return _visit_if(graph, node, ins, opset, checks)
    has_input = any(v is not None for v in ins)
    foldable = (node.op not in ("LSTM", "GRU", "RNN", "Shape", "Size") and has_input
                and all(v is None or v.const is not None for v in ins) and _fold_fits(node, ins, opset))
    if foldable:
        for name, arr in zip(node.outputs, fold(node, [None if v is None else v.const for v in ins], opset)):
            if name:
                arr = np.asarray(arr)
                values[name] = Value(name, arr.dtype, tuple(arr.shape), const=arr)
        return []
    rule = _shape_rule(node)
    if rule is None:
        from .islands import island_rule

        rule = island_rule  # an operator outside the C set runs in Python between two parts of the C call
    node_checks = []
    outs = rule(Ctx(node, ins, opset, node_checks))
    # a rule's check is (a, b): equal sizes, or (a, b, "broadcast"): equal or one of them 1
    checks += [(node, c[0], c[1], c[2] if len(c) > 2 else "equal") for c in node_checks]
    for out in outs:
        if out.name:
            if out.sym is not None and all(not isinstance(d, Dim) for d in out.sym):
                arr = np.array(out.sym, dtype=out.dtype).reshape([int(d) for d in out.shape])
                out = Value(out.name, arr.dtype, tuple(arr.shape), const=arr)
            values[out.name] = out
    if all(not n or values[n].const is not None or values[n].sym is not None for n in node.outputs):
        return []  # a computation of sizes, done here: its consumers read the sizes, never the tensor
    return [node]


def _shape_rule(node):
    """The node's shape rule, or None for an operator outside the C set."""
    if node.op == "Recurrent" and isinstance(node.payload, list):
        return infer_stack  # a stack an importer built (graph/build.py); RULES holds ONNX's operators only
    return RULES.get(node.op)


def _fold_fits(node, ins, opset) -> bool:
    """A constant computed at load stays within limits.FOLD_MAX_BYTES; a larger one (ConstantOfShape([40000,
    40000]) in a 146-byte file) is left to the run, whose plan checks the memory limit before allocating. The size
    comes from the op's shape rule; ops without one are computed (their outputs are as large as their inputs)."""
    rule = _shape_rule(node)
    if rule is None:
        size = generated_bytes(node.op, [None if v is None else v.const for v in ins])
        return size is None or size <= FOLD_MAX_BYTES
    try:
        outs = rule(Ctx(node, ins, opset, []))
    except (Unfit, FormatError, ValueError, TypeError, ArithmeticError):
        return True  # the fold names what is wrong
    return all(v.shape is None or any(isinstance(d, Dim) for d in v.shape) or nbytes(v.shape, v.dtype) <=
               FOLD_MAX_BYTES for v in outs)


def fold(node, args, opset):
    """A node whose inputs are all constants, computed once at load with the numpy operators (or, for the ones
    rnnfast has no numpy version of, onnx.reference's implementation)."""
    from ..importers.onnx.graph import OPS

    ctx = types.SimpleNamespace(attrs=node.attrs, opset=opset, where=node.where, node=node.proto)
    try:
        if node.op in OPS:
            return OPS[node.op](ctx, *args)
        if node.proto is not None:
            from ..importers.onnx.graph import ReferenceNode

            reference = ReferenceNode(node.proto, node.where, opset)
            return reference.fn(reference, *args)
    except FormatError:
        raise
    except (ValueError, IndexError, KeyError, TypeError, ArithmeticError) as e:
        raise FormatError(f"{node.where}: cannot evaluate this constant expression: {e}") from None
    raise Unfit(f"{node.where}: {node.op} of constants cannot be evaluated at load")


def _visit_if(graph, node, ins, opset, checks):
    cond = ins[0]
    then_g, else_g = node.payload
    if cond.const is not None:
        if cond.const.size != 1:
            raise FormatError(f"{node.where}: the condition must hold one value, got shape {cond.const.shape}")
        branch = then_g if bool(cond.const.reshape(-1)[0]) else else_g
        return _inline(graph, node, branch, opset, checks)
    outs = []
    for branch in (then_g, else_g):
        for name in branch.inputs:  # the captured outer values, as known here
            branch.values[name] = _copy_value(graph.values[name])
        sub_checks = analyse(branch, opset)
        branch.checks = sub_checks
    for k, name in enumerate(node.outputs):
        a, b = then_g.values[then_g.outputs[k]], else_g.values[else_g.outputs[k]]
        if a.dtype != b.dtype or tuple(a.shape) != tuple(b.shape):
            raise Unfit(f"{node.where}: the branches give output {k} as {a.describe()} and {b.describe()}")
        graph.values[name] = Value(name, a.dtype, tuple(a.shape))
    return [node]


def _copy_value(v: Value) -> Value:
    return Value(v.name, v.dtype, v.shape, v.const, v.sym)


def _inline(graph, node, branch, opset, checks):
    """The chosen branch's nodes in place of the If; its outputs renamed to the If's."""
    for name, v in branch.values.items():
        if v.const is not None and name not in graph.values:
            graph.values[name] = v
    rename = dict(zip(branch.outputs, node.outputs))
    out = []
    for bn in branch.nodes:
        bn.outputs = [rename.get(n, n) for n in bn.outputs]
        out += _visit(graph, bn, opset, checks)
    for src, dst in rename.items():  # an output that is an outer value or a constant of the branch
        if dst not in graph.values or graph.values[dst].shape is None:
            if src in graph.values:
                ident = Node("Identity", [src], [dst], name=f"{node.name}/out", where=node.where)
                out += _visit(graph, ident, opset, checks)
    return out


def remove_dead(graph: Graph):
    """Drop nodes none of whose outputs reach a graph output through run-time inputs."""
    needed = set(graph.outputs)
    kept = []
    for node in reversed(graph.nodes):
        if any(n in needed for n in node.outputs if n):
            kept.append(node)
            needed.update(runtime_inputs(node) if node.op != "If" else [n for n in node.inputs if n])
    graph.nodes = kept[::-1]
