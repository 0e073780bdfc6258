"""Recurrent layers as stacks: every time-major LSTM/GRU/RNN node with constant weights becomes a "Recurrent" node,
and a layer whose input is the previous layer's output sequence joins that layer's node, so a stack of L layers
runs as one engine call (the engine keeps the layers' intermediate sequences in its own buffers, in the layout the
next layer reads) instead of L nodes with a copy between each. The chain of a recurrent model is this one node.

What the exporters write around the layers goes with them:
- a Transpose [0, 2, 1, 3] of the sequence (ONNX's [T, D, B, H] to [T, B, D, H]) is the engine writing that layout
  (attribute "_y_layout" 1), so the Reshape to [T, B, D*H] the next layer reads is a view, and when that view is
  what the graph reads after the last layer, the stack's Y is that [T, B, D*H] value itself;
- initial states that are zeros are left out (the engine starts from zeros), slices of one tensor along
  its first axis in layer order are that tensor (torch's h0 [L*D, B, H]), anything else is concatenated;
- per-layer final states concatenated in layer order along the first axis (torch's h_n) are the stack's own
  [L*D, B, H] output; a layer's state read on its own is a slice of it;
- a Linear (MatMul + bias) that only feeds the first layer is folded into that layer's input weights.

A node's payload is then a list of StackLayer, first layer first."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .infer import Ctx, Unfit, _slice_params
from .ir import VIEW_OPS, Graph, Node, Value

CELL_OPS = ("LSTM", "GRU", "RNN")
SEQ_DIR_BATCH, SEQ_BATCH_DIR = 0, 1  # the engine's Y layouts: [T, D, B, H] as ONNX has it, [T, B, D, H]


@dataclass
class StackLayer:
    spec: object          # importers/onnx/recurrent.py: RecurrentNodeSpec
    weights: tuple        # W, R, B, P as arrays (None when absent)
    y_h: str              # the layer's own final-state outputs in the source graph ("" if nobody reads them)
    y_c: str
    name: str
    folded: tuple = ()    # (name, op, {weight: shape}) of nodes folded into this layer, for `rnnfast inspect`


def _hidden(layer: StackLayer) -> int:
    return layer.weights[1].shape[-1]  # R [D, G*H, H]


def stack_recurrent(graph: Graph, opset: int):
    _make_stacks(graph)
    for node in [n for n in graph.nodes if n.op == "Recurrent"]:
        _fuse_y_layout(graph, node)
    while _merge_one(graph, opset):
        pass
    for node in [n for n in graph.nodes if n.op == "Recurrent"]:
        _absorb_merge_view(graph, node)
        _attach_states(graph, node)
        _fold_input_product(graph, node)
    _sort(graph)


def lone_stack(graph: Graph):
    """The layers of a graph that is one stack of layers reading its only input, with no initial state, whose first
    output is the stack's sequence (through views): what a step-by-step stream of it computes (rnnfast/stream/direct.py
    refuses a layer that does not run forward, by name). Else None."""
    stacks = [n for n in graph.nodes if n.op == "Recurrent"]
    if len(stacks) != 1 or any(n.op not in VIEW_OPS for n in graph.nodes if n is not stacks[0]):
        return None
    node = stacks[0]
    if graph.inputs != [node.inputs[0]] or any(node.inputs[1:]):
        return None
    name, producers = graph.outputs[0], graph.producers()
    while name != node.outputs[0] and name in producers and producers[name].op in VIEW_OPS:
        name = producers[name].inputs[0]
    if name != node.outputs[0]:
        return None
    return [layer.spec.build_layer(*layer.weights) for layer in node.payload]


def looped_stack(graph: Graph, pairs: dict):
    """The layers of a graph that is one stack of forward layers reading X, its initial states graph inputs fed
    back from its final states (`pairs`, {"h0": "h_n", "c0": "c_n"}: what torch.onnx.export writes for an LSTM
    with states), its other output the stack's sequence through views; (layers, X, that output, {state input:
    "h" or "c"}). Else None."""
    stacks = [n for n in graph.nodes if n.op == "Recurrent"]
    if len(stacks) != 1 or any(n.op not in VIEW_OPS for n in graph.nodes if n is not stacks[0]):
        return None
    node = stacks[0]
    x, lens, h0, c0 = (node.inputs + ["", "", "", ""])[:4]
    if lens or any(node.inputs[4:]) or not h0 or any(l.spec.direction != "forward" for l in node.payload):
        return None
    want = {h0: node.outputs[1]}
    if node.payload[0].spec.cell == "lstm":
        if not c0 or len(node.outputs) < 3:
            return None
        want[c0] = node.outputs[2]
    elif c0:
        return None
    if dict(pairs) != want or graph.inputs[:1] != [x] or sorted(graph.inputs[1:]) != sorted(want):
        return None
    rest = [o for o in graph.outputs if o not in want.values()]
    if len(rest) != 1:
        return None
    name, producers = rest[0], graph.producers()
    while name != node.outputs[0] and name in producers and producers[name].op in VIEW_OPS:
        name = producers[name].inputs[0]
    if name != node.outputs[0]:
        return None
    which = {h0: "h", c0: "c"} if c0 else {h0: "h"}
    return [layer.spec.build_layer(*layer.weights) for layer in node.payload], x, rest[0], which


def _sort(graph: Graph):
    """Every node after the producers of its inputs, otherwise in the order it had: a layer's own state read
    before the next layer ran is now made by the stack's node after it. Iterative: an unrolled exporter's graph
    can chain thousands of nodes."""
    producers, done, order = graph.producers(), set(), []
    for root in graph.nodes:
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in done:
                continue
            done.add(id(node))
            stack.append((node, True))
            for name in reversed(node.inputs):
                if name in producers and id(producers[name]) not in done:
                    stack.append((producers[name], False))
    graph.nodes = order


def _const(graph, name):
    return graph.values[name].const if name else None


def _make_stacks(graph: Graph):
    producers = graph.producers()
    for i, node in enumerate(graph.nodes):
        if node.op not in CELL_OPS or node.payload.layout != 0:
            continue
        arg = lambda k: node.inputs[k] if k < len(node.inputs) else ""
        weights = tuple(_const(graph, arg(k)) for k in (1, 2, 3, 7))
        if any(w is None and arg(k) for w, k in zip(weights, (1, 2, 3, 7))):
            continue  # weights computed at run time: compile.lower_recurrent names the input it cannot take
        out = lambda k: node.outputs[k] if k < len(node.outputs) else ""
        name = node.name or node.outputs[0]  # exporters may leave nodes unnamed
        layer = StackLayer(node.payload, weights, out(1), out(2), name)
        x = graph.values[arg(0)].shape
        state_shape = (node.payload.n_dirs, x[1], _hidden(layer))
        h0, c0 = ("" if not arg(k) or (_is_zero(graph, arg(k), producers) and
                                       _fits(graph.values[arg(k)], state_shape)) else arg(k)
                  for k in (5, 6))
        graph.nodes[i] = Node("Recurrent", [arg(0), arg(4), h0, c0], [out(0), "", ""],
                              {"_y_layout": SEQ_DIR_BATCH}, name, node.where, [layer], node.proto)


def _fits(value, shape) -> bool:
    """Zeros of another shape or type than the node takes are left in place, for the node to refuse them."""
    a = value.shape
    return (value.dtype == np.float32 and a is not None and len(a) == len(shape)
            and all(x == y for x, y in zip(a, shape)))


def _single_user(graph, users, name):
    found = users.get(name, [])
    return found[0] if len(found) == 1 and name not in graph.outputs else None


def _fuse_y_layout(graph, node):
    y = node.outputs[0]
    nxt = _single_user(graph, graph.consumers(), y) if y else None
    if nxt is None or nxt.op != "Transpose" or list(nxt.attrs.get("perm") or ()) != [0, 2, 1, 3]:
        return
    node.outputs[0] = nxt.outputs[0]
    node.attrs["_y_layout"] = SEQ_BATCH_DIR
    graph.nodes.remove(nxt)


def _absorb_merge_view(graph, node):
    """The views that turn Y into [T, B, D*H] or [T, B, D, H] (Squeeze, Reshape, a Transpose of the one
    direction's axis) name the engine's own output, which is that layout in memory already: a graph output read
    through them is then written in place, not copied."""
    spec, y = node.payload[-1].spec, node.outputs[0]
    if not y or (spec.n_dirs == 2 and node.attrs["_y_layout"] != SEQ_BATCH_DIR):
        return
    x, d, h = graph.values[node.inputs[0]].shape, spec.n_dirs, _hidden(node.payload[-1])
    wants = ((x[0], x[1], d * h), (x[0], x[1], d, h))
    walked, name, users, last_fit = [], y, graph.consumers(), 0
    while True:
        nxt = _single_user(graph, users, name)
        if nxt is None or nxt.op not in VIEW_OPS or len(nxt.outputs) != 1 or nxt.inputs[0] != name:
            break
        walked.append(nxt)
        name = nxt.outputs[0]
        if any(_fits(graph.values[name], want) for want in wants):
            last_fit = len(walked)
    if not last_fit:
        return
    node.outputs[0] = walked[last_fit - 1].outputs[0]
    node.attrs["_y_layout"] = SEQ_BATCH_DIR  # one direction: the same memory as [T, D, B, H]
    for glue in walked[:last_fit]:
        graph.nodes.remove(glue)


def _fold_input_product(graph, node):
    """A linear map that only feeds the first layer (x W_m + b_m, a MatMul with its bias, then perhaps the
    Transpose to time-major) is folded into the layer's input weights: W' = W W_m^T, Wb' = Wb + W b_m. The layer's
    hoisted input projection then reads x itself, so the product of the two maps is never computed per step row
    (the denoiser's Linear -> GRU: 12 % of its multiply-adds). Only the rounding order changes."""
    users, producers = graph.consumers(), graph.producers()
    transpose, name = None, node.inputs[0]
    m = producers.get(name)
    if m is not None and m.op == "Transpose" and list(m.attrs.get("perm") or ()) == [1, 0, 2]:
        if _single_user(graph, users, name) is not node:
            return
        transpose, name = m, m.inputs[0]
        m = producers.get(name)
    if m is None or m.op != "MatMul" or m.attrs.get("_act") or _single_user(graph, users, name) not in (node,
                                                                                                          transpose):
        return
    w_m = graph.values[m.inputs[1]].const
    if w_m is None or w_m.ndim != 2 or w_m.dtype != np.float32:
        return
    first = node.payload[0]
    if getattr(first.spec, "weight_dtype", "float32") != "float32":
        return  # stored int8 / float16 weights are what the file holds: a product folded in would be quantized anew
    W, R, B, P = first.weights
    d, rows = W.shape[0], W.shape[1]
    bias_m = m.attrs.get("_bias")
    w_new = np.einsum("dgi,fi->dgf", W.astype(np.float64), w_m.astype(np.float64)).astype(np.float32)
    b_new = np.zeros((d, 2 * rows), np.float64) if B is None else B.astype(np.float64)
    if bias_m is not None:
        b_new[:, :rows] += np.einsum("dgi,i->dg", W.astype(np.float64), bias_m.astype(np.float64))
    shapes = {m.inputs[1]: list(w_m.shape)}
    if bias_m is not None:
        shapes["bias (an Add folded in)"] = list(bias_m.shape)
    node.payload[0] = StackLayer(first.spec, (w_new, R, b_new.astype(np.float32), P), first.y_h, first.y_c,
                                 first.name, first.folded + ((m.name or m.outputs[0], m.op, shapes),))
    x = graph.values[m.inputs[0]]
    if transpose is None:
        node.inputs[0] = m.inputs[0]
    else:
        transpose.inputs[0] = m.inputs[0]
        out = graph.values[transpose.outputs[0]]
        graph.values[transpose.outputs[0]] = Value(out.name, out.dtype, (x.shape[1], x.shape[0], x.shape[2]))
    graph.nodes.remove(m)


def _dims(node):
    spec = node.payload[0].spec
    return spec.cell, spec.n_dirs, _hidden(node.payload[0])


def _merge_one(graph, opset) -> bool:
    users, producers = graph.consumers(), graph.producers()
    for b in graph.nodes:
        if b.op != "Recurrent":
            continue
        glue, name = [], b.inputs[0]
        while name in producers and producers[name].op in VIEW_OPS:
            glue.append(producers[name])
            name = producers[name].inputs[0]
        a = producers.get(name)
        if a is None or a.op != "Recurrent" or a.outputs[0] != name or _dims(a) != _dims(b):
            continue
        xa, xb = graph.values[a.inputs[0]].shape, graph.values[b.inputs[0]].shape
        if tuple(xa[:2]) != tuple(xb[:2]):
            continue  # a reshape that moves time and batch is not the sequence the next layer reads
        if a.payload[-1].spec.n_dirs == 2 and a.attrs["_y_layout"] != SEQ_BATCH_DIR:
            continue  # [T, 2, B, H] reshaped without the Transpose is not the sequence the engine passes on
        chain = [name] + [g.outputs[0] for g in reversed(glue)]
        if any(len(g.outputs) != 1 for g in glue) or any(_single_user(graph, users, v) is None for v in chain):
            continue
        if b.inputs[1] != a.inputs[1] or _mask(a) != _mask(b):
            continue  # different sequence_lens or masks (a Keras mask is every layer's, with one output rule)
        if not (_states_by_layer(a) and _states_by_layer(b)):
            continue  # a stack's own stacked states (graph/build.py) would be lost
        h0 = _stack_state(graph, a, b, 2, opset)
        c0 = _stack_state(graph, a, b, 3, opset)
        if h0 is None or c0 is None:
            continue
        layers = a.payload + b.payload
        name = f"{a.name}+{b.name}"
        where = f"{b.where.split(': node ')[0]}: " if ": node " in b.where else ""
        where += f"node {name} ({len(layers)} x {layers[0].spec.cell.upper()})"
        mask = _mask(b)[0]
        merged = Node("Recurrent", [a.inputs[0], a.inputs[1], h0[0], c0[0]] + ([mask] if mask else []),
                      [b.outputs[0], "", ""], {"_y_layout": b.attrs["_y_layout"]}, name, where, layers, b.proto,
                      a.origin)  # where the stack starts, which is what its input and initial states are checked at
        if "_mask_zero_output" in b.attrs:  # the last layer's rule is the stack's output's (masks are equal, above)
            merged.attrs["_mask_zero_output"] = b.attrs["_mask_zero_output"]
        at = graph.nodes.index(b)
        graph.nodes[at:at + 1] = h0[1] + c0[1] + [merged]
        for dead in [a] + glue:
            graph.nodes.remove(dead)
        return True
    return False


def _states_by_layer(node) -> bool:
    """Whether the node's state outputs are its layers' own (y_h, y_c), which a merged stack attaches again."""
    return all(not out or (len(node.payload) == 1 and out == getattr(node.payload[0], key))
               for out, key in zip(node.outputs[1:], ("y_h", "y_c")))


def _mask(node):
    """(mask input, zero_output_for_mask) of a Recurrent node; ("", 0) without a mask."""
    mask = node.inputs[4] if len(node.inputs) > 4 else ""
    return mask, int(bool(node.attrs.get("_mask_zero_output", 0))) if mask else 0


def _is_zero(graph, name, producers) -> bool:
    """A tensor of zeros: a constant, or ConstantOfShape / Expand of zeros seen through slices and views."""
    while True:
        v = graph.values[name]
        if v.const is not None:
            return not np.any(v.const)
        node = producers.get(name)
        if node is None:
            return False
        if node.op == "ConstantOfShape":
            value = node.attrs.get("value")
            return value is None or not np.any(value)
        if node.op not in VIEW_OPS + ("Slice", "Expand"):
            return False
        name = node.inputs[0]


def _span(graph, name, producers, opset):
    """(source, start, end): `name` is rows start:end of source's first axis (itself, unless a plain Slice)."""
    node = producers.get(name)
    if node is not None and node.op == "Slice":
        try:
            params = _slice_params(Ctx(node, [graph.values[n] if n else None for n in node.inputs], opset, []))
        except Unfit:
            params = []
        src_rows = graph.values[node.inputs[0]].shape[0]
        if len(params) == 1 and all(isinstance(v, (int, np.integer)) for v in params[0]) and isinstance(src_rows, int):
            axis, s, e, step = (int(v) for v in params[0])
            s, e = (max(0, min(x + src_rows if x < 0 else x, src_rows)) for x in (s, e))
            if axis == 0 and step == 1 and e > s:
                return node.inputs[0], s, e
    return name, 0, graph.values[name].shape[0]


def _stack_state(graph, a, b, k, opset):
    """The stacked initial state input k (2: h, 3: c) of a and b as ([name], new nodes), or None if not stackable."""
    ha, hb = a.inputs[k], b.inputs[k]  # "": zeros (_make_stacks left out the zero states of the right shape)
    if not ha and not hb:
        return "", []
    if not ha or not hb:
        return None  # zeros beside a fed state: a Concat would need zeros of a run-time shape
    producers = graph.producers()
    sa, sb = _span(graph, ha, producers, opset), _span(graph, hb, producers, opset)
    va, vb = graph.values[ha], graph.values[hb]
    out = f"{b.name}/stacked_initial_{'hc'[k - 2]}"
    if sa[0] == sb[0] and sa[2] == sb[1]:  # consecutive rows of one tensor, as torch slices its h0 per layer
        if sa[1] == 0 and sb[2] == graph.values[sa[0]].shape[0]:
            return sa[0], []
        return out, [_rows(graph, sa[0], sa[1], sb[2], out, b.where)]
    graph.values[out] = Value(out, va.dtype, (va.shape[0] + vb.shape[0],) + tuple(va.shape[1:]))
    return out, [Node("Concat", [ha, hb], [out], {"axis": 0}, out, b.where)]


def _rows(graph, src, start, end, out, where) -> Node:
    """A Slice node: rows start:end of src's first axis, as `out`."""
    bounds = []
    for part, v in (("starts", start), ("ends", end), ("axes", 0)):
        cname = f"{out}/{part}"
        graph.values[cname] = Value(cname, np.dtype(np.int64), (1,), const=np.array([v], np.int64))
        bounds.append(cname)
    v = graph.values[src]
    graph.values.setdefault(out, Value(out, v.dtype, (end - start,) + tuple(v.shape[1:])))
    attrs = {"starts": [start], "ends": [end], "axes": [0]}  # the form of opsets before 10
    return Node("Slice", [src] + bounds, [out], attrs, out, where)


def _attach_states(graph, node):
    """Name the stack's [L*D, B, H] state outputs: torch's Concat of the layers' states if there is one, else a
    new value that each layer's own output slices."""
    layers, d = node.payload, node.payload[0].spec.n_dirs
    for k, key in ((1, "y_h"), (2, "y_c")):
        names = [getattr(layer, key) for layer in layers]
        if not any(names):
            continue
        if len(layers) == 1:
            node.outputs[k] = names[0]
            continue
        users = graph.consumers()
        cat = next((u for u in users.get(names[0], []) if u.op == "Concat" and u.attrs.get("axis") == 0
                    and u.inputs == names), None)
        if cat is not None:
            node.outputs[k] = cat.outputs[0]
            graph.nodes.remove(cat)
            users = graph.consumers()
        else:
            one = graph.values[next(n for n in names if n)]
            node.outputs[k] = f"{node.name}/{key}"
            graph.values[node.outputs[k]] = Value(node.outputs[k], one.dtype,
                                                  (len(layers) * d,) + tuple(one.shape[1:]))
        stacked = node.outputs[k]
        names = [n if n and (n in users or n in graph.outputs) else "" for n in names]
        at = graph.nodes.index(node) + 1
        for i, name in enumerate(names):
            if name:
                graph.nodes.insert(at, _rows(graph, stacked, i * d, (i + 1) * d, name, node.where))
