"""What a loaded Model is made of, whatever its source format: its layers (with the weights as the file stores
them, parameter counts and, for recurrent layers, the canonical RecurrentLayer), the framework whose gate
order the file uses, and the defaults the importer applied. `rnnfast inspect` prints this; `verify` and
`inputs.random_inputs` use it to name layers and to pick valid token ids.

Each graph type of rnnfast/importers (and rnnfast/pipeline.py) has one walker here; a graph type without one
is still inspected through describe(), with no layer table. An ONNX model is read from its analysed graph IR
(rnnfast/graph/), and from the node-by-node path's steps only when the C executor cannot take it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..graph.build import LayerSpec
from ..graph.ir import VIEW_OPS
from ..graph.stack import CELL_OPS
from ..importers import _gates
from ..layers import RecurrentLayer

# Gate order of the weights as each source stores them (all from rnnfast/importers/_gates.py).
SOURCE_ORDERS = {"onnx": _gates.CANONICAL_ORDER, "keras": _gates.KERAS_ORDER, "torch": _gates.TORCH_ORDER,
                 "rnnf": _gates.CANONICAL_ORDER, "keras1": _gates.KERAS1_ORDER, "tf1": _gates.TF1_ORDER}


@dataclass
class LayerInfo:
    name: str
    kind: str  # LSTM, GRU, RNN, Dense, Embedding, MatMul, ...
    parameters: int
    weights: dict = field(default_factory=dict)  # label -> shape, as the file stores them
    recurrent: Optional[RecurrentLayer] = None
    order: str = ""  # key of SOURCE_ORDERS: whose gate order the stored weights use
    detail: str = ""


def gate_mapping(order: str, cell: str) -> dict:
    """Source gate order -> canonical (ONNX) order, and the permutation _gates applies."""
    source = SOURCE_ORDERS[order][cell]
    return {"source": list(source), "canonical": list(_gates.CANONICAL_ORDER[cell]),
            "permutation": _gates.permutation(SOURCE_ORDERS[order], cell)}


def _size(shapes) -> int:
    return int(sum(np.prod(s, dtype=np.int64) for s in shapes))


def _recurrent_detail(layer: RecurrentLayer) -> str:
    parts = [f"{layer.direction}", f"input {layer.input_size}", f"hidden {layer.hidden_size}"]
    if layer.proj_size:
        parts.append(f"proj {layer.proj_size}")
    acts = "; ".join(",".join(a.name for a in d) for d in dict.fromkeys(layer.activations))
    parts.append(f"activations {acts}")
    if layer.cell == "gru":
        parts.append(f"linear_before_reset={int(layer.linear_before_reset)}")
    if layer.clip is not None:
        parts.append(f"clip {layer.clip:g}")
    if layer.input_forget:
        parts.append("input_forget")
    if layer.peepholes is not None:
        parts.append("peepholes")
    return ", ".join(parts)


def _canonical(layer: RecurrentLayer, order: str, name: str = "") -> LayerInfo:
    arrays = {"w_ih": layer.w_ih, "w_hh": layer.w_hh, "w_hr": layer.w_hr, "peepholes": layer.peepholes}
    # A source without biases gives zero bias arrays; they are not parameters of the file.
    arrays.update({k: getattr(layer, k) for k in ("b_ih", "b_hh") if np.any(getattr(layer, k))})
    weights = {k: list(v.shape) for k, v in arrays.items() if v is not None}
    return LayerInfo(name or layer.name, layer.cell.upper(), _size(weights.values()), weights, layer, order,
                     _recurrent_detail(layer))


# --- ONNX: the node-by-node path's steps, for a graph the C executor cannot take ---------------------------------
def _onnx_layers(graph, prefix="") -> list:
    out = []
    for kind, step in graph.steps:
        if kind == "recurrent":
            spec = step.spec
            names = {k: spec.inputs[k] for k in ("W", "R", "B", "P") if spec.inputs[k]}
            weights = {k: list(np.shape(graph.consts[n])) for k, n in names.items() if n in graph.consts}
            name = prefix + (spec.node.name or spec.node.output[0] or spec.node.op_type)
            if step.layer is None:  # weights fed as graph inputs: known only at run time
                out.append(LayerInfo(name, spec.cell.upper(), 0, weights, None, "onnx",
                                     f"{spec.direction}, weights {sorted(set(names) - set(weights))} fed at run time"))
            else:
                info = _canonical(step.layer, "onnx", name)
                info.weights, info.parameters = weights, _size(weights.values())
                out.append(info)
        elif kind == "if":
            for key, branch in step.branches.items():
                out += _onnx_layers(branch, f"{prefix}{step.node.name or 'If'}/{key}/")
        else:
            # Float constants are weights; integer ones (axes, shapes, indices) are not parameters.
            consts = {n: list(np.shape(graph.consts[n])) for n in step.node.input
                      if n and n in graph.consts and np.asarray(graph.consts[n]).dtype.kind == "f"}
            if consts:
                out.append(LayerInfo(prefix + (step.node.name or step.node.output[0]), step.node.op_type,
                                     _size(consts.values()), consts))
    return out


def _onnx_defaults(graph) -> list:
    from ..layers import default_activations

    out = []
    for kind, step in graph.steps:
        if kind != "recurrent":
            continue
        spec = step.spec
        given = {a.name for a in spec.node.attribute}
        name = spec.node.name or spec.node.output[0]
        defaults = {"direction": ("forward", "ONNX default"), "layout": (0, "ONNX default"),
                    "activations": (",".join(a.name for a in default_activations(spec.cell)), "ONNX default")}
        if spec.cell == "gru":
            defaults["linear_before_reset"] = (0, "ONNX default")
        if step.layer is not None:
            defaults["hidden_size"] = (step.layer.hidden_size, "from the shape of R")
        out += [(name, k, v, why) for k, (v, why) in defaults.items() if k not in given]
    return out


# --- ONNX: the analysed graph IR (rnnfast/graph/ir.py) ---------------------------------------------------------
INT_GLUE = ("Transpose", "Cast") + VIEW_OPS  # token ids pass them unchanged


def _ir_layers(graph, run_layers=None, prefix="") -> list:
    """Recurrent layers show the file's weights, not what the analysis made of them (graph/stack.py folds a Linear
    before a stack into its first layer's input weights: the detail says so), and are the node-by-node path's
    objects where it has them (run_layers: where -> layer), which verify and inspect watch run; a bias graph/fuse.py
    folded into a product is counted there."""
    out = []
    consts = {n: v.const for n, v in graph.values.items() if v.const is not None}
    for node in graph.nodes:
        name = prefix + (node.name or node.outputs[0])
        if node.op == "Recurrent":  # graph/stack.py: a stack of layers, each listed with its own name
            for layer in node.payload:
                out += [LayerInfo(prefix + n, op, _size(shapes.values()), shapes) for n, op, shapes in layer.folded]
                if isinstance(layer.spec, LayerSpec):  # a canonical layer given as it is (quantized, built)
                    out.append(_canonical(layer.spec.layer, "onnx", prefix + layer.name))
                    continue
                out.append(_ir_recurrent(layer.spec, prefix + layer.name, consts, run_layers, layer.weights[0]))
        elif node.op in CELL_OPS:
            out.append(_ir_recurrent(node.payload, name, consts, run_layers))
        elif node.op == "If":
            for key, branch in zip(("then_branch", "else_branch"), node.payload):
                out += _ir_layers(branch, run_layers, f"{prefix}{node.name or 'If'}/{key}/")
        else:
            # Float constants are weights; integer ones (axes, shapes, indices) are not parameters.
            floats = {n: list(consts[n].shape) for n in node.inputs if n in consts and consts[n].dtype.kind == "f"}
            if node.op in ("MatMul", "Gemm") and node.attrs.get("_bias_added"):
                floats["bias (an Add folded in)"] = list(node.attrs["_bias"].shape)
            if floats:
                out.append(LayerInfo(name, node.op, _size(floats.values()), floats))
    return out


def _ir_recurrent(spec, name, consts, run_layers, w_used=None) -> LayerInfo:
    keys = {k: spec.inputs[k] for k in spec.weight_keys if spec.inputs[k]}
    weights = {k: list(consts[n].shape) for k, n in keys.items() if n in consts}
    if len(weights) < len(keys):  # weights fed as graph inputs: known only at run time
        return LayerInfo(name, spec.cell.upper(), 0, weights, None, "onnx",
                         f"{spec.direction}, weights {sorted(set(keys) - set(weights))} fed at run time")
    layer = (run_layers or {}).get(spec.where) or spec.build_layer(*[consts.get(keys.get(k)) for k in spec.weight_keys])
    info = _canonical(layer, "onnx", name)
    info.weights, info.parameters = weights, _size(weights.values())
    if w_used is not None and w_used is not consts[keys["W"]]:
        info.detail += "; the Linear before it is folded into its input weights at load"
    return info


def _run_layers(graph) -> dict:
    """where -> RecurrentLayer of the node-by-node path's recurrent steps (none for a CompiledOnnxGraph)."""
    out = {}
    for kind, step in getattr(graph, "steps", ()):
        if kind == "recurrent" and step.layer is not None:
            out[step.spec.where] = step.layer
        elif kind == "if":
            for branch in step.branches.values():
                out.update(_run_layers(branch))
    return out


