"""Fusions that pay on a CPU: BatchNormalization folded into the Conv before it, a constant bias Add and then an
activation folded into the Conv / MatMul / Gemm that feeds them, so the product's output is written once; then a
MaxPool 2x2 stride 2 after a 2-D Conv (with no activation or Relu), so the conv's output is pooled while it is in
cache and never written whole (a Winograd tile is one pool window).

A fused node keeps its op and gains attributes the C lowering reads: "_bias" (a constant vector per output
channel / column), "_act" (unary kind name, alpha, beta) and, on a Conv, "_pool" (1: MaxPool 2x2 stride 2).
Only a value with exactly one consumer that is not a graph output is fused away, so no value anyone reads
disappears."""
from __future__ import annotations

import numpy as np

from .dims import Dim
from .ir import Graph, Node, Value
from .stack import CELL_OPS

# Activations a product's epilogue applies: op -> (kind, alpha attribute default, beta default).
EPILOGUE_ACTS = {"Relu": ("RELU", None, None), "Tanh": ("TANH", None, None), "Sigmoid": ("SIGMOID", None, None),
                 "LeakyRelu": ("LEAKYRELU", ("alpha", 0.01), None),
                 "HardSigmoid": ("HARDSIGMOID", ("alpha", 0.2), ("beta", 0.5)),
                 "Elu": ("ELU", ("alpha", 1.0), None), "Softplus": ("SOFTPLUS", None, None)}


def fuse(graph: Graph):
    _simplify_transposes(graph)
    changed = True
    while changed:
        changed = False
        users = graph.consumers()
        for node in graph.nodes:
            if node.op not in ("Conv", "MatMul", "Gemm") or node.attrs.get("_pool"):
                continue
            out = node.outputs[0]
            if out in graph.outputs or len(users.get(out, [])) != 1:
                continue
            nxt = users[out][0]
            if node.op == "Conv" and _pool_2x2(graph, node, nxt):
                node.attrs["_pool"] = 1
                _bypass(graph, node, nxt)
                changed = True
            elif node.attrs.get("_act"):
                continue
            elif nxt.op == "BatchNormalization" and node.op == "Conv":
                changed |= _fold_batchnorm(graph, node, nxt)
            elif nxt.op == "Add" and "_bias" not in node.attrs:
                changed |= _fold_bias(graph, node, nxt)
            elif nxt.op in EPILOGUE_ACTS:
                kind, a, b = EPILOGUE_ACTS[nxt.op]
                alpha = float(nxt.attrs.get(a[0], a[1])) if a else 0.0
                beta = float(nxt.attrs.get(b[0], b[1])) if b else 0.0
                node.attrs["_act"] = (kind, alpha, beta)
                _bypass(graph, node, nxt)
                changed = True
            if changed:
                break
    _transposes_after_products(graph)


def _transposes_after_products(graph: Graph):
    """Transpose (last axis kept) -> MatMul by a constant [K, N] is MatMul -> Transpose when N <= K: rows are
    multiplied independently, so the product may run on the untransposed rows, and the Transpose then moves N floats
    a row instead of K (the crnn's [T, B, 96] -> [B, T, 96] before its Linear to 10). After the fusions above, so
    the MatMul keeps its folded bias and activation; the bits are the same (each output row is the same chain)."""
    changed = True
    while changed:
        changed = False
        users = graph.consumers()
        for t in graph.nodes:
            if t.op != "Transpose" or not _single_use(graph, users, t.outputs[0]):
                continue
            rank = len(graph.values[t.inputs[0]].shape)
            perm = list(t.attrs.get("perm") or range(rank)[::-1])
            mm = users[t.outputs[0]][0]
            w = graph.values[mm.inputs[1]].const if mm.op == "MatMul" and mm.inputs[0] == t.outputs[0] else None
            if perm[-1] != rank - 1 or w is None or w.ndim != 2 or w.shape[1] > w.shape[0]:
                continue
            out = graph.values[mm.outputs[0]]
            name = f"{mm.outputs[0]}/untransposed"
            while name in graph.values:
                name += "_"
            graph.values[name] = Value(name, out.dtype, tuple(graph.values[t.inputs[0]].shape[:-1]) + (w.shape[1],))
            mm.inputs = [t.inputs[0]] + mm.inputs[1:]
            t.inputs, t.outputs, mm.outputs = [name], [mm.outputs[0]], [name] + mm.outputs[1:]
            graph.nodes.remove(t)
            graph.nodes.insert(graph.nodes.index(mm) + 1, t)
            changed = True
            break


