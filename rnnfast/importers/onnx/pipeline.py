"""An ONNX model as a Pipeline, read from its analysed graph IR by graph/to_pipeline.py.

A model the C executor takes has that graph at hand (OnnxGraph.compiled). One it cannot take is lowered and
analysed again here, without the lowering to C, so what only the C lowering refuses (float64 and float16 tensors:
a pipeline computes in float32) still converts. Anything the analysis refuses is refused by the node it names."""
from __future__ import annotations

from ...errors import FormatError
from ...graph.to_pipeline import graph_to_pipeline, refuse_unfit
from ...pipeline import Pipeline


def onnx_to_pipeline(graph) -> Pipeline:
    """graph: an OnnxGraph or CompiledOnnxGraph (importers/onnx/graph.py)."""
    if graph.compiled is not None:
        return graph_to_pipeline(graph.compiled.graph, graph.name)
    from ...graph.analysis import analyse
    from ...graph.infer import Unfit
    from .lower import lower_model

    proto = getattr(graph, "proto", None)
    if proto is None:
        refuse_unfit(graph.name, graph.unfit_reason)
    try:
        ir, opset = lower_model(proto, graph.name)
        analyse(ir, opset)
    except Unfit as e:
        refuse_unfit(graph.name, str(e))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, ArithmeticError, RecursionError) as e:
        if isinstance(e, FormatError):
            raise
        refuse_unfit(graph.name, graph.unfit_reason)  # a form the analysis does not expect: compile_onnx said what
    return graph_to_pipeline(ir, graph.name, opset)
