"""The quantization rule (rnnfast/quantize.py) applied to a graph lowered for the C executor (graph/compile.py's
description): which constants scope "all" stores quantized (`weight_constants`) and the description with the rule
applied (`quantize_desc`), for the engine (CompiledGraph.quantized), the writers (.rnnf 2, .npz, .safetensors) and
convert's check alike."""
from __future__ import annotations

import numpy as np

from ..quantize import check_scope, check_weight_dtype, dequantize_channels, quantize_channels


def weight_constants(desc: dict) -> dict:
    """{tensor id: output-channel axis} of one lowered graph description (rnnfast/graph/compile.py): the float32
    constants that scope "all" stores quantized. Only a constant read solely as the weight of MATMUL (input 1,
    rank >= 2: axis rank - 1), CONV (input 1: axis 0) or CONV_TRANSPOSE of group 1 (input 1: axis 1), with one
    axis for every such read and no view of it, qualifies; If branches are descriptions of their own."""
    from .compile import OP

    tensors = desc["tensors"]
    axes, other = {}, set()
    for t in tensors:
        if t[4] >= 0:
            other.add(t[4])  # a view of a constant reads it in another shape
    other.update(desc["outputs"])
    for op, _, ins, _, iattr, _, _ in desc["nodes"]:
        for k, t in enumerate(ins):
            if t < 0:
                continue
            dtype, rank, _, data = tensors[t][:4]
            axis = None
            if k == 1 and data is not None and dtype == 0 and np.asarray(data).size:
                if op == OP["MATMUL"] and rank >= 2:
                    axis = rank - 1
                elif op == OP["CONV"] and rank >= 3:
                    axis = 0
                elif op == OP["CONV_TRANSPOSE"] and rank >= 3 and iattr and iattr[0] == 1:
                    axis = 1
            if axis is None or axes.get(t, axis) != axis:
                other.add(t)
            else:
                axes[t] = axis
    return {t: a for t, a in axes.items() if t not in other}


def quantize_desc(desc: dict, weight_dtype: str, scope: str = "recurrent", where: str = "") -> dict:
    """A lowered graph description (and its If branches) with the rule applied: every recurrent layer's matrices
    and, with scope "all", the weight_constants stored as weight_dtype. A stored constant's tensor keeps the
    float32 values it stands for as its data (what every kernel computes with) and desc["quantized"][t] holds
    (values, scales or None) as the writers store them. Quantizing again in the same dtype leaves it as it is;
    in another dtype is refused (the float32 weights are gone)."""
    from ..engine import layer_desc

    weight_dtype, scope = check_weight_dtype(weight_dtype, where), check_scope(scope, where)
    nodes = [node[:6] + ([layer_desc(lay["layer"].with_weight_dtype(weight_dtype)) for lay in node[6]]
                         if node[6] else node[6],) for node in desc["nodes"]]
    out = {**desc, "nodes": nodes, "subgraphs": [quantize_desc(g, weight_dtype, scope, where)
                                                 for g in desc["subgraphs"]]}
    stored = dict(desc.get("quantized") or {})
    if scope == "all" and weight_dtype != "float32":
        tensors = list(desc["tensors"])
        for t, axis in weight_constants(desc).items():
            dtype, rank, dims_at, data, alias_of, name = tensors[t]
            if t in stored:
                if stored[t][0].dtype != np.dtype(weight_dtype):
                    raise ValueError(f"{where or 'graph'}: constant {name!r} is already stored as "
                                     f"{stored[t][0].dtype}; quantize the float32 model instead")
                continue
            values, scale = quantize_channels(data, axis, weight_dtype, f"{where or 'graph'}: constant {name!r}")
            stored[t] = (values, scale)
            tensors[t] = (dtype, rank, dims_at, dequantize_channels(values, scale, np.shape(data)), alias_of, name)
        out["tensors"] = tensors
    if stored:
        out["quantized"] = stored
    return out