def _pool_2x2(graph, conv, pool) -> bool:
    """Whether pool is a MaxPool the C conv applies itself: 2x2 windows, stride 2, no pads, no dilation, floor
    sizes, no Indices output, after a 2-D conv whose activation (if any) is Relu."""
    if pool.op != "MaxPool" or len(graph.values[conv.outputs[0]].shape) != 4 or any(pool.outputs[1:]):
        return False
    if (conv.attrs.get("_act") or ("RELU",))[0] != "RELU":
        return False
    a = pool.attrs
    return (list(a.get("kernel_shape", [])) == [2, 2] and list(a.get("strides", [1, 1])) == [2, 2]
            and not any(a.get("pads", [0] * 4)) and list(a.get("dilations", [1, 1])) == [1, 1]
            and not a.get("ceil_mode", 0) and a.get("auto_pad", "NOTSET") in ("NOTSET", b"NOTSET"))


def _simplify_transposes(graph: Graph):
    """Transpose(Transpose(x)) is one Transpose; so is Transpose(Reshape(Transpose(x))) when the Reshape only merges
    neighbouring axes that the outer Transpose keeps together (a CRNN's [B, C, F, T] -> [B, T, C, F] -> [B, T, C*F]
    -> [T, B, C*F]): one Transpose of x, then a view with the outer one's shape. A Transpose that moves only axes of
    size 1 keeps the memory order, so it is a view ("View": an alias of its input with the output's shape), not a
    copy."""
    changed = True
    while changed:
        changed = False
        users = graph.consumers()
        for node in graph.nodes:
            if node.op != "Transpose":
                continue
            shape = graph.values[node.inputs[0]].shape
            perm = list(node.attrs.get("perm") or range(len(shape))[::-1])
            src = graph.producers().get(node.inputs[0])
            if (src is not None and src.op == "Transpose" and len(users.get(src.outputs[0], [])) == 1
                    and src.outputs[0] not in graph.outputs):
                inner = list(src.attrs.get("perm") or range(len(perm))[::-1])
                node.attrs = dict(node.attrs, perm=[inner[p] for p in perm])
                node.inputs = [src.inputs[0]]
                graph.nodes.remove(src)
                changed = True
                break
            if src is not None and src.op == "Reshape" and _merge_through_reshape(graph, users, node, perm, src):
                changed = True
                break
            moved = [a for a in perm if not (isinstance(shape[a], int) and shape[a] == 1)]
            if moved == sorted(moved):
                node.op = "View"
                node.attrs = {}
                changed = True
                break


def _merged_groups(before, after):
    """The runs of axes of shape `before` that a reshape to `after` merges into each of its axes, or None when the
    reshape does more than merge neighbours (a split, or sizes that do not line up)."""
    groups, i = [], 0
    for size in after:
        start, acc = i, 1
        while i < len(before) and (i == start or not acc == size):
            acc = Dim.make(Dim.of(acc) * before[i])
            i += 1
        if not acc == size:
            return None
        groups.append(list(range(start, i)))
    return groups if i == len(before) else None


def _single_use(graph, users, name) -> bool:
    return len(users.get(name, [])) == 1 and name not in graph.outputs


