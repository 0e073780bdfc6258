"""The layer graph of a Keras model (Sequential or Functional, nested models, shared layers), with Keras' mask
propagation: each tensor travels with its mask; a layer call receives the mask of its first argument unless the
call passed `mask=` explicitly (Keras 3 spells hand-made masks as op-nodes feeding that keyword)."""
from __future__ import annotations

import numpy as np

from ... import engine
from ...errors import FormatError
from ...model import TensorInfo
from .config import LayerSpec, ModelSpec, Ref, flat_refs, keras1_layer
from .conv import CONV_LAYERS
from .layers import LAYERS, Context, InputLayer, KLayer
from .ops import OpNode, is_keras3_op
from .rnn import CELLS, UNAPPLIED_MASK, Bidirectional, KerasRNN
from .weights import LegacyWeights, Slot, TreeWeights, nested_order

RECURRENT = {name: KerasRNN for name in CELLS}
WRAPPERS = ("TimeDistributed", "Bidirectional")


def make_layer(cls: str, name: str, config: dict, ctx: Context, module=None):
    if cls == "TFOpLambda":
        return OpNode(name, cls, config, ctx, function=str(config.get("function")))
    if is_keras3_op(cls, module, config):
        return OpNode(name, cls, config, ctx)
    if cls in RECURRENT:
        return KerasRNN(name, cls, config, ctx)
    if cls == "Bidirectional":
        return Bidirectional(name, cls, config, ctx)
    if cls == "TimeDistributed":
        return TimeDistributed(name, cls, config, ctx)
    if cls in LAYERS or cls in CONV_LAYERS:
        return (LAYERS.get(cls) or CONV_LAYERS[cls])(name, cls, config, ctx)
    raise FormatError(f"{ctx.name}: layer {name!r} has class {cls!r}, which is not supported; supported layers: "
                      f"{sorted(set(LAYERS) | set(CONV_LAYERS) | set(RECURRENT) | set(WRAPPERS))}")


class TimeDistributed(KLayer):
    """Applies the inner layer to every step: [batch, steps, ...] is folded to [batch*steps, ...] and back."""

    supports_masking = True

    def parse(self):
        inner = self.config.get("layer")
        if not isinstance(inner, dict) or "class_name" not in inner:
            raise FormatError(f"{self.where}: option layer must be a layer config")
        cls, cfg = inner["class_name"], dict(inner.get("config") or {})
        if self.ctx.major == 1:
            cls, cfg = keras1_layer(cls, cfg)
        self.inner = make_layer(cls, f"{self.name}/{cfg.get('name', cls)}", cfg, self.ctx, inner.get("module"))
        if isinstance(self.inner, OpNode):
            raise FormatError(f"{self.where}: wraps an operation, not a layer")

    def slots(self):
        return [Slot(f"layer/{s.path}", s.trainable, s.label) for s in self.inner.slots()]

    def set_weights(self, arrays):
        self.inner.set_weights(arrays)
        self.weights = self.inner.weights

    def call(self, x, mask, kwargs):
        x = np.asarray(x)
        if x.ndim < 3:
            raise ValueError(f"{self.where}: input must have at least 3 axes [batch, steps, ...], got {x.shape}")
        B, T = x.shape[:2]
        outs, _ = self.inner.call(x.reshape((B * T,) + x.shape[2:]), None, {})
        return [o.reshape((B, T) + o.shape[1:]) for o in outs], [mask] * len(outs)

    def summary(self):
        return f"{self.inner.cls}: {self.inner.summary()}"

    def reset_states(self):
        getattr(self.inner, "reset_states", lambda: None)()


class ModelLayer:
    """A model used as a layer of another model."""

    supports_masking = True

    def __init__(self, spec: LayerSpec, ctx: Context):
        self.name, self.cls, self.config = spec.name, spec.model.cls, spec.config
        self.graph = KerasGraph(spec.model, ctx)
        self.where = f"{ctx.name}: layer {self.name!r} ({self.cls})"
        self.weights = []

    def call(self, x, mask, kwargs):
        xs = list(x) if isinstance(x, (list, tuple)) else [x]
        ms = list(mask) if isinstance(mask, (list, tuple)) else [mask] * len(xs)
        if len(xs) != len(self.graph.spec.inputs):
            raise ValueError(f"{self.where}: takes {len(self.graph.spec.inputs)} input(s), got {len(xs)}")
        outs, masks = self.graph.evaluate(xs, ms)
        return outs, masks

    def reset_states(self):
        self.graph.reset_states()


