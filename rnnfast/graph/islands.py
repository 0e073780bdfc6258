"""Islands: standard ONNX operators outside the C set (TopK, Hardmax, Sin, ...) inside a graph the C executor runs.

The executor stops at such a node (RNNF_OP_HOST), the binding runs it through onnx.reference's implementation of
the operator (the ONNX project's executable spec) on the node's input tensors, writes its outputs into the arena,
and the C call goes on. The arena is planned at load, so an island's output shapes must be known from its input
shapes: onnx's own shape inference gives them, in the graph's symbolic sizes; an operator whose output size depends
on its input values (NonZero, a TopK with a computed k) keeps the graph out of C (infer.Unfit)."""
from __future__ import annotations

import numpy as np

from .dims import Dim
from .infer import ONNX_DTYPES, Unfit

_ONNX_OF = {np.dtype(v): k for k, v in ONNX_DTYPES.items()}


def island_rule(c):
    """infer.RULES's signature: the output Values of an island node, from onnx shape inference."""
    from onnx import TensorProto, helper, numpy_helper, shape_inference

    from ..importers.onnx.graph import ReferenceNode, single_node_model

    node = c.node
    if node.proto is None or not ReferenceNode.applies(node.proto, c.opset):
        raise Unfit(f"{c.where}: operator {node.op} has no C kernel and is not a standard operator onnx.reference "
                    f"runs")
    dims, inputs, inits = {}, [], []
    for k, v in enumerate(c.ins):
        if v is None:
            continue
        name = f"i{k}"
        if v.const is not None:
            inits.append(numpy_helper.from_array(np.asarray(v.const), name))
            continue
        shape = []
        for d in v.shape:
            if isinstance(d, Dim):
                key = dims.setdefault(d, f"d{len(dims)}")
                shape.append(key)
            else:
                shape.append(int(d))
        inputs.append(helper.make_tensor_value_info(name, _ONNX_OF.get(np.dtype(v.dtype), TensorProto.FLOAT), shape))
    model = single_node_model(node.proto, [v is not None for v in c.ins], c.opset, inputs, inits)
    try:
        inferred = shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as e:  # onnx's InferenceError and friends
        raise Unfit(f"{c.where}: {node.op}'s output shapes cannot be inferred ({type(e).__name__}: {e})") from None
    back = {v: k for k, v in dims.items()}
    found = {vi.name: vi for vi in inferred.graph.output}
    values = []
    for k, name in enumerate(node.outputs):
        if not name:
            continue
        if f"o{k}" not in found:
            raise Unfit(f"{c.where}: {node.op}'s output {k} has no inferable shape or type")
        t = found[f"o{k}"].type.tensor_type
        if not t.HasField("shape") or t.elem_type not in ONNX_DTYPES:
            raise Unfit(f"{c.where}: {node.op}'s output {k} has no inferable shape or type")
        shape = []
        for d in t.shape.dim:
            if d.HasField("dim_value"):
                shape.append(int(d.dim_value))
            elif d.dim_param in back:
                shape.append(back[d.dim_param])
            else:
                raise Unfit(f"{c.where}: {node.op}'s output {k} has a size that depends on its input values")
        values.append(c.out(ONNX_DTYPES[t.elem_type], shape, k=k))
    node.attrs["_island"] = True
    return values


class HostFunction:
    """An island's work at run time: its inputs (arrays, None for absent ones) -> its outputs."""

    def __init__(self, node, opset):
        from ..importers.onnx.graph import ReferenceNode

        self.where = node.where
        self.node = ReferenceNode(node.proto, node.where, opset)

    def __call__(self, args):
        try:
            return self.node.fn(self.node, *args)
        except ValueError as e:
            raise ValueError(f"{self.where}: {e}") from None
