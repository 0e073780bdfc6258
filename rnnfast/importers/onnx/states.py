"""Initial states that exporters compute in the graph, proven to be zeros of a known shape or a fed state unchanged.

torch.onnx.export writes a zero initial state as ConstantOfShape (or Expand of a 0) over a shape made from the
input's: Shape -> Gather -> Unsqueeze -> Concat with constants, then Slice per layer; the dynamo exporter slices a
fed [layers*dirs, batch, hidden] state per layer even when it has one layer. walk_states evaluates exactly that
arithmetic symbolically, each dimension an int or ("dim", input, axis) for a size only known at run time; any
other op, or an op it does not model exactly, leaves its outputs unknown (the caller keeps the general path).
"""
from __future__ import annotations

import numpy as np

FLOAT32 = np.dtype(np.float32)


def fills_zeros(op_type, attrs, value) -> bool:
    """Whether ConstantOfShape (value: its attribute) or Expand (value: its constant first input) fills with 0."""
    if op_type == "ConstantOfShape" and value is None:
        return True  # the operator's default is a float32 0
    return value is not None and not np.any(np.asarray(value))


class Zeros:
    """A float32 tensor of zeros whose shape is a list of dimensions (int or ("dim", input, axis))."""

    def __init__(self, shape):
        self.shape = list(shape)


class Alias:
    """A graph input passed on unchanged (a Slice that keeps all of it)."""

    def __init__(self, name):
        self.name = name


def walk_states(steps, consts, inputs):
    """The values of the op steps that are state arithmetic: name -> list of dims (a shape vector), Zeros or Alias.
    Returns (values, the set of step indices that made them)."""
    values, made = {}, set()
    for i, (kind, step) in enumerate(steps):
        if kind != "op" or len(step.output_names) != 1:
            continue
        out = _eval(step, values, consts, inputs)
        if out is not None:
            values[step.output_names[0]] = out
            made.add(i)
    return values, made


def _ints(consts, name):
    if not name or name not in consts:
        return None
    a = np.asarray(consts[name])
    if a.dtype.kind not in "iu" or a.ndim > 1:
        return None
    return [int(v) for v in a.reshape(-1)]


def onnx_dims(info):
    """A graph input's declared dimensions: the fixed ones as ints, the others as ("dim", input, axis)."""
    return [d if isinstance(d, int) and d > 0 else ("dim", info.name, a) for a, d in enumerate(info.shape)]


def _eval(ctx, values, consts, inputs):
    t, args, attrs = ctx.node.op_type, ctx.input_names, ctx.attrs
    if not args:
        return None
    if t == "Shape" and args[0] in inputs and len(args) == 1:
        info = inputs[args[0]]
        if not isinstance(info.shape, (list, tuple)):
            return None
        dims = onnx_dims(info)
        return dims[attrs.get("start", 0):attrs.get("end")]
    src = values.get(args[0])
    if t == "Gather" and isinstance(src, list) and attrs.get("axis", 0) == 0 and len(args) == 2:
        idx = np.asarray(consts[args[1]]) if args[1] in consts else None
        if idx is None or idx.dtype.kind not in "iu" or idx.ndim > 1 or any(not -len(src) <= int(j) < len(src)
                                                                            for j in idx.reshape(-1)):
            return None
        picked = [src[int(j)] for j in idx.reshape(-1)]
        return ("scalar", picked[0]) if idx.ndim == 0 else picked
    if t == "Unsqueeze" and isinstance(src, tuple) and src[0] == "scalar":
        axes = _ints(consts, args[1]) if len(args) > 1 else attrs.get("axes")
        return [src[1]] if axes is not None and list(axes) in ([0], [-1]) else None
    if t == "Concat" and attrs.get("axis") in (0, -1):
        parts = []
        for n in args:
            v = values.get(n) if n in values else _ints(consts, n) if np.ndim(consts.get(n)) == 1 else None
            if not isinstance(v, list):
                return None
            parts += v
        return parts
    if t == "ConstantOfShape" and isinstance(src, list):
        value = attrs.get("value")
        if not fills_zeros(t, attrs, value) or (value is not None and np.asarray(value).dtype != FLOAT32):
            return None
        return Zeros(src)
    if t == "Expand" and len(args) == 2 and args[0] in consts and isinstance(values.get(args[1]), list):
        value = np.asarray(consts[args[0]])
        if value.dtype != FLOAT32 or value.size != 1 or value.ndim > len(values[args[1]]):
            return None
        return Zeros(values[args[1]]) if fills_zeros(t, attrs, value) else None
    if t == "Identity" and isinstance(src, (Zeros, Alias)):
        return src
    if t == "Slice":
        if isinstance(src, Zeros):
            shape = list(src.shape)
        elif args[0] in inputs and isinstance(inputs[args[0]].shape, (list, tuple)):
            shape = onnx_dims(inputs[args[0]])
        else:
            return None
        shape = _sliced(shape, consts, args, attrs)
        if shape is None:
            return None
        if isinstance(src, Zeros):
            return Zeros(shape)
        return Alias(args[0]) if shape == onnx_dims(inputs[args[0]]) else None
    return None


def _sliced(shape, consts, args, attrs):
    """The shape after Slice, as the general path slices (Python slices of each axis), or None when a sliced axis
    has no known size."""
    if len(args) > 1:
        starts, ends = _ints(consts, args[1]), _ints(consts, args[2]) if len(args) > 2 else None
        axes = _ints(consts, args[3]) if len(args) > 3 and args[3] else list(range(len(starts or [])))
        steps = _ints(consts, args[4]) if len(args) > 4 and args[4] else [1] * len(starts or [])
    else:
        starts, ends = attrs.get("starts"), attrs.get("ends")
        axes = attrs.get("axes", list(range(len(starts or []))))
        steps = [1] * len(starts or [])
    if None in (starts, ends, axes, steps) or not len(starts) == len(ends) == len(axes) == len(steps):
        return None
    out = list(shape)
    for s, e, a, st in zip(starts, ends, axes, steps):
        if not -len(shape) <= a < len(shape) or not isinstance(shape[a], int) or st == 0:
            return None
        out[a] = len(range(shape[a])[slice(s, e, st)])
    return out
