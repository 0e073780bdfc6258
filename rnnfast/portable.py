"""Pickling models and sessions, so they travel to multiprocessing / concurrent.futures pools and Dask workers.

A Model pickles as what rnnfast.load was given (the source bytes, the name used in messages, the load options
such as n_threads), never as its packed weights: the receiving process calls rnnfast.load again. Rebuilds are cached
per process by a content hash of bytes + options, so however many tasks carry the same model, a process builds its
packed weights once, and unpickled copies of one model in one process are the same object (see `rebuilt`).

This stays at the Model level on purpose: whatever a Model holds inside (ONNX, Keras, PyTorch or .rnnf graphs, or
an IR), the bytes and options that made it make it again.

Models made in memory, and TF 1.x checkpoints (several files), have no source bytes. One whose graph is a chain in
a .rnnf file's conventions (graph/chain.py ChainGraph, one input and one output) pickles as its .rnnf 1 bytes, which
hold such a chain exactly (int8 / float16 weights included); any other refuses with NotPicklableError naming the
graph type and what would make it picklable. Model.quantize() of a loaded model records the step: it pickles as its source's bytes and options plus
("quantize", weights), redone after the load.

Load options that are paths (an ONNX model's external data folder, a Keras weights file's `config`) travel as
paths: the receiving process reads them, so they must exist at the same path there (a shared file system).
"""
from __future__ import annotations

import collections
import io
import pickle
import threading

# Rebuilt models per process, newest last; a few, so a worker scoring with several models keeps them all but one
# that moves from model to model does not keep every one alive.
CACHE_SIZE = 8
_cache: "collections.OrderedDict[str, object]" = collections.OrderedDict()
_cache_lock = threading.Lock()
_building: dict = {}  # key -> lock, so two threads unpickling one model build it once
builds = 0  # how many rebuilds this process made (tests and the benchmark read it)


class NotPicklableError(ValueError, pickle.PicklingError):
    """The model has no source bytes to be rebuilt from (made in memory) and no exact file form."""


class Origin:
    """What rnnfast.load was given: bytes, the name its messages use, and the options (after defaults)."""

    __slots__ = ("data", "name", "options", "steps", "_key")

    def __init__(self, data: bytes, name: str, options: dict, steps: tuple = ()):
        # steps: Model methods applied after the load, in order, as (name, argument): ("quantize", "int8"), or
        # ("quantize", ("int8", "all")) for a scope other than the default
        self.data, self.name, self.options, self.steps, self._key = data, name, dict(options), tuple(steps), None

    @property
    def key(self) -> str:
        """sha256 of the bytes and the options: equal keys rebuild to equal models."""
        if self._key is None:
            # imported here, not with this module (which every rnnfast.load imports): hashlib loads OpenSSL's
            # libcrypto, 3.3 MiB of resident memory a process that never pickles a model would carry
            import hashlib

            h = hashlib.sha256(self.data)
            h.update(repr((sorted(self.options.items()), self.steps)).encode())
            self._key = h.hexdigest()
        return self._key

    def with_options(self, **changes) -> "Origin":
        return Origin(self.data, self.name, {**self.options, **changes}, self.steps)

    def then(self, method: str, argument) -> "Origin":
        """The origin of the model that `model.<method>(argument)` makes from this one."""
        return Origin(self.data, self.name, self.options, self.steps + ((method, argument),))


def origin_of(model) -> Origin:
    """The model's Origin (n_threads as the model has it now), or NotPicklableError saying why there is none."""
    origin = getattr(model, "origin", None)
    if origin is None:
        origin = _memory_origin(model)
    n_threads = getattr(model, "n_threads", None)
    if n_threads is not None and origin.options.get("n_threads") != n_threads:
        origin = origin.with_options(n_threads=n_threads)
    return origin


def _memory_origin(model) -> Origin:
    from .graph.chain import RNNF, ChainGraph

    graph = model.graph
    if isinstance(graph, ChainGraph) and graph.conventions == RNNF:  # exactly what a .rnnf file holds
        from .exporters.rnnf import to_bytes

        model.origin = Origin(to_bytes(graph.to_pipeline()), model.source or "<memory chain>", {})
        return model.origin
    raise NotPicklableError(
        f"{model!r} cannot be pickled: it was made in memory or read from several files (a TF 1.x checkpoint; its "
        f"graph is a {type(model.graph).__name__}), so it has no source bytes to be rebuilt from. "
        f"Load it with rnnfast.load from a file or bytes, or pickle rnnfast.load(rnnfast.exporters.rnnf.to_bytes("
        f"model.to_pipeline())) if its main output is all you need")


def reduce_model(model):
    """Model.__reduce__: rebuild from the origin in the receiving process."""
    origin = origin_of(model)
    return rebuild, (origin.data, origin.name, origin.options, origin.key, origin.steps)


def rebuild(data, name, options, key, steps=()):
    """The Model for these bytes and options: from this process's cache, or loaded once and cached."""
    global builds
    with _cache_lock:
        model = _cache.get(key)
        if model is not None:
            _cache.move_to_end(key)
            return model
        lock = _building.setdefault(key, threading.Lock())
    with lock:
        with _cache_lock:
            model = _cache.get(key)
        if model is not None:
            return model
        from . import load

        try:
            model = load(_Named(data, name), **options)
            for method, argument in steps:
                if method != "quantize":  # the only step a model's origin records
                    raise pickle.UnpicklingError(f"{name}: unknown step {method!r} after the load")
                model = model.quantize(*argument) if isinstance(argument, tuple) else model.quantize(argument)
        except BaseException:
            with _cache_lock:
                _building.pop(key, None)
            raise
        with _cache_lock:
            _cache[key] = model
            _building.pop(key, None)
            builds += 1
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return model


class _Named(io.BytesIO):
    """Bytes that rnnfast.load reads with the name its messages used where they were first loaded."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.name = name


def load_origin(origin: Origin):
    """The model an Origin describes, from this process's cache or loaded once."""
    return rebuild(origin.data, origin.name, origin.options, origin.key, origin.steps)


def rebuilt(model, **option_changes):
    """The same model with other load options (n_threads for a worker's cores), from this process's cache: built
    once per process for each distinct set of options. The model is shared by its callers; a Keras stateful model's
    state (kept between run calls) is therefore shared too: reset_states() before each independent sequence."""
    origin = origin_of(model)
    return load_origin(origin.with_options(**option_changes) if option_changes else origin)


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def reduce_session(session):
    return _session_from_model, (session._model,)


def _session_from_model(model):
    from .session import InferenceSession

    session = InferenceSession.__new__(InferenceSession)
    session._model = model
    return session