class KerasGraph:
    def __init__(self, spec: ModelSpec, ctx: Context):
        self.spec, self.ctx = spec, ctx
        self.layers = {}
        self.specs = {}
        self.order = []  # layer objects in config order
        for ls in spec.layers:
            if ls.model is not None:
                obj = ModelLayer(ls, ctx)
            else:
                obj = make_layer(ls.cls, ls.name, ls.config, ctx, ls.module)
            self.layers[ls.name] = obj
            self.specs[ls.name] = ls
            self.order.append((ls, obj))
        if spec.inputs and spec.inputs[0].layer == "__input__":
            first = spec.layers[0]
            cfg = _sequential_input_config(first, ctx)
            self.layers["__input__"] = InputLayer("__input__", "InputLayer", cfg, ctx)
        for r in spec.inputs:
            if not isinstance(self.layers.get(r.layer), InputLayer):
                raise FormatError(f"{ctx.name}: model {spec.name!r} input {r.layer!r} is not an InputLayer")
        for r in spec.outputs + [x for ls in spec.layers for n in ls.nodes for x in flat_refs([n.args, n.kwargs])]:
            if r.layer not in self.layers:
                raise FormatError(f"{ctx.name}: model {spec.name!r} refers to layer {r.layer!r}, which it does not "
                                  f"contain")

    # weights ---------------------------------------------------------------------------------------------------
    def leaves(self, trainable=True):
        """(layer, slots with the trainable flag Keras would give them) for every weighted layer, nested models
        flattened in layer order."""
        out = []
        for ls, obj in self.order:
            t = trainable and bool(ls.config.get("trainable", True))
            if isinstance(obj, ModelLayer):
                out.extend(obj.graph.leaves(t))
            else:
                out.append((obj, [Slot(s.path, s.trainable and t, s.label) for s in obj.slots()]))
        return out

    def load_weights(self, source):
        if isinstance(source, TreeWeights):
            path_layers = [(ls.name, ls.model.cls if ls.model is not None else ls.cls) for ls, obj in self.order
                           if not isinstance(obj, OpNode) or obj.tf
                           if not (self.spec.cls == "Sequential" and ls.cls == "InputLayer")]
            source.assign_paths(path_layers)
        else:
            source.bind([(ls.name, obj.cls) for ls, obj in self.order if _has_weights(obj)],
                        f"{self.ctx.name}: model {self.spec.name!r}")
        for ls, obj in self.order:
            if isinstance(obj, ModelLayer):
                if isinstance(source, TreeWeights):
                    obj.graph.load_weights(source.child(ls.name, obj.where))
                else:
                    self._load_nested_legacy(obj, source.arrays(ls.name, obj.where), ls)
            elif isinstance(obj, InputLayer) or (isinstance(obj, OpNode) and not obj.tf):
                continue  # no weights; Keras 3 op-nodes are not even layers and have no entry in the file
            elif isinstance(obj, OpNode):
                if isinstance(source, LegacyWeights) and ls.name in source.layer_names:
                    obj.set_weights(source.arrays(ls.name, obj.where))
            else:
                obj.set_weights(source.take(ls.name, obj.slots(), obj.where))

    def _load_nested_legacy(self, obj, arrays, ls):
        leaves = obj.graph.leaves(bool(ls.config.get("trainable", True)))
        need = sum(len(s) for _, s in leaves)
        if len(arrays) != need:
            raise FormatError(f"{obj.where}: the file holds {len(arrays)} weight(s) for this nested model, its "
                              f"layers need {need}")
        for (layer, _), positions in zip(leaves, nested_order([s for _, s in leaves])):
            layer.set_weights([arrays[p] for p in positions])

    # running ---------------------------------------------------------------------------------------------------
    @property
    def input_layers(self):
        return [self.layers[r.layer] for r in self.spec.inputs]

    def evaluate(self, xs, masks=None):
        values = {}
        for r, x, m in zip(self.spec.inputs, xs, masks or [None] * len(xs)):
            values[r] = (x, m)
        outs = [self._value(r, values) for r in self.spec.outputs]
        return [o[0] for o in outs], [o[1] for o in outs]

    def _value(self, ref: Ref, values):
        if ref in values:
            return values[ref]
        layer = self.layers[ref.layer]
        spec = self.specs[ref.layer]
        index = ref.node - spec.node_offset
        if not 0 <= index < len(spec.nodes):
            raise FormatError(f"{self.ctx.name}: layer {ref.layer!r} has no call #{ref.node} in the model config")
        node = spec.nodes[index]
        resolve = lambda v: _map(v, lambda r: self._value(r, values))
        args = resolve(node.args)
        kwargs = resolve(node.kwargs)
        if isinstance(layer, OpNode):
            out = layer.run_op([_strip(a) for a in args], {k: _strip(v) for k, v in kwargs.items()})
            outs, masks = [out], [None]
        else:
            if not args:
                raise FormatError(f"{layer.where}: a layer call without inputs")
            first = args[0]
            x, mask = _strip(first), _masks(first)
            if "mask" in kwargs:
                mask = _strip(kwargs["mask"])
            kw = {k: _strip(v) for k, v in kwargs.items() if k not in ("mask", "training")}
            if mask is not None and keras3_drops_mask(node, self.ctx):
                if not isinstance(layer, (KerasRNN, Bidirectional)):
                    mask = None
                kw[UNAPPLIED_MASK] = True
            outs, masks = layer.call(x, mask, kw)
        for i, (o, m) in enumerate(zip(outs, masks)):
            values[Ref(ref.layer, ref.node, i)] = (o, m)
        if ref not in values:
            raise FormatError(f"{layer.where}: the model uses its output #{ref.tensor}, the layer gives {len(outs)}")
        return values[ref]

    def reset_states(self):
        for _, obj in self.order:
            getattr(obj, "reset_states", lambda: None)()


