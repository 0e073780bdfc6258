"""Read PyTorch weight files into `name -> numpy array` without torch.

Formats (shared/docs/SEMANTICS.md section 1.3):
- zip (`torch.save`, torch >= 1.6): `<archive>/data.pkl` plus one record `<archive>/data/<key>` per storage;
- TorchScript (`torch.jit.save`): the same zip plus `code/` and `constants.pkl`; the module tree is pickled as
  `__torch__.*` objects whose attributes are the tensors;
- legacy (`_use_new_zipfile_serialization=False`, torch < 1.6): consecutive pickles (magic, protocol, sys_info,
  the object, the storage keys), then per storage an int64 element count and the raw bytes;
- safetensors;
- a numpy .npz (importers/_npz.py) or a pickled dict of numpy arrays (`pickle.dump({name: array}, f)`, read by the
  restricted unpickler, whose numpy stand-ins are in importers/_pickle.py) holding PyTorch's names.

Where the weights sit inside the pickled object: a state_dict (dict of tensors) at the top, or nested in a
checkpoint dict (`model_state_dict`, `state_dict`, `model`, ... or the key given as `state_dict_key`), or a whole
pickled module (`torch.save(model)`), whose tree of `_parameters` / `_buffers` / `_modules` is flattened to the
same dotted names `model.state_dict()` would give. Modules also yield their stored attributes (batch_first,
nonlinearity, ...), returned in `TorchWeights.modules` by prefix.
"""
from __future__ import annotations

import ast
import io
import re
import struct
from dataclasses import dataclass, field

import numpy as np

from ...errors import FormatError, file_errors
from ...limits import LoadBudget
from ...formats import TORCH_LEGACY_MAGIC, is_npz, looks_like_pickle
from .._npz import read_npz
from .._pickle import LazyTensor, NumpyArray, PickledObject, StorageRef, restricted_load
from .._safetensors import read_safetensors
from .._zip import open_zip, read_member

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
CHECKPOINT_KEYS = ("model_state_dict", "state_dict", "model", "net", "network", "module", "model_state")


@dataclass
class ModuleInfo:
    cls: str  # dotted class name as pickled, e.g. torch.nn.modules.rnn.LSTM
    attrs: dict  # the plain (str/int/float/bool/None) attributes it stored


@dataclass
class TorchWeights:
    kind: str  # zip | torchscript | legacy | safetensors | npz | pickle
    tensors: dict  # name -> np.ndarray (floats as float32)
    modules: dict = field(default_factory=dict)  # prefix ("" or "lstm.") -> ModuleInfo, for module pickles
    found_at: str = ""  # where the state dict sat in the file, for messages


def read_torch_weights(data: bytes, where: str, allow_classes=(), state_dict_key=None) -> TorchWeights:
    """Read any supported PyTorch file held in memory."""
    with file_errors(where, "damaged PyTorch file"):
        return _read_weights(data, where, allow_classes, state_dict_key)


def _read_weights(data: bytes, where: str, allow_classes, state_dict_key) -> TorchWeights:
    code = {}
    if data.startswith(b"PK") and is_npz(open_zip(data, where).namelist()):
        return TorchWeights("npz", _npz_tensors(data, where))
    if data.startswith(b"PK"):
        kind, obj, code = _read_zip(data, where, allow_classes)
    elif data.startswith(TORCH_LEGACY_MAGIC):
        kind, obj = "legacy", _read_legacy(data, where, allow_classes)
    elif looks_like_pickle(data):
        kind, obj = "pickle", _read_pickle(data, where, allow_classes)
    else:
        tensors, _ = read_safetensors(data, where)
        return TorchWeights("safetensors", tensors)
    tensors, modules, found_at = _state_dict(obj, where, state_dict_key)
    for info in modules.values():
        if info.cls.startswith("__torch__."):
            module, _, name = info.cls.rpartition(".")
            source = code.get(module.replace(".", "/") + ".py", "")
            for key, value in {**_traced_call(source, name), **_final_constants(source, name)}.items():
                info.attrs.setdefault(key, value)
    return TorchWeights(kind, tensors, modules, found_at)


def _final_constants(source: str, class_name: str) -> dict:
    """`name : Final[type] = literal` lines of one class in TorchScript's code/ text (read, never run).

    TorchScript keeps module constants such as batch_first and mode there instead of in data.pkl.
    """
    block = re.search(rf"^class {re.escape(class_name)}\(.*?(?=^\S|\Z)", source, re.M | re.S)
    out = {}
    for key, literal in re.findall(r"^  (\w+) : Final\[\w+\] = (.+)$", block.group(0) if block else "", re.M):
        try:
            out[key] = ast.literal_eval(literal.strip())
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            continue
    return out


