"""The fast path of an ONNX graph that is only a chain of recurrent nodes: one CompiledStack call per run.

Recognised at load (anything else keeps the general node-by-node path, unchanged):
- graph input X (float) -> RNN/GRU/LSTM nodes with constant weights, layout 0, no sequence_lens, each node's X
  the previous node's Y with the directions merged into the features by the glue exporters write
  (Transpose perm [0,2,1,3] + Reshape [0,0,-1] or an equivalent constant shape; Squeeze of the direction axis of
  one direction; Identity);
- initial_h / initial_c absent, graph inputs or constants;
- graph outputs: the last node's Y (raw [T,D,B,P], transposed [T,B,D,P] or merged [T,B,D*P]) and any node's Y_h
  / Y_c; no other value may be read by anything.
The engine then writes the last layer's Y in the output's layout (Y_SEQ_BATCH_DIR is already [T,B,D*P]) and
every layer's final state, so a run is no per-node Python and no numpy transpose or copy.

A run takes the fast path only for the usual feeds: every graph input given, float32 ndarrays of rank 3 whose
fixed axes match the declared ones. Anything else, and any feed the engine refuses, goes to the general path,
which converts what it can and raises its own messages naming the node and input.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _core, engine

_ENGINE_RUN = engine.CompiledStack.run
# Forms of the last node's sequence as a graph output: [T,D,B,P] as the node gives it (the engine's
# Y_SEQ_DIR_BATCH), [T,B,D,P] after the exporters' Transpose, [T,B,D*P] after their Reshape or Squeeze (both
# Y_SEQ_BATCH_DIR).
RAW, TRANSPOSED, MERGED = "raw", "transposed", "merged"


class Chain:
    """The compiled chain: which feed goes where, and which engine output is which graph output."""

    def __init__(self, stack, checks, h_src, c_src, consts, outputs, y_form, n_threads, where):
        self.stack, self.n_threads = stack, n_threads
        self.where = where  # for messages: the node's, or the graph's name for several nodes
        self.n_inputs = len(checks)  # checks: per graph input, (name, [(axis, declared size)]), X first
        # Per layer, the name of its initial state (a graph input or a constant; None for zeros), or None for none.
        self.h_src, self.c_src = h_src, c_src
        self.outputs = outputs  # per graph output: (0, -1) the sequence, (1, k) layer k's Y_h, (2, k) its Y_c
        L, last = len(stack.layers), stack.layers[-1]
        self.feed_run = _core.FeedRun(
            stack.c_model, [n for n, _ in checks], [f for _, f in checks], h_src, c_src,
            {n: np.ascontiguousarray(consts[n], np.float32) for n in (h_src or []) + (c_src or []) if n in consts},
            [0 if which == 0 else 1 + (which - 1) * L + k for which, k in outputs],  # index in [y, *y_h, *y_c]
            any(which == 0 for which, _ in outputs),
            engine.Y_SEQ_DIR_BATCH if y_form == RAW else engine.Y_SEQ_BATCH_DIR,
            (last.n_dirs, last.output_size) if y_form == TRANSPOSED else (), n_threads)

    def run(self, feeds: dict) -> Optional[list]:
        """The graph's outputs, or None when the feeds are not the usual ones (the caller takes the general path).
        While rnnfast verify watches or replaces CompiledStack.run (commands/trace.py), which this C call would
        bypass, the graph runs node by node for it."""
        if engine.CompiledStack.run is not _ENGINE_RUN:
            return None
        return self.feed_run.run(feeds)


def match_chain(graph, n_threads) -> Optional[Chain]:
    """The Chain of an OnnxGraph (its steps, consts, inputs and outputs already built), or None."""
    steps, consts = graph.steps, graph.consts
    if not steps or steps[0][0] != "recurrent" or any(kind not in ("recurrent", "op") for kind, _ in steps):
        return None
    inputs = {i.name: i for i in graph.inputs}
    returned = {o.name for o in graph.outputs}
    reads = {}  # value name -> how many times a node reads it
    for kind, step in steps:
        for n in (step.spec.node.input if kind == "recurrent" else step.input_names):
            if n:
                reads[n] = reads.get(n, 0) + 1
    once = lambda name: reads.get(name, 0) == 1 and name not in returned  # read by the next glue or node only
    x_name = steps[0][1].spec.inputs["X"]
    if x_name not in inputs or not once(x_name) or inputs[x_name].type != "tensor(float)":
        return None
    layers, nodes, states = [], [], {}
    forms = {x_name: (MERGED, -1)}  # sequence value -> (form, index of the layer that made it; -1 the input)
    for kind, step in steps:
        if kind == "op":
            form = _glue(step, forms, consts, layers)
            if form is None or not once(step.input_names[0]):
                return None
            forms[step.output_names[0]] = form
            continue
        spec, k = step.spec, len(layers)
        if (step.layer is None or spec.layout != 0 or spec.inputs["sequence_lens"]
                or forms.get(spec.inputs["X"]) != (MERGED, k - 1) or not once(spec.inputs["X"])):
            return None
        out = list(spec.node.output) + [""] * (3 - len(spec.node.output))
        if out[0]:
            forms[out[0]] = (RAW, k)
        for which in (1, 2):
            if out[which]:
                if reads.get(out[which]):
                    return None  # a final state read by another node (e.g. torch's Concat of h_n)
                states[out[which]] = (which, k)
        layers.append(step.layer)
        nodes.append(step)
    outputs, y_form = [], None
    for o in graph.outputs:
        if o.name in states:
            outputs.append(states[o.name])
            continue
        form = forms.get(o.name)
        if form is None or form[1] != len(layers) - 1 or y_form not in (None, form[0]):
            return None  # the input itself, an earlier layer's sequence, or two forms of the last one
        y_form = form[0]
        outputs.append((0, -1))
    h_src, c_src = _state_sources(nodes, inputs, consts)
    if h_src is False:
        return None
    fed = sorted({n for n in (h_src or []) + (c_src or []) if n in inputs})
    if set(fed) | {x_name} != set(inputs):
        return None  # a graph input the chain does not read: the general path checks and reports it
    if any(inputs[n].type != "tensor(float)" or len(inputs[n].shape) != 3 for n in [x_name] + fed):
        return None
    checks = [(n, [(a, w) for a, w in enumerate(inputs[n].shape) if isinstance(w, int) and w > 0])
              for n in [x_name] + fed]
    if len(nodes) == 1:
        return Chain(nodes[0].stack, checks, h_src, c_src, consts, outputs, y_form, n_threads,
                     nodes[0].spec.where)
    try:
        stack = engine.CompiledStack(layers)
    except ValueError:
        return None  # layers whose sizes do not stack: the general path reports it at run time
    for node in nodes:  # packed once, in the stack; the general path packs a node again if it ever runs one
        node.stack = None
        node.layer.__dict__.pop("_rnnf_compiled", None)
    return Chain(stack, checks, h_src, c_src, consts, outputs, y_form, n_threads, graph.name)


def _glue(ctx, forms, consts, layers):
    """The form of a glue node's output, or None when it is not glue on the sequence of the last layer so far."""
    t = ctx.node.op_type
    if not ctx.input_names or ctx.input_names[0] not in forms or len(ctx.output_names) != 1:
        return None
    form, k = forms[ctx.input_names[0]]
    if k != len(layers) - 1 or k < 0 or any(n and n not in consts for n in ctx.input_names[1:]):
        return None
    layer = layers[k]
    if t == "Identity":
        return form, k
    if t == "Transpose" and form == RAW and list(ctx.attrs.get("perm") or []) == [0, 2, 1, 3]:
        return TRANSPOSED, k
    if t == "Squeeze" and form == RAW and layer.n_dirs == 1:
        axes = ctx.input_names[1] if len(ctx.input_names) > 1 and ctx.input_names[1] else None
        axes = [int(a) for a in np.asarray(consts[axes]).reshape(-1)] if axes else ctx.attrs.get("axes")
        if axes is not None and sorted(int(a) % 4 for a in axes) == [1]:
            return MERGED, k
        return None
    if t == "Reshape" and form == TRANSPOSED and len(ctx.input_names) > 1 and ctx.input_names[1]:
        shape = [int(s) for s in np.asarray(consts[ctx.input_names[1]]).reshape(-1)]
        if _merges_directions(shape, bool(ctx.attrs.get("allowzero", 0)), layer.n_dirs * layer.output_size):
            return MERGED, k
    return None


def _merges_directions(shape, allowzero, features) -> bool:
    """Whether Reshape(shape) turns [T, B, D, P] into [T, B, D*P] for every T and B: T and B copied (0) or inferred
    (one -1), the features given or inferred."""
    if len(shape) != 3 or shape.count(-1) > 1:
        return False
    t, b, f = shape
    copied = lambda s: (s == 0 and not allowzero) or s == -1
    return copied(t) and copied(b) and (f == features or f == -1)


def _state_sources(nodes, inputs, consts):
    """Per layer, the name of the initial_h and of the initial_c it reads (None: zeros); None for a state no layer
    reads; (False, False) when a state is computed by the graph (the general path runs that)."""
    srcs = {"initial_h": [], "initial_c": []}
    for node in nodes:
        for key in srcs:
            name = node.spec.inputs[key]
            if name and name not in inputs and name not in consts:
                return False, False
            srcs[key].append(name or None)
    h, c = srcs["initial_h"], srcs["initial_c"]
    return (h if any(h) else None), (c if any(c) else None)