def _quantized_layers(graph: KerasGraph, weight_dtype: str) -> KerasGraph:
    """A copy of the layer graph whose recurrent layers (nested models and wrappers included) store their weights
    in weight_dtype; the other layers are shared with the original."""
    import copy

    def quantized(obj):
        obj = copy.copy(obj)
        if isinstance(obj, KerasRNN):
            obj.layer = None if obj.layer is None else obj.layer.with_weight_dtype(weight_dtype)
            obj.state = None
        elif isinstance(obj, Bidirectional):
            obj.forward, obj.backward = quantized(obj.forward), quantized(obj.backward)
            obj.fused = None if obj.fused is None else obj.fused.with_weight_dtype(weight_dtype)
        elif isinstance(obj, TimeDistributed):
            obj.inner = quantized(obj.inner)
        elif isinstance(obj, ModelLayer):
            obj.graph = _quantized_layers(obj.graph, weight_dtype)
        return obj

    kinds = (KerasRNN, Bidirectional, TimeDistributed, ModelLayer)
    new = copy.copy(graph)
    new.layers = {name: quantized(obj) if isinstance(obj, kinds) else obj for name, obj in graph.layers.items()}
    new.order = [(ls, new.layers.get(ls.name, obj)) for ls, obj in graph.order]
    return new


def keras3_drops_mask(node, ctx) -> bool:
    """Keras 3 fills a call's `mask` argument only when the call has one tensor argument (Layer.__call__, "Populate
    mask argument(s)"): a recurrent layer given initial_state tensors by keyword runs unmasked, though its output
    sequence still carries the input's mask (compute_mask reads the first argument's). tf.keras masks it."""
    if ctx.major < 3 or "mask" in node.kwargs:
        return False
    with_tensors = [a for a in node.args if flat_refs(a)] + [v for k, v in node.kwargs.items()
                                                            if k != "training" and flat_refs(v)]
    return len(with_tensors) > 1


def _has_weights(obj) -> bool:
    if isinstance(obj, ModelLayer):
        return any(slots for _, slots in obj.graph.leaves())
    return not isinstance(obj, (InputLayer, OpNode)) and bool(obj.slots())


def _map(v, fn):
    if isinstance(v, Ref):
        return fn(v)
    if isinstance(v, list):
        return [_map(x, fn) for x in v]
    if isinstance(v, tuple):
        return tuple(_map(x, fn) for x in v)
    if isinstance(v, dict):
        return {k: _map(x, fn) for k, x in v.items()}
    return v


def _is_pair(v):
    return isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], np.ndarray)


def _strip(v):
    """Arrays from (array, mask) pairs, keeping list structure."""
    if _is_pair(v):
        return v[0]
    if isinstance(v, list):
        return [_strip(x) for x in v]
    if isinstance(v, dict):
        return {k: _strip(x) for k, x in v.items()}
    return v


def _masks(v):
    if _is_pair(v):
        return v[1]
    if isinstance(v, list):
        return [_masks(x) for x in v]
    return None


def _sequential_input_config(first: LayerSpec, ctx: Context) -> dict:
    c = first.config
    shape = c.get("batch_input_shape") or c.get("batch_shape")
    if shape is None and c.get("input_shape") is not None:
        shape = [None] + list(c["input_shape"])
    if shape is None and first.cls in ("Dense",) and c.get("input_dim") is not None:
        shape = [None, c["input_dim"]]
    if shape is None:
        raise FormatError(f"{ctx.name}: the Sequential model's first layer {first.name!r} ({first.cls}) declares no "
                          f"input shape (batch_input_shape / input_shape), so the model's input is unknown")
    dtype = "int32" if first.cls == "Embedding" else "float32"
    return {"batch_input_shape": list(shape), "dtype": dtype}