# A traced module's forward calls the ATen op with its settings as literals, e.g.
# `torch.lstm(input, [hx, cx], _0, True, 2, 0., False, True, True)`: has_biases, num_layers, dropout, train,
# bidirectional, batch_first after the input, the state and the weights.
_TRACED_OPS = {"lstm": ("LSTM", None), "gru": ("GRU", None), "rnn_tanh": ("RNN_TANH", "tanh"),
               "rnn_relu": ("RNN_RELU", "relu")}
_TRACED_SETTINGS = ("bias", "num_layers", "dropout", "training", "bidirectional", "batch_first")


def _traced_call(source: str, class_name: str) -> dict:
    """The settings a traced nn.LSTM/GRU/RNN wrote into its one ATen call (read, never run); {} when there is no such
    call or more than one (a module traced through several calls has no single setting to report)."""
    block = re.search(rf"^class {re.escape(class_name)}\(.*?(?=^\S|\Z)", source, re.M | re.S)
    calls = re.findall(r"torch\.(lstm|gru|rnn_tanh|rnn_relu)\(([^()]*)\)", block.group(0) if block else "")
    if len(calls) != 1:
        return {}
    op, args = calls[0]
    literals = [a.strip() for a in re.sub(r"\[[^\]]*\]", "list", args).split(",")][-len(_TRACED_SETTINGS):]
    try:
        values = [ast.literal_eval(v) for v in literals]
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return {}
    if len(values) != len(_TRACED_SETTINGS) or not all(isinstance(v, (bool, int, float)) for v in values):
        return {}
    out = dict(zip(_TRACED_SETTINGS, values))
    out.pop("training")
    mode, nonlinearity = _TRACED_OPS[op]
    out["mode"] = mode
    if nonlinearity:
        out["nonlinearity"] = nonlinearity
    return out


def _npz_tensors(data: bytes, where: str) -> dict:
    tensors = read_npz(data, where)
    if "__pipeline__" in tensors or any(k.startswith("__") for k in tensors):
        raise FormatError(f"{where}: an .npz written by rnnfast's exporter (entries {sorted(tensors)[:4]} ...), not "
                          f"PyTorch weights; load the model it was converted from, or convert to .rnnf")
    return tensors


def _read_pickle(data: bytes, where: str, allow_classes):
    """A plain pickle (a dict of numpy arrays, or a checkpoint dict holding one): no storages, nothing after it."""
    f = io.BytesIO(data)
    obj, _ = restricted_load(f, f"{where}: pickle", allow_classes, persistent=False)
    if f.tell() != len(data):
        raise FormatError(f"{where}: {len(data) - f.tell()} bytes follow the pickle; expected one pickled object")
    return _materialize(obj, {}, where)


def _read_zip(data: bytes, where: str, allow_classes):
    archive = open_zip(data, where)
    names = archive.namelist()
    pkls = sorted((n for n in names if n == "data.pkl" or n.endswith("/data.pkl")), key=len)
    if not pkls:
        raise FormatError(f"{where}: zip archive has no */data.pkl record, so it is not a PyTorch file")
    top = pkls[0][: -len("data.pkl")]
    torchscript = f"{top}constants.pkl" in names or any(n.startswith(f"{top}code/") for n in names)

    budget = LoadBudget(where)

    def record(name):
        return read_member(archive, name, where, budget)

    byteorder = record(f"{top}byteorder").decode("ascii", "replace") if f"{top}byteorder" in names else "little"
    if byteorder not in ("little", "big"):
        raise FormatError(f"{where}: record {top}byteorder says {byteorder!r}, expected 'little' or 'big'")
    pkl = f"{top}data.pkl"
    obj, storages = restricted_load(io.BytesIO(record(pkl)), f"{where}: {pkl}", allow_classes)
    arrays = {}
    for key, ref in storages.items():
        name = f"{top}data/{key}"
        raw = record(name)
        if len(raw) < ref.numel * ref.stype.itemsize:
            raise FormatError(f"{where}: record {name!r} has {len(raw)} bytes, but storage {key!r} declares "
                              f"{ref.numel} elements of {ref.stype.name} ({ref.numel * ref.stype.itemsize} bytes)")
        arrays[key] = _storage_array(raw[: ref.numel * ref.stype.itemsize], ref, byteorder)
    code = {}
    if torchscript:
        code_dir = f"{top}code/"
        code = {n[len(code_dir):]: record(n).decode("utf-8", "replace") for n in names
                if n.startswith(code_dir) and n.endswith(".py")}
    return ("torchscript" if torchscript else "zip"), _materialize(obj, arrays, where), code


