"""Where a Keras layer's weights are in an HDF5 file, for both layouts Keras has written.

- Legacy layout (Keras 1, Keras 2, tf.keras, Keras 3 `model.save("x.h5")`): a group with attribute `layer_names`
  (possibly chunked as `layer_names0`, `layer_names1`, ... when too long for one HDF5 attribute), one subgroup per
  layer with attribute `weight_names` naming its datasets in the layer's `weights` order. Keras loads these
  positionally, so the names themselves are never trusted for meaning. A nested model is one entry holding all its
  sublayers' trainable weights, then all their non-trainable ones (what `model.weights` lists).
- Object-tree layout (Keras 3 `.keras` / `.weights.h5`, tf.keras >= 2.13 `.weights.h5`): `layers/<path>/vars/<i>`,
  where <path> is the snake_case class name made unique in the order of `model.layers` (`lstm`, `lstm_1`, ...),
  sublayers under attribute names (`cell`, `forward_layer`, `layer`), nested models under `layers/`.

Each layer object lists its weight slots: (object-tree subpath, trainable, label), in Keras' `weights` order.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ...errors import FormatError
from ...limits import LoadBudget


@dataclass(frozen=True)
class Slot:
    path: str  # object-tree subpath under the layer's group, e.g. "cell/vars/0"
    trainable: bool
    label: str  # what the weight is, for messages: "kernel", "forward recurrent_kernel", ...


def snake_case(name: str) -> str:
    """keras.src.utils.naming.to_snake_case: the object-tree path of a layer of this class."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


def attr_text_list(group, key: str) -> list:
    """A list-of-strings attribute, joined from its chunks `key0`, `key1`, ... when Keras had to split it."""
    if key in group.attrs:
        values = list(np.atleast_1d(group.attrs[key]))
    elif f"{key}0" in group.attrs:
        values, i = [], 0
        while f"{key}{i}" in group.attrs:
            values.extend(np.atleast_1d(group.attrs[f"{key}{i}"]))
            i += 1
    else:
        return None
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values if not isinstance(v, float)]


def _read(ds, where, budget: LoadBudget) -> np.ndarray:
    check_dataset_size(ds, where, budget)
    try:
        arr = np.asarray(ds[()])
    except Exception as e:  # h5py raises OSError/KeyError/TypeError variants for damaged data
        raise FormatError(f"{where}: cannot read the dataset: {e}") from e
    if arr.dtype.kind not in "fiu":
        raise FormatError(f"{where}: dataset has dtype {arr.dtype}, expected numbers")
    return arr


def check_dataset_size(ds, where, budget: LoadBudget):
    """Before reading a dataset: its declared size within the file's memory budget, and no more than what its
    stored bytes can honestly inflate to. A 37 KB file can declare a 3.4 GB dataset (compressed zeros, or storage
    never written, which HDF5 fills in); both are refused here, from the metadata alone."""
    try:
        shape, itemsize = tuple(int(d) for d in ds.shape or ()), int(ds.dtype.itemsize)
        stored = int(ds.id.get_storage_size())
    except Exception as e:  # noqa: BLE001 - h5py raises many kinds on damaged metadata
        raise FormatError(f"{where}: cannot read the dataset's shape and type ({type(e).__name__}: {e})") from e
    declared = itemsize
    for d in shape:
        declared *= max(d, 0)
    budget.take(declared, f"{where.rpartition(': ')[2]} of shape {list(shape)} ({ds.dtype})")
    budget.inflate(declared, stored, f"{where.rpartition(': ')[2]} of shape {list(shape)}")


class LegacyWeights:
    """`model_weights` (or the root of a weights-only file) in the legacy layout."""

    def __init__(self, group, where: str):
        self.group = group
        self.where = where
        names = attr_text_list(group, "layer_names")
        if names is None:
            raise FormatError(f"{where}: no 'layer_names' attribute on {group.name!r}: not a Keras weights group")
        self.layer_names = names
        self.used = set()
        self.budget = LoadBudget(where)
        self.alias = {}  # model layer name -> file layer name, when they are matched by position

    def bind(self, weighted: list, where: str):
        """weighted: (name, class) of the model's layers with weights, in order. Keras loads these files by
        position: the k-th layer with weights in the model takes the k-th layer with weights in the file. A file
        saved with its model has the same names, so names are used when they all match; otherwise (a weights-only
        file and a rebuilt model with other layer names) position decides."""
        names = [n for n, _ in weighted]
        if all(n in self.layer_names and n in self.group for n in names):
            return
        in_file = [n for n in self.layer_names if n in self.group and attr_text_list(self.group[n], "weight_names")]
        if len(in_file) != len(names):
            missing = ", ".join(f"layer {n!r} ({c})" for n, c in weighted if n not in in_file)
            raise FormatError(f"{where}: the model config has {len(names)} layer(s) with weights, the file "
                              f"{len(in_file)} ({in_file} in {self.group.name}); Keras matches them by position "
                              f"and refuses this. Not in the file by name: {missing}")
        self.alias = dict(zip(names, in_file))

    def arrays(self, layer_name: str, where: str) -> list:
        layer_name = self.alias.get(layer_name, layer_name)
        if layer_name not in self.layer_names or layer_name not in self.group:
            raise FormatError(f"{where}: no weights for it in the file (group {self.group.name}/{layer_name} missing; "
                              f"the file has layers {self.layer_names})")
        self.used.add(layer_name)
        g = self.group[layer_name]
        names = attr_text_list(g, "weight_names") or []
        out = []
        for n in names:
            if n not in g:
                raise FormatError(f"{where}: weight_names lists {n!r} but {g.name}/{n} is not in the file")
            out.append(_read(g[n], f"{where}: dataset {g.name}/{n}", self.budget))
        return out

    def take(self, layer_name: str, slots, where: str) -> list:
        arrays = self.arrays(layer_name, where)
        check_count(arrays, slots, where, f"{self.group.name}/{self.alias.get(layer_name, layer_name)}")
        return arrays

    def check_all_used(self):
        """Keras refuses a file whose layers with weights are not exactly the model's (it loads positionally)."""
        extra = [n for n in self.layer_names if n not in self.used and n in self.group
                 and attr_text_list(self.group[n], "weight_names")]
        if extra:
            raise FormatError(f"{self.where}: the file has weights for layer(s) the model config does not contain: "
                              f"{[self.group.name.rstrip('/') + '/' + n for n in extra]}")


