"""Keras convolution and pooling layers (channels_last): Conv1D, Conv2D, MaxPooling1D/2D, AveragePooling1D/2D,
GlobalAveragePooling2D, GlobalMaxPooling2D, in numpy for the layer path (lower.py lowers them to ONNX Conv and pools).

Padding as TensorFlow computes it: "valid" none; "same" a total of max((ceil(n/s) - 1) * s + (k - 1) * d + 1 - n, 0)
split with the extra one at the end; "causal" (Conv1D) (k - 1) * d at the start. Average pooling with "same" divides
by the number of real elements in each window (padding is not counted), as TensorFlow does."""
from __future__ import annotations

import numpy as np

from ...errors import FormatError
from .activations import numpy_activation
from .layers import KLayer, _slots


def same_pads(n, k, s, d):
    """(before, after) of TensorFlow's "same" padding on an axis of size n."""
    out = -(-n // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


def pads_for(padding, sizes, kernel, strides, dilations, where):
    if padding == "valid":
        return [(0, 0)] * len(sizes)
    if padding == "causal":
        return [((kernel[0] - 1) * dilations[0], 0)]
    if padding == "same":
        return [same_pads(n, k, s, d) for n, k, s, d in zip(sizes, kernel, strides, dilations)]
    raise FormatError(f"{where}: padding {padding!r} is not supported; expected valid, same or causal")


class _Spatial(KLayer):
    """What convolutions and pools share: the number of spatial axes and the tuple options."""

    n_sp = 1

    def tuple_opt(self, key, default):
        v = self.config.get(key, default)
        v = [v] * self.n_sp if isinstance(v, int) else list(v)
        if len(v) != self.n_sp or not all(isinstance(a, int) and a >= 1 for a in v):
            raise FormatError(f"{self.where}: option {key}={self.config.get(key)!r} must be {self.n_sp} "
                              f"integer(s) >= 1")
        return v

    def check_format(self):
        if self.config.get("data_format", "channels_last") not in ("channels_last", None):
            raise FormatError(f"{self.where}: data_format={self.config.get('data_format')!r} is not supported; "
                              f"expected channels_last")

    def spatial_input(self, x):
        x = self.float_input(x)
        if x.ndim != self.n_sp + 2:
            raise ValueError(f"{self.where}: input must have {self.n_sp + 2} axes [batch, ..., channels], got "
                             f"{x.shape}")
        return x


class Conv(_Spatial):
    def parse(self):
        self.n_sp = 2 if self.cls == "Conv2D" else 1
        self.check_format()
        self.filters = self.int_opt("filters")
        self.kernel = self.tuple_opt("kernel_size", None)
        self.strides = self.tuple_opt("strides", 1)
        self.dilations = self.tuple_opt("dilation_rate", 1)
        self.padding = self.opt("padding", "valid", allowed=("valid", "same", "causal") if self.n_sp == 1 else
                                ("valid", "same"))
        self.groups = self.int_opt("groups", 1)
        if self.groups != 1:
            raise FormatError(f"{self.where}: groups={self.groups} is not supported; expected 1")
        if max(self.strides) > 1 and max(self.dilations) > 1:
            raise FormatError(f"{self.where}: strides and dilation_rate both above 1 (Keras refuses it too)")
        self.use_bias = self.bool_opt("use_bias", True)
        self.act = numpy_activation(self.opt("activation"), self.ctx.hs_alpha, self.where)
        self.refuse_quantized()

    def slots(self):
        return _slots("kernel", "bias") if self.use_bias else _slots("kernel")

    def check_weights(self):
        k = self.weights[0]
        if k.ndim != self.n_sp + 2 or list(k.shape[:self.n_sp]) != self.kernel or k.shape[-1] != self.filters:
            raise FormatError(f"{self.where}: kernel has shape {k.shape}, expected "
                              f"{self.kernel + ['input channels', self.filters]}")
        if self.use_bias:
            self.check_shape("bias", self.weights[1], (self.filters,))

    def forward(self, x):
        x = self.spatial_input(x)
        k = self.weights[0]
        if x.shape[-1] != k.shape[-2]:
            raise ValueError(f"{self.where}: input has {x.shape[-1]} channels, the kernel takes {k.shape[-2]}")
        pads = pads_for(self.padding, x.shape[1:-1], self.kernel, self.strides, self.dilations, self.where)
        x = np.pad(np.asarray(x, np.float64), [(0, 0)] + list(pads) + [(0, 0)])
        out_sizes = [(n - (kk - 1) * d - 1) // s + 1 for n, kk, s, d in
                     zip(x.shape[1:-1], self.kernel, self.strides, self.dilations)]
        if min(out_sizes) < 1:
            raise ValueError(f"{self.where}: input {x.shape} is smaller than the kernel {self.kernel}")
        y = np.zeros([x.shape[0]] + out_sizes + [self.filters])
        for offset in np.ndindex(*self.kernel):
            index = tuple(slice(o * d, o * d + (n - 1) * s + 1, s) for o, d, n, s in
                          zip(offset, self.dilations, out_sizes, self.strides))
            y += x[(slice(None),) + index] @ k[offset].astype(np.float64)
        if self.use_bias:
            y = y + self.weights[1]
        return self.act(y)

    def summary(self):
        return (f"filters={self.filters} kernel_size={self.kernel} strides={self.strides} padding={self.padding} "
                f"{self.activation_summary()}")


class Pool(_Spatial):
    def parse(self):
        self.n_sp = 2 if self.cls.endswith("2D") else 1
        self.check_format()
        self.pool = self.tuple_opt("pool_size", 2)
        self.strides = self.tuple_opt("strides", None) if self.config.get("strides") is not None else self.pool
        self.padding = self.opt("padding", "valid", allowed=("valid", "same"))
        self.max = self.cls.startswith("Max")

    def forward(self, x):
        x = np.asarray(self.spatial_input(x), np.float64)
        pads = pads_for(self.padding, x.shape[1:-1], self.pool, self.strides, [1] * self.n_sp, self.where)
        fill = -np.inf if self.max else 0.0
        xp = np.pad(x, [(0, 0)] + list(pads) + [(0, 0)], constant_values=fill)
        ones = np.pad(np.ones(x.shape[1:-1]), list(pads))
        out_sizes = [(n - k) // s + 1 for n, k, s in zip(xp.shape[1:-1], self.pool, self.strides)]
        if min(out_sizes) < 1:
            raise ValueError(f"{self.where}: input {x.shape} is smaller than the pool {self.pool}")
        y = np.full([x.shape[0]] + out_sizes + [x.shape[-1]], fill)
        count = np.zeros(out_sizes)
        for offset in np.ndindex(*self.pool):
            index = tuple(slice(o, o + (n - 1) * s + 1, s) for o, n, s in zip(offset, out_sizes, self.strides))
            part = xp[(slice(None),) + index]
            y = np.maximum(y, part) if self.max else y + part
            count += ones[index]
        if not self.max:
            y = y / count[..., None]
        return y.astype(np.float32)

    def summary(self):
        return f"pool_size={self.pool} strides={self.strides} padding={self.padding}"


class GlobalPooling2D(_Spatial):
    n_sp = 2

    def parse(self):
        self.check_format()
        self.keepdims = self.bool_opt("keepdims")

    def forward(self, x):
        x = self.spatial_input(x)
        fn = np.max if self.cls == "GlobalMaxPooling2D" else np.mean
        return fn(np.asarray(x, np.float64), axis=(1, 2), keepdims=self.keepdims).astype(np.float32)


CONV_LAYERS = {
    "Conv1D": Conv, "Conv2D": Conv, "MaxPooling1D": Pool, "MaxPooling2D": Pool, "AveragePooling1D": Pool,
    "AveragePooling2D": Pool, "MaxPool1D": Pool, "MaxPool2D": Pool, "AvgPool1D": Pool, "AvgPool2D": Pool,
    "GlobalAveragePooling2D": GlobalPooling2D, "GlobalMaxPooling2D": GlobalPooling2D,
}