def _read_legacy(data: bytes, where: str, allow_classes):
    f = io.BytesIO(data)
    magic, _ = restricted_load(f, f"{where}: legacy magic number", persistent=False)
    if magic != LEGACY_MAGIC:
        raise FormatError(f"{where}: starts with a pickle but not PyTorch's legacy magic number; "
                          f"expected a .pt/.pth file")
    protocol, _ = restricted_load(f, f"{where}: legacy protocol version", persistent=False)
    if protocol != LEGACY_PROTOCOL:
        raise FormatError(f"{where}: legacy protocol version {protocol!r}, expected {LEGACY_PROTOCOL}")
    sys_info, _ = restricted_load(f, f"{where}: legacy sys_info", persistent=False)
    little = not isinstance(sys_info, dict) or sys_info.get("little_endian", True)
    obj, storages = restricted_load(f, f"{where}: legacy object pickle", allow_classes)
    keys, _ = restricted_load(f, f"{where}: legacy storage key list", persistent=False)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise FormatError(f"{where}: legacy storage key list is {type(keys).__name__}, expected a list of str")
    arrays = {}
    for key in keys:
        if key not in storages:
            raise FormatError(f"{where}: legacy storage {key!r} is listed but no tensor refers to it")
        ref = storages[key]
        head = f.read(8)
        if len(head) < 8:
            raise FormatError(f"{where}: file ends before the data of legacy storage {key!r}")
        (numel,) = struct.unpack("<q" if little else ">q", head)
        nbytes = numel * ref.stype.itemsize
        raw = f.read(max(nbytes, 0))
        if numel < 0 or len(raw) < nbytes:
            raise FormatError(f"{where}: legacy storage {key!r} declares {numel} elements of {ref.stype.name} "
                              f"({nbytes} bytes) but only {len(raw)} bytes remain")
        arrays[key] = _storage_array(raw, ref, "little" if little else "big")
    missing = sorted(set(storages) - set(arrays))
    if missing:
        raise FormatError(f"{where}: legacy storages {missing} are referred to but their data is missing")
    return _materialize(obj, arrays, where)


def _storage_array(raw: bytes, ref: StorageRef, byteorder: str) -> np.ndarray:
    """A storage's elements in native byte order, floating types (bfloat16 too) as float32: converted once per
    storage, so the tensors over it are views."""
    dtype = np.dtype(np.uint16 if ref.stype.dtype == "bfloat16" else ref.stype.dtype)
    order = "<" if byteorder == "little" else ">"
    arr = np.frombuffer(raw, dtype.newbyteorder(order) if dtype.itemsize > 1 else dtype).astype(dtype)
    if ref.stype.dtype == "bfloat16":
        return (arr.astype(np.uint32) << 16).view(np.float32)
    return arr.astype(np.float32) if arr.dtype.kind == "f" and arr.dtype != np.float32 else arr


def _materialize(obj, arrays: dict, where: str):
    """The object tree with every LazyTensor replaced by its numpy array (shared objects stay shared)."""
    done: dict[int, object] = {}

    def storage_array(ref: StorageRef):
        return arrays[ref.key]

    budget = LoadBudget(where)

    def walk(o, path):
        if id(o) in done:
            return done[id(o)]
        if isinstance(o, LazyTensor):
            name = f"tensor {path or '<top>'!r}"
            out = done[id(o)] = o.materialize(storage_array, f"{where}: {name}", budget, name)
        elif isinstance(o, NumpyArray):
            name = f"array {path or '<top>'!r}"
            out = done[id(o)] = o.materialize(f"{where}: {name}", budget, name)
        elif isinstance(o, dict):
            done[id(o)] = o
            for k in list(o):
                o[k] = walk(o[k], f"{path}.{k}" if path else str(k))
            out = o
        elif isinstance(o, list):
            done[id(o)] = o
            o[:] = [walk(v, f"{path}[{i}]") for i, v in enumerate(o)]
            out = o
        elif isinstance(o, tuple):
            out = done[id(o)] = tuple(walk(v, f"{path}[{i}]") for i, v in enumerate(o))
        elif isinstance(o, PickledObject):
            done[id(o)] = o
            o.rn_state = walk(o.rn_state, path)
            out = o
        else:
            out = o
        return out

    try:
        return walk(obj, "")
    except RecursionError:
        raise FormatError(f"{where}: the pickled object nests too deeply to read") from None