def check_count(arrays, slots, where, path):
    if len(arrays) != len(slots):
        raise FormatError(f"{where}: {path} holds {len(arrays)} weight(s), the layer's config needs {len(slots)} "
                          f"({', '.join(s.label for s in slots) or 'none'})")


def nested_order(slot_lists) -> list:
    """Positions, in a legacy nested-model weight list, of each sublayer's slots: trainable ones first, in layer
    order, then the non-trainable ones (Keras' `model.trainable_weights + model.non_trainable_weights`)."""
    flat = [(i, j, s) for i, slots in enumerate(slot_lists) for j, s in enumerate(slots)]
    ordered = [f for f in flat if f[2].trainable] + [f for f in flat if not f[2].trainable]
    where = {(i, j): k for k, (i, j, _) in enumerate(ordered)}
    return [[where[(i, j)] for j in range(len(slots))] for i, slots in enumerate(slot_lists)]


class TreeWeights:
    """A model's group in the object-tree layout (`layers/...`, `vars`)."""

    def __init__(self, group, where: str, used=None, budget=None):
        self.group = group
        self.where = where
        self.budget = LoadBudget(where) if budget is None else budget  # shared with the nested models' trees
        if "layers" not in group and "vars" not in group:
            raise FormatError(f"{where}: group {group.name!r} has neither 'layers' nor 'vars': not a Keras 3 "
                              f"weights file")
        self._paths = {}
        self.used = set() if used is None else used  # dataset paths read, shared with the nested models' trees

    def assign_paths(self, layers):
        """layers: (name, class) of the model's layers in `model.layers` order (op-nodes and, in a Sequential,
        the InputLayer left out). Keras numbers repeated class names in that order."""
        used = {}
        for name, cls in layers:
            base = snake_case(cls)
            n = used.get(base, 0)
            used[base] = n + 1
            self._paths[name] = base if n == 0 else f"{base}_{n}"

    def layer_group(self, name: str, where: str):
        layers = self.group.get("layers")
        path = self._paths.get(name)
        if layers is not None and path is not None and path in layers:
            return layers[path]
        # Files written by another tool may number paths differently; the layer's name is stored beside its vars.
        if layers is not None:
            for key in layers:
                vars_ = layers[key].get("vars")
                if vars_ is not None and _text(vars_.attrs.get("name")) == name:
                    return layers[key]
        raise FormatError(f"{where}: no weights for it in the file (expected group "
                          f"{self.group.name.rstrip('/')}/layers/{path})")

    def take(self, name: str, slots, where: str) -> list:
        g = self.layer_group(name, where)
        out = []
        for s in slots:
            if s.path not in g:
                raise FormatError(f"{where}: missing dataset {g.name}/{s.path} ({s.label})")
            out.append(_read(g[s.path], f"{where}: dataset {g.name}/{s.path}", self.budget))
            self.used.add(g[s.path].name)
        _check_no_extra(g, slots, where)
        return out

    def child(self, name: str, where: str) -> "TreeWeights":
        return TreeWeights(self.layer_group(name, where), where, self.used, self.budget)

    def check_all_used(self):
        """Every variable under layers/ and vars/ must belong to a layer of the config (the optimizer's and other
        top-level groups are not the model's)."""
        extra = []

        def visit(path, obj):
            if hasattr(obj, "shape") and obj.name not in self.used:
                extra.append(obj.name)

        for key in ("layers", "vars"):
            if key in self.group:
                self.group[key].visititems(visit)
        if extra:
            raise FormatError(f"{self.where}: the file has weights no layer of the model config uses: "
                              f"{sorted(extra)[:10]}")


def _check_no_extra(g, slots, where):
    wanted = {s.path for s in slots}
    extra = []

    def visit(path, obj):
        if hasattr(obj, "shape") and path not in wanted:
            extra.append(path)

    g.visititems(visit)
    if extra:
        raise FormatError(f"{where}: the file has weights the layer's config does not use: "
                          f"{[g.name + '/' + p for p in sorted(extra)]}")


def _text(v):
    return v.decode("utf-8") if isinstance(v, bytes) else v
