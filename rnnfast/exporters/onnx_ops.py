"""The graph IR's nodes (graph/ir.py, after graph/analysis.py) as ONNX nodes of the opset being written.

Most IR ops are ONNX operators whose attributes are those of the source's opset; the ones whose form moved between
opsets (axes, split sizes, slice bounds, pads, clip bounds as inputs instead of attributes) are written from what the
analysis resolved (graph/infer.py), so the written node means the same at the written opset. What the analysis fused
is written back as standard operators: a product's folded bias ("_bias") as an Add, its activation ("_act",
graph/fuse.py) as the activation's operator, a Conv's folded pooling ("_pool") as MaxPool 2x2 stride 2 (a
BatchNormalization folded into a Conv is in the Conv's weights already). "View" (a Transpose that only moves axes of
size 1) is a Reshape to its output's shape; inference-mode Dropout an Identity; Gelu before opset 20 its erf / tanh
formula. An operator outside the C set (an island, graph/islands.py) is written as the ONNX node it came from."""
from __future__ import annotations

import numpy as np

from ..errors import FormatError
from ..graph.fuse import EPILOGUE_ACTS
from ..graph.infer import Ctx, _axes_input, _slice_params, attr_str, reduce_axes

REDUCE_OPS = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceL1",
              "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp")
# attributes that only older opsets have, or that the analysis adds; never written
DROPPED_ATTRS = ("consumed_inputs", "is_test", "spatial", "broadcast")


def write_node(w, node):
    if node.attrs.get("_island"):
        return _island(w, node)
    fn = WRITERS.get(node.op)
    if fn is None:
        fn = _product if node.op in ("MatMul", "Gemm", "Conv") else _generic
    fn(w, node)


def attrs_of(node) -> dict:
    out = {}
    for k, v in node.attrs.items():
        if k.startswith("_") or k in DROPPED_ATTRS or k == "auto_pad" and attr_str(node.attrs, k, "") == "NOTSET":
            continue
        out[k] = _attr_value(v)
    return out


def _attr_value(v):
    from onnx import numpy_helper

    if isinstance(v, np.ndarray):
        return numpy_helper.from_array(v.reshape(-1) if v.ndim == 0 else v)
    if isinstance(v, np.generic):
        return v.item()
    if hasattr(v, "_raw"):  # a message of rnnfast's own ONNX reader (importers/onnx/protos.py)
        from ..importers.onnx.protos import to_onnx

        return to_onnx(v)
    if isinstance(v, (list, tuple)):
        return [x.item() if isinstance(x, np.generic) else x for x in v]
    return v


def _ins(w, node):
    return [w.name(n) if n else "" for n in node.inputs]


def _ctx(w, node):
    return Ctx(node, [w.graph.values[n] if n else None for n in node.inputs], w.src_opset, [])


def _generic(w, node, op=None, inputs=None, **extra):
    w.g.emit(op or node.op, _ins(w, node) if inputs is None else inputs, node.outputs, name=node.name or None,
             **{**attrs_of(node), **extra})


def _island(w, node):
    from onnx import helper

    proto = node.proto
    if hasattr(proto, "_raw"):
        from ..importers.onnx.protos import to_onnx

        proto = to_onnx(proto)
    out = helper.make_node(proto.op_type, _ins(w, node), list(node.outputs), name=node.name or None,
                           domain=proto.domain or None)
    out.attribute.extend(proto.attribute)
    w.g.nodes.append(out)


def _act_op(kind, alpha, beta):
    for op, (k, a, b) in EPILOGUE_ACTS.items():
        if k == kind:
            attrs = {}
            if a:
                attrs[a[0]] = float(alpha)
            if b:
                attrs[b[0]] = float(beta)
            return op, attrs
    raise FormatError(f"activation {kind} folded into a product has no ONNX operator")  # fuse.py folds only these


