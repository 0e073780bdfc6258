"""Shape and dtype inference for the graph IR, with integer "shape tensors" evaluated symbolically.

Each rule takes the node and its input Values and returns the output Values (dtype, shape; `sym` when the output
is a small integer tensor known as symbolic sizes, as Shape -> Gather -> Concat -> Reshape chains are). Broadcasts
between sizes that cannot be proven equal add a run-time check (node, dim, dim) that the C executor enforces.
A form a rule does not cover raises Unfit, naming the node: the graph then cannot run in C."""
from __future__ import annotations

import numpy as np

from .dims import Dim, NotSymbolic, dim_max, dim_min, shape_str
from .ir import Value

F32, I64, I32, BOOL = np.dtype(np.float32), np.dtype(np.int64), np.dtype(np.int32), np.dtype(np.bool_)
# ONNX element type codes -> numpy dtypes, for the IR and the node-by-node path alike.
ONNX_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64, 9: np.bool_,
               10: np.float16, 11: np.float64}
INT64_MAX = 2 ** 63 - 1


class Unfit(Exception):
    """The node cannot run in the C executor (the message names it and says why)."""


def attr_str(attrs, key, default):
    v = attrs.get(key, default)
    return v.decode() if isinstance(v, bytes) else v


def broadcast(where, a, b, checks):
    """numpy broadcasting of two symbolic shapes; sizes that must match at run time are added to checks."""
    out = []
    a, b = list(a), list(b)
    n = max(len(a), len(b))
    a, b = [1] * (n - len(a)) + a, [1] * (n - len(b)) + b
    for x, y in zip(a, b):
        if x == 1:
            out.append(y)
        elif y == 1 or x == y:
            out.append(x)
        elif isinstance(x, Dim) or isinstance(y, Dim):
            # either may be 1 at run time: the output takes the other (the larger), checked when the sizes are known
            checks.append((x, y, "broadcast"))
            out.append(dim_max(x, y) if isinstance(x, Dim) and isinstance(y, Dim) else y if isinstance(x, Dim) else x)
        else:
            raise Unfit(f"{where}: shapes {shape_str(a)} and {shape_str(b)} do not broadcast")
    return tuple(out)


def _sym_or_const(v: Value):
    """A 1-D/0-D integer input as a list of ints and Dims, or None when neither constant nor symbolic."""
    if v.sym is not None:
        return list(v.sym)
    if v.const is not None and v.const.dtype.kind in "iu":
        return [int(x) for x in v.const.reshape(-1)]
    return None


