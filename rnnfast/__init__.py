"""rnnfast: fast CPU inference for recurrent neural networks (RNN, GRU, LSTM) without the training framework.

    import rnnfast
    model = rnnfast.load("model.onnx")       # or .h5 / .keras / .pt / .safetensors / .rnnf / a TF checkpoint prefix
    outputs = model.run(x)
"""
from __future__ import annotations

from .config import show_config
from .errors import FormatError
from .model import Model, TensorInfo

__version__ = "0.1.0"
__all__ = ["load", "Model", "TensorInfo", "InferenceSession", "FormatError", "show_config", "__version__"]


def load(path_or_bytes, **options) -> Model:
    """Load a model file (path, bytes or binary file object); the format is recognised by content."""
    from . import formats

    from .config import env_threads_error
    from .engine import check_threads

    if env_threads_error():
        raise ValueError(env_threads_error())
    prefix = formats.checkpoint_prefix(path_or_bytes)
    if prefix is not None:
        from .importers.tf import load_tf1

        n_threads = check_threads(options.pop("n_threads", None))
        return _with_threads(load_tf1(prefix, **options), n_threads)
    data, name = formats.read_source(path_or_bytes)
    kind = formats.detect(data, name)
    n_threads = check_threads(options.pop("n_threads", None))
    if kind == "onnx":
        options["n_threads"] = n_threads
        from .importers.onnx import load_onnx

        options.setdefault("folder", formats.folder_of(path_or_bytes))  # external data: beside the model file
        return load_onnx(data, name=name, **options)
    if kind in ("keras-h5", "keras-zip"):
        from .importers.keras import load_keras

        return _with_threads(load_keras(data, name=name, **options), n_threads)
    if kind in ("torch-zip", "torch-legacy", "safetensors"):
        from .importers.torch import load_torch

        return _with_threads(load_torch(data, name=name, **options), n_threads)
    if kind == "rnnf":
        from .importers.rnnf import load_rnnf_model

        if options:
            raise TypeError(f"{name}: .rnnf files take no load options but n_threads, got {sorted(options)}")
        return _with_threads(load_rnnf_model(data, name=name), n_threads)
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
