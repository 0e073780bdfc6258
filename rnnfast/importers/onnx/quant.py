"""com.microsoft.DynamicQuantizeLSTM: what onnxruntime.quantization.quantize_dynamic makes of an LSTM node.

The contrib operator (onnxruntime docs/ContribOperators.md) takes the LSTM inputs X, W, R, B, sequence_lens,
initial_h, initial_c, P followed by W_scale, W_zero_point, R_scale, R_zero_point, and the LSTM attributes of
opset 7 (no layout). Unlike ai.onnx LSTM, W is [num_directions, input_size, 4*hidden] and R is
[num_directions, hidden, 4*hidden] (already transposed for the GEMM), int8 or uint8; scales and zero points are
[num_directions] (per tensor) or [num_directions, 4*hidden] (per output channel).

rnnfast dequantizes the weights once, w = (q - zero_point) * scale, and runs the float LSTM on them. onnxruntime
additionally quantizes the activations on the fly to uint8 (X once per run, h_t-1 at every step, each with a
scale from its own min/max) and multiplies integers; rnnfast keeps X and h in float32. Its results are
therefore those of the float model that the quantized weights represent, and differ from onnxruntime's by that
activation rounding (tests/test_onnx_quant.py bounds the difference). With full-range int8 weights onnxruntime's
AVX2 kernel on CPUs without VNNI also saturates pair sums of u8*s8 products in int16, a CPU-dependent error
rnnfast does not reproduce; quantize_dynamic(reduce_range=True) avoids it.
"""
from __future__ import annotations

import numpy as np

from ...errors import FormatError
from .recurrent import RecurrentNodeSpec
from .schemas import recurrent_schema

MS_DOMAIN = "com.microsoft"
QUANT_INPUTS = ("W_scale", "W_zero_point", "R_scale", "R_zero_point")


def _schema():
    """LSTM-7's attributes (those DynamicQuantizeLSTM has) with the contrib operator's input count."""
    return recurrent_schema("LSTM", 7)._replace(max_input=12)


class QuantizedLstmSpec(RecurrentNodeSpec):
    weight_keys = ("W", "R", "B", "P") + QUANT_INPUTS

    def __init__(self, node, opset, where):
        super().__init__(node, opset, where, schema=_schema(), cell="lstm")
        extra = list(node.input[8:]) + [""] * (12 - max(len(node.input), 8))
        self.inputs.update(zip(QUANT_INPUTS, extra))
        missing = [k for k in QUANT_INPUTS if not self.inputs[k]]
        if missing:
            raise FormatError(f"{where}: DynamicQuantizeLSTM needs inputs {list(QUANT_INPUTS)}; missing {missing}")

    def build_layer(self, W, R, B=None, P=None, W_scale=None, W_zero_point=None, R_scale=None, R_zero_point=None):
        w = self._dequantize("W", W, W_scale, W_zero_point)
        r = self._dequantize("R", R, R_scale, R_zero_point)
        return super().build_layer(np.swapaxes(w, 1, 2), np.swapaxes(r, 1, 2), B, P)

    def dequantized(self, const):
        """(the float LSTM this node is, W, R as ai.onnx LSTM takes them) for the graph IR, the weights dequantized
        as build_layer does; None when `const(name)` has no constant for a weight, scale or zero point."""
        arrays = {k: const(self.inputs[k]) for k in ("W", "R") + QUANT_INPUTS}
        if any(v is None for v in arrays.values()):
            return None
        w, r = (np.swapaxes(self._dequantize(k, arrays[k], arrays[f"{k}_scale"], arrays[f"{k}_zero_point"]), 1, 2)
                for k in ("W", "R"))
        return RecurrentNodeSpec(self.node, 7, self.where, schema=_schema(), cell="lstm"), w, r

    def _dequantize(self, key, q, scale, zero_point):
        """[D, K, 4H] integers -> float32; the scale and zero point broadcast per direction or per column."""
        q, scale, zero_point = np.asarray(q), np.asarray(scale), np.asarray(zero_point)
        if q.dtype not in (np.int8, np.uint8) or q.ndim != 3:
            raise FormatError(f"{self.where}: input {key} must be a 3-D int8 or uint8 tensor, got {q.dtype} "
                              f"{q.shape}")
        if zero_point.dtype != q.dtype:
            raise FormatError(f"{self.where}: {key}_zero_point has dtype {zero_point.dtype}, {key} has {q.dtype}")
        if scale.dtype != np.float32:
            raise FormatError(f"{self.where}: {key}_scale has dtype {scale.dtype}, expected float32")
        D, N = q.shape[0], q.shape[2]
        for name, value in ((f"{key}_scale", scale), (f"{key}_zero_point", zero_point)):
            if value.shape not in ((D,), (D, N)):
                raise FormatError(f"{self.where}: {name} has shape {value.shape}; expected ({D},) per tensor or "
                                  f"({D}, {N}) per channel (W is [num_directions, input, 4*hidden])")
        expand = lambda v: v[:, None, None] if v.ndim == 1 else v[:, None, :]
        return ((q.astype(np.int32) - expand(zero_point).astype(np.int32)) * expand(scale)).astype(np.float32)
