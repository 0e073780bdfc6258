"""Numpy implementations of the ONNX operators that surround recurrent layers in real models (issue #9):
dense heads, activations, element-wise arithmetic. Each is one small function `op(ctx, *inputs) -> [outputs]`
registered in OPS; ctx.attrs holds the node's attributes and ctx.opset the model's default-domain opset.
Semantics follow the ONNX operator spec; an attribute form these functions do not implement is refused."""
from __future__ import annotations

import numpy as np

from ...errors import FormatError
from ...reference import erf as _erf


def _same(x, out):
    return [np.asarray(out).astype(np.asarray(x).dtype, copy=False)]


def op_matmul(ctx, a, b): return [np.matmul(a, b)]
def op_add(ctx, a, b): return [np.add(a, b)]
def op_sub(ctx, a, b): return [np.subtract(a, b)]
def op_mul(ctx, a, b): return [np.multiply(a, b)]
def op_neg(ctx, x): return [np.negative(x)]
def op_abs(ctx, x): return [np.abs(x)]
def op_exp(ctx, x): return [np.exp(x)]
def op_log(ctx, x): return [np.log(x)]
def op_sqrt(ctx, x): return [np.sqrt(x)]
def op_pow(ctx, a, b): return _same(a, np.power(a, b))
def op_relu(ctx, x): return [np.maximum(x, 0).astype(x.dtype)]
def op_tanh(ctx, x): return [np.tanh(x)]
def op_sigmoid(ctx, x): return _same(x, 1 / (1 + np.exp(-x.astype(np.float64))))
def op_erf(ctx, x): return _same(x, _erf(x.astype(np.float64)))
def op_leaky_relu(ctx, x): return [np.where(x >= 0, x, x * np.asarray(ctx.attrs.get("alpha", 0.01), x.dtype))]


def op_hard_sigmoid(ctx, x):
    return [np.clip(ctx.attrs.get("alpha", 0.2) * x + ctx.attrs.get("beta", 0.5), 0, 1).astype(x.dtype)]


def op_elu(ctx, x):
    alpha = ctx.attrs.get("alpha", 1.0)
    return _same(x, np.where(x >= 0, x, alpha * np.expm1(np.minimum(x, 0).astype(np.float64))))


def op_thresholded_relu(ctx, x): return [np.where(x > ctx.attrs.get("alpha", 1.0), x, 0).astype(x.dtype)]
def op_softsign(ctx, x): return [x / (1 + np.abs(x))]
def op_softplus(ctx, x): return _same(x, np.logaddexp(0.0, x.astype(np.float64)))


def op_gelu(ctx, x):
    """Gelu (opset 20): exact with erf, or the tanh approximation when approximate="tanh"."""
    xd = x.astype(np.float64)
    if _approximate(ctx) == "tanh":
        return _same(x, 0.5 * xd * (1 + np.tanh(np.sqrt(2 / np.pi) * (xd + 0.044715 * xd ** 3))))
    return _same(x, 0.5 * xd * (1 + _erf(xd / np.sqrt(2))))


def _approximate(ctx):
    value = ctx.attrs.get("approximate", b"none")
    return value.decode() if isinstance(value, bytes) else value


def check_gelu(ctx):
    if _approximate(ctx) not in ("none", "tanh"):
        raise FormatError(f"{ctx.where}: Gelu approximate={_approximate(ctx)!r}; expected 'none' or 'tanh'")


def op_div(ctx, a, b):
    if np.issubdtype(np.asarray(a).dtype, np.integer):
        return [np.trunc(np.divide(a, b)).astype(np.asarray(a).dtype)]  # ONNX integer Div truncates
    return [np.divide(a, b)]


def op_dropout(ctx, x, *rest):
    """Inference: the identity; the optional mask output is all True."""
    return [x, np.ones(x.shape, bool)]


def op_gemm(ctx, a, b, c=None):
    a = a.T if ctx.attrs.get("transA", 0) else a
    b = b.T if ctx.attrs.get("transB", 0) else b
    y = ctx.attrs.get("alpha", 1.0) * (a @ b)
    if c is not None:
        y = y + ctx.attrs.get("beta", 1.0) * c
    return _same(a, y)


