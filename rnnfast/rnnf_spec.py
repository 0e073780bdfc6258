"""Constants and record layouts of the .rnnf format (docs/format.md), shared by its reader and writer.

The enum codes are the file's, fixed by the spec; the C library uses the same numbers (rnnf.h), which
tests/test_rnnf_format.py checks against rnnfast.engine.
"""
from __future__ import annotations

import struct

MAGIC = b"RNNF"
VERSION_MAJOR, VERSION_MINOR = 1, 1  # 1.1: float16 and int8 weight blobs
ALIGN = 64
NONE = 0xFFFFFFFF

HEADER = struct.Struct("<4sHHIIQQIIIIIIQ")  # magic ... reserved: 64 bytes
STAGE = struct.Struct("<IIIIIIII")  # kind, flags, name_off, name_len, arg0, arg1, arg2, reserved: 32 bytes
LAYER_HEAD = struct.Struct("<IIIIIIdIIIIIIII")  # cell ... w_hr: 64 bytes
ACTIVATION = struct.Struct("<IIdd")  # kind, reserved, alpha, beta: 24 bytes
LAYER_SIZE = LAYER_HEAD.size + 6 * ACTIVATION.size  # 208
BLOB = struct.Struct("<QQII4III")  # offset, nbytes, dtype, ndim, dims[4], scale_blob, reserved: 48 bytes
assert (HEADER.size, STAGE.size, LAYER_SIZE, BLOB.size) == (64, 32, 208, 48)

HEADER_BATCH_FIRST = 1

STAGE_EMBEDDING, STAGE_RECURRENT, STAGE_DENSE = 1, 2, 3
STAGE_KINDS = {STAGE_EMBEDDING: "Embedding", STAGE_RECURRENT: "Recurrent", STAGE_DENSE: "Dense"}
EMBEDDING_MASK_ZERO = 1
RECURRENT_RETURN_SEQUENCES, RECURRENT_MASK_ZERO_OUTPUT = 1, 2

LAYER_INPUT_FORGET, LAYER_LINEAR_BEFORE_RESET, LAYER_HAS_CLIP = 1, 2, 4

CELLS = ("rnn", "gru", "lstm")
DIRECTIONS = ("forward", "reverse", "bidirectional")
ACTIVATIONS = ("Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh", "HardSigmoid",
               "Elu", "Softsign", "Softplus", "Selu", "Swish", "Gelu", "Exp")
DENSE_ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "softmax")

DTYPE_F32, DTYPE_F16, DTYPE_I8 = 1, 2, 3
DTYPE_NAMES = {DTYPE_F32: "float32", DTYPE_F16: "float16", DTYPE_I8: "int8"}
DTYPE_CODES = {name: code for code, name in DTYPE_NAMES.items()}
DTYPE_NUMPY = {DTYPE_F32: "<f4", DTYPE_F16: "<f2", DTYPE_I8: "i1"}
QUANTIZED_MINOR = 1  # the first minor version with float16 / int8 blobs


def align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN
