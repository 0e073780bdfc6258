"""Keras model files read with h5py and numpy only (no TensorFlow, no Keras).

    model = rnnfast.load("model.h5")                     # Keras 1, Keras 2, tf.keras, Keras 3 legacy .h5
    model = rnnfast.load("model.keras")                  # Keras 3 zip: config.json + model.weights.h5
    model = rnnfast.load("w.weights.h5", config="model.keras")   # weights-only file + architecture
    outputs = model.run(x)                               # list, one array per model output, as model.predict
    model.reset_states()                                 # stateful layers start again from zeros

Options of `rnnfast.load` for these files:
- config: the architecture for a weights-only file: a dict (model.get_config() wrapped as {"class_name", "config"},
  or what `model.to_json()` gives), a JSON string, or the path of a .json, .keras or full-model .h5 file.
- safe: True (or a number of seconds, default 60) to parse the HDF5 data in a child process with that time limit and
  the memory budget (sandbox.py): for files from untrusted sources, since libhdf5 itself can crash or loop on a
  damaged file. Costs a process start and a copy of the weights (~0.3 s for a small model).

The Keras version decides two meanings the config does not spell out: hard_sigmoid (0.2x+0.5 up to Keras 2,
x/6+0.5 in Keras 3) and the defaults of options older files leave out (recurrent_activation, GRU reset_after).
`model.describe()` lists the layers, their output shapes and every such default that was applied.
"""
from __future__ import annotations

import io
import json
import os

from ...errors import FormatError, OptionError, file_errors
from ...model import Model
from ...limits import LoadBudget
from .._zip import open_zip, read_member
from .config import parse_json, parse_model
from .graph import KerasGraph, KerasModelGraph
from .h5_heaps import check_global_heaps
from .layers import Context
from .weights import LegacyWeights, TreeWeights

OPTIONS = ("config", "safe")


def load_keras(data: bytes, name: str = "<bytes>", **options) -> Model:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise OptionError(f"unknown option(s) {unknown} for a Keras file; expected some of {list(OPTIONS)}")
    # h5py reports damaged structures (bad offsets, unreadable headers) as OSError, RuntimeError, KeyError,
    # ValueError, OverflowError... from any access
    with file_errors(name, "damaged or malformed Keras file"):
        return _load(data, name, options)


def _load(data: bytes, name: str, options: dict) -> Model:
    h5py = _h5py()
    if data.startswith(b"PK"):
        cfg, version, weights_bytes, fmt = _read_zip(data, name)
        if options.get("config") is not None:
            raise OptionError(f"{name}: a .keras file carries its own config; the config option is for weights-only "
                            f"files")
        f = _open_h5(h5py, weights_bytes, f"{name}: model.weights.h5", options.get("safe"))
        source = TreeWeights(f, f"{name}: model.weights.h5")
    else:
        f = _open_h5(h5py, data, name, options.get("safe"))
        if "model_config" in f.attrs:
            if options.get("config") is not None:
                raise OptionError(f"{name}: the file carries its own model_config; the config option is for "
                                f"weights-only files")
            cfg = parse_json(f.attrs["model_config"], name)
            version = _text(f.attrs.get("keras_version")) or "1"  # Keras 1 files before 1.0 wrote no version
            if "model_weights" not in f:
                raise FormatError(f"{name}: the file has a model_config but no 'model_weights' group (saved with "
                                  f"include_optimizer only?)")
            source = LegacyWeights(f["model_weights"], name)
            fmt = "full-model HDF5"
        else:
            if options.get("config") is None:
                raise FormatError(f"{name}: an HDF5 file without 'model_config' holds weights only; pass the "
                                  f"architecture with rnnfast.load(path, config=<.keras/.json/.h5 path or dict>)")
            cfg, cfg_version = _config_option(options["config"], name)
            if "layer_names" in f.attrs or "layer_names0" in f.attrs:
                source = LegacyWeights(f, name)
                version = _text(f.attrs.get("keras_version")) or cfg_version or "1"
                fmt = "weights-only HDF5 (legacy layout)"
            else:
                source = TreeWeights(f, name)
                version = cfg_version or "3"
                fmt = "weights-only HDF5 (Keras 3 layout)"
    major = _major(version, name)
    ctx = Context(name, version, major)
    try:
        spec = parse_model(cfg, major, name)
        graph = KerasGraph(spec, ctx)
        graph.load_weights(source)
        source.check_all_used()
    except (KeyError, IndexError, TypeError, AttributeError) as e:
        raise FormatError(f"{name}: malformed Keras model config or weights ({type(e).__name__}: {e})") from e
    model_graph = KerasModelGraph(graph, ctx, name, fmt)
    model_graph.check_fit()
    model_graph.compile()
    return Model(model_graph, source=name)