def _ir_defaults(graph, prefix="") -> list:
    from ..layers import default_activations

    out = []
    for node in graph.nodes:
        if node.op == "If":
            for key, branch in zip(("then_branch", "else_branch"), node.payload):
                out += _ir_defaults(branch, f"{prefix}{node.name or 'If'}/{key}/")
            continue
        if node.op == "Recurrent":
            layers = [(layer.spec, layer.name, layer.weights[1]) for layer in node.payload
                      if not isinstance(layer.spec, LayerSpec)]  # given as they are: no file attributes
        elif node.op in CELL_OPS:
            r = node.inputs[2]
            layers = [(node.payload, node.name or node.outputs[0], graph.values[r].const)]
        else:
            continue
        for spec, name, R in layers:
            given = {a.name for a in spec.node.attribute}
            defaults = {"direction": ("forward", "ONNX default"), "layout": (0, "ONNX default"),
                        "activations": (",".join(a.name for a in default_activations(spec.cell)), "ONNX default")}
            if spec.cell == "gru":
                defaults["linear_before_reset"] = (0, "ONNX default")
            if R is not None:
                defaults["hidden_size"] = (int(R.shape[-1]), "from the shape of R")
            out += [(prefix + name, k, v, why) for k, (v, why) in defaults.items() if k not in given]
    return out


