"""Keras activation names: numpy functions for the layers around the recurrent ones, and the engine's Activation
for the recurrent layers themselves. hard_sigmoid is the one whose meaning depends on the Keras version:
0.2*x + 0.5 up to Keras 2 / tf.keras, x/6 + 0.5 from Keras 3 (both clipped to [0, 1])."""
from __future__ import annotations

import numpy as np

from ...errors import FormatError
from ...layers import Activation
from ...reference import ACTIVATIONS, sigmoid, softmax

HARD_SIGMOID_ALPHA = {2: 0.2, 3: 1.0 / 6.0}


def _engine(name, alpha=0.0):
    """The float64 definition the reference engine uses (rnnfast/reference.py), as a function of x alone."""
    fn = ACTIVATIONS[name]
    return lambda x: fn(x, alpha, 0.0)


def _numpy_table(hs_alpha):
    relu6 = lambda x: np.clip(x, 0.0, 6.0)
    return {
        "linear": lambda x: x,
        "tanh": np.tanh,
        "sigmoid": sigmoid,
        "relu": lambda x: np.maximum(x, 0.0),
        "relu6": relu6,
        "elu": _engine("Elu", 1.0),
        "selu": _engine("Selu"),
        "softsign": _engine("Softsign"),
        "softplus": _engine("Softplus"),
        "swish": _engine("Swish"),
        "silu": _engine("Swish"),
        "gelu": _engine("Gelu"),
        "exponential": np.exp,
        "hard_sigmoid": lambda x: np.clip(hs_alpha * x + 0.5, 0.0, 1.0),
        "hard_silu": lambda x: x * relu6(x + 3.0) / 6.0,
        "hard_swish": lambda x: x * relu6(x + 3.0) / 6.0,
        "leaky_relu": lambda x: np.where(x >= 0, x, 0.2 * x),
        "mish": lambda x: x * np.tanh(np.logaddexp(0.0, x)),
        "softmax": softmax,
        "log_softmax": lambda x: x - np.max(x, -1, keepdims=True)
        - np.log(np.sum(np.exp(x - np.max(x, -1, keepdims=True)), -1, keepdims=True)),
    }


def activation_name(value, where: str, what: str = "activation") -> str:
    """The activation's name from a config value: a string, or Keras 3's serialized function dict."""
    if value is None:
        return "linear"
    name = value
    if isinstance(value, dict):
        cfg = value.get("config")
        name = cfg if isinstance(cfg, str) else (cfg if isinstance(cfg, dict) else {}).get("name",
                                                                                          value.get("class_name"))
    if not isinstance(name, str):
        raise FormatError(f"{where}: {what} {value!r} is not an activation name")
    return name


def numpy_activation(value, hs_alpha: float, where: str, what: str = "activation"):
    name = activation_name(value, where, what)
    fn = _numpy_table(hs_alpha).get(name)
    if fn is None:
        raise FormatError(f"{where}: {what} {name!r} is not supported; expected one of "
                          f"{sorted(_numpy_table(hs_alpha))}")

    def run(x):
        return fn(np.asarray(x, np.float64)).astype(np.float32)

    return run


_RECURRENT = {
    "tanh": lambda a: Activation("Tanh"), "sigmoid": lambda a: Activation("Sigmoid"),
    "relu": lambda a: Activation("Relu"), "linear": lambda a: Activation("Affine", 1.0, 0.0),
    "hard_sigmoid": lambda a: Activation("HardSigmoid", a, 0.5), "elu": lambda a: Activation("Elu", 1.0),
    "selu": lambda a: Activation("Selu"), "softsign": lambda a: Activation("Softsign"),
    "softplus": lambda a: Activation("Softplus"), "swish": lambda a: Activation("Swish"),
    "silu": lambda a: Activation("Swish"), "gelu": lambda a: Activation("Gelu"),
    "exponential": lambda a: Activation("Exp"),
}


def recurrent_activation(value, hs_alpha: float, where: str, what: str) -> Activation:
    """The engine Activation for a Keras recurrent layer's activation / recurrent_activation."""
    name = activation_name(value, where, what)
    make = _RECURRENT.get(name)
    if make is None:
        raise FormatError(f"{where}: {what} {name!r} is not supported inside a recurrent layer; expected one of "
                          f"{sorted(_RECURRENT)}")
    return make(hs_alpha)
