"""Activation functions as C99 expressions, the same formulas as the engine's src_c/kernels/activations.c.

Each distinct (name, alpha, beta) a pipeline uses becomes one small static function `act<N>`, its constants
written as float literals, so the generated file carries only what the model needs.
"""
from __future__ import annotations

import math

from ..errors import FormatError
from ..layers import Activation
from ._c_arrays import float_literal

SIGMOID = """\
/* exp of a non-positive argument only, so neither branch overflows */
static float sigmoidf_(float x)
{
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    const float e = expf(x);
    return e / (1.0f + e);
}"""

SELU_SCALE, SELU_ALPHA = float_literal(1.0507009873554805), float_literal(1.6732632423543772)

CLIP = """\
static float clipf_(float x, float c)
{
    return x < -c ? -c : (x > c ? c : x);
}"""


def _body(act: Activation) -> str:
    a, b = float_literal(act.alpha), float_literal(act.beta)
    return {
        "Relu": "x > 0.0f ? x : 0.0f",
        "Tanh": "tanhf(x)",
        "Sigmoid": "sigmoidf_(x)",
        "Affine": f"{a} * x + {b}",
        "LeakyRelu": f"x >= 0.0f ? x : {a} * x",
        "ThresholdedRelu": f"x > {a} ? x : 0.0f",
        "ScaledTanh": f"{a} * tanhf({b} * x)",
        "HardSigmoid": f"fminf(fmaxf({a} * x + {b}, 0.0f), 1.0f)",
        "Elu": f"x >= 0.0f ? x : {a} * expm1f(x)",
        "Softsign": "x / (1.0f + fabsf(x))",
        "Softplus": "x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x))",
        # Constants of Klambauer et al. 2017, as Keras and PyTorch use them.
        "Selu": f"x > 0.0f ? {SELU_SCALE} * x : {SELU_SCALE} * {SELU_ALPHA} * expm1f(x)",
        "Swish": "x * sigmoidf_(x)",
        "Gelu": f"0.5f * x * (1.0f + erff(x * {float_literal(math.sqrt(0.5))}))",
        "Exp": "expf(x)",
    }[act.name]


class Activations:
    """Collects the activations a pipeline uses and names their C functions."""

    def __init__(self, where: str):
        self.where = where
        self.names: dict = {}

    def call(self, act: Activation, x: str) -> str:
        for v in (act.alpha, act.beta):
            if not math.isfinite(float(v)):
                raise FormatError(f"{self.where}: activation {act.name} has alpha/beta {act.alpha}/{act.beta}; "
                                  f"C code export writes finite constants only")
        key = (act.name, float(act.alpha), float(act.beta))
        if key not in self.names:
            same = sum(k[0] == act.name for k in self.names)  # one function per alpha/beta pair
            self.names[key] = f"act_{act.name.lower()}{f'_{same}' if same else ''}"
        return f"{self.names[key]}({x})"

    def needs_sigmoid(self) -> bool:
        return any(name in ("Sigmoid", "Swish") for name, _, _ in self.names)

    def definitions(self) -> list[str]:
        out = []
        for (name, alpha, beta), fn in self.names.items():
            act = Activation(name, alpha, beta)
            params = f" alpha={alpha:g} beta={beta:g}" if name in ("Affine", "LeakyRelu", "ThresholdedRelu",
                                                                     "ScaledTanh", "HardSigmoid", "Elu") else ""
            out.append(f"/* {name}{params} */\nstatic float {fn}(float x)\n{{\n    return {_body(act)};\n}}")
        return out
