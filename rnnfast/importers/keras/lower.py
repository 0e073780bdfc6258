"""A Keras layer graph lowered to the graph IR (rnnfast/graph/build.py), so the whole model runs in one C call.

The walk follows the numpy layer graph (graph.py) call by call: nested models are inlined, a shared layer is lowered
once per call, and every tensor travels with its Keras mask (a bool value [batch, steps], or None), with the same
propagation rules as the numpy layers (layers.py): a layer that supports masking passes its input's mask on, merges
AND their inputs' masks, an Embedding(mask_zero) or Masking layer makes one, a recurrent layer consumes it (the C
recurrent node's mask input: a masked step keeps the state and repeats the previous output) and passes it on only
with return_sequences.

Stateful recurrent layers read their state from graph inputs and write it to graph outputs paired in the graph's
state_loops (KerasLowered.states): the model holds the arrays between run calls.

A layer or form with no lowering raises graph.infer.Unfit naming the layer; the model then keeps the numpy path.
Recurrent layers are lowered by lower_rnn.py; the activations by name in ACTIVATIONS below."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import FormatError
from ...graph.build import GraphBuilder
from ...graph.infer import Unfit
from .activations import activation_name
from .config import Ref
from .graph import KerasGraph, ModelLayer, TimeDistributed, _map, keras3_drops_mask
from .layers import (Activation, BatchNormalization, Concatenate, Dense, Dot, Embedding, Flatten, GlobalPooling1D,
                     Identity, LayerNormalization, Masking, Merge, Permute, RepeatVector, Reshape, Softmax, _axes)
from .ops import OpNode
from .rnn import UNAPPLIED_MASK, Bidirectional, KerasRNN

INT64_MAX = 2 ** 63 - 1
ONNX_FLOAT, ONNX_INT32, ONNX_INT64, ONNX_BOOL = 1, 6, 7, 9
CAST_CODES = {"float32": ONNX_FLOAT, "int32": ONNX_INT32, "int64": ONNX_INT64, "bool": ONNX_BOOL}


@dataclass
class KT:
    """A Keras tensor in the graph being built."""

    name: str
    shape: tuple                 # Keras' static shape: None for the batch and for sizes known only at run time
    dtype: np.dtype = np.dtype(np.float32)
    mask: str | None = None      # its Keras mask: a bool value [batch, steps, ...]
    time_major: str | None = None  # the same tensor as [steps, batch, features], when a recurrent layer made it

    @property
    def rank(self):
        return len(self.shape)


@dataclass
class KerasLowered:
    """What the model needs besides the graph: the held states and the inputs whose ids an Embedding reads."""

    builder: GraphBuilder
    states: list = field(default_factory=list)     # (input name, output name, [n_dirs, units], layer where)
    id_inputs: dict = field(default_factory=dict)  # graph input -> (vocabulary size, Embedding where)


def lower_keras(model_graph) -> KerasLowered:
    """The IR of a KerasModelGraph (graph.py), or Unfit naming the first layer with no lowering."""
    return _Lowering(model_graph).run()


class _Lowering:
    def __init__(self, model_graph):
        self.mg = model_graph
        self.b = GraphBuilder(model_graph.source)
        self.out = KerasLowered(self.b)
        self.time_major = {}  # a mask value -> the same mask as [steps, batch]

    def run(self) -> KerasLowered:
        graph = self.mg.graph
        xs = []
        for info, layer in zip(self.mg.inputs, graph.input_layers):
            is_float = info.type == "tensor(float)"
            dims = [("batch" if i == 0 else f"{info.name}:{i}") if d is None else int(d)
                    for i, d in enumerate(layer.shape)]
            dims[0] = "batch"  # a fixed batch_shape (stateful models) is checked by the model, not the graph
            dtype = np.dtype(np.float32 if is_float else np.int64)
            name = self.b.input(info.name, dtype, dims)
            xs.append(KT(name, tuple([None] + list(layer.shape[1:])), dtype))
        outs = self.graph_outputs(graph, xs)
        used = set()
        for info, kt in zip(self.mg.outputs, outs):
            value = kt.name
            if value in used or value in self.b.g.inputs:
                value = self.b.node("Identity", [value], name=f"{info.name}/copy")
            used.add(value)
            self.b.output(value, info.name)
        for state_in, state_out, _, _ in self.out.states:
            self.b.output(state_out)
            self.b.state_loop(state_out, state_in)
        return self.out

    # ---- the layer graph ----
    def graph_outputs(self, graph: KerasGraph, xs: list) -> list:
        values = dict(zip(graph.spec.inputs, xs))
        return [self.value(graph, r, values) for r in graph.spec.outputs]

    def value(self, graph: KerasGraph, ref: Ref, values: dict) -> KT:
        if ref in values:
            return values[ref]
        layer, spec = graph.layers[ref.layer], graph.specs[ref.layer]
        index = ref.node - spec.node_offset
        if not 0 <= index < len(spec.nodes):
            raise FormatError(f"{self.mg.ctx.name}: layer {ref.layer!r} has no call #{ref.node} in the model config")
        node = spec.nodes[index]
        args = _map(node.args, lambda r: self.value(graph, r, values))
        kwargs = _map(node.kwargs, lambda r: self.value(graph, r, values))
        outer, self.b.origin = self.b.origin, layer.where  # what the IR's messages name its nodes by (ir.Node.origin)
        try:
            outs = self._call(layer, args, kwargs, node)
        finally:
            self.b.origin = outer
        for i, o in enumerate(outs):
            values[Ref(ref.layer, ref.node, i)] = o
        if ref not in values:
            raise FormatError(f"{layer.where}: the model uses its output #{ref.tensor}, the layer gives {len(outs)}")
        return values[ref]

    def _call(self, layer, args, kwargs, node) -> list:
        """The KTs one call of `layer` gives."""
        if isinstance(layer, OpNode):
            return [self.op_node(layer, args, kwargs)]
        if not args:
            raise FormatError(f"{layer.where}: a layer call without inputs")
        x = args[0]
        if "mask" in kwargs and kwargs["mask"] is not None:
            x = _with_mask(x, kwargs["mask"], self, layer)
        kw = {k: v for k, v in kwargs.items() if k not in ("mask", "training")}
        first = x[0] if isinstance(x, (list, tuple)) else x
        if isinstance(first, KT) and first.mask is not None and keras3_drops_mask(node, self.mg.ctx):
            if not isinstance(layer, (KerasRNN, Bidirectional)):
                x = _with_mask(x, None, self, layer)
            kw[UNAPPLIED_MASK] = True
        if isinstance(layer, ModelLayer):
            xs = list(x) if isinstance(x, (list, tuple)) else [x]
            if len(xs) != len(layer.graph.spec.inputs):
                raise ValueError(f"{layer.where}: takes {len(layer.graph.spec.inputs)} input(s), got {len(xs)}")
            return self.graph_outputs(layer.graph, xs)
        return self.layer(layer, x, kw)

    def layer(self, layer, x, kw) -> list:
        for cls, method in LAYER_LOWERINGS + _conv_lowerings():
            if isinstance(layer, cls):
                return method(self, layer, x, kw)
        raise Unfit(f"{layer.where}: the C executor has no {layer.cls} layer yet")

    # ---- helpers ----
    def node(self, op, inputs, attrs=None, name=None, outputs=1):
        return self.b.node(op, inputs, attrs, name=name, outputs=outputs)

    def const(self, array, name="const"):
        return self.b.const(np.asarray(array), name)

    def float_in(self, layer, x: KT) -> KT:
        if not isinstance(x, KT):
            raise Unfit(f"{layer.where}: takes one tensor, got a list")
        if x.dtype != np.float32:
            raise Unfit(f"{layer.where}: reads a {x.dtype} tensor (the graph runs float32 layers on float32)")
        return x

    def activation(self, layer, name, x) -> str:
        fn = ACTIVATIONS.get(name)
        if fn is None:
            raise Unfit(f"{layer.where}: the C executor has no activation {name!r} yet")
        return fn(self, x, layer)

    def squeeze(self, value, axes, name=None):
        return self.node("Squeeze", [value, np.array(axes, np.int64)], name=name)

    def unsqueeze(self, value, axes, name=None):
        return self.node("Unsqueeze", [value, np.array(axes, np.int64)], name=name)

    def slice(self, value, axis, start, end, step=1, name=None):
        arr = lambda v: np.array([v], np.int64)
        return self.node("Slice", [value, arr(start), arr(end), arr(axis), arr(step)], name=name)

    def reverse_time(self, value, axis, name=None):
        return self.slice(value, axis, -1, -INT64_MAX - 1, -1, name=name)

    def and_masks(self, masks, name):
        masks = [m for m in masks if m is not None]
        if not masks:
            return None
        out = masks[0]
        for m in masks[1:]:
            out = self.node("And", [out, m], name=f"{name}/mask")
        return out

    # ---- Keras 3 op-nodes and tf.keras TFOpLambda nodes (mask idioms) ----
    def op_node(self, layer: OpNode, args, kwargs) -> KT:
        kwargs = {k: v for k, v in kwargs.items() if k != "name"}
        if layer.tf:
            from .ops import TF_ARG_NAMES

            names = TF_ARG_NAMES[layer.key]
            args = list(args) + [kwargs.pop(n) for n in names[len(args):] if n in kwargs]
            kwargs = {"axis": kwargs["axis"]} if "axis" in kwargs else {}
        key, cfg = layer.key, layer.config
        a = args[0] if args else None
        if not isinstance(a, KT):
            raise Unfit(f"{layer.where}: an operation on a constant")
        n = f"{layer.name}"

        def operand(v):
            if isinstance(v, KT):
                return v.name, v.dtype
            arr = np.asarray(v, a.dtype)
            return self.const(arr, f"{n}/operand"), a.dtype

        if key in ("not_equal", "equal", "greater", "greater_equal", "less", "less_equal", "logical_and",
                   "logical_or"):
            second = args[1] if len(args) >= 2 else kwargs.get("y")
            if second is None:
                raise FormatError(f"{layer.where}: needs two operands")
            b_name, b_dtype = operand(second)
            if b_dtype != a.dtype:
                raise Unfit(f"{layer.where}: compares {a.dtype} with {b_dtype}")
            op = {"equal": "Equal", "not_equal": "Equal", "greater": "Greater", "greater_equal": "GreaterOrEqual",
                  "less": "Less", "less_equal": "LessOrEqual", "logical_and": "And", "logical_or": "Or"}[key]
            y = self.node(op, [a.name, b_name], name=n)
            if key == "not_equal":
                y = self.node("Equal", [y, np.array(False)], name=f"{n}/not")
            return KT(y, a.shape, np.dtype(np.bool_))
        if key == "logical_not":
            return KT(self.node("Equal", [a.name, np.array(False)], name=n), a.shape, np.dtype(np.bool_))
        if key in ("any", "all"):
            axis = kwargs.get("axis", cfg.get("axis", args[1] if len(args) > 1 else None))
            keep = bool(kwargs.get("keepdims", cfg.get("keepdims", args[2] if len(args) > 2 else False)))
            axes = list(range(a.rank)) if axis is None else [int(v) % a.rank for v in np.atleast_1d(axis)]
            f = self.node("Cast", [a.name], {"to": ONNX_FLOAT}, name=f"{n}/float")
            r = self.node("ReduceMax" if key == "any" else "ReduceMin", [f], {"axes": axes, "keepdims": int(keep)},
                          name=n)
            shape = tuple(d for i, d in enumerate(a.shape) if i not in axes or keep) if not keep else \
                tuple(1 if i in axes else d for i, d in enumerate(a.shape))
            return KT(self.node("Cast", [r], {"to": ONNX_BOOL}, name=f"{n}/bool"), shape, np.dtype(np.bool_))
        if key == "cast":
            d = kwargs.get("dtype", cfg.get("dtype", args[1] if len(args) > 1 else None))
            if isinstance(d, dict):
                d = (d.get("config") or {}).get("name")
            if d not in CAST_CODES:
                raise Unfit(f"{layer.where}: cast to {d!r}")
            dtype = np.dtype(np.bool_ if d == "bool" else d)
            return KT(self.node("Cast", [a.name], {"to": CAST_CODES[d]}, name=n), a.shape, dtype)
        if key in ("expand_dims", "squeeze"):
            axis = kwargs.get("axis", cfg.get("axis", args[1] if len(args) > 1 else None))
            if axis is None:
                raise Unfit(f"{layer.where}: {key} without an axis")
            rank = a.rank + (1 if key == "expand_dims" else 0)
            ax = [int(v) % rank for v in np.atleast_1d(axis)]
            if key == "expand_dims":
                shape = list(a.shape)
                for i in sorted(ax):
                    shape.insert(i, 1)
                return KT(self.unsqueeze(a.name, ax, n), tuple(shape), a.dtype)
            return KT(self.squeeze(a.name, ax, n), tuple(d for i, d in enumerate(a.shape) if i not in ax), a.dtype)
        raise Unfit(f"{layer.where}: the C executor has no operation {key!r} yet")


def _with_mask(x, mask, low, layer):
    """x with the mask a call passed explicitly (mask=): a bool tensor, or a list of them for a list of inputs."""
    def one(t, m):
        if m is None:
            return KT(t.name, t.shape, t.dtype, None, t.time_major)
        if not isinstance(m, KT):
            raise Unfit(f"{layer.where}: a mask that is not a tensor")
        name = m.name if m.dtype == np.bool_ else low.node("Cast", [m.name], {"to": ONNX_BOOL},
                                                           name=f"{layer.name}/mask")
        return KT(t.name, t.shape, t.dtype, name, t.time_major)

    if isinstance(x, (list, tuple)):
        ms = list(mask) if isinstance(mask, (list, tuple)) else [mask] + [None] * (len(x) - 1)
        return [one(t, m) for t, m in zip(x, ms)]
    if isinstance(mask, (list, tuple)):
        mask = mask[0]
    return one(x, mask)


# ---- activations: Keras name -> the IR nodes ----

def _unary(op, **attrs):
    return lambda low, x, layer: low.node(op, [x], attrs, name=f"{layer.name}/{op.lower()}")


def _times(inner):
    """x * inner(x): swish, hard_silu, mish."""
    def run(low, x, layer):
        return low.node("Mul", [x, inner(low, x, layer)], name=f"{layer.name}/gate")
    return run


def _hard_sigmoid(low, x, layer):
    return low.node("HardSigmoid", [x], {"alpha": float(layer.ctx.hs_alpha), "beta": 0.5},
                    name=f"{layer.name}/hard_sigmoid")


ACTIVATIONS = {
    "linear": lambda low, x, layer: x,
    "tanh": _unary("Tanh"), "sigmoid": _unary("Sigmoid"), "relu": _unary("Relu"), "elu": _unary("Elu", alpha=1.0),
    "selu": _unary("Selu"), "softsign": _unary("Softsign"), "softplus": _unary("Softplus"),
    "exponential": _unary("Exp"),
    "gelu": _unary("Gelu"), "softmax": _unary("Softmax", axis=-1), "log_softmax": _unary("LogSoftmax", axis=-1),
    "leaky_relu": _unary("LeakyRelu", alpha=0.2),
    "relu6": lambda low, x, layer: low.node("Clip", [x, np.array(0.0, np.float32), np.array(6.0, np.float32)],
                                            name=f"{layer.name}/relu6"),
    "hard_sigmoid": _hard_sigmoid,
    "swish": _times(_unary("Sigmoid")), "silu": _times(_unary("Sigmoid")),
    "hard_silu": _times(lambda low, x, layer: low.node("HardSigmoid", [x], {"alpha": 1.0 / 6.0, "beta": 0.5},
                                                       name=f"{layer.name}/hard_sigmoid")),
    "mish": _times(lambda low, x, layer: low.node("Tanh", [low.node("Softplus", [x], name=f"{layer.name}/softplus")],
                                                  name=f"{layer.name}/tanh")),
}
ACTIVATIONS["hard_swish"] = ACTIVATIONS["hard_silu"]


def _act(low, layer, y, key="activation"):
    return low.activation(layer, activation_name(layer.config.get(key), layer.where), y)


# ---- layers ----

def lower_dense(low, layer: Dense, x, kw):
    x = low.float_in(layer, x)
    k = layer.weights[0]
    if x.shape[-1] is not None and x.shape[-1] != k.shape[0]:
        raise ValueError(f"{layer.where}: input has {x.shape[-1]} features, the kernel takes {k.shape[0]}")
    y = low.node("MatMul", [x.name, k], name=layer.name)
    if layer.use_bias:
        y = low.node("Add", [y, layer.weights[1]], name=f"{layer.name}/bias")
    y = _act(low, layer, y)
    return [KT(y, x.shape[:-1] + (layer.units,), mask=x.mask)]


def lower_activation(low, layer, x, kw):
    x = low.float_in(layer, x)
    return [KT(_act(low, layer, x.name), x.shape, mask=x.mask)]


def lower_identity(low, layer, x, kw):
    x = low.float_in(layer, x)
    return [KT(x.name, x.shape, mask=x.mask, time_major=x.time_major)]


def lower_embedding(low, layer: Embedding, x, kw):
    if not isinstance(x, KT) or x.name not in low.b.g.inputs or x.dtype.kind not in "iu":
        raise Unfit(f"{layer.where}: the C executor runs an Embedding only where it reads integer ids straight from a "
                    f"model input (the model checks them against the vocabulary)")
    low.out.id_inputs.setdefault(x.name, []).append((layer.input_dim, layer.where))
    y = low.b.embedding(x.name, layer.weights[0], name=layer.name)
    mask = None
    if layer.mask_zero:  # ids are checked to be >= 0, so id != 0 is id > 0
        mask = low.node("Greater", [x.name, np.array(0, np.int64)], name=f"{layer.name}/mask")
    return [KT(y, x.shape + (layer.output_dim,), mask=mask)]


def lower_masking(low, layer: Masking, x, kw):
    x = low.float_in(layer, x)
    n = layer.name
    eq = low.node("Equal", [x.name, np.array(layer.mask_value, np.float32)], name=f"{n}/equal")
    all_eq = low.node("ReduceMin", [low.node("Cast", [eq], {"to": ONNX_FLOAT}, name=f"{n}/float")],
                      {"axes": [-1], "keepdims": 1}, name=f"{n}/all_equal")
    keep = low.node("Sub", [np.array(1.0, np.float32), all_eq], name=f"{n}/keep")
    y = low.node("Mul", [x.name, keep], name=n)
    mask = low.node("Cast", [low.squeeze(keep, [-1], f"{n}/keep_steps")], {"to": ONNX_BOOL}, name=f"{n}/mask")
    return [KT(y, x.shape, mask=mask)]


def _feature_shape(layer, x, axes):
    """The broadcast shape of per-feature constants over axes (the batch axis excluded)."""
    if 0 in axes:
        raise Unfit(f"{layer.where}: normalizes over the batch axis")
    shape = []
    for a in range(1, x.rank):
        if a in axes and x.shape[a] is None:
            raise Unfit(f"{layer.where}: axis {a} has a size known only at run time")
        shape.append(x.shape[a] if a in axes else 1)
    while len(shape) > 1 and shape[0] == 1:
        shape.pop(0)
    return shape


def lower_batchnorm(low, layer: BatchNormalization, x, kw):
    x = low.float_in(layer, x)
    axes = _axes(layer.axis, x.rank)
    shape = _feature_shape(layer, x, axes)
    w = list(layer.weights)
    gamma = w.pop(0) if layer.scale else None
    beta = w.pop(0) if layer.center else None
    mean, var = (np.asarray(v, np.float64) for v in w)
    if int(np.prod(shape)) != mean.size:
        raise ValueError(f"{layer.where}: input shape {x.shape} does not match {mean.size} features on axis "
                         f"{layer.axis}")
    k = 1.0 / np.sqrt(var + layer.eps)
    if gamma is not None:
        k = k * gamma
    shift = -mean * k + (beta if beta is not None else 0.0)
    y = low.node("Mul", [x.name, k.astype(np.float32).reshape(shape)], name=layer.name)
    y = low.node("Add", [y, shift.astype(np.float32).reshape(shape)], name=f"{layer.name}/shift")
    return [KT(y, x.shape, mask=x.mask)]


def lower_layernorm(low, layer: LayerNormalization, x, kw):
    """Over the last axis as ONNX LayerNormalization; over several trailing axes of known size (Keras axis=[1, 2])
    as one: flattened into the last axis, normalized with the flattened gamma and beta, and reshaped back."""
    x = low.float_in(layer, x)
    axes = _axes(layer.axis, x.rank)
    sizes = [x.shape[a] for a in axes]
    if axes != list(range(x.rank - len(axes), x.rank)) or None in sizes:
        raise Unfit(f"{layer.where}: LayerNormalization over axes {layer.axis} of a rank-{x.rank} input (the graph "
                    f"normalizes trailing axes of known size)")
    n, w = layer.name, [np.asarray(v, np.float32).reshape(-1) for v in layer.weights]
    if len(axes) == 1:
        return [KT(_layernorm_last(low, layer, x.name, sizes[0], w, n), x.shape, mask=x.mask)]
    keep = [0] * (x.rank - len(axes))  # Reshape's 0: that axis as it is
    size = int(np.prod(sizes))
    flat = low.node("Reshape", [x.name, np.array(keep + [size], np.int64)], name=f"{n}/flatten")
    y = _layernorm_last(low, layer, flat, size, w, f"{n}/normalized")
    y = low.node("Reshape", [y, np.array(keep + sizes, np.int64)], name=n)
    return [KT(y, x.shape, mask=x.mask)]


def _layernorm_last(low, layer, x: str, size: int, w: list, n: str) -> str:
    gamma = w.pop(0) if layer.scale else np.ones(size, np.float32)
    if layer.rms:
        ms = low.node("ReduceMean", [low.node("Mul", [x, x], name=f"{n}/square")],
                      {"axes": [-1], "keepdims": 1}, name=f"{n}/mean_square")
        rms = low.node("Sqrt", [low.node("Add", [ms, np.array(layer.eps, np.float32)], name=f"{n}/eps")],
                       name=f"{n}/rms")
        return low.node("Mul", [low.node("Div", [x, rms], name=f"{n}/scaled"), gamma], name=n)
    beta = w.pop(0) if layer.center else np.zeros(size, np.float32)
    return low.node("LayerNormalization", [x, gamma, beta], {"axis": -1, "epsilon": float(layer.eps)}, name=n)


def lower_repeat(low, layer: RepeatVector, x, kw):
    x = low.float_in(layer, x)
    if x.rank != 2:
        raise ValueError(f"{layer.where}: expects [batch, features], got rank {x.rank}")
    y = low.node("Expand", [low.unsqueeze(x.name, [1], f"{layer.name}/steps"), np.array([1, layer.n, 1], np.int64)],
                 name=layer.name)
    return [KT(y, (None, layer.n, x.shape[1]))]


def lower_flatten(low, layer, x, kw):
    x = low.float_in(layer, x)
    size = None if any(d is None for d in x.shape[1:]) else int(np.prod(x.shape[1:]))
    return [KT(low.node("Flatten", [x.name], {"axis": 1}, name=layer.name), (None, size))]


def lower_reshape(low, layer: Reshape, x, kw):
    x = low.float_in(layer, x)
    y = low.node("Reshape", [x.name, np.array([0] + layer.target, np.int64)], name=layer.name)
    shape = [None if d == -1 else d for d in layer.target]
    if -1 in layer.target and all(d is not None for d in x.shape[1:]):
        known = int(np.prod([d for d in layer.target if d != -1]))
        shape[layer.target.index(-1)] = int(np.prod(x.shape[1:])) // max(known, 1)
    return [KT(y, tuple([None] + shape))]


def lower_permute(low, layer: Permute, x, kw):
    x = low.float_in(layer, x)
    y = low.node("Transpose", [x.name], {"perm": [0] + layer.dims}, name=layer.name)
    return [KT(y, tuple([None] + [x.shape[d] for d in layer.dims]))]


def lower_softmax(low, layer: Softmax, x, kw):
    x = low.float_in(layer, x)
    if x.mask is not None:
        raise Unfit(f"{layer.where}: Softmax under a mask")
    if isinstance(layer.axis, (list, tuple)):
        raise Unfit(f"{layer.where}: Softmax over several axes")
    return [KT(low.node("Softmax", [x.name], {"axis": int(layer.axis)}, name=layer.name), x.shape)]


def lower_global_pool1d(low, layer: GlobalPooling1D, x, kw):
    x = low.float_in(layer, x)
    keep, n = int(layer.keepdims), layer.name
    shape = (None, 1, x.shape[2]) if keep else (None, x.shape[2])
    if layer.cls == "GlobalMaxPooling1D":
        return [KT(low.node("ReduceMax", [x.name], {"axes": [1], "keepdims": keep}, name=n), shape)]
    if x.mask is None:
        return [KT(low.node("ReduceMean", [x.name], {"axes": [1], "keepdims": keep}, name=n), shape)]
    m = low.unsqueeze(low.node("Cast", [x.mask], {"to": ONNX_FLOAT}, name=f"{n}/mask_float"), [-1], f"{n}/mask_3d")
    total = low.node("ReduceSum", [low.node("Mul", [x.name, m], name=f"{n}/masked"), np.array([1], np.int64)],
                     {"keepdims": keep}, name=f"{n}/sum")
    count = low.node("ReduceSum", [m, np.array([1], np.int64)], {"keepdims": keep}, name=f"{n}/count")
    return [KT(low.node("Div", [total, count], name=n), shape)]


def _inputs(layer, x):
    if not isinstance(x, (list, tuple)):
        raise FormatError(f"{layer.where}: this layer takes a list of inputs")
    for t in x:
        if not isinstance(t, KT) or t.dtype != np.float32:
            raise Unfit(f"{layer.where}: merges a tensor that is not float32")
    return list(x)


def lower_merge(low, layer: Merge, x, kw):
    xs, n = _inputs(layer, x), layer.name
    if layer.cls == "Subtract":
        if len(xs) != 2:
            raise ValueError(f"{layer.where}: Subtract takes exactly 2 inputs, got {len(xs)}")
        y = low.node("Sub", [xs[0].name, xs[1].name], name=n)
    else:
        op = {"Add": "Add", "Multiply": "Mul", "Average": "Add", "Maximum": "Max", "Minimum": "Min"}[layer.cls]
        y = xs[0].name
        for k, t in enumerate(xs[1:]):
            y = low.node(op, [y, t.name], name=f"{n}/{k}" if k + 2 < len(xs) or layer.cls == "Average" else n)
        if layer.cls == "Average":
            y = low.node("Div", [y, np.array(len(xs), np.float32)], name=n)
    shape = max((t.shape for t in xs), key=len)
    return [KT(y, shape, mask=low.and_masks([t.mask for t in xs], n))]


def lower_concatenate(low, layer: Concatenate, x, kw):
    xs, n = _inputs(layer, x), layer.name
    rank = xs[0].rank
    axis = layer.axis % rank
    y = low.node("Concat", [t.name for t in xs], {"axis": axis}, name=n)
    shape = list(xs[0].shape)
    sizes = [t.shape[axis] for t in xs]
    shape[axis] = None if any(s is None for s in sizes) else sum(sizes)
    masks = [t.mask for t in xs]
    mask = None
    if any(m is not None for m in masks):
        if axis == rank - 1:  # all(concat(broadcast masks), -1): every input's mask must hold
            mask = low.and_masks(masks, n)
        elif all(m is not None for m in masks) and axis < rank - 1:
            mask = low.node("Concat", masks, {"axis": axis}, name=f"{n}/mask")
        else:
            raise Unfit(f"{layer.where}: concatenates masked and unmasked tensors along axis {axis}")
    return [KT(y, tuple(shape), mask=mask)]


def lower_dot(low, layer: Dot, x, kw):
    xs, n = _inputs(layer, x), layer.name
    if len(xs) != 2:
        raise ValueError(f"{layer.where}: Dot takes exactly 2 inputs, got {len(xs)}")
    a, b = xs
    axes = layer.axes if isinstance(layer.axes, (list, tuple)) else [layer.axes, layer.axes]
    ax = [int(axes[0]) % a.rank, int(axes[1]) % b.rank]
    names = [a.name, b.name]
    if layer.normalize:
        for i, (t, axis) in enumerate(zip(xs, ax)):
            norm = low.node("Sqrt", [low.node("ReduceSumSquare", [t.name], {"axes": [axis], "keepdims": 1},
                                              name=f"{n}/sum_square{i}")], name=f"{n}/norm{i}")
            norm = low.node("Max", [norm, np.array(1e-12 ** 0.5, np.float32)], name=f"{n}/norm_floor{i}")
            names[i] = low.node("Div", [t.name, norm], name=f"{n}/normalized{i}")
    if a.rank == 2 and b.rank == 2 and ax == [1, 1]:
        y = low.node("ReduceSum", [low.node("Mul", names, name=f"{n}/product"), np.array([1], np.int64)],
                     {"keepdims": 1}, name=n)
        return [KT(y, (None, 1))]
    if a.rank != 3 or b.rank != 3 or 0 in ax:
        raise Unfit(f"{layer.where}: Dot of ranks {a.rank} and {b.rank} on axes {ax}")
    left = names[0] if ax[0] == 2 else low.node("Transpose", [names[0]], {"perm": [0, 2, 1]}, name=f"{n}/left")
    right = names[1] if ax[1] == 1 else low.node("Transpose", [names[1]], {"perm": [0, 2, 1]}, name=f"{n}/right")
    y = low.node("MatMul", [left, right], name=n)
    return [KT(y, (None, a.shape[3 - ax[0]], b.shape[3 - ax[1]]))]


def lower_time_distributed(low, layer: TimeDistributed, x, kw):
    x = low.float_in(layer, x)
    if x.rank < 3:
        raise ValueError(f"{layer.where}: input must have at least 3 axes [batch, steps, ...], got rank {x.rank}")
    inner = layer.inner
    per_step = (Dense, Activation, Identity)  # they act on the last axis alone: the same on [B, T, ...]
    if isinstance(inner, BatchNormalization) and _axes(inner.axis, x.rank - 1) == [x.rank - 2]:
        per_step = (BatchNormalization,)
    if not isinstance(inner, per_step):
        raise Unfit(f"{layer.where}: the C executor has no TimeDistributed({inner.cls}) yet (it takes Dense, "
                    f"Activation and BatchNormalization over the features in TimeDistributed)")
    outs = low.layer(inner, KT(x.name, x.shape), {})
    return [KT(o.name, o.shape, mask=x.mask) for o in outs]


def _lower_rnn(low, layer, x, kw):
    from .lower_rnn import lower_bidirectional, lower_rnn

    return (lower_bidirectional if isinstance(layer, Bidirectional) else lower_rnn)(low, layer, x, kw)


LAYER_LOWERINGS = [
    (Dense, lower_dense), (Activation, lower_activation), (Identity, lower_identity), (Embedding, lower_embedding),
    (Masking, lower_masking), (BatchNormalization, lower_batchnorm), (LayerNormalization, lower_layernorm),
    (RepeatVector, lower_repeat), (Flatten, lower_flatten), (Reshape, lower_reshape), (Permute, lower_permute),
    (Softmax, lower_softmax), (GlobalPooling1D, lower_global_pool1d), (Merge, lower_merge),
    (Concatenate, lower_concatenate), (Dot, lower_dot), (TimeDistributed, lower_time_distributed),
    (KerasRNN, _lower_rnn), (Bidirectional, _lower_rnn),
]


def _conv_lowerings():
    from .lower_conv import CONV_LOWERINGS

    return CONV_LOWERINGS
