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
# rnnf_act_kind by code (include/rnnfast/rnnf.h; the C library's names are compared with these by a test), and a
# Dense stage's activation by its code in .rnnf 1.
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


# ---- version 2: a whole graph (the C executor's rnnf_graph_desc; docs/format.md, "Version 2") ----
GRAPH_MAJOR, GRAPH_MINOR = 2, 2
QUANTIZED_CONSTANTS_MINOR = 1  # 2.1: float32 constants stored as float16, or int8 with per-channel scales
DEFAULT_MINOR = 2  # 2.2: graph inputs with a default (the tensor record's `default` field)
DEFAULT_NONE, DEFAULT_ZEROS, DEFAULT_CONSTANT = 0, 1, 2  # tensor `default`: none, zeros, 2 + constant tensor t
HEADER2 = struct.Struct("<4sHHIIQQ" + "I" * 14 + "IIII" + "I" * 6)  # ... counts, source, producer, reserved: 128
GRAPH = struct.Struct("<" + "I" * 16)  # (first, count) of tensors, nodes, inputs, outputs, syms, dims, checks, subgraphs
TENSOR = struct.Struct("<IIIIIIII")  # dtype, rank, dims_at, alias_of, data blob, default, name_off, name_len
NODE = struct.Struct("<II" + "I" * 12 + "Q")  # op, reserved, name, in, out, iattr, fattr, layers (first, count), 0
SYM = struct.Struct("<IIII")  # input position, axis, name_off, name_len
DIM = struct.Struct("<II")  # first int, instruction count (2 ints each: opcode, operand)
CHECK = struct.Struct("<IIIIII")  # dim a, dim b, node, kind, name_off, name_len
IO = struct.Struct("<IIII")  # name_off, name_len, shape_off, shape_len
LOOP = struct.Struct("<II")  # input position, output position
assert (HEADER2.size, GRAPH.size, TENSOR.size, NODE.size, SYM.size, DIM.size, CHECK.size, IO.size, LOOP.size) == (
    128, 64, 32, 64, 16, 8, 24, 16, 8)
# The tables after the header, in file order, each starting at a multiple of 8: (header count field, record size).
TABLES2 = (("n_graphs", GRAPH.size), ("n_tensors", TENSOR.size), ("n_nodes", NODE.size), ("n_layers", LAYER_SIZE),
           ("n_blobs", BLOB.size), ("n_syms", SYM.size), ("n_dims", DIM.size), ("n_checks", CHECK.size),
           ("n_io", IO.size), ("n_loops", LOOP.size), ("n_ints", 8), ("n_ids", 4), ("n_floats", 4),
           ("strings_size", 1))
# Blob dtypes of version 2 besides 1..3: a graph constant's elements (tensor dtype -> blob dtype)
DTYPE_I64, DTYPE_I32, DTYPE_U8, DTYPE_I8_RAW = 4, 5, 6, 7
DTYPE_NAMES2 = {**DTYPE_NAMES, DTYPE_I64: "int64", DTYPE_I32: "int32", DTYPE_U8: "bool", DTYPE_I8_RAW: "int8 values"}
DTYPE_NUMPY2 = {**DTYPE_NUMPY, DTYPE_I64: "<i8", DTYPE_I32: "<i4", DTYPE_U8: "u1", DTYPE_I8_RAW: "i1"}
# rnnf_dtype (include/rnnfast/rnnf.h) of a graph tensor -> the blob dtype holding a constant of it
TENSOR_BLOB_DTYPE = {0: DTYPE_F32, 1: DTYPE_I64, 2: DTYPE_I32, 3: DTYPE_U8, 4: DTYPE_I8_RAW}
TENSOR_DTYPE_NAMES = {0: "float32", 1: "int64", 2: "int32", 3: "bool", 4: "int8"}
MAX_RANK = 8
# Graphs in a file (the main one and its If/Loop branches, nested): both readers and the C executor recurse
# over the nesting, so a bound on the count bounds their stack depth.
MAX_GRAPHS = 256  # MAX_GRAPHS in src_c/rnnf_graph_file.c
DIM_OPCODES = 10  # RNNF_DIM_CONST .. RNNF_DIM_MOD
DIM_STACK = 32  # RNNF_DIM_STACK (src_c/graph/plan.h)
MAX_NODE_IO = 64  # RNNF_G_MAX_IO

# ---- a version 2 graph in an array container (.npz, .safetensors; docs/format.md, "Graphs in .npz and
# .safetensors"): the same tables as JSON, keyed by the table's name without "n_" (strings_size: "strings"), the
# blobs as named arrays ----
TABLE_KEYS = tuple("strings" if name == "strings_size" else name[2:] for name, _ in TABLES2)
LAYER = struct.Struct(LAYER_HEAD.format + ACTIVATION.format[1:] * 6)  # a whole layer record, activations unpacked
assert LAYER.size == LAYER_SIZE
RECORDS = {"graphs": GRAPH, "tensors": TENSOR, "nodes": NODE, "layers": LAYER, "syms": SYM, "dims": DIM,
           "checks": CHECK, "io": IO, "loops": LOOP}
POOLS = {"ints": "<i8", "ids": "<u4", "floats": "<f4"}
CONTAINER_FORMAT = "rnnfast-graph"
NPZ_STRUCTURE = "__rnnfast_graph__"  # the .npz entry holding the JSON (a 0-d unicode array: no pickle)
SAFETENSORS_STRUCTURE = "rnnfast.graph"  # the safetensors __metadata__ key holding it