def _is_state_dict(o) -> bool:
    return isinstance(o, dict) and len(o) > 0 and all(
        isinstance(k, str) and isinstance(v, np.ndarray) for k, v in o.items()
    )


def _state_dict(obj, where: str, key=None):
    """(tensors, modules, found_at): find the weights inside whatever object the file pickled."""
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            have = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
            raise FormatError(f"{where}: state_dict_key={key!r} not found; the file's top-level keys are {have}")
        obj, found_at = obj[key], f"[{key!r}]"
    elif _is_state_dict(obj) or isinstance(obj, PickledObject):
        found_at = ""
    elif isinstance(obj, dict):
        candidates = [k for k in CHECKPOINT_KEYS if k in obj and (_is_state_dict(obj[k])
                                                                   or isinstance(obj[k], PickledObject))]
        if not candidates:
            candidates = [k for k, v in obj.items() if _is_state_dict(v) or isinstance(v, PickledObject)]
        if len(candidates) != 1:
            raise FormatError(
                f"{where}: cannot tell which entry holds the model weights: top-level keys {sorted(map(str, obj))}"
                f"{', candidates ' + str(candidates) if candidates else ''}; pass state_dict_key=..."
            )
        obj, found_at = obj[candidates[0]], f"[{candidates[0]!r}]"
    else:
        raise FormatError(f"{where}: the file holds a {type(obj).__name__}, not a state_dict, checkpoint or module")
    if isinstance(obj, PickledObject):
        tensors, modules = {}, {}
        _flatten_module(obj, "", tensors, modules, where)
        if not tensors:
            raise FormatError(f"{where}{found_at}: the pickled {obj.rn_class} holds no tensors")
        return tensors, modules, found_at
    if not _is_state_dict(obj):
        raise FormatError(f"{where}{found_at}: expected a dict of name -> tensor, got {type(obj).__name__}"
                          + (f" with non-tensor entries {[k for k, v in obj.items() if not isinstance(v, np.ndarray)][:8]}"
                             if isinstance(obj, dict) else ""))
    return dict(obj), {}, found_at


def _flatten_module(obj: PickledObject, prefix: str, tensors: dict, modules: dict, where: str):
    """Dotted names as nn.Module.state_dict() gives them, for torch.save(model) and TorchScript module trees."""
    state = obj.rn_state if isinstance(obj.rn_state, dict) else {}
    plain = {k: v for k, v in state.items()
             if isinstance(k, str) and not k.startswith("_") and isinstance(v, (str, int, float, bool, type(None)))}
    modules[prefix] = ModuleInfo(obj.rn_class, plain)
    if "_parameters" in state or "_modules" in state:  # an nn.Module pickled by torch.save
        parts = {}
        for part in ("_parameters", "_buffers", "_modules"):
            parts[part] = state.get(part) or {}
            if not isinstance(parts[part], dict):
                raise FormatError(f"{where}: {prefix}{part} of {obj.rn_class} is a {type(parts[part]).__name__}, "
                                  f"expected a dict")
        skip = state.get("_non_persistent_buffers_set")
        skip = skip if isinstance(skip, (set, frozenset, list, tuple)) else ()
        entries = list(parts["_parameters"].items())
        entries += [(k, v) for k, v in parts["_buffers"].items() if k not in skip]
        children = list(parts["_modules"].items())
    else:  # a TorchScript object: attributes are tensors and submodules directly
        entries = [(k, v) for k, v in state.items() if isinstance(v, np.ndarray)]
        children = [(k, v) for k, v in state.items() if isinstance(v, PickledObject)]
    for name, value in entries:
        if value is None:
            continue
        if not isinstance(value, np.ndarray):
            raise FormatError(f"{where}: {prefix}{name} of {obj.rn_class} is a {type(value).__name__}, "
                              f"expected a tensor")
        tensors[f"{prefix}{name}"] = value
    for name, child in children:
        if child is None:
            continue
        if not isinstance(child, PickledObject):
            raise FormatError(f"{where}: submodule {prefix}{name} is a {type(child).__name__}, expected a module")
        _flatten_module(child, f"{prefix}{name}.", tensors, modules, where)
