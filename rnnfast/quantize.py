"""Weight storage in int8 (symmetric, one float32 scale per output row) or float16, computed in float32.

The one quantization rule of rnnfast, shared by the engine (Model.quantize, RecurrentLayer.weight_dtype), the
.rnnf, .npz and .safetensors writers (they store what the engine holds) and both C code exports (export-c of a
chain and of a whole graph), so a quantized model computes with the same stored weights everywhere:
    what:    scope "recurrent" (the default): a recurrent layer's matrices w_ih, w_hh and w_hr (QUANTIZED_KEYS;
             RecurrentLayer.with_weight_dtype is the one place they are quantized), the bulk of the weights and
             of the time per step of a recurrent model.
             scope "all": those, and the constant weight of every MatMul / Gemm (B, after the lowering's
             transpose: [K, N]), Conv (W [M, C/g, k...]) and ConvTranspose of group 1 (W [C, M, k...]) of a
             graph the C executor runs (graph/quantized.py's `weight_constants` is the one place that decides
             which, `quantize_desc` the one that applies the rule to a graph), weight-only:
             compute stays float32 on the values they stand for. A constant that anything else also reads
             (a view of it, another operand) stays float32.
             Everything else stays float32: biases, peepholes, embedding tables, norms.
    int8:    scale[r] = max_k |w[r, k]| / 127 (1 where a row is all zero), q = clip(rint(w / scale), -127, 127),
             w ~ q * scale[r]; each weight moves by at most scale[r] / 2. A graph constant's "rows" are its output
             channels (`quantize_channels`): B's columns, W's axis 0 (Conv) or 1 (ConvTranspose).
    float16: IEEE binary16 with round-to-nearest-even (numpy's astype), relative error <= 2**-11; a weight beyond
             the float16 range (|w| > 65504) is refused by name.
A quantized layer keeps the stored values (`RecurrentLayer.qweights`) and, in w_ih / w_hh / w_hr, the float32
weights they stand for (q * scale, or the half widened), so the float64 reference and every exporter that
writes float32 compute with exactly what the kernels compute with.
"""
from __future__ import annotations

import numpy as np

from .errors import FormatError

WEIGHT_DTYPES = ("float32", "float16", "int8")
QUANTIZED_KEYS = ("w_ih", "w_hh", "w_hr")  # what the rule stores quantized of a recurrent layer
SCOPES = ("recurrent", "all")  # what the rule quantizes: recurrent matrices only, or MatMul/Gemm/Conv weights too


def check_weight_dtype(weight_dtype, where="") -> str:
    aliases = {"fp16": "float16", "half": "float16", "fp32": "float32", None: "float32"}
    name = aliases.get(weight_dtype, weight_dtype)
    if name not in WEIGHT_DTYPES:
        raise ValueError(f"{where + ': ' if where else ''}weight dtype {weight_dtype!r}; expected one of "
                         f"{WEIGHT_DTYPES} (or fp16)")
    return name


def check_scope(scope, where="") -> str:
    name = "recurrent" if scope is None else scope
    if name not in SCOPES:
        raise ValueError(f"{where + ': ' if where else ''}quantization scope {scope!r}; expected one of {SCOPES}")
    return name


def quantize_int8(w: np.ndarray):
    """w [..., rows, in] -> (q int8, same shape; scale float32 [..., rows]); w ~ q * scale[..., None]."""
    w = np.asarray(w, np.float32)
    amax = np.abs(w).max(axis=-1) if w.shape[-1] else np.zeros(w.shape[:-1], np.float32)
    scale = np.where(amax > 0, amax / np.float32(127.0), np.float32(1.0)).astype(np.float32)
    q = np.clip(np.rint(w / scale[..., None]), -127, 127).astype(np.int8)
    return q, scale


def quantize(w: np.ndarray, weight_dtype: str, where: str = ""):
    """(stored values, scales or None) of w in weight_dtype ('float16' or 'int8')."""
    weight_dtype = check_weight_dtype(weight_dtype, where)
    if weight_dtype == "int8":
        return quantize_int8(w)
    if weight_dtype == "float16":
        w = np.asarray(w, np.float32)
        half = w.astype(np.float16)
        if not np.all(np.isfinite(half) | ~np.isfinite(w)):
            raise FormatError(f"{where or 'a weight'}: values beyond the float16 range (|w| > 65504); keep this "
                              f"model in float32 or quantize it to int8")
        return half, None
    raise ValueError(f"weight dtype {weight_dtype!r} is not a quantized one")


def dequantize(q: np.ndarray, scale) -> np.ndarray:
    """The float32 weights stored values stand for."""
    if q.dtype == np.int8:
        return (q.astype(np.float32) * np.asarray(scale, np.float32)[..., None]).astype(np.float32)
    return q.astype(np.float32)


def dequantized(w: np.ndarray, weight_dtype) -> np.ndarray:
    """w as it computes once stored in weight_dtype (None or 'float32': unchanged)."""
    if weight_dtype in (None, "float32"):
        return np.asarray(w, np.float32)
    return dequantize(*quantize(w, check_weight_dtype(weight_dtype)))


def quantize_channels(w: np.ndarray, axis: int, weight_dtype: str, where: str = ""):
    """A graph constant w stored per output channel `axis`: (values, scales or None). int8: values [outer,
    channels, inner] (w's elements in order, split around `axis`), scales float32 [channels], quantize_int8's
    formula over each channel's elements; float16: values w.astype(float16) flat, no scales."""
    w = np.asarray(w, np.float32)
    if check_weight_dtype(weight_dtype, where) == "float16":
        return quantize(w.reshape(-1), "float16", where)
    outer, channels = int(np.prod(w.shape[:axis], dtype=np.int64)), w.shape[axis]
    w3 = w.reshape(outer, channels, -1)
    q, scale = quantize_int8(np.moveaxis(w3, 1, 0).reshape(channels, -1))
    return np.ascontiguousarray(np.moveaxis(q.reshape(channels, outer, -1), 0, 1)), scale


def dequantize_channels(values: np.ndarray, scale, shape) -> np.ndarray:
    """The float32 constant of `shape` that quantize_channels' values (and scales) stand for."""
    if values.dtype == np.int8:
        w = values.astype(np.float32) * np.asarray(scale, np.float32)[None, :, None]
        return w.astype(np.float32).reshape(shape)
    return values.astype(np.float32).reshape(shape)