def _ir_int_range(graph, name, seq_len):
    """[low, high) of an integer input that the IR reads (through views and casts) as a recurrent node's
    sequence_lens or as a Gather's indices into a constant table, or None."""
    users, vocab, todo, seen = graph.consumers(), [], [name], set()
    while todo:
        v = todo.pop()
        if v in seen:
            continue
        seen.add(v)
        for node in users.get(v, []):
            lens = {"Recurrent": 1, **{op: 4 for op in CELL_OPS}}.get(node.op)
            lens = node.inputs[lens] if lens is not None and lens < len(node.inputs) else ""
            table = graph.values[node.inputs[0]].const if node.op == "Gather" else None
            if lens == v:
                return 1, seq_len + 1
            if table is not None and node.inputs[1] == v:
                vocab.append(table.shape[node.attrs.get("axis", 0) % table.ndim])
            elif node.op in INT_GLUE:
                todo.append(node.outputs[0])
            elif node.op == "If":
                found = [r for r in (_ir_int_range(b, v, seq_len) for b in node.payload) if r is not None]
                if found:
                    return found[0]
    return (0, min(vocab)) if vocab else None


# --- Keras --------------------------------------------------------------------------------------------------
def _keras_layers(graph, prefix="") -> list:
    from ..importers.keras.graph import ModelLayer
    from ..importers.keras.rnn import Bidirectional, KerasRNN

    out = []
    for ls, obj in graph.order:
        name = prefix + ls.name
        if isinstance(obj, ModelLayer):
            out += _keras_layers(obj.graph, name + "/")
            continue
        slots = obj.slots() if obj.weights else []
        labels = [s.label for s in slots]
        if len(set(labels)) != len(labels):
            labels = [f"{s.path.split('/')[0]}/{s.label}" for s in slots]
        weights = {lab: list(w.shape) for lab, w in zip(labels, obj.weights)}
        params = _size(weights.values())
        if isinstance(obj, (KerasRNN, Bidirectional)):
            inner = obj if isinstance(obj, KerasRNN) else obj.forward
            order = "keras1" if inner.keras1_per_gate else "keras"
            parts = [obj.fused] if isinstance(obj, Bidirectional) and obj.fused is not None else (
                [obj.layer] if isinstance(obj, KerasRNN) else [obj.forward.layer, obj.backward.layer])
            for k, layer in enumerate(parts):
                suffix = "" if len(parts) == 1 else ("/forward", "/backward")[k]
                info = _canonical(layer, order, name + suffix)
                info.weights = weights if k == 0 else {}
                info.parameters = params if k == 0 else 0
                info.detail += f" ({ls.cls}: {obj.summary()})"
                out.append(info)
        elif obj.weights:
            out.append(LayerInfo(name, ls.cls, params, weights, detail=obj.summary()))
    return out


