"""The ONNX messages the importer reads (onnx/onnx.proto), decoded by wire.py without the onnx or protobuf packages:
importing onnx costs ~22 MB of RSS that a model the C executor runs never needs.

The classes carry onnx's field names (node.op_type, a.ints, tensor.dims, d.HasField("dim_value"), ...) so the
importer reads them as it would read onnx's objects; fields rnnfast does not use (doc strings, metadata, training
info, functions, sparse tensors) are skipped as unknown. `to_onnx` gives the onnx package's object for one of these,
for the paths that need onnx itself (onnx.reference, its shape inference)."""
from __future__ import annotations

from ...errors import FormatError
from .wire import Field, Message, WireError, declare, parse, seal


class ModelProto(Message):
    __slots__ = ("ir_version", "opset_import", "graph")


class OperatorSetIdProto(Message):
    __slots__ = ("domain", "version")


class GraphProto(Message):
    __slots__ = ("node", "name", "initializer", "input", "output", "value_info")


class NodeProto(Message):
    __slots__ = ("input", "output", "name", "op_type", "domain", "attribute", "_raw", "_folder")
    KEEP_RAW = True  # onnx.reference and onnx shape inference take the node itself (to_onnx)


class AttributeProto(Message):
    __slots__ = ("name", "ref_attr_name", "type", "f", "i", "s", "t", "g", "tp", "floats", "ints", "strings",
                 "tensors", "graphs", "type_protos")
    # AttributeProto.AttributeType
    UNDEFINED, FLOAT, INT, STRING, TENSOR, GRAPH, FLOATS, INTS, STRINGS, TENSORS, GRAPHS = range(11)
    SPARSE_TENSOR, SPARSE_TENSORS, TYPE_PROTO, TYPE_PROTOS = 11, 12, 13, 14


ATTRIBUTE_TYPE_NAMES = {getattr(AttributeProto, n): n for n in (
    "UNDEFINED", "FLOAT", "INT", "STRING", "TENSOR", "GRAPH", "FLOATS", "INTS", "STRINGS", "TENSORS", "GRAPHS",
    "SPARSE_TENSOR", "SPARSE_TENSORS", "TYPE_PROTO", "TYPE_PROTOS")}


class TensorProto(Message):
    __slots__ = ("dims", "data_type", "segment", "float_data", "int32_data", "string_data", "int64_data", "name",
                 "raw_data", "external_data", "data_location", "double_data", "uint64_data", "_raw", "_folder",
                 "_array")
    KEEP_RAW = True  # external data is found beside the model; element types numpy lacks go through onnx (tensors.py)
    # _array: the decoded array, set by tensors.to_array
    DEFAULT, EXTERNAL = 0, 1  # TensorProto.DataLocation


class Segment(Message):
    __slots__ = ("begin", "end")


class StringStringEntryProto(Message):
    __slots__ = ("key", "value")


class ValueInfoProto(Message):
    __slots__ = ("name", "type")


class TypeProto(Message):
    __slots__ = ("tensor_type", "sequence_type", "map_type", "optional_type", "sparse_tensor_type", "opaque_type",
                 "denotation")


class TensorTypeProto(Message):  # TypeProto.Tensor (and TypeProto.SparseTensor, which has the same fields)
    __slots__ = ("elem_type", "shape")


class SequenceTypeProto(Message):  # TypeProto.Sequence and TypeProto.Optional
    __slots__ = ("elem_type",)


class MapTypeProto(Message):  # TypeProto.Map
    __slots__ = ("key_type", "value_type")


class OpaqueTypeProto(Message):  # TypeProto.Opaque
    __slots__ = ("domain", "name")


class TensorShapeProto(Message):
    __slots__ = ("dim",)


class Dimension(Message):  # TensorShapeProto.Dimension
    __slots__ = ("dim_value", "dim_param", "denotation")


def _message(name, cls, repeated=False):
    return Field(name, "message", repeated, cls)


declare(ModelProto, {1: Field("ir_version", "int64"), 8: _message("opset_import", OperatorSetIdProto, True),
                     7: _message("graph", GraphProto)})
declare(OperatorSetIdProto, {1: Field("domain", "string"), 2: Field("version", "int64")})
declare(GraphProto, {1: _message("node", NodeProto, True), 2: Field("name", "string"),
                     5: _message("initializer", TensorProto, True), 11: _message("input", ValueInfoProto, True),
                     12: _message("output", ValueInfoProto, True), 13: _message("value_info", ValueInfoProto, True)})
declare(NodeProto, {1: Field("input", "string", True), 2: Field("output", "string", True), 3: Field("name", "string"),
                    4: Field("op_type", "string"), 7: Field("domain", "string"),
                    5: _message("attribute", AttributeProto, True)})