class KerasModelGraph:
    """The graph a Keras file becomes: what rnnfast.Model wraps."""

    fallback_executor = "layer by layer"  # what runs a model that does not lower (rnnfast inspect says why)

    def __init__(self, graph: KerasGraph, ctx: Context, source: str, fmt: str):
        self.graph, self.ctx, self.source, self.fmt = graph, ctx, source, fmt
        self.inputs = []
        for r, layer in zip(graph.spec.inputs, graph.input_layers):
            dtype = str(layer.dtype)
            onnx_type = "tensor(float)" if dtype.startswith("float") else f"tensor({dtype})"
            shape = ["batch" if i == 0 and d is None else d for i, d in enumerate(layer.shape)]
            self.inputs.append(TensorInfo(layer.name if layer.name != "__input__" else "input", shape, onnx_type))
        names = [r.layer for r in graph.spec.outputs]
        self.outputs = [TensorInfo(n if names.count(n) == 1 else f"{n}:{r.tensor}", [])
                        for n, r in zip(names, graph.spec.outputs)]
        self.executor = None  # executor.CompiledKeras when the whole model lowers to the graph IR
        self.compiled = None  # its CompiledGraph
        self.unfit_reason = None

    def compile(self):
        """Lower the model to the graph IR for the C executor; a model with a layer the IR cannot express keeps the
        numpy layer path, and unfit_reason names that layer."""
        from .executor import compile_keras

        self.executor, self.unfit_reason = compile_keras(self)
        self.compiled = self.executor.compiled if self.executor is not None else None

    def use_layer_path(self):
        """Run layer by layer in numpy from now on (what a model that does not lower runs; tests compare both)."""
        self.executor = self.compiled = None
        self.unfit_reason = "the layer path was asked for"

    def run(self, feeds: dict, **options) -> list:
        if options:
            raise TypeError(f"unknown run option(s) {sorted(options)} for a Keras model")
        xs = []
        for info, layer in zip(self.inputs, self.graph.input_layers):
            if info.name not in feeds:
                raise ValueError(f"{self.source}: missing input {info.name!r}; the model's inputs are "
                                 f"{[i.name for i in self.inputs]}")
            xs.append(self._input(feeds[info.name], info, layer))
        # While rnnfast verify watches CompiledStack.run (cli/trace.py), the model runs layer by layer for it.
        if self.executor is not None and not engine.run_is_traced():
            return self.executor.run([x if x.dtype == np.float32 else x.astype(np.int64, copy=False) for x in xs])
        outs, _ = self.graph.evaluate(xs)
        return [np.ascontiguousarray(o) for o in outs]

    def _input(self, x, info, layer):
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise ValueError(f"{self.source}: input {info.name!r} must be numeric, got {x.dtype}")
        if len(layer.shape) != x.ndim:
            raise ValueError(f"{self.source}: input {info.name!r} must have {len(layer.shape)} axes "
                             f"{layer.shape}, got shape {x.shape}")
        for i, (want, got) in enumerate(zip(layer.shape, x.shape)):
            if i > 0 and want is not None and want != got:
                raise ValueError(f"{self.source}: input {info.name!r} must have shape {layer.shape}, got {x.shape}")
        if info.type == "tensor(float)":
            return x.astype(np.float32, copy=False)
        if x.dtype.kind == "f":
            return x.astype(np.int64)
        return x

    def reset_states(self):
        self.graph.reset_states()
        if self.executor is not None:
            self.executor.reset_states()

    def to_pipeline(self):
        """The chain read off the model's analysed graph IR (graph/to_pipeline.py), as for every format, named as
        the Keras model is."""
        import dataclasses

        from ...graph.to_pipeline import graph_to_pipeline
        from .executor import analysed_keras

        ir = self.compiled.graph if self.compiled is not None else analysed_keras(self)
        return dataclasses.replace(graph_to_pipeline(ir, self.source), name=self.graph.spec.name, source=self.source)

    def quantized(self, weight_dtype: str) -> "KerasModelGraph":
        """The same model (inputs, outputs, masks, stateful layers), its recurrent weights stored in weight_dtype
        (rnnfast/quantize.py): the C graph's stacks by CompiledGraph.quantized (what to_pipeline reads), and the
        layers of the numpy path (what `rnnfast verify` reads) by the same rule, so both compute with the same
        weights.
        None when the C executor does not run this model (Model.quantize then says why)."""
        import copy

        if self.executor is None:
            return None
        new = copy.copy(self)
        new.graph = _quantized_layers(self.graph, weight_dtype)
        new.executor = self.executor.quantized(weight_dtype)
        new.compiled = new.executor.compiled
        return new

    def stream(self, batch=1, n_threads=None, states=None):
        from ...graph.stream import layer_states_only
        from .stream import layer_stream

        layer_states_only(self.source, states)
        return layer_stream(self, batch=batch, n_threads=n_threads)

    def describe(self) -> str:
        lines = [f"Keras {self.ctx.keras_version} {self.graph.spec.cls} model {self.graph.spec.name!r} "
                 f"from {self.source} ({self.fmt})"]
        lines.append("  inputs: " + ", ".join(f"{i.name} {i.shape} {i.type}" for i in self.inputs))
        shapes = self._shapes()
        lines += _describe_graph(self.graph, "  ", shapes)
        lines.append("  outputs: " + ", ".join(o.name for o in self.outputs))
        if self.executor is not None:
            lines.append(f"  runs in the C graph executor: {self.executor.describe()}")
        else:
            lines.append(f"  runs layer by layer in numpy: {self.unfit_reason or 'not compiled for the C executor'}")
        formula, who = ("x/6 + 0.5", "Keras 3") if self.ctx.major >= 3 else ("0.2*x + 0.5", "Keras 1/2, tf.keras")
        lines.append(f"  hard_sigmoid means clip({formula}, 0, 1) ({who} definition) for this file")
        for layer, option, value, why in self.ctx.defaults:
            lines.append(f"  default applied: {layer}.{option} = {value!r} ({why})")
        return "\n".join(lines)

    def check_fit(self):
        """Keras checks every weight against the layer it builds from the input shapes; here one run on zeros does
        the same when the inputs' shapes are fully known (a kernel for 21 features after a 20-feature layer)."""
        if any(d is None for layer in self.graph.input_layers for d in layer.shape[1:]):
            return
        try:
            self._shapes(strict=True)
        except FormatError:
            raise
        except ValueError as e:
            raise FormatError(f"{e} (the weights do not fit the shapes the model's inputs give)") from e

    def _shapes(self, strict=False) -> dict:
        """Output shapes per layer from one run on zeros (batch 1); stateful layers keep their state."""
        saved = _save_states(self.graph)
        try:
            feeds = {}
            for info, layer in zip(self.inputs, self.graph.input_layers):
                shape = [1 if d is None else d for d in layer.shape]
                shape[0] = 1 if layer.shape[0] is None else layer.shape[0]
                feeds[info.name] = np.zeros(shape, np.float32 if info.type == "tensor(float)" else np.int64)
            values = {}
            xs = [feeds[i.name] for i in self.inputs]
            for r, x in zip(self.graph.spec.inputs, xs):
                values[r] = (x, None)
            for r in self.graph.spec.outputs:
                self.graph._value(r, values)
            shapes = {}
            for r, (v, _) in values.items():
                shapes.setdefault(r.layer, []).append(tuple(np.shape(v)))
            return shapes
        except Exception:  # a model whose inputs have no fixed shape: describe without shapes
            if strict:
                raise
            return {}
        finally:
            _restore_states(self.graph, saved)


def _describe_graph(graph: KerasGraph, indent: str, shapes: dict) -> list:
    lines = []
    for ls, obj in graph.order:
        if isinstance(obj, ModelLayer):
            lines.append(f"{indent}{ls.name} ({obj.cls}):")
            lines += _describe_graph(obj.graph, indent + "  ", {})
            continue
        out = shapes.get(ls.name)
        shape_text = f" -> {', '.join(str(list(s)) for s in out)}" if out else ""
        w = obj.weight_shapes()
        text = " ".join(t for t in (obj.summary(), f"weights {w}" if w else "") if t)
        lines.append(f"{indent}{ls.name} ({ls.cls}){' ' + text if text else ''}{shape_text}")
    return lines


def _stateful_layers(graph: KerasGraph):
    for _, obj in graph.order:
        if isinstance(obj, ModelLayer):
            yield from _stateful_layers(obj.graph)
        elif isinstance(obj, KerasRNN):
            yield obj
        elif isinstance(obj, Bidirectional):
            yield obj.forward
            yield obj.backward


def _save_states(graph):
    return [(layer, layer.state) for layer in _stateful_layers(graph)]


def _restore_states(graph, saved):
    for layer, state in saved:
        layer.state = state
