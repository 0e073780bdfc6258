"""ONNX RNN / GRU / LSTM nodes -> canonical RecurrentLayers, with onnxruntime's attribute semantics.

shared/docs/SEMANTICS.md section 1.1 is the spec: every opset (1, 3, 7, 14, 22), activations with alpha/beta
consumed only by functions that take them (as onnxruntime does), onnxruntime's defaults, clip, input_forget,
linear_before_reset, layout 0/1, GRU opset 1's "foward" default. What is not understood is refused by name.

Opset 1/3's `output_sequence` only says whether Y is optional; rnnfast produces Y whenever the node names it,
so both values are accepted. float16 and double weights are converted to float32 and computed in float32.
"""
from __future__ import annotations

import warnings

import numpy as np

from ...errors import FormatError
from ...layers import (N_ACTIVATIONS, N_GATES, ONNX_RECURRENT_ACTIVATIONS, Activation, RecurrentLayer,
                       default_activations)
from .._gates import split_onnx_bias
from .protos import ATTRIBUTE_TYPE_NAMES, attribute_value
from .schemas import recurrent_schema

OP_CELLS = {"RNN": "rnn", "GRU": "gru", "LSTM": "lstm"}
# onnxruntime's defaults when alpha / beta are absent (SEMANTICS.md 1.1, checked in tests against onnxruntime).
DEFAULT_ALPHA = {"LeakyRelu": 0.01, "HardSigmoid": 0.2, "Elu": 1.0, "Affine": 0.0, "ScaledTanh": 0.0,
                 "ThresholdedRelu": 0.0}
DEFAULT_BETA = {"HardSigmoid": 0.5, "Affine": 0.0, "ScaledTanh": 0.0}
CANONICAL_NAMES = {name.lower(): name for name in ONNX_RECURRENT_ACTIVATIONS}
INPUT_NAMES = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")