declare(AttributeProto, {
    1: Field("name", "string"), 21: Field("ref_attr_name", "string"),
    20: Field("type", "enum", values=frozenset(ATTRIBUTE_TYPE_NAMES)),
    2: Field("f", "float"), 3: Field("i", "int64"), 4: Field("s", "bytes"), 5: _message("t", TensorProto),
    6: _message("g", GraphProto), 14: _message("tp", TypeProto), 7: Field("floats", "float", True),
    8: Field("ints", "int64", True), 9: Field("strings", "bytes", True), 10: _message("tensors", TensorProto, True),
    11: _message("graphs", GraphProto, True), 15: _message("type_protos", TypeProto, True)})
declare(TensorProto, {
    1: Field("dims", "int64", True), 2: Field("data_type", "int32"), 3: _message("segment", Segment),
    4: Field("float_data", "float", True, array=True), 5: Field("int32_data", "int32", True, array=True),
    6: Field("string_data", "bytes", True), 7: Field("int64_data", "int64", True, array=True),
    8: Field("name", "string"), 9: Field("raw_data", "view"),
    13: _message("external_data", StringStringEntryProto, True),
    14: Field("data_location", "enum", values=frozenset((TensorProto.DEFAULT, TensorProto.EXTERNAL))),
    10: Field("double_data", "double", True, array=True), 11: Field("uint64_data", "uint64", True, array=True)})
declare(Segment, {1: Field("begin", "int64"), 2: Field("end", "int64")})
declare(StringStringEntryProto, {1: Field("key", "string"), 2: Field("value", "string")})
declare(ValueInfoProto, {1: Field("name", "string"), 2: _message("type", TypeProto)})
declare(TypeProto, {1: _message("tensor_type", TensorTypeProto), 4: _message("sequence_type", SequenceTypeProto),
                    5: _message("map_type", MapTypeProto), 9: _message("optional_type", SequenceTypeProto),
                    8: _message("sparse_tensor_type", TensorTypeProto), 7: _message("opaque_type", OpaqueTypeProto),
                    6: Field("denotation", "string")},
        oneofs=[(1, 4, 5, 9, 8, 7)])
declare(TensorTypeProto, {1: Field("elem_type", "int32"), 2: _message("shape", TensorShapeProto)})
declare(SequenceTypeProto, {1: _message("elem_type", TypeProto)})
declare(MapTypeProto, {1: Field("key_type", "int32"), 2: _message("value_type", TypeProto)})
declare(OpaqueTypeProto, {1: Field("domain", "string"), 2: Field("name", "string")})
declare(TensorShapeProto, {1: _message("dim", Dimension, True)})
declare(Dimension, {1: Field("dim_value", "int64"), 2: Field("dim_param", "string"), 3: Field("denotation", "string")},
        oneofs=[(1, 2)])
seal([ModelProto, OperatorSetIdProto, GraphProto, NodeProto, AttributeProto, TensorProto, Segment,
      StringStringEntryProto, ValueInfoProto, TypeProto, TensorTypeProto, SequenceTypeProto, MapTypeProto,
      OpaqueTypeProto, TensorShapeProto, Dimension])


def read_model(data: bytes, name: str, folder=None) -> ModelProto:
    """The ModelProto in `data`; `folder` is where its external data files are (None: loaded from bytes)."""
    try:
        return parse(ModelProto, data, folder)
    except WireError as e:
        raise FormatError(f"{name}: not a readable ONNX model (truncated or corrupt?): {e}") from None


def attribute_value(a: AttributeProto, where: str):
    """The value of an attribute by its type, as onnx.helper.get_attribute_value gives it (bytes for strings, lists
    for repeated values, the message for a tensor, graph or type); None for an attribute without a type."""
    t = a.type
    if a.ref_attr_name:
        raise FormatError(f"{where}: attribute {a.name!r} refers to the function attribute {a.ref_attr_name!r}, "
                          f"which has no value outside a function")
    if t in _SINGLE:
        return getattr(a, _SINGLE[t])
    if t in _REPEATED:
        return list(getattr(a, _REPEATED[t]))
    if t == AttributeProto.UNDEFINED:
        return None
    raise FormatError(f"{where}: attribute {a.name!r} is a {ATTRIBUTE_TYPE_NAMES[t]}, which rnnfast does not read")


_SINGLE = {AttributeProto.FLOAT: "f", AttributeProto.INT: "i", AttributeProto.STRING: "s", AttributeProto.TENSOR: "t",
           AttributeProto.GRAPH: "g", AttributeProto.TYPE_PROTO: "tp"}
_REPEATED = {AttributeProto.FLOATS: "floats", AttributeProto.INTS: "ints", AttributeProto.STRINGS: "strings",
             AttributeProto.TENSORS: "tensors", AttributeProto.GRAPHS: "graphs", AttributeProto.TYPE_PROTOS: "type_protos"}


def to_onnx(message):
    """The onnx package's object for a NodeProto or TensorProto read here, parsed by onnx from the same bytes."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        return getattr(onnx, type(message).__name__).FromString(bytes(message._raw))
    except (DecodeError, ValueError, RuntimeError) as e:
        raise FormatError(f"onnx cannot read this {type(message).__name__} ({type(e).__name__}: {e})") from None
