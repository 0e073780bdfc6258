"""An ONNX model as a Pipeline, read from its analysed graph IR by graph/to_pipeline.py.

A model the C executor takes has that graph at hand (OnnxGraph.compiled). One it cannot take is lowered and
analysed again here, without the lowering to C, so what only the C lowering refuses (float64 and float16 tensors:
a pipeline computes in float32) still converts; com.microsoft.DynamicQuantizeLSTM, which the IR does not hold, is
read as the ai.onnx LSTM on its dequantized weights, which is what rnnfast runs for it (quant.py). Anything the
analysis refuses is refused by the node it names."""
from __future__ import annotations

import copy
import re

from ...errors import FormatError
from ...graph.to_pipeline import graph_to_pipeline
from ...pipeline import Pipeline
from .quant import QuantizedLstmSpec


def onnx_to_pipeline(graph) -> Pipeline:
    """graph: an OnnxGraph or CompiledOnnxGraph (importers/onnx/graph.py)."""
    if graph.compiled is not None:
        return graph_to_pipeline(graph.compiled.graph, graph.name)
    from ...graph.analysis import analyse
    from ...graph.infer import Unfit
    from ...graph.ir import Value
    from .lower import lower_model

    proto = getattr(graph, "proto", None)
    if proto is None:
        _refuse(graph.name, graph.unfit_reason)
    proto, weights = _quantized_as_float(proto, graph)
    try:
        ir, opset = lower_model(proto, graph.name)
        for name, w in weights.items():
            ir.values[name] = Value(name, w.dtype, tuple(w.shape), const=w)
        analyse(ir, opset)
    except Unfit as e:
        _refuse(graph.name, str(e))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, ArithmeticError, RecursionError) as e:
        if isinstance(e, FormatError):
            raise
        _refuse(graph.name, graph.unfit_reason)  # a form the analysis does not expect: compile_onnx said what
    return graph_to_pipeline(ir, graph.name, opset)


def _quantized_as_float(proto, graph):
    """(proto with each DynamicQuantizeLSTM the node-by-node path dequantized as an ai.onnx LSTM reading inputs X..P,
    {W or R name: its float32 weights as that LSTM reads them}). The node's attributes are LSTM-7's (quant.py). A
    node whose W or R another node also reads is left as it is (the lowering then refuses it by name)."""
    quantized = {id(step.spec.node): step for kind, step in graph.steps
                 if kind == "recurrent" and isinstance(step.spec, QuantizedLstmSpec) and step.layer is not None}
    if not quantized:
        return proto, {}
    nodes, weights = [], {}
    elsewhere = {n for node in proto.graph.node if id(node) not in quantized for n in node.input}
    for node in proto.graph.node:
        step = quantized.get(id(node))
        if step is not None and not {step.spec.inputs["W"], step.spec.inputs["R"]} & elsewhere:
            node = copy.copy(node)
            node.domain, node.op_type, node.input = "", "LSTM", list(node.input[:8])
            weights[step.spec.inputs["W"]], weights[step.spec.inputs["R"]] = step.layer.w_ih, step.layer.w_hh
        nodes.append(node)
    body, model = copy.copy(proto.graph), copy.copy(proto)
    body.node, model.graph = nodes, body
    return model, weights


def _refuse(name, reason):
    """The analysis names the node it stops at ("file: node n (Op): why"): the refusal names it the same way."""
    m = re.fullmatch(r"(.*?: node .*? \([\w.]+\)): (.*)", reason or "", re.S)
    if m:
        raise FormatError(f"{m[1]} does not fit a pipeline: {m[2]}")
    raise FormatError(f"{name} does not fit a pipeline: {reason}")