# --- PyTorch and .rnnf pipelines ------------------------------------------------------------------------------
def _torch_layers(graph) -> list:
    out = []
    if graph.embedding is not None:
        shape = list(graph.embedding.weight.shape)
        out.append(LayerInfo(graph.embedding.name, "Embedding", _size([shape]), {"weight": shape},
                             detail=f"{shape[0]} tokens -> {shape[1]}"))
    out += [_canonical(layer, "torch") for layer in graph.layers]
    if graph.head is not None:
        w = {"weight": list(graph.head.weight.shape)}
        if graph.head.bias is not None:
            w["bias"] = list(graph.head.bias.shape)
        out.append(LayerInfo(graph.head.name, "Linear", _size(w.values()), w,
                             detail=f"{w['weight'][1]} -> {w['weight'][0]} at every time step"))
    return out


def _tf1_layers(graph) -> list:
    """Cells as the checkpoint stores them: kernel [input + state, gates*hidden] and bias per direction."""
    out = []
    if graph.embedding is not None:
        shape = list(graph.embedding.weight.shape)
        out.append(LayerInfo(graph.embedding.name, "Embedding", _size([shape]), {"table": shape},
                             detail=f"{shape[0]} tokens -> {shape[1]}"))
    for layer in graph.layers:
        info = _canonical(layer, "tf1")
        H, P, rows = layer.hidden_size, layer.output_size, layer.input_size + layer.output_size
        if layer.cell == "gru":
            w = {"gates/kernel": [rows, 2 * H], "gates/bias": [2 * H], "candidate/kernel": [rows, H],
                 "candidate/bias": [H]}
        else:
            w = {"kernel": [rows, layer.n_gates * H], "bias": [layer.n_gates * H]}
        if layer.peepholes is not None:
            w.update({k: [H] for k in ("w_f_diag", "w_i_diag", "w_o_diag")})
        if layer.proj_size:
            w["projection/kernel"] = [H, P]
        info.weights = w if layer.n_dirs == 1 else {f"{d}/{k}": v for d in ("fw", "bw") for k, v in w.items()}
        info.parameters = _size(info.weights.values())
        info.detail += f" ({layer.source.split(': ', 1)[-1]})"
        out.append(info)
    for s in graph.heads:
        w = {"kernel": [s.input_size, s.output_size]}
        if s.bias is not None:
            w["bias"] = list(s.bias.shape)
        out.append(LayerInfo(s.name, "Dense", _size(w.values()), w,
                             detail=f"{s.input_size} -> {s.output_size} {s.activation} at every time step"))
    return out


def _pipeline_layers(graph) -> list:
    from ..pipeline import DenseStage, EmbeddingStage, RecurrentStage

    out = []
    for i, s in enumerate(graph.stages):
        name = s.name or f"layer{i}"
        if isinstance(s, EmbeddingStage):
            shape = list(s.table.shape)
            out.append(LayerInfo(name, "Embedding", _size([shape]), {"table": shape},
                                 detail=f"{shape[0]} tokens -> {shape[1]}, mask_zero={s.mask_zero}"))
        elif isinstance(s, RecurrentStage):
            out += [_canonical(layer, "rnnf", layer.name or f"{name}/{k}") for k, layer in enumerate(s.layers)]
        elif isinstance(s, DenseStage):
            w = {"weight": list(s.weight.shape)}
            if s.bias is not None:
                w["bias"] = list(s.bias.shape)
            out.append(LayerInfo(name, "Dense", _size(w.values()), w,
                                 detail=f"{s.input_size} -> {s.output_size} {s.activation}"))
    return out