class RecurrentNodeSpec:
    """Everything about one recurrent node that does not depend on its weights' values."""

    weight_keys = ("W", "R", "B", "P")  # the inputs build_layer takes, in order

    def __init__(self, node, opset: int, where: str, schema=None, cell=None):
        """`schema` (a schemas.RecurrentSchema) and `cell` are given for operators outside the ai.onnx domain
        (quant.py)."""
        self.node, self.where = node, where
        self.cell = cell or OP_CELLS[node.op_type]
        attrs = {a.name: a for a in node.attribute}
        schema = schema or _schema(node.op_type, opset, where)
        allowed = schema.attributes
        if len(node.input) > schema.max_input or len(node.output) > schema.max_output:
            raise FormatError(f"{where}: {len(node.input)} inputs and {len(node.output)} outputs; {node.op_type} "
                              f"takes at most {schema.max_input} and {schema.max_output}")
        for name, attr in attrs.items():
            if name not in allowed:
                raise FormatError(f"{where}: attribute {name!r} is not part of {node.op_type} (opset {opset}); "
                                  f"known: {sorted(allowed)}")
            if attr.type != allowed[name]:
                raise FormatError(f"{where}: attribute {name!r} has type {ATTRIBUTE_TYPE_NAMES[attr.type]}, expected "
                                  f"{ATTRIBUTE_TYPE_NAMES[allowed[name]]}")
        get = lambda name, default=None: _attr_value(where, attrs[name]) if name in attrs else default
        if get("output_sequence", 0) not in (0, 1):
            raise FormatError(f"{where}: output_sequence {get('output_sequence')}; expected 0 or 1")
        direction = get("direction", "foward" if self.cell == "gru" and opset < 3 else "forward")
        self.direction = "forward" if direction == "foward" else direction  # GRU-1's default, a typo in the spec
        if self.direction not in ("forward", "reverse", "bidirectional"):
            raise FormatError(f"{where}: direction {direction!r}; expected forward, reverse or bidirectional")
        self.n_dirs = 2 if self.direction == "bidirectional" else 1
        self.hidden_size = get("hidden_size")
        if self.hidden_size is not None and self.hidden_size < 1:
            raise FormatError(f"{where}: hidden_size {self.hidden_size}; expected a positive integer")
        self.layout = get("layout", 0)
        if self.layout not in (0, 1):
            raise FormatError(f"{where}: layout {self.layout}; expected 0 or 1")
        self.clip = get("clip")
        if self.clip is not None and not self.clip > 0:
            raise FormatError(f"{where}: clip must be positive, got {self.clip}")
        self.input_forget = bool(get("input_forget", 0))
        self.linear_before_reset = bool(get("linear_before_reset", 0))
        self.activations = self._activations(get("activations"), get("activation_alpha"), get("activation_beta"))
        self.inputs = {name: (node.input[i] if i < len(node.input) else "") for i, name in enumerate(INPUT_NAMES)}
        if not self.inputs["X"] or not self.inputs["W"] or not self.inputs["R"]:
            raise FormatError(f"{where}: inputs X, W and R are required, got {list(node.input)}")
        if self.cell != "lstm" and (self.inputs["initial_c"] or self.inputs["P"]):
            raise FormatError(f"{where}: {node.op_type} takes no initial_c or P input")

    def _activations(self, names, alphas, betas):
        n = N_ACTIVATIONS[self.cell]
        if names is None:
            names = [a.name for _ in range(self.n_dirs) for a in default_activations(self.cell)]
        if self.cell == "rnn" and self.n_dirs == 1 and len(names) == 2:
            names = names[:1]  # the RNN op's documented default lists Tanh twice; one direction uses the first
        if len(names) != n * self.n_dirs:
            raise FormatError(f"{self.where}: {len(names)} activations {names}; {self.node.op_type} with "
                              f"{self.n_dirs} direction(s) needs {n * self.n_dirs}")
        alphas, betas = list(alphas or []), list(betas or [])
        acts = []
        for name in names:
            canonical = CANONICAL_NAMES.get(name.lower())
            if canonical is None:
                raise FormatError(f"{self.where}: unknown activation {name!r}; expected one of "
                                  f"{sorted(CANONICAL_NAMES.values())}")
            # onnxruntime hands a value only to a function that takes one, in order.
            alpha = alphas.pop(0) if canonical in DEFAULT_ALPHA and alphas else DEFAULT_ALPHA.get(canonical, 0.0)
            beta = betas.pop(0) if canonical in DEFAULT_BETA and betas else DEFAULT_BETA.get(canonical, 0.0)
            acts.append(Activation(canonical, alpha, beta))
        if alphas or betas:  # onnxruntime ignores them too; say so rather than drop them silently
            warnings.warn(f"{self.where}: activation_alpha {alphas} / activation_beta {betas} left over: no "
                          f"activation in {names} takes them, so they are ignored (as onnxruntime does)",
                          stacklevel=2)
        return tuple(tuple(acts[d * n:(d + 1) * n]) for d in range(self.n_dirs))

    def build_layer(self, W, R, B=None, P=None) -> RecurrentLayer:
        """The canonical layer from the node's weight tensors (any float dtype; computed in float32)."""
        G, D = N_GATES[self.cell], self.n_dirs
        W, R = _float_tensor(self.where, "W", W), _float_tensor(self.where, "R", R)
        if W.ndim != 3 or R.ndim != 3:
            raise FormatError(f"{self.where}: W and R must be 3-D, got {W.shape} and {R.shape}")
        H = self.hidden_size if self.hidden_size is not None else R.shape[-1]
        I = W.shape[2]
        expect = {"W": (D, G * H, I), "R": (D, G * H, H), "B": (D, 2 * G * H), "P": (D, 3 * H)}
        tensors = {"W": W, "R": R, "B": B, "P": P}
        for key, value in tensors.items():
            if value is not None:
                value = tensors[key] = _float_tensor(self.where, key, value)
                if value.shape != expect[key]:
                    raise FormatError(f"{self.where}: input {key} has shape {value.shape}, expected {expect[key]} "
                                      f"(hidden_size {H}, {D} direction(s), {G} gate(s))")
        if tensors["B"] is None:
            b_ih = b_hh = np.zeros((D, G * H), np.float32)
        else:
            b_ih, b_hh = split_onnx_bias(self.cell, tensors["B"], H)
        return RecurrentLayer(
            cell=self.cell, direction=self.direction, hidden_size=H, input_size=I, w_ih=W, w_hh=R, b_ih=b_ih,
            b_hh=b_hh, activations=self.activations, clip=self.clip, input_forget=self.input_forget,
            linear_before_reset=self.linear_before_reset, peepholes=tensors["P"], name=self.node.name,
            source=self.where)


def _float_tensor(where, key, value):
    value = np.asarray(value)
    if not np.issubdtype(value.dtype, np.floating):
        raise FormatError(f"{where}: input {key} has dtype {value.dtype}, expected float16, float or double")
    return value.astype(np.float32, copy=False)  # float32 weights are used as they are (the file's bytes): no copy


def _schema(op_type, opset, where):
    """The operator as defined in this opset (attributes differ: output_sequence <7, layout >=14, ...)."""
    schema = recurrent_schema(op_type, opset)
    if schema is None:
        raise FormatError(f"{where}: {op_type} does not exist in opset {opset}")
    return schema


def _attr_value(where, attr):
    """An attribute's value with strings decoded; undecodable text is a corrupt file, reported as such."""
    value = attribute_value(attr, where)
    try:
        if isinstance(value, bytes):
            return value.decode()
        if isinstance(value, list) and value and isinstance(value[0], bytes):
            return [v.decode() for v in value]
    except UnicodeDecodeError:
        raise FormatError(f"{where}: attribute {attr.name!r} is not valid UTF-8 text (corrupt file?)") from None
    return value
