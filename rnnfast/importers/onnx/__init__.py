"""The ONNX importer: wire.py and protos.py read the file (the protobuf wire format and the ONNX messages, without the
onnx package), tensors.py its tensors as arrays, schemas.py what it needs of the operator schemas; lower.py turns the
ModelProto into the graph IR that the C executor runs (rnnfast/graph/); recurrent.py reads RNN/GRU/LSTM nodes into
canonical layers; graph.py is the node-by-node path for graphs the executor cannot take yet, with ops.py (numpy
operators) and quant.py (onnxruntime's quantized LSTM); pipeline.py reads the portable chain the exporters write
from the analysed graph IR (rnnfast/graph/to_pipeline.py). A chain of recurrent nodes is
one stack node of the graph IR (rnnfast/graph/stack.py)."""
from .graph import OnnxGraph, load_onnx
from .recurrent import OP_CELLS, RecurrentNodeSpec

__all__ = ["OnnxGraph", "load_onnx", "OP_CELLS", "RecurrentNodeSpec"]