# --- .rnnf 2 and the graph containers (.npz, .safetensors): the C executor's description ------------------------
def _rnnf_graph_layers(desc) -> list:
    """Each recurrent node's layers (the objects verify and inspect watch run, graph/watched.py) and each other node
    with float constants (its weights), in If branches too."""
    from ..graph.compile import OP, OP_NAMES

    out = []
    for op, name, ins, _, iattr, _, layers in desc["nodes"]:
        if op == OP["RECURRENT"]:
            out += [_canonical(d["layer"], "rnnf", d["layer"].name or f"{name} layer {k}")
                    for k, d in enumerate(layers)]
        elif op == OP["IF"]:
            for i in iattr[:2]:
                out += _rnnf_graph_layers(desc["subgraphs"][i])
        else:
            consts = {desc["tensors"][t][5]: list(desc["tensors"][t][3].shape) for t in ins
                      if t >= 0 and desc["tensors"][t][3] is not None and desc["tensors"][t][0] == 0}
            if consts:
                out.append(LayerInfo(name, OP_NAMES[op], _size(consts.values()), consts))
    return out


def source_framework(model) -> str:
    kind = type(model.graph).__name__
    return {"OnnxGraph": "onnx", "CompiledOnnxGraph": "onnx", "KerasModelGraph": "keras", "TorchGraph": "torch",
            "TorchCellGraph": "torch", "ChainGraph": "rnnf", "RnnfGraph": "rnnf", "TF1Graph": "tf1"}.get(kind, kind)


def layers(model) -> list:
    framework = source_framework(model)
    if framework == "onnx":  # the node-by-node steps only for a graph the C executor cannot take
        g = model.graph
        return _onnx_layers(g) if g.compiled is None else _ir_layers(g.compiled.graph, _run_layers(g))
    if framework == "keras":
        return _keras_layers(model.graph.graph)
    if framework == "torch":
        return _torch_layers(model.graph)
    if framework == "rnnf":
        g = model.graph
        return _rnnf_graph_layers(g.compiled.desc) if hasattr(g, "compiled") else _pipeline_layers(g)
    if framework == "tf1":
        return _tf1_layers(model.graph)
    return []


def defaults(model) -> list:
    """(layer, option, value, why) for every option the file left out and the importer filled in."""
    framework = source_framework(model)
    if framework == "onnx":
        g = model.graph
        return _onnx_defaults(g) if g.compiled is None else _ir_defaults(g.compiled.graph)
    if framework == "keras":
        return list(model.graph.ctx.defaults)
    return list(getattr(model.graph, "defaults", []))


def int_input_range(model, name: str, seq_len: int) -> tuple:
    """[low, high) of valid values for an integer input: token ids below the vocabulary size of the embedding
    it feeds, lengths 1..seq_len for an ONNX sequence_lens, else 0..1."""
    framework = source_framework(model)
    g = model.graph
    if framework in ("torch", "tf1") and g.embedding is not None and name == "input":
        return 0, g.embedding.weight.shape[0]
    if framework == "rnnf" and getattr(g, "takes_ids", False):
        return 0, g.vocab
    if framework == "keras":
        vocab = [obj.input_dim for _, obj in g.graph.order if type(obj).__name__ == "Embedding"]
        if vocab:
            return 0, min(vocab)
    if framework == "onnx" and g.compiled is not None:
        return _ir_int_range(g.compiled.graph, name, seq_len) or (0, 2)
    if framework == "onnx":
        for kind, step in g.steps:
            if kind == "recurrent" and step.spec.inputs["sequence_lens"] == name:
                return 1, seq_len + 1
            if kind == "op" and step.node.op_type == "Gather" and step.node.input[1:2] == [name]:
                table = g.consts.get(step.node.input[0])
                if table is not None:
                    return 0, table.shape[0]
    return 0, 2
