"""A built graph (graph/build.py, before the analysis) run node by node in Python: each recurrent stack through
engine.CompiledStack.run, every other node through the numpy operators of the ONNX node-by-node path.

Only for `rnnfast verify`, which watches (or replaces with the float64 reference) every engine call of a run
(cli/trace.py); the C executor runs a graph in one call and makes none."""
from __future__ import annotations

import types

import numpy as np

from .. import engine


def run_by_nodes(graph, arrays: list, n_threads=None) -> list:
    from ..importers.onnx.graph import OPS
    from .build import OPSET

    values = {name: v.const for name, v in graph.values.items() if v.const is not None}
    values.update(zip(graph.inputs, arrays))
    for node in graph.nodes:
        args = [values[n] if n else None for n in node.inputs]
        if node.op == "Recurrent":
            outs = _stack(node, args, n_threads)
        elif node.op == "Greater":
            outs = [np.greater(args[0], args[1])]
        else:
            ctx = types.SimpleNamespace(attrs=node.attrs, opset=OPSET, where=node.where, node=None)
            outs = OPS[node.op](ctx, *args)
        values.update((n, np.asarray(v)) for n, v in zip(node.outputs, outs) if n)
    return [np.ascontiguousarray(values[n]) for n in graph.outputs]


def _stack(node, args, n_threads):
    """Y [T, B, D, P], Y_h [L*D, B, P], Y_c [L*D, B, H] as the Recurrent node gives them (_y_layout 1)."""
    layers = [layer.spec.build_layer(*layer.weights) for layer in node.payload]
    y, h, c = run_layers(layers, *args[:4], mask=args[4] if len(args) > 4 else None,
                         zero_output=bool(node.attrs.get("_mask_zero_output")), n_threads=n_threads)
    return [y.transpose(0, 2, 1, 3), h, c]


def run_layers(layers, x, lens=None, h0=None, c0=None, mask=None, zero_output=False, n_threads=None):
    """A stack of layers as the C recurrent node runs it (src_c/graph/recurrent_node.c), one engine call per layer,
    so what watches the engine sees each layer on its own input (as an ONNX file's layer nodes): the last layer's
    Y [T, D, B, P], Y_h [L*D, B, P] and Y_c [L*D, B, H] (None where the layers' sizes differ or have no cell
    state)."""
    rows = lambda s, at, n: None if s is None else [s[at:at + n]]
    x, hs, cs, at = np.ascontiguousarray(x, np.float32), [], [], 0
    for layer in layers:
        d = layer.n_dirs
        y, h, c = engine.CompiledStack([layer]).run(x, sequence_lens=lens, initial_h=rows(h0, at, d),
                                                    initial_c=rows(c0, at, d), mask=mask,
                                                    mask_zero_output=zero_output, n_threads=n_threads)
        merged = y.transpose(0, 2, 1, 3)
        x, at = np.ascontiguousarray(merged.reshape(merged.shape[0], merged.shape[1], -1)), at + d
        hs += list(h)
        cs += list(c or ())
    h = np.concatenate(hs) if len({a.shape for a in hs}) == 1 else None
    c = np.concatenate(cs) if cs and cs[0] is not None and len({a.shape for a in cs}) == 1 else None
    return y, h, c