def op_flatten(ctx, x):
    axis = ctx.attrs.get("axis", 1) % (x.ndim + 1) if x.ndim else 0
    return [x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)]


def _softmax(ctx, x, log):
    axis = ctx.attrs.get("axis", -1 if ctx.opset >= 13 else 1)
    if ctx.opset < 13:  # before opset 13 the input is coerced to 2-D at `axis`
        shape = x.shape
        x2 = x.reshape(int(np.prod(shape[:axis % x.ndim], dtype=np.int64)), -1)
        return [_softmax_axis(x2, -1, log).reshape(shape)]
    return [_softmax_axis(x, axis, log)]


def _softmax_axis(x, axis, log):
    z = x.astype(np.float64) - x.max(axis=axis, keepdims=True)
    if log:
        return (z - np.log(np.exp(z).sum(axis=axis, keepdims=True))).astype(x.dtype)
    e = np.exp(z)
    return (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype)


def op_softmax(ctx, x): return _softmax(ctx, x, log=False)
def op_log_softmax(ctx, x): return _softmax(ctx, x, log=True)


def op_clip(ctx, x, lo=None, hi=None):
    if ctx.opset < 11:
        lo, hi = ctx.attrs.get("min"), ctx.attrs.get("max")
    out = x
    if lo is not None:
        out = np.maximum(out, np.asarray(lo, x.dtype))
    if hi is not None:
        out = np.minimum(out, np.asarray(hi, x.dtype))
    return [out]


def op_equal(ctx, a, b): return [np.equal(a, b)]
def op_not(ctx, x): return [np.logical_not(x)]
def op_where(ctx, cond, a, b): return [np.where(cond, a, b)]
def op_size(ctx, x): return [np.array(np.asarray(x).size, np.int64)]