def _product(w, node):
    """Conv / MatMul / Gemm, then the bias Add, the activation and (a Conv's) MaxPool 2x2 stride 2 the analysis
    folded into it."""
    g, act, bias, pool = w.g, node.attrs.get("_act"), node.attrs.get("_bias"), node.attrs.get("_pool")
    final, rest = node.outputs[0], list(node.outputs[1:])
    out = g.fresh(f"{node.op.lower()}_product") if act or pool or bias is not None else final
    g.emit(node.op, _ins(w, node), [out] + rest, name=node.name or None, **attrs_of(node))
    if bias is not None:
        nxt = g.fresh("biased") if act or pool else final
        g.emit("Add", [out, g.const(bias, "bias")], [nxt])
        out = nxt
    if act:
        op, attrs = _act_op(*act)
        nxt = g.fresh("activated") if pool else final
        g.emit(op, [out], [nxt], **attrs)
        out = nxt
    if pool:
        g.emit("MaxPool", [out], [final], kernel_shape=[2, 2], strides=[2, 2])


def _axes(w, node, axes, attr_until: int):
    """axes as the node's input (opset >= attr_until) or attribute."""
    if w.opset >= attr_until:
        return [w.name(node.inputs[0]), w.g.ints(axes)], {}
    return [w.name(node.inputs[0])], {"axes": list(axes)}


def _squeeze(w, node):
    axes = _axes_input(_ctx(w, node))
    if axes is None:
        axes = [i for i, d in enumerate(w.graph.values[node.inputs[0]].shape) if d == 1]
    ins, attrs = _axes(w, node, axes, 13)
    w.g.emit(node.op, ins, node.outputs, name=node.name or None, **attrs)


def _reduce(w, node):
    axes = reduce_axes(_ctx(w, node))
    keep = int(node.attrs.get("keepdims", 1))
    if not axes:  # noop_with_empty_axes
        w.g.emit("Identity", [w.name(node.inputs[0])], node.outputs[:1])
        return
    ins, attrs = _axes(w, node, axes, 13 if node.op == "ReduceSum" else 18)
    w.g.emit(node.op, ins, node.outputs[:1], name=node.name or None, keepdims=keep, **attrs)


def _slice(w, node):
    bounds = list(zip(*_slice_params(_ctx(w, node)))) or [(), (), (), ()]
    axes, starts, ends, steps = (list(b) for b in bounds)
    clamp = lambda v: v if not isinstance(v, (int, np.integer)) else max(min(int(v), 2 ** 63 - 1), -2 ** 63)
    ins = [w.name(node.inputs[0]), w.sizes.shape([clamp(v) for v in starts]),
           w.sizes.shape([clamp(v) for v in ends]), w.g.ints(axes), w.sizes.shape([clamp(v) for v in steps])]
    w.g.emit("Slice", ins, node.outputs, name=node.name or None)


def _split(w, node):
    x = w.graph.values[node.inputs[0]]
    axis = int(node.attrs.get("axis", 0)) % len(x.shape)
    sizes = [w.graph.values[n].shape[axis] for n in node.outputs]
    w.g.emit("Split", [w.name(node.inputs[0]), w.sizes.shape(sizes)], node.outputs, name=node.name or None,
             axis=axis)


