"""The fast path of an ONNX graph that is only a chain of recurrent nodes: one CompiledStack call per run.

Recognised at load (anything else keeps the general node-by-node path, unchanged):
- graph input X (float) -> RNN/GRU/LSTM nodes with constant weights, layout 0, no sequence_lens, each node's X
  the previous node's Y with the directions merged into the features by the glue exporters write
  (Transpose perm [0,2,1,3] + Reshape [0,0,-1] or an equivalent constant shape; Squeeze of the direction axis of
  one direction; Identity);
- initial_h / initial_c absent, graph inputs or constants, a Slice keeping all of a graph input, or zeros of the
  node's [D, batch of X, H] that the graph computes from X's shape (states.py proves them; torch exports);
- graph outputs: the last node's Y (raw [T,D,B,P], transposed [T,B,D,P] or merged [T,B,D*P]), any node's Y_h
  / Y_c, and a Concat over the layers of their Y_h or Y_c (torch's h_n / c_n); no other value may be read by
  anything. A Reshape whose shape fixes the time or batch size (the dynamo exporter writes the traced length)
  merges the directions only for that size: other feeds take the general path, which reports the Reshape.
Batch-first graphs (a Transpose of X) stay on the general path: the engine reads X as [T, B, F] only, and
transposing the feed would be the copy the general path makes anyway.
The engine then writes the last layer's Y in the output's layout (Y_SEQ_BATCH_DIR is already [T,B,D*P]) and
every layer's final state, so a run is no per-node Python and no numpy transpose or copy.

A run takes the fast path only for the usual feeds: every graph input given, float32 ndarrays of rank 3 whose
fixed axes match the declared ones. Anything else, and any feed the engine refuses, goes to the general path,
which converts what it can and raises its own messages naming the node and input.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ... import _core, engine
from .states import Alias, Zeros, onnx_dims, walk_states

_ENGINE_RUN = engine.CompiledStack.run
# Forms of the last node's sequence as a graph output: [T,D,B,P] as the node gives it (the engine's
# Y_SEQ_DIR_BATCH), [T,B,D,P] after the exporters' Transpose, [T,B,D*P] after their Reshape or Squeeze (both
# Y_SEQ_BATCH_DIR).
RAW, TRANSPOSED, MERGED = "raw", "transposed", "merged"


class Chain:
    """The compiled chain: which feed goes where, and which engine output is which graph output."""

    def __init__(self, stack, checks, h_src, c_src, consts, outputs, y_form, n_threads, where, concats=None,
                 pinned=False):
        self.stack, self.n_threads = stack, n_threads
        self.pinned = pinned  # a Reshape fixes the time or batch size: a stream, which has no T, cannot honour it
        self.where = where  # for messages: the node's, or the graph's name for several nodes
        self.n_inputs = len(checks)  # checks: per graph input, (name, [(axis, declared size)]), X first
        # Per layer, the name of its initial state (a graph input or a constant; None for zeros), or None for none.
        self.h_src, self.c_src = h_src, c_src
        # per graph output: (0, -1) the sequence, (1, k) layer k's Y_h, (2, k) its Y_c; a Concat of states is
        # taken apart here into its (which, k) and joined after the run by self.concats.
        self.concats = None
        if concats:
            flat, self.concats = [], []
            for o in outputs:
                parts = concats.get(o, [o])
                self.concats.append(list(range(len(flat), len(flat) + len(parts))) if o in concats else len(flat))
                flat += parts
            outputs = flat
        self.outputs = outputs
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
        out = self.feed_run.run(feeds)
        if self.concats is None or out is None:
            return out
        return [np.concatenate([out[j] for j in i], axis=0) if isinstance(i, list) else out[i] for i in self.concats]


def match_chain(graph, n_threads) -> Optional[Chain]:
    """The Chain of an OnnxGraph (its steps, consts, inputs and outputs already built), or None."""
    consts = graph.consts
    if any(kind not in ("recurrent", "op") for kind, _ in graph.steps):
        return None
    inputs = {i.name: i for i in graph.inputs}
    returned = {o.name for o in graph.outputs}
    # Steps that only compute initial states (from X's shape, or slicing a fed state) are not run by the chain;
    # X read by Shape there is not a read of its values.
    state_values, state_steps = walk_states(graph.steps, consts, inputs)
    if returned & set(state_values):
        return None
    steps = [s for i, s in enumerate(graph.steps) if i not in state_steps]
    if not steps or steps[0][0] != "recurrent":
        return None
    reads = {}  # value name -> how many times a node reads it
    for kind, step in steps:
        for n in (step.spec.node.input if kind == "recurrent" else step.input_names):
            if n:
                reads[n] = reads.get(n, 0) + 1
    once = lambda name: reads.get(name, 0) == 1 and name not in returned  # read by the next glue or node only
    x_name = steps[0][1].spec.inputs["X"]
    if x_name not in inputs or not once(x_name) or inputs[x_name].type != "tensor(float)":
        return None
    layers, nodes, states, concats = [], [], {}, {}
    pins = {}  # axis of X -> the size a Reshape's constant shape requires
    forms = {x_name: (MERGED, -1)}  # sequence value -> (form, index of the layer that made it; -1 the input)
    for kind, step in steps:
        if kind == "op" and step.node.op_type == "Concat" and step.input_names and step.input_names[0] in states:
            cat = _state_concat(step, states, layers, reads, returned)
            if cat is None:
                return None
            states[step.output_names[0]] = ("concat", step.output_names[0])
            concats[("concat", step.output_names[0])] = cat
            continue
        if kind == "op":
            form = _glue(step, forms, consts, layers, pins)
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
                states[out[which]] = (which, k)
        layers.append(step.layer)
        nodes.append(step)
    for name, src in states.items():
        if reads.get(name) and (src[0] == "concat" or reads[name] != 1 or not any(src in c for c in concats.values())):
            return None  # a final state read by a node other than one Concat of states
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
    h_src, c_src = _state_sources(nodes, inputs, consts, state_values, x_name)
    if h_src is False:
        return None
    fed = sorted({n for n in (h_src or []) + (c_src or []) if n in inputs})
    if set(fed) | {x_name} != set(inputs):
        return None  # a graph input the chain does not read: the general path checks and reports it
    if any(inputs[n].type != "tensor(float)" or len(inputs[n].shape) != 3 for n in [x_name] + fed):
        return None
    checks = [(n, [(a, w) for a, w in enumerate(inputs[n].shape) if isinstance(w, int) and w > 0])
              for n in [x_name] + fed]
    for axis, size in pins.items():
        declared = dict(checks[0][1]).get(axis)
        if declared is not None and declared != size:
            return None  # a Reshape no feed can pass
        if declared is None:
            checks[0][1].append((axis, size))
    if len(nodes) == 1:
        return Chain(engine.compiled(nodes[0].layer), checks, h_src, c_src, consts, outputs, y_form, n_threads,
                     nodes[0].spec.where, concats, bool(pins))
    try:
        stack = engine.CompiledStack(layers)
    except ValueError:
        return None  # layers whose sizes do not stack: the general path reports it at run time
    for node in nodes:  # packed once, in the stack; the general path packs a node again if it ever runs one
        node.stack = None
        node.layer.__dict__.pop("_rnnf_compiled", None)
    return Chain(stack, checks, h_src, c_src, consts, outputs, y_form, n_threads, graph.name, concats, bool(pins))


def _glue(ctx, forms, consts, layers, pins):
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
        fixed = _merges_directions(shape, bool(ctx.attrs.get("allowzero", 0)), layer.n_dirs * layer.output_size)
        if fixed is not None and all(pins.setdefault(a, n) == n for a, n in fixed.items()):
            return MERGED, k
    return None


def _merges_directions(shape, allowzero, features) -> Optional[dict]:
    """The sizes of T (axis 0) and B (axis 1) for which Reshape(shape) turns [T, B, D, P] into [T, B, D*P], or
    None when it never does: T and B copied (0), inferred (one -1) or given (then only that size fits), the
    features given or inferred."""
    if len(shape) != 3 or shape.count(-1) > 1:
        return None
    t, b, f = shape
    if not (f == features or f == -1):
        return None
    fixed = {}
    for axis, s in ((0, t), (1, b)):
        if s > 0:
            fixed[axis] = s
        elif not ((s == 0 and not allowzero) or s == -1):
            return None
    return fixed


def _state_concat(ctx, states, layers, reads, returned):
    """The (which, k) parts of a Concat of final states on their first axis, or None when it is not exactly one:
    every input one layer's Y_h (or every one a Y_c) read only here, all of the same [B, size]."""
    parts = [states.get(n) for n in ctx.input_names]
    if (len(ctx.output_names) != 1 or ctx.attrs.get("axis") not in (0, -3) or any(p is None for p in parts)
            or any(p[0] not in (1, 2) or p[0] != parts[0][0] for p in parts)
            or any(reads.get(n) != 1 or n in returned for n in ctx.input_names)):
        return None
    size = lambda p: layers[p[1]].output_size if p[0] == 1 else layers[p[1]].hidden_size
    if len({size(p) for p in parts}) != 1:
        return None
    return parts


def _state_sources(nodes, inputs, consts, state_values, x_name):
    """Per layer, the name of the initial_h and of the initial_c it reads (None: zeros); None for a state no layer
    reads; (False, False) when a state is computed by the graph other than as proven zeros of the node's shape or a
    fed state passed on unchanged (the general path runs that)."""
    srcs = {"initial_h": [], "initial_c": []}
    dims = onnx_dims(inputs[x_name]) if len(inputs[x_name].shape) == 3 else None
    batch = dims[1] if dims else None
    for node in nodes:
        layer = node.layer
        for key in srcs:
            name = node.spec.inputs[key]
            v = state_values.get(name) if name else None
            if isinstance(v, Zeros):
                size = layer.output_size if key == "initial_h" else layer.hidden_size
                if v.shape != [layer.n_dirs, batch, size]:
                    return False, False
                name = None
            elif isinstance(v, Alias) and v.name != x_name:
                name = v.name
            elif name and name not in inputs and name not in consts:
                return False, False
            srcs[key].append(name or None)
    h, c = srcs["initial_h"], srcs["initial_c"]
    return (h if any(h) else None), (c if any(c) else None)