def _merge_through_reshape(graph, users, outer, perm, reshape) -> bool:
    """outer = Transpose(perm) of reshape = Reshape(inner = Transpose(x)): rewritten as View(Transpose(x)) with one
    permutation when the reshape merges runs of inner's axes that perm moves as wholes. outer's node becomes the
    View (its output keeps its name and shape), the new Transpose goes right before it."""
    producers = graph.producers()
    inner = producers.get(reshape.inputs[0])
    if (inner is None or inner.op != "Transpose" or not _single_use(graph, users, reshape.outputs[0])
            or not _single_use(graph, users, inner.outputs[0])):
        return False
    if getattr(producers.get(inner.inputs[0]), "op", None) in CELL_OPS:
        return False  # a recurrent layer's [T, D, B, H] -> [T, B, D, H] is its own output layout (stack.py)
    x = graph.values[inner.inputs[0]]
    mid, merged = graph.values[inner.outputs[0]].shape, graph.values[reshape.outputs[0]].shape
    if x.shape is None or mid is None or merged is None:
        return False
    groups = _merged_groups(mid, merged)
    if groups is None or len(groups) == len(mid):  # nothing merged: Transpose(Transpose) after the view
        return False
    inner_perm = list(inner.attrs.get("perm") or range(len(mid))[::-1])
    combined = [inner_perm[i] for k in perm for i in groups[k]]
    name = f"{outer.outputs[0]}/transposed"
    while name in graph.values:
        name += "_"
    graph.values[name] = Value(name, x.dtype, tuple(x.shape[a] for a in combined))
    at = graph.nodes.index(outer)
    node_name, taken = f"{outer.name}/merged", {n.name for n in graph.nodes}
    while node_name in taken:  # node names stay unique: the IR is written back to ONNX (exporters/)
        node_name += "_"
    graph.nodes.insert(at, Node("Transpose", [inner.inputs[0]], [name], {"perm": combined}, name=node_name,
                                where=outer.where))
    outer.op, outer.inputs, outer.attrs = "View", [name], {}
    graph.nodes.remove(reshape)
    graph.nodes.remove(inner)
    return True


def _bypass(graph, node, nxt):
    """node now computes nxt's output: it takes nxt's output name, and nxt goes."""
    node.outputs = [nxt.outputs[0]] + node.outputs[1:]
    graph.nodes.remove(nxt)


def _fold_batchnorm(graph, conv, bn) -> bool:
    vals = [graph.values[n].const if n else None for n in bn.inputs[1:5]]
    w = graph.values[conv.inputs[1]].const
    if any(v is None for v in vals) or w is None or len(bn.outputs) > 1 and any(bn.outputs[1:]):
        return False
    scale, shift, mean, var = (v.astype(np.float64) for v in vals)
    eps = float(bn.attrs.get("epsilon", 1e-5))
    k = scale / np.sqrt(var + eps)
    b = graph.values[conv.inputs[2]].const.astype(np.float64) if len(conv.inputs) > 2 and conv.inputs[2] else 0.0
    new_w = (w.astype(np.float64) * k.reshape([-1] + [1] * (w.ndim - 1))).astype(np.float32)
    new_b = ((b - mean) * k + shift).astype(np.float32)
    _set_const(graph, conv, 1, new_w, "w_bn")
    _set_const(graph, conv, 2, new_b, "b_bn")
    _bypass(graph, conv, bn)
    return True


def _set_const(graph, node, index, arr, suffix):
    name = f"{node.name or node.outputs[0]}/{suffix}"
    while name in graph.values:
        name += "_"
    graph.values[name] = Value(name, arr.dtype, tuple(arr.shape), const=arr)
    while len(node.inputs) <= index:
        node.inputs.append("")
    node.inputs[index] = name


def _fold_bias(graph, node, add) -> bool:
    other = add.inputs[1] if add.inputs[0] == node.outputs[0] else add.inputs[0]
    c = graph.values[other].const
    out_shape = graph.values[node.outputs[0]].shape
    if c is None or c.dtype != np.float32 or graph.values[add.outputs[0]].shape != out_shape:
        return False
    if node.op == "Conv":
        channels = out_shape[1]
        want = [1] * len(out_shape)
        want[1] = channels
        if isinstance(channels, int) and c.size == channels and (c.ndim <= 1 and channels == 1 or
                                                                  list(c.shape) == want[-c.ndim:]):
            bias = c.reshape(-1)
        else:
            return False
        old = graph.values[node.inputs[2]].const if len(node.inputs) > 2 and node.inputs[2] else 0
        _set_const(graph, node, 2, (old + bias).astype(np.float32), "bias")
    else:
        n = out_shape[-1]
        if not isinstance(n, int) or c.ndim > 1 and any(d != 1 for d in c.shape[:-1]) or c.size not in (1, n):
            return False
        node.attrs["_bias"] = np.broadcast_to(c.reshape(-1), (n,)).astype(np.float32)
    node.attrs["_bias_added"] = True
    _bypass(graph, node, add)
    return True
