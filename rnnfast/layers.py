"""The canonical recurrent layer every importer produces and every engine (C, reference) consumes.

Canonical form is ONNX's: LSTM gates i,o,f,c; GRU z,r,h; weights laid out [n_dirs, n_gates*hidden, in].
Importers build these only through ``rnnfast.importers._gates`` so gate orders live in one place.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .errors import FormatError

N_GATES = {"rnn": 1, "gru": 3, "lstm": 4}
N_ACTIVATIONS = {"rnn": 1, "gru": 2, "lstm": 3}
DIRECTIONS = ("forward", "reverse", "bidirectional")

# Activation names follow ONNX spelling; the Keras-only ones extend the set.
# Each entry: does the function read alpha, beta?
ACTIVATION_PARAMS = {
    "Relu": (False, False),
    "Tanh": (False, False),
    "Sigmoid": (False, False),
    "Affine": (True, True),  # alpha*x + beta
    "LeakyRelu": (True, False),  # x if x >= 0 else alpha*x
    "ThresholdedRelu": (True, False),  # x if x > alpha else 0
    "ScaledTanh": (True, True),  # alpha*tanh(beta*x)
    "HardSigmoid": (True, True),  # clip(alpha*x + beta, 0, 1)
    "Elu": (True, False),  # x if x >= 0 else alpha*(exp(x)-1)
    "Softsign": (False, False),  # x/(1+|x|)
    "Softplus": (False, False),  # log(1+exp(x))
    # Keras activations with no ONNX RNN spelling:
    "Selu": (False, False),  # 1.0507009873554805*(x if x>0 else 1.6732632423543772*(exp(x)-1))
    "Swish": (False, False),  # x*sigmoid(x)
    "Gelu": (False, False),  # 0.5*x*(1+erf(x/sqrt(2)))  (Keras default approximate=False)
    "Exp": (False, False),  # exp(x)
}
# The names the ONNX RNN / GRU / LSTM operators take (opset 7+): all but the Keras-only ones above. The ONNX importer
# reads these; the ONNX exporter writes a layer with any other as a Scan.
ONNX_RECURRENT_ACTIVATIONS = tuple(n for n in ACTIVATION_PARAMS if n not in ("Selu", "Swish", "Gelu", "Exp"))


@dataclass(frozen=True)
class Activation:
    name: str
    alpha: float = 0.0
    beta: float = 0.0

    def __post_init__(self):
        if self.name not in ACTIVATION_PARAMS:
            raise FormatError(
                f"unknown activation {self.name!r}; expected one of {sorted(ACTIVATION_PARAMS)}"
            )


SIGMOID = Activation("Sigmoid")
TANH = Activation("Tanh")


def default_activations(cell: str) -> tuple[Activation, ...]:
    return {"rnn": (TANH,), "gru": (SIGMOID, TANH), "lstm": (SIGMOID, TANH, TANH)}[cell]


@dataclass
class RecurrentLayer:
    """One RNN/GRU/LSTM layer (one or two directions) in canonical ONNX form, float32 weights.

    Shapes (D = n_dirs, G = n_gates, H = hidden_size, P = output_size = proj_size or H):
      w_ih [D, G*H, input_size]; w_hh [D, G*H, P]; b_ih, b_hh [D, G*H];
      peepholes [D, 3*H] (order i,o,f) or None; w_hr [D, P, H] or None (LSTM projection).
    weight_dtype: how w_ih, w_hh and w_hr are stored: "float32", "float16" or "int8" (rnnfast/quantize.py). A
    quantized layer holds the stored values in `qweights` ({key: (values, int8 row scales or None)}) and the
    float32 weights they stand for in w_ih / w_hh / w_hr; a layer made with weight_dtype and no qweights
    quantizes its float32 weights; with qweights, the float ones are derived from them (and may be None).
    activations: per direction a tuple of 1 (rnn), 2 (gru: f,g) or 3 (lstm: f,g,h) Activation.
    """

    cell: str
    direction: str
    hidden_size: int
    input_size: int
    w_ih: np.ndarray
    w_hh: np.ndarray
    b_ih: np.ndarray
    b_hh: np.ndarray
    activations: tuple = ()
    clip: Optional[float] = None
    input_forget: bool = False
    linear_before_reset: bool = False
    peepholes: Optional[np.ndarray] = None
    w_hr: Optional[np.ndarray] = None
    name: str = ""
    source: str = field(default="", repr=False)  # for error messages: file and node/layer
    weight_dtype: str = "float32"
    qweights: Optional[dict] = field(default=None, repr=False)

    def with_weight_dtype(self, weight_dtype: str) -> "RecurrentLayer":
        """A copy storing its weights in weight_dtype; quantizing an already quantized layer is refused (its
        float32 weights are gone), asking for the dtype it already has returns it unchanged."""
        import dataclasses

        from .quantize import check_weight_dtype

        weight_dtype = check_weight_dtype(weight_dtype, self.source or self.name)
        if weight_dtype == self.weight_dtype:
            return self
        if self.weight_dtype != "float32":
            raise ValueError(f"{self.source or self.name or 'recurrent layer'}: weights are already stored as "
                             f"{self.weight_dtype}; quantize the float32 model instead")
        return dataclasses.replace(self, weight_dtype=weight_dtype, qweights=None)

    @property
    def n_dirs(self) -> int:
        return 2 if self.direction == "bidirectional" else 1

    @property
    def n_gates(self) -> int:
        return N_GATES[self.cell]

    @property
    def proj_size(self) -> int:
        return 0 if self.w_hr is None else int(self.w_hr.shape[1])

    @property
    def output_size(self) -> int:
        return self.proj_size or self.hidden_size

    def __post_init__(self):
        where = self.source or self.name or "recurrent layer"
        if self.cell not in N_GATES:
            raise FormatError(f"{where}: unknown cell {self.cell!r}; expected rnn, gru or lstm")
        if self.direction not in DIRECTIONS:
            raise FormatError(f"{where}: direction {self.direction!r}; expected one of {DIRECTIONS}")
        if not self.activations:
            self.activations = tuple(default_activations(self.cell) for _ in range(self.n_dirs))
        self.activations = tuple(tuple(a) for a in self.activations)
        if len(self.activations) != self.n_dirs or any(
            len(a) != N_ACTIVATIONS[self.cell] for a in self.activations
        ):
            raise FormatError(
                f"{where}: {self.cell} needs {N_ACTIVATIONS[self.cell]} activations per direction "
                f"for {self.n_dirs} direction(s), got {self.activations}"
            )
        D, GH, H = self.n_dirs, self.n_gates * self.hidden_size, self.hidden_size
        self._quantize(where)
        if self.w_hr is not None:
            if self.cell != "lstm":
                raise FormatError(f"{where}: projection (w_hr) is only defined for LSTM")
            self.w_hr = self._f32("w_hr", self.w_hr, (D, self.w_hr.shape[1] if self.w_hr.ndim == 3 else -1, H))
        P = self.output_size
        self.w_ih = self._f32("w_ih", self.w_ih, (D, GH, self.input_size))
        self.w_hh = self._f32("w_hh", self.w_hh, (D, GH, P))
        self.b_ih = self._f32("b_ih", self.b_ih, (D, GH))
        self.b_hh = self._f32("b_hh", self.b_hh, (D, GH))
        if self.peepholes is not None:
            if self.cell != "lstm":
                raise FormatError(f"{where}: peepholes are only defined for LSTM")
            self.peepholes = self._f32("peepholes", self.peepholes, (D, 3 * H))
        if self.clip is not None:
            self.clip = float(self.clip)
            if not self.clip > 0:
                raise FormatError(f"{where}: clip must be > 0, got {self.clip}")
        if self.input_forget and self.cell != "lstm":
            raise FormatError(f"{where}: input_forget is only defined for LSTM")
        if self.linear_before_reset and self.cell != "gru":
            raise FormatError(f"{where}: linear_before_reset is only defined for GRU")

    def _quantize(self, where):
        from .quantize import QUANTIZED_KEYS, WEIGHT_DTYPES, dequantize, quantize

        if self.weight_dtype not in WEIGHT_DTYPES:
            raise FormatError(f"{where}: weight_dtype {self.weight_dtype!r}; expected one of {WEIGHT_DTYPES}")
        if self.weight_dtype == "float32":
            self.qweights = None
            return
        made_here = self.qweights is None
        if made_here:
            self.qweights = {k: quantize(getattr(self, k), self.weight_dtype, f"{where}: {k}")
                             for k in QUANTIZED_KEYS if getattr(self, k) is not None}
        want = np.int8 if self.weight_dtype == "int8" else np.float16
        if set(self.qweights) - set(QUANTIZED_KEYS) or not {"w_ih", "w_hh"} <= set(self.qweights):
            raise FormatError(f"{where}: qweights has keys {sorted(self.qweights)}, expected w_ih, w_hh "
                              f"(and w_hr with a projection)")
        for k, (q, scale) in self.qweights.items():
            q = np.asarray(q)
            if q.dtype != want or q.ndim != 3:
                raise FormatError(f"{where}: stored {k} is {q.dtype} {q.shape}, expected {np.dtype(want)} "
                                  f"[n_dirs, rows, columns]")
            if want == np.int8:
                if scale is None or np.shape(scale) != q.shape[:2] or not np.issubdtype(np.asarray(scale).dtype,
                                                                                        np.floating):
                    raise FormatError(f"{where}: {k} scales have shape {np.shape(scale)}, expected {q.shape[:2]}")
                scale = np.asarray(scale)
                if not np.all(np.isfinite(scale)):
                    raise FormatError(f"{where}: {k} scales are not all finite")
                scale = np.ascontiguousarray(scale, np.float32)
            self.qweights[k] = (np.ascontiguousarray(q), scale)
            weights, given = dequantize(q, scale), getattr(self, k)
            # dataclasses.replace(layer, w_hh=new) on a quantized layer must not silently keep the old weights.
            if not made_here and given is not None and not (np.shape(given) == weights.shape and np.array_equal(given, weights)):
                raise FormatError(f"{where}: {k} differs from its stored {self.weight_dtype} values; to change the "
                                  f"weights, make the layer with weight_dtype='float32' and quantize it again")
            setattr(self, k, weights)
        if "w_hr" not in self.qweights:
            self.w_hr = None

    def _f32(self, key, arr, shape):
        where = self.source or self.name or "recurrent layer"
        arr = np.asarray(arr)
        if arr.shape != tuple(shape) or -1 in shape:
            raise FormatError(f"{where}: {key} has shape {arr.shape}, expected {tuple(shape)}")
        if not np.issubdtype(arr.dtype, np.floating):
            raise FormatError(f"{where}: {key} has dtype {arr.dtype}, expected a float type")
        return np.ascontiguousarray(arr, dtype=np.float32)