def _h5py():
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - h5py is a dependency, but say what is missing if it is not there
        raise ImportError("reading Keras .h5/.keras files needs h5py: pip install h5py") from e
    return h5py


def _open_h5(h5py, data: bytes, where: str, safe=None):
    if safe is not None and safe is not False and not (safe is True or (isinstance(safe, (int, float)) and safe > 0)):
        raise ValueError(f"{where}: option safe must be True or a number of seconds > 0, got {safe!r}")
    check_global_heaps(data, where)
    if safe is not None and safe is not False:
        from .sandbox import open_h5_safely

        return open_h5_safely(data, where, None if safe is True else safe)
    try:
        return h5py.File(io.BytesIO(data), "r")
    except Exception as e:  # h5py raises OSError and others for damaged files
        raise FormatError(f"{where}: not a readable HDF5 file: {e}") from e


def _read_zip(data: bytes, name: str):
    z = open_zip(data, name, ".keras archive")
    budget = LoadBudget(name)
    names = z.namelist()
    if "config.json" not in names or "model.weights.h5" not in names:
        raise FormatError(f"{name}: a .keras archive needs config.json and model.weights.h5; it holds {names}")
    cfg = parse_json(read_member(z, "config.json", name, budget), f"{name}: config.json")
    version = "3"
    if "metadata.json" in names:
        meta = parse_json(read_member(z, "metadata.json", name, budget), f"{name}: metadata.json", what="metadata")
        version = str(meta.get("keras_version") or "3") if isinstance(meta, dict) else "3"
    weights = read_member(z, "model.weights.h5", name, budget)
    return cfg, version, weights, ".keras archive"


def _config_option(config, name):
    """(model config dict, Keras version or None) from the config option."""
    if isinstance(config, dict):
        cfg = config
    elif isinstance(config, (str, bytes, os.PathLike)) and not _looks_like_json(config):
        from ...formats import read_source

        data, path = read_source(config)
        if data.startswith(b"PK"):
            cfg, version, _, _ = _read_zip(data, path)
            return cfg, version
        if data.startswith(b"\x89HDF"):
            f = _open_h5(_h5py(), data, path)
            if "model_config" not in f.attrs:
                raise FormatError(f"{path}: given as config but has no model_config attribute")
            return parse_json(f.attrs["model_config"], path), _text(f.attrs.get("keras_version"))
        cfg = parse_json(data, path)
    else:
        cfg = parse_json(config, f"{name}: config option")
    if "class_name" not in cfg:
        raise FormatError(f"{name}: the config option must be a model config with 'class_name' and 'config'")
    version = cfg.get("keras_version")
    if version is None and "module" in cfg:
        version = "3"
    return cfg, version


def _looks_like_json(v) -> bool:
    if isinstance(v, os.PathLike):
        return False
    s = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
    return s.lstrip().startswith("{")


def _major(version: str, name: str) -> int:
    try:
        major = int(str(version).split(".")[0])
    except ValueError:
        raise FormatError(f"{name}: keras_version {version!r} is not a version number") from None
    if major not in (1, 2, 3):
        raise FormatError(f"{name}: keras_version {version!r}; expected Keras 1, 2 (tf.keras) or 3")
    return major


def _text(v):
    if v is None:
        return None
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)
