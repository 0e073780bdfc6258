"""Operations written between layers of a functional model: Keras 3 op-nodes (`keras.ops.not_equal(x, 0)` is saved
as a "NotEqual" node) and tf.keras TFOpLambda nodes (`tf.math.not_equal` saved as function "math.not_equal").
Models use them mostly to build masks by hand; the ones here are the mask idioms and a few shape helpers.
Anything else is refused by name."""
from __future__ import annotations

import numpy as np

from ...errors import FormatError

_DTYPES = {"float32": np.float32, "float64": np.float64, "float16": np.float16, "int32": np.int32,
           "int64": np.int64, "bool": np.bool_, "uint8": np.uint8, "int8": np.int8}


def _dtype(d, where):
    if isinstance(d, dict):
        d = (d.get("config") or {}).get("name")
    if d not in _DTYPES:
        raise FormatError(f"{where}: cast to dtype {d!r} is not supported; expected one of {sorted(_DTYPES)}")
    return _DTYPES[d]


def _reduce(fn):
    def run(args, kw, cfg, where):
        axis = kw.get("axis", cfg.get("axis", args[1] if len(args) > 1 else None))
        keep = bool(kw.get("keepdims", cfg.get("keepdims", args[2] if len(args) > 2 else False)))
        return fn(np.asarray(args[0]), axis=None if axis is None else tuple(np.atleast_1d(axis)), keepdims=keep)
    return run


def _binary(fn, second="y"):
    def run(args, kw, cfg, where):
        if len(args) >= 2:
            a, b = args[0], args[1]
        elif second in kw:
            a, b = args[0], kw[second]
        else:
            raise FormatError(f"{where}: needs two operands")
        return fn(np.asarray(a), np.asarray(b))
    return run


def _unary(fn):
    return lambda args, kw, cfg, where: fn(np.asarray(args[0]))


def _cast(args, kw, cfg, where):
    return np.asarray(args[0]).astype(_dtype(kw.get("dtype", cfg.get("dtype", args[1] if len(args) > 1 else None)),
                                             where))


def _expand_dims(args, kw, cfg, where):
    return np.expand_dims(np.asarray(args[0]), kw.get("axis", cfg.get("axis", args[1] if len(args) > 1 else None)))


def _squeeze(args, kw, cfg, where):
    axis = kw.get("axis", cfg.get("axis", args[1] if len(args) > 1 else None))
    return np.squeeze(np.asarray(args[0]), axis=None if axis is None else tuple(np.atleast_1d(axis)))


_COMMON = {
    "not_equal": _binary(np.not_equal), "equal": _binary(np.equal), "greater": _binary(np.greater),
    "greater_equal": _binary(np.greater_equal), "less": _binary(np.less), "less_equal": _binary(np.less_equal),
    "logical_and": _binary(np.logical_and), "logical_or": _binary(np.logical_or),
    "logical_not": _unary(np.logical_not), "any": _reduce(np.any), "all": _reduce(np.all), "cast": _cast,
    "expand_dims": _expand_dims, "squeeze": _squeeze,
}
# Keras 3 op-node class names -> the function above.
KERAS3_OPS = {"NotEqual": "not_equal", "Equal": "equal", "Greater": "greater", "GreaterEqual": "greater_equal",
              "Less": "less", "LessEqual": "less_equal", "LogicalAnd": "logical_and", "LogicalOr": "logical_or",
              "LogicalNot": "logical_not", "Any": "any", "All": "all", "Cast": "cast", "ExpandDims": "expand_dims",
              "Squeeze": "squeeze"}
# tf.keras TFOpLambda function names -> the function above.
TF_OPS = {"math.not_equal": "not_equal", "math.equal": "equal", "math.greater": "greater",
          "math.greater_equal": "greater_equal", "math.less": "less", "math.less_equal": "less_equal",
          "math.logical_and": "logical_and", "math.logical_or": "logical_or", "math.logical_not": "logical_not",
          "math.reduce_any": "any", "math.reduce_all": "all", "cast": "cast", "expand_dims": "expand_dims",
          "squeeze": "squeeze"}
TF_ARG_NAMES = {"not_equal": ("x", "y"), "equal": ("x", "y"), "greater": ("x", "y"), "greater_equal": ("x", "y"),
                "less": ("x", "y"), "less_equal": ("x", "y"), "logical_and": ("x", "y"), "logical_or": ("x", "y"),
                "logical_not": ("x",), "any": ("input_tensor", "axis", "keepdims"),
                "all": ("input_tensor", "axis", "keepdims"), "cast": ("x", "dtype"), "expand_dims": ("input", "axis"),
                "squeeze": ("input", "axis")}


def is_keras3_op(cls: str, module, config: dict) -> bool:
    """Keras 3 writes module 'keras.src.ops.*' for op-nodes; its legacy .h5 drops the module, but an op-node's
    config never has the 'trainable' key every layer has."""
    if module is not None:
        return str(module).startswith("keras.src.ops")
    return cls in KERAS3_OPS and "trainable" not in config


class OpNode:
    supports_masking = False
    n_outputs = 1

    def __init__(self, name, cls, config, ctx, function=None):
        self.name, self.cls, self.config, self.ctx = name, cls, config, ctx
        self.where = f"{ctx.name}: layer {name!r} ({cls}{' ' + function if function else ''})"
        self.weights = []
        key = TF_OPS.get(function) if function is not None else KERAS3_OPS.get(cls)
        if key is None:
            supported = sorted(TF_OPS) if function is not None else sorted(KERAS3_OPS)
            raise FormatError(f"{self.where}: operation {function or cls!r} is not supported; expected one of "
                              f"{supported}")
        self.key = key
        self.tf = function is not None
        self.fn = _COMMON[key]

    def slots(self):
        return []

    def set_weights(self, arrays):
        if arrays:
            raise FormatError(f"{self.where}: an operation has no weights, the file gives {len(arrays)}")

    def run_op(self, args, kwargs):
        kwargs = {k: v for k, v in kwargs.items() if k != "name"}
        if self.tf:
            # TFOpLambda passes the first tensor positionally and the rest by the tf function's argument names.
            names = TF_ARG_NAMES[self.key]
            args = list(args) + [kwargs.pop(n) for n in names[len(args):] if n in kwargs]
            kwargs = {"axis": kwargs["axis"]} if "axis" in kwargs else {}
        return self.fn(args, kwargs, self.config, self.where)

    def summary(self):
        return ""

    def weight_shapes(self):
        return ""
