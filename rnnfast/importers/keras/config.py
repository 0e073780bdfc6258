"""Keras model configs of every generation, turned into one shape the graph builder reads.

Generations differ in three places, all handled here and nowhere else:
- the model: Keras 1 / Keras <= 2.2.2 Sequential configs are a bare list of layers, later ones a dict with
  "layers"; Keras 1 calls a functional model "Model", tf.keras "Functional" or "Model", Keras 3 "Functional";
- inbound nodes: Keras 1/2 write `[[name, node, tensor, kwargs], ...]` per node (tf.keras puts tensors passed as
  keyword arguments into kwargs as `[name, node, tensor]` lists); Keras 3 writes `{"args": [...], "kwargs": {...}}`
  with tensors as `{"class_name": "__keras_tensor__", "config": {"keras_history": [...]}}`;
- layer options: Keras 1 names (output_dim, inner_activation, consume_less, W_regularizer ...) are renamed to
  Keras 2 names the way Keras 2's legacy interfaces did, so the layer code reads one spelling.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

from ...errors import FormatError

MODEL_CLASSES = ("Sequential", "Functional", "Model")


@dataclass(frozen=True)
class Ref:
    """Output `tensor` of the `node`-th call of layer `layer` (node numbers count calls inside this model)."""

    layer: str
    node: int
    tensor: int


@dataclass
class Node:
    """One call of a layer: positional arguments and keyword arguments, tensors given as Ref."""

    args: list
    kwargs: dict


@dataclass
class LayerSpec:
    name: str
    cls: str
    config: dict
    nodes: list = field(default_factory=list)  # list[Node]; empty for a Sequential's layers
    model: Optional["ModelSpec"] = None  # for nested models
    module: Optional[str] = None  # Keras 3 writes it; tells op-nodes from layers
    node_offset: int = 0  # Keras 1/2 number a nested model's calls from 1: call 0 is its own Input -> output


@dataclass
class ModelSpec:
    name: str
    cls: str  # "Sequential" or "Functional"
    layers: list  # list[LayerSpec], in the config's order
    inputs: list  # list[Ref]
    outputs: list  # list[Ref]
    sequential_input: Optional[dict] = None  # Sequential without an InputLayer: what the first layer declared


def parse_json(text, where: str, what: str = "model config") -> dict:
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        cfg = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FormatError(f"{where}: the {what} is not valid JSON: {e}") from e
    if what != "model config":
        if not isinstance(cfg, dict):
            raise FormatError(f"{where}: the {what} must be a JSON object")
        return cfg
    if not isinstance(cfg, dict) or "class_name" not in cfg:
        raise FormatError(f"{where}: the model config must be an object with 'class_name' and 'config'")
    return cfg


def parse_model(cfg: dict, major: int, where: str) -> ModelSpec:
    cls = cfg.get("class_name")
    if cls not in MODEL_CLASSES:
        raise FormatError(f"{where}: the top-level config is a {cls!r}; expected a model ({', '.join(MODEL_CLASSES)})")
    body = cfg.get("config")
    if cls == "Sequential":
        return _sequential(body, major, where)
    return _functional(body, major, where)


def is_model(layer_cfg: dict) -> bool:
    return layer_cfg.get("class_name") in MODEL_CLASSES and isinstance(layer_cfg.get("config"), (dict, list))


def _sequential(body, major, where) -> ModelSpec:
    if isinstance(body, list):
        name, layer_cfgs = "sequential", body
    elif isinstance(body, dict) and isinstance(body.get("layers"), list):
        name, layer_cfgs = body.get("name", "sequential"), body["layers"]
    else:
        raise FormatError(f"{where}: a Sequential config needs a list of layers")
    if not layer_cfgs:
        raise FormatError(f"{where}: Sequential model {name!r} has no layers")
    layers = [_layer(c, major, where, with_nodes=False) for c in layer_cfgs]
    first_input = None
    if layers[0].cls != "InputLayer":
        first_input = layers[0].config
    # A Sequential is a chain: give each layer one call on the previous layer's output.
    prev = None
    for spec in layers:
        if spec.cls == "InputLayer":
            if prev is not None:
                raise FormatError(f"{where}: Sequential {name!r} has an InputLayer {spec.name!r} after other layers")
            prev = Ref(spec.name, 0, 0)
            continue
        if prev is None:
            prev = Ref("__input__", 0, 0)
        spec.nodes = [Node([prev], {})]
        prev = Ref(spec.name, spec.node_offset, 0)
    inputs = [Ref(layers[0].name, 0, 0) if layers[0].cls == "InputLayer" else Ref("__input__", 0, 0)]
    return ModelSpec(name, "Sequential", layers, inputs, [prev], sequential_input=first_input)


def _functional(body, major, where) -> ModelSpec:
    if not isinstance(body, dict) or not isinstance(body.get("layers"), list):
        raise FormatError(f"{where}: a functional model config needs 'layers', 'input_layers' and 'output_layers'")
    name = body.get("name", "model")
    layers = [_layer(c, major, where, with_nodes=True) for c in body["layers"]]
    seen = set()
    for spec in layers:
        if spec.name in seen:
            raise FormatError(f"{where}: model {name!r} has two layers named {spec.name!r}")
        seen.add(spec.name)
    inputs = [_ref_triple(r, f"{where}: model {name!r} input_layers") for r in _ref_list(body.get("input_layers"))]
    outputs = [_ref_triple(r, f"{where}: model {name!r} output_layers") for r in _ref_list(body.get("output_layers"))]
    if not inputs or not outputs:
        raise FormatError(f"{where}: model {name!r} declares no input_layers or no output_layers")
    return ModelSpec(name, "Functional", layers, inputs, outputs)


def _ref_list(v):
    # input_layers is [[name, node, tensor], ...], or a single [name, node, tensor] in Keras 3 single-input models.
    if isinstance(v, list) and len(v) == 3 and isinstance(v[0], str):
        return [v]
    return v or []


def _ref_triple(r, where) -> Ref:
    if not (isinstance(r, list) and len(r) >= 3 and isinstance(r[0], str)):
        raise FormatError(f"{where}: expected [layer_name, node_index, tensor_index], got {r!r}")
    return Ref(r[0], int(r[1]), int(r[2]))


def _layer(c: dict, major: int, where: str, with_nodes: bool) -> LayerSpec:
    if not isinstance(c, dict) or "class_name" not in c:
        raise FormatError(f"{where}: a layer entry needs 'class_name' and 'config', got {str(c)[:120]}")
    cls = c["class_name"]
    config = c.get("config") or {}
    if is_model(c):
        inner = parse_model(c, major, where)
        name = c.get("name") or inner.name
        spec = LayerSpec(name, "Model", {"name": name, "trainable": _trainable(config)}, model=inner)
        # tf.keras functional._should_skip_first_node: a nested model built on an Input has a first node of its
        # own that the config leaves out, but references still count it.
        has_input = inner.cls == "Functional" or inner.sequential_input is None or \
            "batch_input_shape" in (inner.sequential_input or {})
        spec.node_offset = 1 if major <= 2 and has_input else 0
    else:
        if not isinstance(config, dict):
            raise FormatError(f"{where}: layer config of class {cls!r} must be an object")
        name = c.get("name") or config.get("name")
        if not name:
            raise FormatError(f"{where}: a {cls} layer has no name")
        config = dict(config)
        if major == 1:
            cls, config = keras1_layer(cls, config)
        spec = LayerSpec(name, cls, config, module=c.get("module"))
    if with_nodes:
        spec.nodes = [_node(n, f"{where}: layer {name!r} ({cls})") for n in c.get("inbound_nodes") or []]
    return spec


def _trainable(config) -> bool:
    return bool(config.get("trainable", True)) if isinstance(config, dict) else True


def _node(n, where) -> Node:
    if isinstance(n, dict):  # Keras 3
        return Node(_k3_value(n.get("args", []), where), _k3_value(n.get("kwargs", {}), where))
    if not isinstance(n, list) or not n:
        raise FormatError(f"{where}: cannot read inbound node {str(n)[:120]}")
    if isinstance(n[0], str):  # layers that keep their input structure (TFOpLambda) write one bare entry
        n = [n]
    refs, kwargs = [], {}
    for entry in n:
        if not (isinstance(entry, list) and len(entry) >= 3 and isinstance(entry[0], str)):
            raise FormatError(f"{where}: inbound node entry must be [layer, node, tensor, kwargs], got {entry!r}")
        refs.append(Ref(entry[0], int(entry[1]), int(entry[2])))
        if len(entry) > 3 and entry[3]:
            kwargs = {k: _k2_kwarg(v) for k, v in entry[3].items()}
    return Node([refs[0] if len(refs) == 1 else refs], kwargs)


def _k2_kwarg(v):
    # tf.keras writes a tensor passed by keyword as [layer_name, node_index, tensor_index].
    if isinstance(v, list):
        if len(v) in (3, 4) and isinstance(v[0], str) and isinstance(v[1], int) and isinstance(v[2], int):
            return Ref(v[0], v[1], v[2])
        return [_k2_kwarg(x) for x in v]
    if isinstance(v, dict):
        return {k: _k2_kwarg(x) for k, x in v.items()}
    return v


def _k3_value(v, where):
    if isinstance(v, dict):
        if v.get("class_name") == "__keras_tensor__":
            hist = (v.get("config") or {}).get("keras_history")
            return _ref_triple(hist, where)
        return {k: _k3_value(x, where) for k, x in v.items()}
    if isinstance(v, list):
        return [_k3_value(x, where) for x in v]
    return v


def flat_refs(v) -> list:
    if isinstance(v, Ref):
        return [v]
    if isinstance(v, (list, tuple)):
        return [r for x in v for r in flat_refs(x)]
    if isinstance(v, dict):
        return [r for x in v.values() for r in flat_refs(x)]
    return []


# Keras 1 option names -> Keras 2, as keras/legacy/interfaces.py converted them when Keras 2 loaded a Keras 1 file.
_KERAS1_RENAMES = {
    "output_dim": "units", "init": "kernel_initializer", "inner_init": "recurrent_initializer",
    "inner_activation": "recurrent_activation", "W_regularizer": "kernel_regularizer",
    "U_regularizer": "recurrent_regularizer", "b_regularizer": "bias_regularizer",
    "W_constraint": "kernel_constraint", "U_constraint": "recurrent_constraint", "b_constraint": "bias_constraint",
    "dropout_W": "dropout", "dropout_U": "recurrent_dropout", "bias": "use_bias", "p": "rate",
}
_KERAS1_CLASSES = {"Merge": "Merge"}


def keras1_layer(cls: str, config: dict):
    """A Keras 1 layer config with Keras 2 option names (the layer code then reads one spelling)."""
    out = {}
    for k, v in config.items():
        out[_KERAS1_RENAMES.get(k, k)] = v
    if cls == "Embedding":
        # Keras 1 Embedding had input_dim (vocabulary) and output_dim; output_dim must not become units.
        out.pop("units", None)
        out["output_dim"] = config.get("output_dim")
    if "input_dim" in config and "batch_input_shape" not in config and cls != "Embedding":
        length = config.get("input_length")
        out["batch_input_shape"] = [None, length, config["input_dim"]] if cls in ("SimpleRNN", "LSTM", "GRU") \
            else [None, config["input_dim"]]
    if cls == "Embedding" and "batch_input_shape" not in config:
        out["batch_input_shape"] = [None, config.get("input_length")]
    return _KERAS1_CLASSES.get(cls, cls), out
