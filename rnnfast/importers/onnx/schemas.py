"""What the loader needs of the ONNX operator schemas, from the ONNX operator spec (onnx.ai/onnx/operators/), so that
loading a model does not import the onnx package for it: the attributes and input/output counts of RNN, GRU and
LSTM in each of their versions, and since which opset each operator rnnfast runs exists. tests/test_onnx_reader.py
checks every entry against onnx.defs. An operator outside this table is looked up in onnx.defs (it runs through
onnx.reference anyway)."""
from __future__ import annotations

from typing import NamedTuple, Optional

from .protos import AttributeProto as A


class RecurrentSchema(NamedTuple):
    attributes: dict  # name -> AttributeProto type
    max_input: int
    max_output: int


# The opsets in which each recurrent operator got a new version.
RECURRENT_VERSIONS = {"RNN": (1, 7, 14, 22), "GRU": (1, 3, 7, 14, 22), "LSTM": (1, 7, 14, 22)}


def recurrent_schema(op_type: str, opset: int) -> Optional[RecurrentSchema]:
    """RNN / GRU / LSTM as defined in `opset` (the latest version not newer than it); None before the first."""
    since = max((v for v in RECURRENT_VERSIONS[op_type] if v <= opset), default=None)
    if since is None:
        return None
    attributes = {"activation_alpha": A.FLOATS, "activation_beta": A.FLOATS, "activations": A.STRINGS,
                  "clip": A.FLOAT, "direction": A.STRING, "hidden_size": A.INT}
    if since < 7:
        attributes["output_sequence"] = A.INT  # dropped in version 7
    if since >= 14:
        attributes["layout"] = A.INT  # new in version 14
    if op_type == "LSTM":
        attributes["input_forget"] = A.INT
    if op_type == "GRU" and since >= 3:
        attributes["linear_before_reset"] = A.INT  # new in GRU-3
    lstm = op_type == "LSTM"
    return RecurrentSchema(attributes, 8 if lstm else 6, 3 if lstm else 2)


# Since which opset each operator exists in the ai.onnx domain (its first version), for the operators rnnfast runs
# in C or in numpy. None of them has been removed since.
FIRST_OPSET = {
    **dict.fromkeys(
        ("Abs", "Add", "And", "ArgMax", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant",
         "Conv", "ConvTranspose", "Div", "Dropout", "Elu", "Equal", "Exp", "Flatten", "GRU", "Gather", "Gemm",
         "GlobalAveragePool", "GlobalMaxPool", "Greater", "HardSigmoid", "Identity", "If", "LSTM", "LeakyRelu",
         "Less", "Log", "LogSoftmax", "Loop", "MatMul", "Max", "MaxPool", "Min", "Mul", "Neg", "Not", "Or", "Pad",
         "Pow", "RNN", "Reciprocal", "ReduceL1", "ReduceL2", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd",
         "ReduceSum", "ReduceSumSquare", "Relu", "Reshape", "Selu", "Shape", "Sigmoid", "Size", "Slice", "Softmax",
         "Softplus", "Softsign", "Split", "Sqrt", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze"), 1),
    "Expand": 8, "Scan": 8, "ConstantOfShape": 9, "Erf": 9, "Where": 9, "Mod": 10, "ThresholdedRelu": 10,
    "GreaterOrEqual": 12, "LessOrEqual": 12, "LayerNormalization": 17, "Gelu": 20,
}


def is_standard_op(op_type: str, opset: int) -> bool:
    """Whether `op_type` is an ai.onnx operator in `opset`."""
    first = FIRST_OPSET.get(op_type)
    if first is not None:
        return opset >= first
    from onnx import defs

    try:
        defs.get_schema(op_type, int(opset))
    except (defs.SchemaError, TypeError, OverflowError):  # OverflowError, TypeError: an opset no C int holds
        return False
    return True