def _pad(w, node):
    begin, end = node.attrs["_pads"]
    mode = attr_str(node.attrs, "mode", "constant")
    dtype = w.graph.values[node.inputs[0]].dtype
    if w.src_opset < 11:
        value = node.attrs.get("value", 0.0)
        value_in = w.g.const(np.array(value, dtype), "pad_value", dtype)
    else:
        value_in = w.name(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else ""
    ins = [w.name(node.inputs[0]), w.sizes.shape(list(begin) + list(end))] + ([value_in] if value_in else [])
    w.g.emit("Pad", ins, node.outputs, name=node.name or None, mode=mode)


def _clip(w, node):
    if w.src_opset >= 11:
        return _generic(w, node)
    dtype = w.graph.values[node.inputs[0]].dtype
    bound = lambda key: w.g.const(np.array(node.attrs[key], dtype), key, dtype) if key in node.attrs else ""
    ins = [w.name(node.inputs[0]), bound("min"), bound("max")]
    while ins[-1] == "":
        ins.pop()
    w.g.emit("Clip", ins, node.outputs, name=node.name or None)


def _softmax(w, node):
    rank = len(w.graph.values[node.inputs[0]].shape)
    axis = int(node.attrs.get("axis", -1 if w.src_opset >= 13 else 1)) % max(rank, 1)
    # before 13, Softmax coerced its input to 2-D at `axis`; the C set takes only axis = rank - 1 there, the same
    w.g.emit(node.op, [w.name(node.inputs[0])], node.outputs, name=node.name or None, axis=axis)


def _reshape(w, node):
    attrs = attrs_of(node)
    target = w.graph.values[node.inputs[1]]
    sizes = target.const.reshape(-1).tolist() if target.const is not None else target.sym
    if w.opset < 14 and attrs.pop("allowzero", 0) and (sizes is None or 0 in sizes):  # else it changes nothing
        raise FormatError(f"{node.where}: Reshape with allowzero=1 is an ONNX form from opset 14 on; write opset 14 or "
                          f"later")
    w.g.emit("Reshape", _ins(w, node), node.outputs, name=node.name or None, **attrs)


def _view(w, node):
    shape = w.graph.values[node.outputs[0]].shape
    w.g.emit("Reshape", [w.name(node.inputs[0]), w.sizes.shape(shape)], node.outputs[:1], name=node.name or None)


def _dropout(w, node):
    if len(node.outputs) > 1 and node.outputs[1]:  # its mask is read: an inference-mode Dropout gives it
        return w.g.emit("Dropout", [w.name(node.inputs[0])], node.outputs, name=node.name or None)
    w.g.emit("Identity", [w.name(node.inputs[0])], node.outputs[:1], name=node.name or None)


def _gelu(w, node):
    if w.opset >= 20:
        return _generic(w, node)
    g, x = w.g, w.name(node.inputs[0])
    if attr_str(node.attrs, "approximate", "none") == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = g.op("Mul", [g.op("Mul", [x, x]), x])
        inner = g.op("Mul", [g.op("Add", [x, g.op("Mul", [cube, g.const(0.044715)])]),
                             g.const(np.sqrt(2 / np.pi))])
        one_plus = g.op("Add", [g.op("Tanh", [inner]), g.const(1.0)])
    else:  # 0.5 x (1 + erf(x / sqrt(2)))
        one_plus = g.op("Add", [g.op("Erf", [g.op("Mul", [x, g.const(np.sqrt(0.5))])]), g.const(1.0)])
    g.emit("Mul", [g.op("Mul", [x, g.const(0.5)]), one_plus], node.outputs, name=node.name or None)


def _layernorm(w, node):
    if w.opset < 17:
        raise FormatError(f"{node.where}: LayerNormalization is an ONNX operator from opset 17 on; write opset 17 "
                          f"or later (opset=17; on the command line --opset 17)")
    w.g.emit(node.op, _ins(w, node), node.outputs[:1], name=node.name or None, **attrs_of(node))


def _batchnorm(w, node):
    attrs = {k: v for k, v in attrs_of(node).items() if k in ("epsilon", "momentum")}
    w.g.emit(node.op, _ins(w, node)[:5], node.outputs[:1], name=node.name or None, **attrs)


def _stack(w, node):
    from .onnx_recurrent import write_stack

    write_stack(w, node)


def _if(w, node):
    then_g, else_g = node.payload
    w.g.emit("If", [w.name(node.inputs[0])], node.outputs, name=node.name or None,
             then_branch=w.branch(then_g, "then"), else_branch=w.branch(else_g, "else"))


WRITERS = {
    "Squeeze": _squeeze, "Unsqueeze": _squeeze, **{op: _reduce for op in REDUCE_OPS}, "Slice": _slice,
    "Split": _split, "Pad": _pad, "Clip": _clip, "Reshape": _reshape, "Softmax": _softmax, "LogSoftmax": _softmax,
    "View": _view,
    "Dropout": _dropout, "Gelu": _gelu, "LayerNormalization": _layernorm, "BatchNormalization": _batchnorm,
    "Recurrent": _stack, "If": _if,
}
