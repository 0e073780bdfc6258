"""The non-recurrent Keras layers, in numpy, with Keras' mask rules.

Each layer: `slots()` lists its weights in Keras' `weights` order (see weights.py), `set_weights(arrays)` checks
and keeps them, `call(x, mask, kwargs)` returns (outputs list, masks list) for one call (x and mask are one array,
or lists for merge layers). A layer that does not support masking drops the mask, as Keras 3 does (tf.keras refuses
to build such a model, so no tf.keras file has one).
"""
from __future__ import annotations

import numpy as np

from ...errors import FormatError
from .activations import activation_name, numpy_activation
from .weights import Slot


class Context:
    """What every layer needs to know about the file: name (for messages), Keras major version, hard_sigmoid."""

    def __init__(self, name: str, keras_version: str, major: int):
        self.name = name
        self.keras_version = keras_version
        self.major = major
        self.hs_alpha = 1.0 / 6.0 if major >= 3 else 0.2
        self.defaults = []  # (layer, option, value, why): version-dependent defaults that were applied

    def default(self, layer, option, value, why):
        from ...assumptions import assumed

        self.defaults.append((layer, option, value, why))
        assumed(f"{self.name}: layer {layer!r}", option, value, why)
        return value


class KLayer:
    supports_masking = False
    n_outputs = 1

    def __init__(self, name: str, cls: str, config: dict, ctx: Context):
        self.name, self.cls, self.config, self.ctx = name, cls, config, ctx
        self.where = f"{ctx.name}: layer {name!r} ({cls})"
        self.weights = []
        try:
            self.parse()
        except FormatError:
            raise
        except (ValueError, TypeError) as e:  # an option of the wrong type (float("abc"), int(None) ...)
            raise FormatError(f"{self.where}: cannot read its config ({type(e).__name__}: {e})") from e

    def parse(self):
        pass

    def opt(self, key, default=None, allowed=None):
        value = self.config.get(key, default)
        if allowed is not None and value not in allowed:
            raise FormatError(f"{self.where}: option {key}={value!r} is not supported; expected one of {allowed}")
        return value

    def int_opt(self, key, default=None, minimum=1):
        value = self.config.get(key, default)
        if value is None:
            raise FormatError(f"{self.where}: the config has no {key!r}")
        if not _is_int(value) or value < minimum:
            raise FormatError(f"{self.where}: option {key}={value!r} must be an integer >= {minimum}")
        return int(value)

    def bool_opt(self, key, default=False):
        value = self.config.get(key, default)
        if not isinstance(value, bool) and value not in (0, 1):
            raise FormatError(f"{self.where}: option {key}={value!r} must be true or false")
        return bool(value)

    def int_list_opt(self, key, minimum):
        value = self.config.get(key)
        if not isinstance(value, (list, tuple)) or not all(_is_int(d) and d >= minimum for d in value):
            raise FormatError(f"{self.where}: option {key}={value!r} must be a list of integers >= {minimum}")
        return [int(d) for d in value]

    def refuse_if(self, key, bad_value, why=""):
        if self.config.get(key) == bad_value:
            raise FormatError(f"{self.where}: option {key}={bad_value!r} is not supported{why}")

    def refuse_quantized(self):
        if self.config.get("quantization_config") or self.config.get("lora_rank"):
            raise FormatError(f"{self.where}: quantized / LoRA {self.cls} layers are not supported")

    def activation_summary(self) -> str:
        return f"activation={activation_name(self.config.get('activation'), self.where)}"

    def slots(self) -> list:
        return []

    def set_weights(self, arrays):
        slots = self.slots()
        if len(arrays) != len(slots):
            raise FormatError(f"{self.where}: got {len(arrays)} weight(s), expected {len(slots)} "
                              f"({', '.join(s.label for s in slots) or 'none'})")
        self.weights = [np.asarray(a, np.float32) for a in arrays]
        self.check_weights()

    def check_weights(self):
        pass

    def check_shape(self, label, arr, shape):
        if tuple(arr.shape) != tuple(shape):
            raise FormatError(f"{self.where}: weight {label} has shape {tuple(arr.shape)}, expected {tuple(shape)} "
                              f"from the config")

    def call(self, x, mask, kwargs):
        return [self.forward(x)], [mask if self.supports_masking else None]

    def forward(self, x):
        raise NotImplementedError

    def summary(self) -> str:
        return ""

    def weight_shapes(self) -> str:
        return " ".join("x".join(map(str, w.shape)) for w in self.weights)

    def float_input(self, x):
        x = np.asarray(x)
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        return x