def op_split(ctx, x, split=None):
    axis = ctx.attrs.get("axis", 0)
    sizes = ctx.attrs.get("split") if split is None else [int(v) for v in split]
    n_out = len(ctx.node.output)
    if sizes is None:
        if x.shape[axis] % n_out:
            raise ValueError(f"axis {axis} of size {x.shape[axis]} does not split into {n_out} equal parts")
        sizes = [x.shape[axis] // n_out] * n_out
    return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


def _reduce(fn):
    def op(ctx, x, axes=None):
        if axes is None:
            axes = ctx.attrs.get("axes")
        keepdims = bool(ctx.attrs.get("keepdims", 1))
        if axes is None or len(np.atleast_1d(axes)) == 0:
            if ctx.attrs.get("noop_with_empty_axes", 0):
                return [x]
            axes = range(x.ndim)
        return [np.asarray(fn(x, axis=tuple(int(a) for a in np.atleast_1d(axes)), keepdims=keepdims), x.dtype)]
    return op


def op_argmax(ctx, x):
    if ctx.attrs.get("select_last_index", 0):
        raise FormatError(f"{ctx.where}: ArgMax select_last_index=1 is not supported")
    axis = ctx.attrs.get("axis", 0)
    out = np.argmax(x, axis=axis)
    return [np.expand_dims(out, axis) if ctx.attrs.get("keepdims", 1) else out]


def op_layer_norm(ctx, x, scale, bias=None):
    axis = ctx.attrs.get("axis", -1) % x.ndim
    axes = tuple(range(axis, x.ndim))
    xd = x.astype(np.float64)
    mean = xd.mean(axis=axes, keepdims=True)
    var = ((xd - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (xd - mean) / np.sqrt(var + ctx.attrs.get("epsilon", 1e-5)) * scale
    return _same(x, y if bias is None else y + bias)


def op_batch_norm(ctx, x, scale, bias, mean, var):
    """Inference mode: per channel (axis 1) with the stored running statistics."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + ctx.attrs.get("epsilon", 1e-5))
    return _same(x, y * scale.reshape(shape) + bias.reshape(shape))


def op_pad(ctx, x, pads=None, value=None, axes=None):
    mode = ctx.attrs.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in ("constant", "reflect", "edge"):
        raise FormatError(f"{ctx.where}: Pad mode {mode!r} is not supported")
    pads = ctx.attrs.get("pads") if pads is None else [int(p) for p in pads]
    axes = list(range(x.ndim)) if axes is None else [int(a) % x.ndim for a in axes]
    n = len(axes)
    widths = [(0, 0)] * x.ndim
    for i, a in enumerate(axes):
        widths[a] = (pads[i], pads[i + n])
    if any(b < 0 or e < 0 for b, e in widths):
        raise FormatError(f"{ctx.where}: negative pads {pads} are not supported")
    if mode == "constant":
        fill = ctx.attrs.get("value", 0.0) if value is None else np.asarray(value).reshape(-1)[0]
        return [np.pad(x, widths, mode="constant", constant_values=fill)]
    return [np.pad(x, widths, mode=mode)]


def op_conv(ctx, x, w, b=None):
    """1-D convolution (x [N, C, L], w [M, C/group, K]); what audio and text front ends put before an RNN."""
    if x.ndim != 3:
        raise FormatError(f"{ctx.where}: only 1-D Conv is supported (input rank 3), got rank {x.ndim}")
    auto_pad = ctx.attrs.get("auto_pad", b"NOTSET")
    if (auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad) != "NOTSET":
        raise FormatError(f"{ctx.where}: Conv auto_pad={auto_pad!r} is not supported; export with explicit pads")
    stride = ctx.attrs.get("strides", [1])[0]
    dilation = ctx.attrs.get("dilations", [1])[0]
    pads = ctx.attrs.get("pads", [0, 0])
    group = ctx.attrs.get("group", 1)
    N, C, _ = x.shape
    M, Cg, K = w.shape
    if C != Cg * group or M % group:
        raise ValueError(f"{ctx.where}: weight {w.shape} does not fit input channels {C} with group {group}")
    xp = np.pad(x, [(0, 0), (0, 0), (pads[0], pads[1])])
    L_out = (xp.shape[2] - dilation * (K - 1) - 1) // stride + 1
    idx = np.arange(L_out)[:, None] * stride + np.arange(K)[None, :] * dilation  # [L_out, K]
    cols = xp[:, :, idx]  # [N, C, L_out, K]
    out = np.empty((N, M, L_out), np.float64)
    mg = M // group
    for g in range(group):
        xs = cols[:, g * Cg:(g + 1) * Cg].astype(np.float64)
        ws = w[g * mg:(g + 1) * mg].astype(np.float64)
        out[:, g * mg:(g + 1) * mg] = np.einsum("nclk,mck->nml", xs, ws)
    if b is not None:
        out += b[None, :, None]
    return _same(x, out)


def op_conv_transpose(ctx, x, w, b=None):
    """1-D transposed convolution (x [N, C, L], w [C, M/group, K]): the upsampling half of a conv autoencoder
    or a vocoder, after an RNN. Each input step t adds x[:, c, t] * w[c, m, k] at output position
    t * stride + k * dilation; output_padding extends the end, pads crop both ends."""
    if x.ndim != 3 or w.ndim != 3:
        raise ValueError(f"only 1-D ConvTranspose is supported (rank-3 input and weight), got {x.shape}, {w.shape}")
    a = ctx.attrs
    stride, dilation = a.get("strides", [1])[0], a.get("dilations", [1])[0]
    group, adj = a.get("group", 1), a.get("output_padding", [0])[0]
    N, C, L = x.shape
    Cw, Mg, K = w.shape
    if Cw != C or C % group:
        raise ValueError(f"weight {w.shape} does not fit input channels {C} with group {group}")
    if "kernel_shape" in a and list(a["kernel_shape"]) != [K]:
        raise ValueError(f"kernel_shape {a['kernel_shape']} does not match the weight's kernel {K}")
    full = (L - 1) * stride + (K - 1) * dilation + 1 + adj
    begin, end = _transpose_pads(ctx, L * stride, full)
    cg = C // group
    y = np.zeros((N, Mg * group, full), np.float64)
    positions = (np.arange(L)[:, None] * stride + np.arange(K)[None, :] * dilation).reshape(-1)  # [L*K]
    for g in range(group):
        xs = x[:, g * cg:(g + 1) * cg].astype(np.float64)
        ws = w[g * cg:(g + 1) * cg].astype(np.float64)
        contrib = np.einsum("ncl,cmk->nmlk", xs, ws).reshape(N, Mg, L * K)
        np.add.at(y[:, g * Mg:(g + 1) * Mg], (slice(None), slice(None), positions), contrib)
    if b is not None:
        y += np.asarray(b, np.float64)[None, :, None]
    if full - begin - end <= 0:
        raise ValueError(f"pads {begin}, {end} leave no output (full length {full})")
    return _same(x, y[:, :, begin:full - end])


def _transpose_pads(ctx, same_length, full):
    """(crop at the start, crop at the end) per the ONNX spec, which onnxruntime follows: an output length from
    output_shape or, for auto_pad SAME_*, input length * stride; the odd unit of the total crop goes to the end
    for SAME_UPPER and to the start otherwise. VALID crops nothing; NOTSET crops `pads`."""
    a = ctx.attrs
    auto_pad = _auto_pad(ctx)
    if a.get("output_shape") or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = int(a["output_shape"][0]) if a.get("output_shape") else same_length
        total = full - out
        if total < 0:
            raise ValueError(f"output length {out} is longer than the full transposed convolution ({full})")
        head = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        return head, total - head
    if auto_pad == "VALID":
        return 0, 0
    pads = a.get("pads", [0, 0])
    return int(pads[0]), int(pads[1])


def _auto_pad(ctx):
    value = ctx.attrs.get("auto_pad", b"NOTSET")
    return value.decode() if isinstance(value, bytes) else value


def check_conv_transpose(ctx):
    """Attribute values that would otherwise give a wrong answer or fail mid-run, refused by name at load."""
    a = ctx.attrs
    if _auto_pad(ctx) not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
        raise FormatError(f"{ctx.where}: ConvTranspose auto_pad={_auto_pad(ctx)!r}; expected NOTSET, SAME_UPPER, "
                          f"SAME_LOWER or VALID")
    one = {"strides": 1, "dilations": 1, "output_padding": 1, "kernel_shape": 1, "pads": 2, "output_shape": 1}
    for key, n in one.items():
        if key in a and len(a[key]) != n:
            raise FormatError(f"{ctx.where}: ConvTranspose {key}={list(a[key])}: only 1-D is supported ({n} "
                              f"value(s))")
    for key in ("strides", "dilations", "group"):
        if key in a and min(np.atleast_1d(a[key])) < 1:
            raise FormatError(f"{ctx.where}: ConvTranspose {key}={a[key]}; expected positive values")
    if min(a.get("pads", [0])) < 0 or min(a.get("output_padding", [0])) < 0:
        raise FormatError(f"{ctx.where}: ConvTranspose negative pads or output_padding are not supported")
    stride = a.get("strides", [1])[0]
    if a.get("output_padding", [0])[0] >= stride:  # onnxruntime refuses these too
        raise FormatError(f"{ctx.where}: ConvTranspose output_padding={a['output_padding']} must be smaller than "
                          f"the stride {stride}")


OPS = {"MatMul": op_matmul, "Gemm": op_gemm, "Add": op_add, "Sub": op_sub, "Mul": op_mul, "Div": op_div,
       "Pow": op_pow, "Sqrt": op_sqrt, "Neg": op_neg, "Abs": op_abs, "Exp": op_exp, "Log": op_log,
       "Relu": op_relu, "LeakyRelu": op_leaky_relu, "Sigmoid": op_sigmoid, "Tanh": op_tanh, "Erf": op_erf,
       "Gelu": op_gelu,
       "Softmax": op_softmax, "LogSoftmax": op_log_softmax, "Clip": op_clip, "Flatten": op_flatten,
       "Dropout": op_dropout, "Equal": op_equal, "Not": op_not, "Where": op_where, "Size": op_size,
       "Split": op_split, "ReduceMean": _reduce(np.mean), "ReduceSum": _reduce(np.sum), "ReduceMax": _reduce(np.max),
       "ArgMax": op_argmax, "LayerNormalization": op_layer_norm, "BatchNormalization": op_batch_norm,
       "Pad": op_pad, "Conv": op_conv, "ConvTranspose": op_conv_transpose, "HardSigmoid": op_hard_sigmoid,
       "Elu": op_elu, "ThresholdedRelu": op_thresholded_relu, "Softsign": op_softsign, "Softplus": op_softplus}
LOAD_CHECKS = {"ConvTranspose": check_conv_transpose, "Gelu": check_gelu}