def _norm_axis(where, axis, rank):
    axis = int(axis)
    if not -rank <= axis < max(rank, 1):
        raise Unfit(f"{where}: axis {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


class Ctx:
    def __init__(self, node, ins, opset, checks):
        self.node, self.ins, self.opset, self.checks = node, ins, opset, checks
        self.attrs, self.where = node.attrs, node.where

    def out(self, dtype, shape, sym=None, k=0):
        return Value(self.node.outputs[k], np.dtype(dtype), tuple(shape), sym=sym)


def infer_elementwise(c):
    ins = [v for v in c.ins if v is not None]
    shape = ins[0].shape
    for v in ins[1:]:
        shape = broadcast(c.where, shape, v.shape, c.checks)
    op = c.node.op
    dtype = BOOL if op in ("Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "And", "Or", "Not",
                           "Xor") else ins[-1].dtype if op == "Where" else ins[0].dtype
    sym = None
    if op in ("Add", "Sub", "Mul", "Div") and all(_sym_or_const(v) is not None for v in ins) and len(shape) <= 1:
        a, b = _sym_or_const(ins[0]), _sym_or_const(ins[1])
        if any(isinstance(x, Dim) for x in a + b):
            n = max(len(a), len(b))
            a, b = a * n if len(a) == 1 else a, b * n if len(b) == 1 else b
            try:
                sym = [_arith(op, x, y) for x, y in zip(a, b)]
            except NotSymbolic:
                sym = None
    return [c.out(dtype, shape, sym)]


def _arith(op, x, y):
    if op == "Add":
        return Dim.make(Dim.of(x) + y)
    if op == "Sub":
        return Dim.make(Dim.of(x) - y)
    if op == "Mul":
        return Dim.make(Dim.of(x) * y)
    if isinstance(y, Dim):
        raise NotSymbolic("division by a symbolic size")
    return Dim.make(Dim.of(x) // y)  # sizes are non-negative: ONNX's truncation is the floor here


def infer_same(c):
    x = c.ins[0]
    return [c.out(x.dtype, x.shape, x.sym)]


def infer_cast(c):
    x = c.ins[0]
    to = c.attrs.get("to")
    if to not in ONNX_DTYPES:
        raise Unfit(f"{c.where}: Cast to ONNX type {to} is not supported")
    return [c.out(ONNX_DTYPES[to], x.shape, x.sym if np.dtype(ONNX_DTYPES[to]).kind in "iu" else None)]


def infer_shape(c):
    x = c.ins[0]
    start, end = c.attrs.get("start", 0), c.attrs.get("end")
    dims = list(x.shape)[start:end]
    return [c.out(I64, (len(dims),), dims)]


def infer_size(c):
    n = 1
    for d in c.ins[0].shape:
        n = Dim.make(Dim.of(n) * d)
    return [c.out(I64, (), [n])]


def _target_shape(c, x, spec):
    """Reshape's target: 0 copies the input's size (unless allowzero), one -1 is inferred from the element count."""
    allowzero = c.attrs.get("allowzero", 0)
    out = [x.shape[i] if (s == 0 and not allowzero and not isinstance(s, Dim)) else s for i, s in enumerate(spec)]
    if sum(1 for s in out if not isinstance(s, Dim) and s == -1) > 1:
        raise Unfit(f"{c.where}: more than one -1 in the shape {spec}")
    if any(not isinstance(s, Dim) and s == -1 for s in out):
        # Cancel the sizes the target repeats from the input first: batch * T * 320 / (batch * T) is 320 even
        # when T is a floor expression the polynomial division below cannot see through.
        rest = list(x.shape)
        known = []
        for s in out:
            if not isinstance(s, Dim) and s == -1:
                continue
            if s in rest:
                rest.remove(s)
            else:
                known.append(s)
        total, divisor = 1, 1
        for d in rest:
            total = Dim.make(Dim.of(total) * d)
        for s in known:
            divisor = Dim.make(Dim.of(divisor) * s)
        try:
            inferred = _exact_div(total, divisor)
        except NotSymbolic as e:
            if isinstance(divisor, Dim) or divisor == 0:
                raise Unfit(f"{c.where}: cannot infer the -1 in {shape_str(out)} from {shape_str(x.shape)}: {e}") \
                    from None
            # A size the exporter traced ([7, -1, 16] of [T, B, 16]): right for the inputs whose element count it
            # divides, which the run checks (ONNX refuses the others, as the C executor then does).
            inferred = Dim.make(Dim.of(total) // divisor)
            c.checks.append((total, Dim.make(Dim.of(inferred) * divisor)))
        out = [inferred if (not isinstance(s, Dim) and s == -1) else s for s in out]
    return tuple(out)


def _exact_div(total, known):
    if not isinstance(known, Dim):
        if known == 0:
            raise NotSymbolic("zero-sized dimension")
        q = Dim.make(Dim.of(total) // known)
        # exact when q * known gives the total back (a floor atom already in the total may stay in q)
        if Dim.of(Dim.make(Dim.of(q) * known)).terms != Dim.of(total).terms:
            raise NotSymbolic(f"{total} is not a multiple of {known}")
        return q
    # a monomial divisor: divide every term of the total by it
    if len(known.terms) != 1:
        raise NotSymbolic(f"{total} / {known}")
    (mono, coeff), = known.terms.items()
    out = {}
    for m, cf in Dim.of(total).terms.items():
        rest = list(m)
        for a in mono:
            if a not in rest:
                raise NotSymbolic(f"{total} / {known}")
            rest.remove(a)
        if cf % coeff:
            raise NotSymbolic(f"{total} / {known}")
        out[tuple(rest)] = out.get(tuple(rest), 0) + cf // coeff
    return Dim.make(Dim(out))


def infer_reshape(c):
    x, spec = c.ins[0], _sym_or_const(c.ins[1])
    if spec is None:
        raise Unfit(f"{c.where}: the target shape depends on the data")
    shape = _target_shape(c, x, spec)
    if not any(not isinstance(s, Dim) and s == -1 for s in spec):  # with a -1, _target_shape checked the count
        total_in, total_out = 1, 1
        for d in x.shape:
            total_in = Dim.make(Dim.of(total_in) * d)
        for d in shape:
            total_out = Dim.make(Dim.of(total_out) * d)
        if total_in != total_out:
            if isinstance(total_in, Dim) or isinstance(total_out, Dim):
                c.checks.append((total_in, total_out))
            else:  # a silent reinterpretation of the wrong number of elements otherwise
                raise Unfit(f"{c.where}: Reshape of {shape_str(x.shape)} ({total_in} elements) to "
                            f"{shape_str(shape)} ({total_out})")
    return [c.out(x.dtype, shape, x.sym)]


def infer_flatten(c):
    x = c.ins[0]
    axis = _norm_axis(c.where, c.attrs.get("axis", 1), len(x.shape) + 1) if x.shape else 0
    a, b = 1, 1
    for d in x.shape[:axis]:
        a = Dim.make(Dim.of(a) * d)
    for d in x.shape[axis:]:
        b = Dim.make(Dim.of(b) * d)
    return [c.out(x.dtype, (a, b))]


def _axes_input(c, index=1, attr="axes"):
    if len(c.ins) > index and c.ins[index] is not None:
        axes = _sym_or_const(c.ins[index])
        if axes is None or any(isinstance(a, Dim) for a in axes):
            raise Unfit(f"{c.where}: the axes depend on the data")
        return axes
    v = c.attrs.get(attr)
    return None if v is None else [int(a) for a in v]


def infer_squeeze(c):
    x = c.ins[0]
    axes = _axes_input(c)
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
        if any(isinstance(d, Dim) for d in x.shape):
            raise Unfit(f"{c.where}: Squeeze without axes on symbolic sizes {shape_str(x.shape)}")
    axes = {_norm_axis(c.where, a, len(x.shape)) for a in axes}
    for a in axes:
        if x.shape[a] != 1:
            raise Unfit(f"{c.where}: Squeeze axis {a} has size {x.shape[a]}, not 1")
    shape = [d for i, d in enumerate(x.shape) if i not in axes]
    sym = x.sym if x.sym is not None and len(shape) <= 1 else None
    return [c.out(x.dtype, shape, sym)]


def infer_unsqueeze(c):
    x = c.ins[0]
    axes = _axes_input(c)
    if axes is None:
        raise Unfit(f"{c.where}: Unsqueeze needs axes")
    rank = len(x.shape) + len(axes)
    axes = sorted(_norm_axis(c.where, a, rank) for a in axes)
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    sym = x.sym if x.sym is not None and len(shape) <= 1 else None
    return [c.out(x.dtype, shape, sym)]


def infer_transpose(c):
    x = c.ins[0]
    perm = c.attrs.get("perm") or list(range(len(x.shape)))[::-1]
    if sorted(perm) != list(range(len(x.shape))):
        raise Unfit(f"{c.where}: perm {perm} is not a permutation of {len(x.shape)} axes")
    return [c.out(x.dtype, [x.shape[p] for p in perm])]


def infer_concat(c):
    ins = [v for v in c.ins if v is not None]
    rank = len(ins[0].shape)
    axis = _norm_axis(c.where, c.attrs["axis"], rank)
    shape = list(ins[0].shape)
    total = 0
    for v in ins:
        if len(v.shape) != rank:
            raise Unfit(f"{c.where}: inputs of ranks {[len(i.shape) for i in ins]}")
        for a in range(rank):
            if a != axis and v.shape[a] != shape[a]:
                if isinstance(v.shape[a], Dim) or isinstance(shape[a], Dim):
                    c.checks.append((v.shape[a], shape[a]))
                else:
                    raise Unfit(f"{c.where}: input shapes {[shape_str(i.shape) for i in ins]} differ off axis {axis}")
        total = Dim.make(Dim.of(total) + v.shape[axis])
    shape[axis] = total
    sym = None
    if rank == 1 and all(_sym_or_const(v) is not None for v in ins):
        sym = [d for v in ins for d in _sym_or_const(v)]
    return [c.out(ins[0].dtype, shape, sym)]


def _slice_params(c):
    x = c.ins[0]
    if c.opset < 10:
        starts, ends = c.attrs["starts"], c.attrs["ends"]
        axes = c.attrs.get("axes", list(range(len(starts))))
        steps = [1] * len(starts)
    else:
        vals = [_sym_or_const(v) if v is not None else None for v in c.ins[1:5]] + [None] * 4
        starts, ends, axes, steps = vals[:4]
        if starts is None or ends is None:
            raise Unfit(f"{c.where}: the slice bounds depend on the data")
        axes = axes if axes is not None else list(range(len(starts)))
        steps = steps if steps is not None else [1] * len(starts)
    return [(_norm_axis(c.where, a, len(x.shape)), s, e, st) for a, s, e, st in zip(axes, starts, ends, steps)]


def _slice_range(dim, start, end, step) -> range:
    """The indices ONNX Slice takes on an axis of `dim` elements, as onnxruntime and the C op take them. Not
    Python's slice: with a negative step a start below -dim clamps to 0 (the first element is taken), and an end
    of INT64_MAX means "to the beginning", where Python's slice takes nothing in both cases."""
    if step < 0 and end >= INT64_MAX:
        end = -1 - dim
    start, end = start + dim if start < 0 else start, end + dim if end < 0 else end
    if step > 0:
        return range(min(max(start, 0), dim), min(max(end, 0), dim), step)
    return range(min(max(start, 0), dim - 1), min(max(end, -1), dim - 1), step) if dim else range(0)


def _slice_len(where, dim, start, end, step):
    """ONNX Slice's length on one axis, symbolic where the input size is."""
    if isinstance(step, Dim) or step == 0:
        raise Unfit(f"{where}: slice step {step}")
    if not isinstance(dim, Dim) and not isinstance(start, Dim) and not isinstance(end, Dim):
        return len(_slice_range(dim, start, end, step))
    if step == -1 and start in (-1, INT64_MAX) and end <= -2 ** 62:
        return dim  # the whole axis reversed (Keras' go_backwards)
    # symbolic, step 1: ONNX's clamping of start and end into [0, dim], written with min/max of sizes
    if step != 1 or isinstance(start, Dim) or isinstance(end, Dim):
        raise Unfit(f"{where}: slice [{start}:{end}:{step}] of a symbolic axis")

    def clamp(v):
        if v < 0:
            return dim_max(Dim.make(Dim.of(dim) + v), 0) if v > -2 ** 62 else 0
        return dim if v >= 2 ** 62 else dim_min(v, dim)

    return dim_max(Dim.make(Dim.of(clamp(end)) - clamp(start)), 0)


def infer_slice(c):
    x = c.ins[0]
    shape = list(x.shape)
    params = _slice_params(c)
    for a, s, e, st in params:
        shape[a] = _slice_len(c.where, shape[a], s, e, st)
    sym = None
    if x.sym is not None and len(shape) == 1 and params:
        _, s, e, st = params[0]
        if not any(isinstance(v, Dim) for v in (s, e, st)):
            sym = [x.sym[i] for i in _slice_range(len(x.sym), int(s), int(e), int(st))]
    return [c.out(x.dtype, shape, sym)]


def infer_gather(c):
    x, idx = c.ins[0], c.ins[1]
    axis = _norm_axis(c.where, c.attrs.get("axis", 0), len(x.shape))
    shape = list(x.shape[:axis]) + list(idx.shape) + list(x.shape[axis + 1:])
    sym = None
    iv = _sym_or_const(idx)
    if x.sym is not None and iv is not None and not any(isinstance(i, Dim) for i in iv):
        n = len(x.sym)
        sym = [x.sym[int(i) % n] for i in iv]
    return [c.out(x.dtype, shape, sym)]


def infer_constant_of_shape(c):
    shape = _sym_or_const(c.ins[0])
    if shape is None:
        raise Unfit(f"{c.where}: the shape depends on the data")
    value = c.attrs.get("value")
    dtype = F32 if value is None else value.dtype
    return [c.out(dtype, shape)]


def infer_expand(c):
    x, spec = c.ins[0], _sym_or_const(c.ins[1])
    if spec is None:
        raise Unfit(f"{c.where}: the target shape depends on the data")
    return [c.out(x.dtype, broadcast(c.where, x.shape, spec, c.checks))]


def infer_matmul(c):
    a, b = c.ins[0], c.ins[1]
    if len(a.shape) < 1 or len(b.shape) < 1:
        raise Unfit(f"{c.where}: MatMul of a scalar")
    ash, bsh = list(a.shape), list(b.shape)
    if len(ash) == 1 or len(bsh) == 1:
        raise Unfit(f"{c.where}: MatMul with a 1-D operand")
    if ash[-1] != bsh[-2]:
        if isinstance(ash[-1], Dim) or isinstance(bsh[-2], Dim):
            c.checks.append((ash[-1], bsh[-2]))
        else:
            raise Unfit(f"{c.where}: MatMul of {shape_str(a.shape)} and {shape_str(b.shape)}")
    batch = broadcast(c.where, ash[:-2], bsh[:-2], c.checks)
    return [c.out(a.dtype, list(batch) + [ash[-2], bsh[-1]])]


def infer_gemm(c):
    a, b = c.ins[0], c.ins[1]
    m = a.shape[1] if c.attrs.get("transA", 0) else a.shape[0]
    n = b.shape[0] if c.attrs.get("transB", 0) else b.shape[1]
    return [c.out(a.dtype, (m, n))]


def _spatial_attrs(c, n_sp, kernel):
    strides = list(c.attrs.get("strides", [1] * n_sp))
    dil = list(c.attrs.get("dilations", [1] * n_sp))
    pads = list(c.attrs.get("pads", [0] * (2 * n_sp)))
    return strides, dil, pads


def _resolve_auto_pad(c, n_sp, in_sp, kernel, strides, dil, pads):
    mode = attr_str(c.attrs, "auto_pad", "NOTSET")
    if mode in ("NOTSET", ""):
        return pads
    if mode == "VALID":
        return [0] * (2 * n_sp)
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        begins, ends = [], []
        for i in range(n_sp):
            if isinstance(in_sp[i], Dim):
                raise Unfit(f"{c.where}: auto_pad {mode} on a symbolic axis")
            o = -(-in_sp[i] // strides[i])
            total = max(0, (o - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 - in_sp[i])
            small, large = total // 2, total - total // 2
            begins.append(small if mode == "SAME_UPPER" else large)
            ends.append(large if mode == "SAME_UPPER" else small)
        return begins + ends
    raise Unfit(f"{c.where}: auto_pad {mode!r}")


def _out_len(where, n, k, s, d, pb, pe, ceil=False):
    span = Dim.make(Dim.of(n) + pb + pe - (d * (k - 1) + 1))
    if isinstance(span, Dim):
        if ceil:
            raise Unfit(f"{where}: ceil_mode on a symbolic axis")
        return Dim.make(span // s + 1)
    if span < 0:
        raise Unfit(f"{where}: the window ({k}, dilation {d}) is longer than the padded input ({n} + {pb} + {pe})")
    o = (-(-span // s) if ceil else span // s) + 1
    if ceil and (o - 1) * s >= n + pb:  # ONNX: the last window must start inside the input or its begin padding
        o -= 1
    return o


def infer_conv(c):
    x, w = c.ins[0], c.ins[1]
    if w.const is None:
        raise Unfit(f"{c.where}: Conv weights that are not constants")
    n_sp = len(x.shape) - 2
    if n_sp not in (1, 2) or len(w.shape) != n_sp + 2:
        raise Unfit(f"{c.where}: Conv on rank {len(x.shape)} (1-D and 2-D convolutions run in C)")
    kernel = list(w.shape[2:])
    strides, dil, pads = _spatial_attrs(c, n_sp, kernel)
    pads = _resolve_auto_pad(c, n_sp, x.shape[2:], kernel, strides, dil, pads)
    c.node.attrs["pads"] = pads
    c.node.attrs["auto_pad"] = b"NOTSET"
    group = c.attrs.get("group", 1)
    if x.shape[1] != w.shape[1] * group:
        raise Unfit(f"{c.where}: input {shape_str(x.shape)} has not {w.shape[1]}x{group} channels for weights "
                    f"{shape_str(w.shape)}")
    sp = [_out_len(c.where, x.shape[2 + i], kernel[i], strides[i], dil[i], pads[i], pads[n_sp + i])
          for i in range(n_sp)]
    return [c.out(F32, [x.shape[0], w.shape[0]] + sp)]


def infer_conv_transpose(c):
    x, w = c.ins[0], c.ins[1]
    if len(x.shape) != 3 or w.const is None:
        raise Unfit(f"{c.where}: ConvTranspose runs in C for 1-D inputs with constant weights")
    if c.attrs.get("output_shape") or attr_str(c.attrs, "auto_pad", "NOTSET") not in ("NOTSET", ""):
        raise Unfit(f"{c.where}: ConvTranspose with output_shape or auto_pad")
    s = c.attrs.get("strides", [1])[0]
    d = c.attrs.get("dilations", [1])[0]
    pb, pe = c.attrs.get("pads", [0, 0])
    adj = c.attrs.get("output_padding", [0])[0]
    k = w.shape[2]
    L = Dim.make((Dim.of(x.shape[2]) - 1) * s + (k - 1) * d + 1 + adj - pb - pe)
    return [c.out(F32, [x.shape[0], w.shape[1] * c.attrs.get("group", 1), L])]


def infer_pool(c):
    x = c.ins[0]
    n_sp = len(x.shape) - 2
    if n_sp not in (1, 2):
        raise Unfit(f"{c.where}: pooling on rank {len(x.shape)}")
    if len(c.node.outputs) > 1 and c.node.outputs[1]:
        raise Unfit(f"{c.where}: MaxPool's Indices output")
    kernel = list(c.attrs["kernel_shape"])
    strides, dil, pads = _spatial_attrs(c, n_sp, kernel)
    pads = _resolve_auto_pad(c, n_sp, x.shape[2:], kernel, strides, dil, pads)
    c.node.attrs["pads"] = pads
    c.node.attrs["auto_pad"] = b"NOTSET"
    if c.node.op == "AveragePool" and any(v != 1 for v in dil):
        raise Unfit(f"{c.where}: AveragePool with dilations")
    ceil = bool(c.attrs.get("ceil_mode", 0))
    sp = [_out_len(c.where, x.shape[2 + i], kernel[i], strides[i], dil[i], pads[i], pads[n_sp + i], ceil)
          for i in range(n_sp)]
    return [c.out(x.dtype, list(x.shape[:2]) + sp)]


def infer_global_pool(c):
    x = c.ins[0]
    return [c.out(x.dtype, list(x.shape[:2]) + [1] * (len(x.shape) - 2))]


def reduce_axes(c):
    x = c.ins[0]
    if c.node.op == "ReduceSum" and c.opset >= 13 or c.opset >= 18:
        axes = _axes_input(c, 1)
    else:
        axes = c.attrs.get("axes")
    if not axes:  # absent or an empty list: every axis, unless noop_with_empty_axes
        if c.attrs.get("noop_with_empty_axes", 0):
            return []
        return list(range(len(x.shape)))
    return sorted({_norm_axis(c.where, a, len(x.shape)) for a in axes})


def infer_reduce(c):
    x = c.ins[0]
    axes = reduce_axes(c)
    keep = c.attrs.get("keepdims", 1)
    shape = [1 if i in axes else d for i, d in enumerate(x.shape)] if keep else \
        [d for i, d in enumerate(x.shape) if i not in axes]
    return [c.out(x.dtype, shape)]


def infer_split(c):
    x = c.ins[0]
    axis = _norm_axis(c.where, c.attrs.get("axis", 0), len(x.shape))
    sizes = _sym_or_const(c.ins[1]) if len(c.ins) > 1 and c.ins[1] is not None else c.attrs.get("split")
    n = len(c.node.outputs)
    if sizes is None:
        dim = x.shape[axis]
        if isinstance(dim, Dim) and c.attrs.get("num_outputs") is not None:
            # opset 18: parts of ceil(dim / n), the last one what is left (onnxruntime splits 7 as 4 + 3)
            part = Dim.make((Dim.of(dim) + (n - 1)) // n)
            sizes = [part] * (n - 1) + [dim_max(Dim.make(Dim.of(dim) - Dim.of(part) * (n - 1)), 0)]
        elif isinstance(dim, Dim):
            part = dim // n
            sizes = [part] * n
            c.checks.append((Dim.make(Dim.of(part) * n), dim))
        else:
            if c.attrs.get("num_outputs") is not None and dim % n:
                part = -(-dim // n)
                sizes = [part] * (n - 1) + [dim - part * (n - 1)]
            elif dim % n:
                raise Unfit(f"{c.where}: axis size {dim} does not split into {n} equal parts")
            else:
                sizes = [dim // n] * n
    outs = []
    for k, s in enumerate(sizes):
        shape = list(x.shape)
        shape[axis] = s
        outs.append(c.out(x.dtype, shape, k=k))
    return outs


def infer_pad(c):
    x = c.ins[0]
    if c.opset < 11:
        pads = c.attrs.get("pads")
    else:
        pads = _sym_or_const(c.ins[1]) if len(c.ins) > 1 and c.ins[1] is not None else None
        if pads is None:
            raise Unfit(f"{c.where}: the pads depend on the data")
    rank = len(x.shape)
    axes = _sym_or_const(c.ins[3]) if len(c.ins) > 3 and c.ins[3] is not None else list(range(rank))
    if axes is None or any(isinstance(p, Dim) for p in list(pads) + list(axes)):
        raise Unfit(f"{c.where}: symbolic pads or axes")
    axes = [_norm_axis(c.where, a, rank) for a in axes]
    begin, end = [0] * rank, [0] * rank
    for i, a in enumerate(axes):
        begin[a], end[a] = int(pads[i]), int(pads[len(axes) + i])
    if any(p < 0 for p in begin + end):
        raise Unfit(f"{c.where}: negative pads {pads}")
    c.node.attrs["_pads"] = (begin, end)
    shape = [Dim.make(Dim.of(d) + b + e) for d, b, e in zip(x.shape, begin, end)]
    return [c.out(x.dtype, shape)]


def infer_recurrent(c):
    spec = c.node.payload  # importers/onnx/recurrent.py: RecurrentNodeSpec
    x = c.ins[0]
    if len(x.shape) != 3:
        raise Unfit(f"{c.where}: X has rank {len(x.shape)}, expected 3")
    T, B = (x.shape[1], x.shape[0]) if spec.layout else (x.shape[0], x.shape[1])
    D, H = spec.n_dirs, spec.hidden_size if spec.hidden_size is not None else c.ins[2].shape[-1]
    y = (B, T, D, H) if spec.layout else (T, D, B, H)
    st = (B, D, H) if spec.layout else (D, B, H)
    shapes = (y, st, st)
    return [c.out(x.dtype, shapes[k], k=k) for k in range(len(c.node.outputs))]


def infer_stack(c):
    """A stack of recurrent layers an importer built (graph/build.py; the analysis makes the others from ONNX nodes
    after inference): X [T, B, I] -> Y [T, D, B, P] (attribute _y_layout 0) or [T, B, D, P] (1), Y_h [L*D, B, P],
    Y_c [L*D, B, H]."""
    from ..layers import N_GATES

    layers, x = c.node.payload, c.ins[0]
    first, last = layers[0], layers[-1]
    if len(x.shape) != 3 or x.dtype != F32:
        raise Unfit(f"{c.where}: X is {x.dtype} {shape_str(x.shape)}, expected float32 [seq_len, batch, input]")
    size = first.weights[0].shape[-1]
    if isinstance(x.shape[2], int) and x.shape[2] != size:
        raise Unfit(f"{c.where}: X has {x.shape[2]} features, the first layer takes {size}")
    T, B, D, P = x.shape[0], x.shape[1], last.spec.n_dirs, last.weights[1].shape[-1]
    LD, H = len(layers) * first.spec.n_dirs, first.weights[1].shape[1] // N_GATES[first.spec.cell]
    y = (T, B, D, P) if c.attrs.get("_y_layout") else (T, D, B, P)
    shapes = (y, (LD, B, first.weights[1].shape[-1]), (LD, B, H))
    return [c.out(F32, shapes[k], k=k) for k in range(len(c.node.outputs))]


def infer_layernorm(c):
    x = c.ins[0]
    outs = [c.out(x.dtype, x.shape)]
    if any(c.node.outputs[1:]):
        raise Unfit(f"{c.where}: LayerNormalization's Mean / InvStdDev outputs")
    return outs


def infer_dropout(c):
    x = c.ins[0]
    outs = [c.out(x.dtype, x.shape)]
    if len(c.node.outputs) > 1:
        outs.append(c.out(BOOL, x.shape, k=1))
    return outs


RULES = {
    **{op: infer_elementwise for op in ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Equal", "Greater", "Less",
                                        "GreaterOrEqual", "LessOrEqual", "And", "Or", "Where", "Mod", "Not")},
    **{op: infer_same for op in ("Relu", "Tanh", "Sigmoid", "LeakyRelu", "HardSigmoid", "Elu", "Softplus", "Softsign",
                                 "Gelu", "Erf", "Exp", "Log", "Sqrt", "Abs", "Neg", "Reciprocal", "Clip", "Selu",
                                 "Identity", "Softmax", "LogSoftmax", "BatchNormalization")},
    "Cast": infer_cast, "Shape": infer_shape, "Size": infer_size, "Reshape": infer_reshape,
    "Flatten": infer_flatten, "Squeeze": infer_squeeze, "Unsqueeze": infer_unsqueeze, "Transpose": infer_transpose,
    "Concat": infer_concat, "Slice": infer_slice, "Gather": infer_gather, "ConstantOfShape": infer_constant_of_shape,
    "Expand": infer_expand, "MatMul": infer_matmul, "Gemm": infer_gemm, "Conv": infer_conv,
    "ConvTranspose": infer_conv_transpose, "MaxPool": infer_pool, "AveragePool": infer_pool,
    "GlobalAveragePool": infer_global_pool, "GlobalMaxPool": infer_global_pool,
    **{op: infer_reduce for op in ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2",
                                   "ReduceL1", "ReduceSumSquare")},
    "Split": infer_split, "Pad": infer_pad, "LSTM": infer_recurrent, "GRU": infer_recurrent, "RNN": infer_recurrent, "LayerNormalization": infer_layernorm,
    "Dropout": infer_dropout,
}
