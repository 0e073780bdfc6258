"""The ONNX importer: lower.py turns a ModelProto into the graph IR that the C executor runs (rnnfast/graph/);
recurrent.py reads RNN/GRU/LSTM nodes into canonical layers; graph.py is the node-by-node path for graphs the executor
cannot take yet, with chain.py / states.py (a chain of recurrent nodes as one engine call), pipeline.py (the portable
chain the exporters write), ops.py (numpy operators) and quant.py (onnxruntime's quantized LSTM)."""
from .graph import OnnxGraph, load_onnx
from .recurrent import OP_CELLS, RecurrentNodeSpec

__all__ = ["OnnxGraph", "load_onnx", "OP_CELLS", "RecurrentNodeSpec"]