def _is_int(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and float(v).is_integer()


def _slots(*labels, trainable=True):
    return [Slot(f"vars/{i}", trainable, label) for i, label in enumerate(labels)]


class InputLayer(KLayer):
    def parse(self):
        c = self.config
        shape = c.get("batch_shape") or c.get("batch_input_shape")
        if shape is None and c.get("shape") is not None:
            shape = [None] + list(c["shape"])
        if shape is None:
            raise FormatError(f"{self.where}: no batch_shape / batch_input_shape in the config")
        self.shape = list(shape)
        self.dtype = c.get("dtype") or "float32"
        if isinstance(self.dtype, dict):
            self.dtype = (self.dtype.get("config") or {}).get("name", "float32")
        self.refuse_if("sparse", True)
        self.refuse_if("ragged", True)

    def summary(self):
        return f"shape {self.shape} {self.dtype}"


class Dense(KLayer):
    supports_masking = True

    def parse(self):
        self.units = self.int_opt("units")
        self.use_bias = self.bool_opt("use_bias", True)
        self.act = numpy_activation(self.opt("activation"), self.ctx.hs_alpha, self.where)
        self.refuse_quantized()

    def slots(self):
        return _slots("kernel", "bias") if self.use_bias else _slots("kernel")

    def check_weights(self):
        k = self.weights[0]
        if k.ndim != 2 or k.shape[1] != self.units:
            raise FormatError(f"{self.where}: kernel has shape {k.shape}, expected [input_dim, {self.units}]")
        if self.use_bias:
            self.check_shape("bias", self.weights[1], (self.units,))

    def forward(self, x):
        x = self.float_input(x)
        if x.shape[-1] != self.weights[0].shape[0]:
            raise ValueError(f"{self.where}: input has {x.shape[-1]} features, the kernel takes "
                             f"{self.weights[0].shape[0]}")
        y = x @ self.weights[0]
        if self.use_bias:
            y = y + self.weights[1]
        return self.act(y)

    def summary(self):
        return f"units={self.units} {self.activation_summary()}"


class Activation(KLayer):
    supports_masking = True

    def parse(self):
        self.act = numpy_activation(self.opt("activation"), self.ctx.hs_alpha, self.where)

    def forward(self, x):
        return self.act(self.float_input(x))

    def summary(self):
        return self.activation_summary()


class Identity(KLayer):
    """Dropout and noise layers: identity at inference, as model.predict runs them."""

    supports_masking = True

    def forward(self, x):
        return self.float_input(x)


class Embedding(KLayer):
    def parse(self):
        self.input_dim = self.int_opt("input_dim")
        self.output_dim = self.int_opt("output_dim")
        self.mask_zero = self.bool_opt("mask_zero")
        self.refuse_quantized()

    def slots(self):
        return _slots("embeddings")

    def check_weights(self):
        self.check_shape("embeddings", self.weights[0], (self.input_dim, self.output_dim))

    def call(self, x, mask, kwargs):
        ids = np.asarray(x)
        if ids.dtype.kind == "f":
            ids = ids.astype(np.int64)  # Keras casts float ids to int, truncating
        if ids.dtype.kind not in "iu":
            raise ValueError(f"{self.where}: token ids must be numbers, got {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.input_dim):
            raise ValueError(f"{self.where}: token ids must lie in [0, {self.input_dim}), got "
                             f"{ids.min()}..{ids.max()}")
        out = self.weights[0][ids]
        return [out], [ids != 0 if self.mask_zero else None]

    def summary(self):
        return f"{self.input_dim} tokens -> {self.output_dim} mask_zero={self.mask_zero}"


class Masking(KLayer):
    supports_masking = True

    def parse(self):
        self.mask_value = float(self.opt("mask_value", 0.0))

    def call(self, x, mask, kwargs):
        x = self.float_input(x)
        keep = np.any(x != self.mask_value, axis=-1)
        return [x * keep[..., None].astype(np.float32)], [keep]

    def summary(self):
        return f"mask_value={self.mask_value}"


def _axes(axis, ndim):
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    return sorted(a % ndim for a in axes)


class _Normalization(KLayer):
    """The options BatchNormalization and LayerNormalization share."""

    supports_masking = True

    def parse(self):
        self.axis = self.opt("axis", -1)
        self.eps = float(self.opt("epsilon", 1e-3))
        self.center = self.bool_opt("center", True)
        self.scale = self.bool_opt("scale", True)

    def summary(self):
        return f"axis={self.axis} epsilon={self.eps}"


class BatchNormalization(_Normalization):
    def parse(self):
        super().parse()
        if self.ctx.major == 1 and self.config.get("mode", 0) != 0:
            raise FormatError(f"{self.where}: Keras 1 BatchNormalization mode={self.config.get('mode')} is not "
                              f"supported; expected 0 (feature-wise, moving statistics at inference)")
        self.refuse_if("renorm", True)

    def slots(self):
        labels = (["gamma"] if self.scale else []) + (["beta"] if self.center else [])
        t = [Slot(f"vars/{i}", True, l) for i, l in enumerate(labels)]
        return t + [Slot(f"vars/{len(t) + i}", False, l) for i, l in enumerate(["moving_mean", "moving_variance"])]

    def check_weights(self):
        n = self.weights[-1].shape
        for s, w in zip(self.slots(), self.weights):
            self.check_shape(s.label, w, n)

    def forward(self, x):
        x = self.float_input(x)
        axes = _axes(self.axis, x.ndim)
        w = list(self.weights)
        gamma = w.pop(0) if self.scale else None
        beta = w.pop(0) if self.center else None
        mean, var = w
        shape = [1] * x.ndim
        for a in axes:
            shape[a] = x.shape[a]
        if int(np.prod([x.shape[a] for a in axes])) != mean.size:
            raise ValueError(f"{self.where}: input shape {x.shape} does not match {mean.size} features on axis "
                             f"{self.axis}")
        r = lambda v: np.asarray(v, np.float64).reshape(shape)
        inv = 1.0 / np.sqrt(r(var) + self.eps)
        if gamma is not None:
            inv = inv * r(gamma)
        y = (x - r(mean)) * inv
        if beta is not None:
            y = y + r(beta)
        return y.astype(np.float32)


class LayerNormalization(_Normalization):
    def parse(self):
        super().parse()
        self.rms = self.bool_opt("rms_scaling")

    def slots(self):
        return _slots(*((["gamma"] if self.scale else []) + (["beta"] if self.center and not self.rms else [])))

    def forward(self, x):
        x = np.asarray(self.float_input(x), np.float64)
        axes = tuple(_axes(self.axis, x.ndim))
        shape = [x.shape[a] if a in axes else 1 for a in range(x.ndim)]
        w = list(self.weights)
        gamma = w.pop(0).reshape(shape) if self.scale else 1.0
        if self.rms:
            y = x / np.sqrt(np.mean(x * x, axis=axes, keepdims=True) + self.eps) * gamma
            return y.astype(np.float32)
        beta = w.pop(0).reshape(shape) if self.center else 0.0
        mean = x.mean(axis=axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
        return ((x - mean) / np.sqrt(var + self.eps) * gamma + beta).astype(np.float32)


class RepeatVector(KLayer):
    def parse(self):
        self.n = self.int_opt("n")

    def forward(self, x):
        x = self.float_input(x)
        if x.ndim != 2:
            raise ValueError(f"{self.where}: expects [batch, features], got shape {x.shape}")
        return np.repeat(x[:, None, :], self.n, axis=1)

    def summary(self):
        return f"n={self.n}"


class Flatten(KLayer):
    def parse(self):
        self.opt("data_format", "channels_last", allowed=("channels_last", None))

    def forward(self, x):
        x = self.float_input(x)
        return x.reshape(x.shape[0], -1)


class Reshape(KLayer):
    def parse(self):
        self.target = self.int_list_opt("target_shape", -1)

    def forward(self, x):
        x = self.float_input(x)
        return x.reshape([x.shape[0]] + self.target)

    def summary(self):
        return f"target_shape={self.target}"


class Permute(KLayer):
    def parse(self):
        self.dims = self.int_list_opt("dims", 1)

    def forward(self, x):
        return np.ascontiguousarray(self.float_input(x).transpose([0] + self.dims))

    def summary(self):
        return f"dims={self.dims}"


class Softmax(KLayer):
    supports_masking = True

    def parse(self):
        self.axis = self.opt("axis", -1)

    def call(self, x, mask, kwargs):
        x = np.asarray(self.float_input(x), np.float64)
        m = None if mask is None else np.asarray(mask).astype(bool)
        if m is not None:
            # tf.keras adds -1e9 at masked positions; Keras 3 replaces them by -1e9 and zeroes them afterwards.
            x = np.where(m, x, -1e9) if self.ctx.major >= 3 else x + (1.0 - m) * -1e9
        axes = tuple(_axes(self.axis, x.ndim))
        e = np.exp(x - np.max(x, axis=axes, keepdims=True))
        y = e / e.sum(axis=axes, keepdims=True)
        if m is not None and self.ctx.major >= 3:
            y = np.where(m, y, 0.0)
        return [y.astype(np.float32)], [mask]


class GlobalPooling1D(KLayer):
    """GlobalAveragePooling1D (mask-aware, as Keras) and GlobalMaxPooling1D."""

    def parse(self):
        self.opt("data_format", "channels_last", allowed=("channels_last",))
        self.keepdims = self.bool_opt("keepdims")
        self.supports_masking = self.cls == "GlobalAveragePooling1D"

    def call(self, x, mask, kwargs):
        x = self.float_input(x)
        if self.cls == "GlobalMaxPooling1D":
            y = x.max(axis=1, keepdims=self.keepdims)
        elif mask is None:
            y = x.mean(axis=1, keepdims=self.keepdims)
        else:
            m = np.asarray(mask, np.float32)[..., None]
            with np.errstate(invalid="ignore"):  # Keras divides by the count too: a fully masked row gives NaN
                y = (x * m).sum(axis=1, keepdims=self.keepdims) / m.sum(axis=1, keepdims=self.keepdims)
        return [y.astype(np.float32)], [None]


class Merge(KLayer):
    """Add, Subtract, Multiply, Average, Maximum, Minimum: element-wise over a list of inputs; mask = AND."""

    supports_masking = True

    def call(self, x, mask, kwargs):
        xs = [self.float_input(a) for a in _as_list(x, self.where)]
        if self.cls == "Subtract":
            if len(xs) != 2:
                raise ValueError(f"{self.where}: Subtract takes exactly 2 inputs, got {len(xs)}")
            y = xs[0] - xs[1]
        else:
            op = {"Add": np.add, "Multiply": np.multiply, "Average": np.add, "Maximum": np.maximum,
                  "Minimum": np.minimum}[self.cls]
            y = xs[0]
            for a in xs[1:]:
                y = op(y, a)
            if self.cls == "Average":
                y = y / np.float32(len(xs))
        masks = [m for m in _as_list(mask, self.where) if m is not None] if mask is not None else []
        out_mask = np.logical_and.reduce(masks) if masks else None
        return [y.astype(np.float32)], [out_mask]


class Concatenate(KLayer):
    supports_masking = True

    def parse(self):
        self.axis = self.int_opt("axis", -1, minimum=-(2 ** 31))

    def call(self, x, mask, kwargs):
        xs = [self.float_input(a) for a in _as_list(x, self.where)]
        y = np.concatenate(xs, axis=self.axis)
        masks = _as_list(mask, self.where) if mask is not None else [None] * len(xs)
        if all(m is None for m in masks):
            return [y], [None]
        full = []
        for a, m in zip(xs, masks):
            if m is None:
                full.append(np.ones(a.shape, bool))
            else:
                m = np.asarray(m, bool)
                full.append(np.broadcast_to(m.reshape(m.shape + (1,) * (a.ndim - m.ndim)), a.shape))
        return [y], [np.all(np.concatenate(full, axis=self.axis), axis=-1)]

    def summary(self):
        return f"axis={self.axis}"


class Dot(KLayer):
    supports_masking = True

    def parse(self):
        self.axes = self.opt("axes")
        self.normalize = self.bool_opt("normalize")

    def call(self, x, mask, kwargs):
        xs = [self.float_input(a) for a in _as_list(x, self.where)]
        if len(xs) != 2:
            raise ValueError(f"{self.where}: Dot takes exactly 2 inputs, got {len(xs)}")
        a, b = (np.asarray(v, np.float64) for v in xs)
        axes = self.axes if isinstance(self.axes, (list, tuple)) else [self.axes, self.axes]
        ax = [axes[0] % a.ndim, axes[1] % b.ndim]
        if self.normalize:
            a = a / np.maximum(np.sqrt((a * a).sum(axis=ax[0], keepdims=True)), 1e-12 ** 0.5)
            b = b / np.maximum(np.sqrt((b * b).sum(axis=ax[1], keepdims=True)), 1e-12 ** 0.5)
        letters = "bcdefghijklmnopq"
        sa = ["a"] + [letters[i] for i in range(a.ndim - 1)]
        sb = ["a"] + [letters[a.ndim - 1 + i] for i in range(b.ndim - 1)]
        sb[ax[1]] = sa[ax[0]]
        out = [c for c in sa if c != sa[ax[0]]] + [c for c in sb[1:] if c != sa[ax[0]]]
        y = np.einsum(f"{''.join(sa)},{''.join(sb)}->{''.join(out)}", a, b)
        if y.ndim == 1:
            y = y[:, None]
        return [y.astype(np.float32)], [None]

    def summary(self):
        return f"axes={self.axes} normalize={self.normalize}"


def _as_list(x, where):
    if not isinstance(x, (list, tuple)):
        raise FormatError(f"{where}: this layer takes a list of inputs")
    return list(x)


class Refused(KLayer):
    def parse(self):
        raise FormatError(f"{self.where}: {self.cls} layers hold Python code, which cannot be loaded without "
                          f"TensorFlow; rebuild the model without it" if self.cls == "Lambda" else
                          f"{self.where}: layer class {self.cls} is not supported")


LAYERS = {
    "InputLayer": InputLayer, "Dense": Dense, "Activation": Activation, "Embedding": Embedding, "Masking": Masking,
    "Dropout": Identity, "SpatialDropout1D": Identity, "GaussianNoise": Identity, "GaussianDropout": Identity,
    "AlphaDropout": Identity, "ActivityRegularization": Identity,
    "BatchNormalization": BatchNormalization, "LayerNormalization": LayerNormalization,
    "RepeatVector": RepeatVector, "Flatten": Flatten, "Reshape": Reshape, "Permute": Permute, "Softmax": Softmax,
    "GlobalAveragePooling1D": GlobalPooling1D, "GlobalMaxPooling1D": GlobalPooling1D,
    "Add": Merge, "Subtract": Merge, "Multiply": Merge, "Average": Merge, "Maximum": Merge, "Minimum": Merge,
    "Concatenate": Concatenate, "Dot": Dot, "Lambda": Refused,
}
