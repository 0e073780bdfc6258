"""Numpy implementations of the ONNX operators that surround recurrent layers in real models (issue #9):
dense heads, activations, element-wise arithmetic. Each is one small function `op(ctx, *inputs) -> [outputs]`
registered in OPS; ctx.attrs holds the node's attributes and ctx.opset the model's default-domain opset.
Semantics follow the ONNX operator spec; an attribute form these functions do not implement is refused."""
from __future__ import annotations

import math

import numpy as np

from ..errors import FormatError

_erf = np.vectorize(math.erf, otypes=[np.float64])


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


OPS = {"MatMul": op_matmul, "Gemm": op_gemm, "Add": op_add, "Sub": op_sub, "Mul": op_mul, "Div": op_div,
       "Pow": op_pow, "Sqrt": op_sqrt, "Neg": op_neg, "Abs": op_abs, "Exp": op_exp, "Log": op_log,
       "Relu": op_relu, "LeakyRelu": op_leaky_relu, "Sigmoid": op_sigmoid, "Tanh": op_tanh, "Erf": op_erf,
       "Softmax": op_softmax, "LogSoftmax": op_log_softmax, "Clip": op_clip, "Flatten": op_flatten,
       "Dropout": op_dropout}
