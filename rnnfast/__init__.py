"""rnnfast: fast CPU inference for recurrent neural networks (RNN, GRU, LSTM) without the training framework.

    import rnnfast
    model = rnnfast.load("model.onnx")       # or .h5 / .keras / .pt / .safetensors / .rnnf / a TF checkpoint prefix
    outputs = model.run(x)
"""
from __future__ import annotations

from .config import show_config
from .errors import AssumptionWarning, FormatError, OptionError
from .model import Model, TensorInfo
from .stream import Stream

__version__ = "0.1.0"
__all__ = ["load", "Model", "TensorInfo", "Stream", "InferenceSession", "FormatError", "OptionError",
           "AssumptionWarning", "show_config", "__version__"]


def load(path_or_bytes, strict: bool = False, **options) -> Model:
    """Load a model file (path, bytes or binary file object); the format is recognised by content.

    Options for every format: n_threads; max_memory (bytes, or "2G"/"500M"): the memory budget every size the file
    declares is checked against before it is allocated, and the limit of the model's runs (default
    RNNFAST_MAX_MEMORY, else the smaller of 4 GiB and half the physical memory); safe=True or a number of seconds
    (Keras .h5/.keras): parse the HDF5 data in a child process with that time limit (default 60 s) and the memory
    budget (rnnfast/importers/keras/sandbox.py); the other formats are read by rnnfast's own readers, which need
    no sandbox, so safe changes nothing for them.
    strict=True: refuse a file that leaves out something that changes the result instead of assuming the
    framework's default with an AssumptionWarning (rnnfast/assumptions.py).
    Only FormatError, ValueError (MemoryLimitError among them) and, for a misspelt option, OptionError (a
    TypeError) leave it."""
    from .assumptions import load_checked

    import os

    name = (os.fspath(path_or_bytes) if isinstance(path_or_bytes, (str, os.PathLike))
            else getattr(path_or_bytes, "name", "<bytes>"))
    return load_checked(lambda: _load_any(path_or_bytes, **options), str(name), strict)


def _load_any(path_or_bytes, **options) -> Model:
    from . import formats
    from .errors import file_errors
    from .limits import memory_budget

    from .config import env_threads_error
    from .engine import check_threads

    bad_env = env_threads_error()
    if bad_env:
        raise ValueError(bad_env)
    given = dict(options)  # what the model pickles as, with its bytes (rnnfast/portable.py)
    n_threads = check_threads(options.pop("n_threads", None))
    prefix = formats.checkpoint_prefix(path_or_bytes)
    with memory_budget(options.pop("max_memory", None)):
        if prefix is not None:  # several files, no single source: such a model does not pickle
            from .importers.tf import load_tf1

            options.pop("safe", None)  # read by rnnfast's own bounded reader, in this process
            with file_errors(str(prefix), keep_value_errors=True):
                return _with_threads(load_tf1(prefix, **options), n_threads)
        data, name = formats.read_source(path_or_bytes)
        with file_errors(name, keep_value_errors=True):
            model = _load(path_or_bytes, data, name, n_threads, options)
    from .portable import Origin

    if "folder" in options:  # an ONNX model's external data folder, found from its path: rebuilt from bytes too
        given["folder"] = options["folder"]
    model.origin = Origin(data, name, given)
    return model


def _load(path_or_bytes, data, name, n_threads, options) -> Model:
    from . import formats

    kind = formats.detect(data, name)
    if kind not in ("keras-h5", "keras-zip"):
        options.pop("safe", None)  # the other formats are parsed by rnnfast's own bounded readers, in this process
    if kind == "onnx":
        unknown = sorted(set(options) - {"folder"})
        if unknown:
            raise OptionError(f"unknown option(s) {unknown} for an ONNX file; expected n_threads, max_memory, folder")
        options["n_threads"] = n_threads
        from .importers.onnx import load_onnx

        options.setdefault("folder", formats.folder_of(path_or_bytes))  # external data: beside the model file
        return load_onnx(data, name=name, **options)
    if kind in ("keras-h5", "keras-zip"):
        from .importers.keras import load_keras

        return _with_threads(load_keras(data, name=name, **options), n_threads)
    if kind in ("torch-zip", "torch-legacy", "safetensors", "npz", "pickle"):
        from .importers.torch import load_torch

        return _with_threads(load_torch(data, name=name, **options), n_threads)
    if kind == "rnnf":
        from .importers.rnnf import load_rnnf_model

        if options:
            raise OptionError(f"{name}: .rnnf files take no load options but n_threads and max_memory, got "
                              f"{sorted(options)}")
        return _with_threads(load_rnnf_model(data, name=name, n_threads=n_threads), n_threads)
    if kind in ("rnnf-npz", "rnnf-safetensors"):
        from .importers.graph_arrays import load_graph_container

        if options:
            raise OptionError(f"{name}: graphs rnnfast wrote as .npz or .safetensors take no load options but "
                              f"n_threads and max_memory, got {sorted(options)}")
        return _with_threads(load_graph_container(data, name, kind, n_threads), n_threads)
    raise FormatError(f"{name}: {kind} files are not supported yet")


def _with_threads(model: Model, n_threads) -> Model:
    """The ONNX importer compiles its thread count in; the other formats' runs and streams take it from the model."""
    model.n_threads = n_threads
    return model


def __getattr__(attr):
    # InferenceSession imports the ONNX importer; load it only when asked for.
    if attr == "InferenceSession":
        from .session import InferenceSession

        return InferenceSession
    raise AttributeError(f"module 'rnnfast' has no attribute {attr!r}")
