"""Keras convolutions and pools (conv.py) lowered to ONNX Conv, MaxPool, AveragePool and reductions. Keras is
channels_last and ONNX channels-first: a Transpose on each side, which the analysis may cancel between two convs.
"same" padding is TensorFlow's (conv.same_pads): computed from the static size, or, with stride 1, the same on any
size."""
from __future__ import annotations

import numpy as np

from ...graph.infer import Unfit
from .conv import Conv, GlobalPooling2D, Pool, same_pads
from .lower import KT, _act


def _pads(layer, x: KT, kernel, strides, dilations):
    begin, end = [], []
    for a, (k, s, d) in enumerate(zip(kernel, strides, dilations)):
        n = x.shape[1 + a]
        if layer.padding == "valid":
            p = (0, 0)
        elif layer.padding == "causal":
            p = ((k - 1) * d, 0)
        elif n is not None:
            p = same_pads(n, k, s, d)
        elif s == 1:
            total = (k - 1) * d
            p = (total // 2, total - total // 2)
        else:
            raise Unfit(f"{layer.where}: padding 'same' with strides {strides} on an axis whose size is known only "
                        f"at run time")
        begin.append(p[0])
        end.append(p[1])
    return begin + end


def _out_size(n, k, s, d, pads):
    return None if n is None else (n + pads[0] + pads[1] - (k - 1) * d - 1) // s + 1


def _channels_first(low, layer, x: KT):
    x = low.float_in(layer, x)
    if x.rank != layer.n_sp + 2:
        raise ValueError(f"{layer.where}: input must have {layer.n_sp + 2} axes [batch, ..., channels], got rank "
                         f"{x.rank}")
    perm = [0, x.rank - 1] + list(range(1, x.rank - 1))
    return x, low.node("Transpose", [x.name], {"perm": perm}, name=f"{layer.name}/channels_first")


def _channels_last(low, layer, y, rank):
    return low.node("Transpose", [y], {"perm": [0] + list(range(2, rank)) + [1]}, name=f"{layer.name}/channels_last")


def lower_conv(low, layer: Conv, x, kw):
    x, xc = _channels_first(low, layer, x)
    k = layer.weights[0]
    if x.shape[-1] is not None and x.shape[-1] != k.shape[-2]:
        raise ValueError(f"{layer.where}: input has {x.shape[-1]} channels, the kernel takes {k.shape[-2]}")
    pads = _pads(layer, x, layer.kernel, layer.strides, layer.dilations)
    w = np.ascontiguousarray(np.moveaxis(k, [-1, -2], [0, 1]))  # [k..., in, out] -> [out, in, k...]
    ins = [xc, w] + ([layer.weights[1]] if layer.use_bias else [])
    y = low.node("Conv", ins, {"kernel_shape": layer.kernel, "strides": layer.strides,
                               "dilations": layer.dilations, "pads": pads}, name=layer.name)
    y = _act(low, layer, _channels_last(low, layer, y, x.rank))
    n = layer.n_sp
    sizes = [_out_size(x.shape[1 + a], layer.kernel[a], layer.strides[a], layer.dilations[a], (pads[a], pads[n + a]))
             for a in range(n)]
    return [KT(y, tuple([None] + sizes + [layer.filters]))]


def lower_pool(low, layer: Pool, x, kw):
    x, xc = _channels_first(low, layer, x)
    n = layer.n_sp
    pads = _pads(layer, x, layer.pool, layer.strides, [1] * n)
    attrs = {"kernel_shape": layer.pool, "strides": layer.strides, "pads": pads}
    if not layer.max:
        attrs["count_include_pad"] = 0
    y = low.node("MaxPool" if layer.max else "AveragePool", [xc], attrs, name=layer.name)
    sizes = [_out_size(x.shape[1 + a], layer.pool[a], layer.strides[a], 1, (pads[a], pads[n + a])) for a in range(n)]
    return [KT(_channels_last(low, layer, y, x.rank), tuple([None] + sizes + [x.shape[-1]]))]


def lower_global_pool2d(low, layer: GlobalPooling2D, x, kw):
    x = low.float_in(layer, x)
    if x.rank != 4:
        raise ValueError(f"{layer.where}: input must be [batch, rows, cols, channels], got rank {x.rank}")
    op = "ReduceMax" if layer.cls == "GlobalMaxPooling2D" else "ReduceMean"
    y = low.node(op, [x.name], {"axes": [1, 2], "keepdims": int(layer.keepdims)}, name=layer.name)
    return [KT(y, (None, 1, 1, x.shape[-1]) if layer.keepdims else (None, x.shape[-1]))]


CONV_LOWERINGS = [(Conv, lower_conv), (Pool, lower_pool), (GlobalPooling2D, lower_global_pool2d)]
