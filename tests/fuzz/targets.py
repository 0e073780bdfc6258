"""The fuzz targets: one function per format that feeds bytes to the public loader (and runs what loads), and the
seed inputs each starts from (the fixtures in tests/data, and files made from them).

A target raises Finding for anything but what rnnfast documents for bad input: FormatError, ValueError and its
subclasses. Running out of memory counts as a finding too (MemoryLimitError "ran out of memory" means an allocation
that no declared-size check stopped): the drivers run targets under an address-space limit so a bomb shows up that
way instead of swapping the machine."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent.parent / "data"
# The memory budget the drivers' processes fuzz with: a mutated dim can make a run plan gigabytes within the default
# budget (a 19 KB ONNX file: a 3.2 GB initial state, refused by the LSTM only after it was filled), which costs only
# time; a smaller budget refuses it at once.
FUZZ_MAX_MEMORY = "512M"
MAX_SEED_BYTES = 200_000  # small seeds keep executions fast


class Finding(Exception):
    """An exception rnnfast must not let out, or an allocation nothing checked."""


class _Named(io.BytesIO):
    """Bytes with a file name, so rnnfast.load recognises the format the target means from its extension."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.name = name


def _allowed(e: BaseException) -> bool:
    from rnnfast.errors import FormatError, MemoryLimitError

    if isinstance(e, MemoryLimitError) and "ran out of memory" in str(e):
        return False
    return isinstance(e, (FormatError, ValueError))


def _guarded(fn, data: bytes):
    try:
        fn(data)
    except Exception as e:  # noqa: BLE001 - sorting allowed from not allowed is the point
        if not _allowed(e):
            raise Finding(f"{type(e).__name__}: {e}") from e


def _run_small(model):
    """One run on zeros, dynamic axes as 2 (ints where the model takes ids), to reach run-time checks too."""
    feeds = {}
    for info in model.inputs:
        shape = [d if isinstance(d, int) and 0 <= d <= 64 else 2 for d in info.shape]
        if np.prod(shape) > 1 << 16:
            return
        dtype = np.int64 if "int" in str(info.type) else (np.bool_ if "bool" in str(info.type) else np.float32)
        feeds[info.name] = np.zeros(shape, dtype)
    model.run(feeds)


def _load_and_run(name, **options):
    def target(data: bytes):
        import rnnfast

        _run_small(rnnfast.load(_Named(data, name), **options))

    return target


def _pickle(data: bytes):
    from rnnfast.importers._pickle import restricted_loads

    restricted_loads(data, "fuzz.pkl")


def _safetensors(data: bytes):
    from rnnfast.importers._safetensors import read_safetensors

    read_safetensors(data, "fuzz.safetensors")


def _rnnf(data: bytes):
    from rnnfast.importers.rnnf import load_rnnf_model

    _run_small(load_rnnf_model(data, "fuzz.rnnf"))


def _files(pattern, first=None):
    out = []
    for p in sorted(DATA.glob(pattern), key=lambda p: p.stat().st_size):
        data = p.read_bytes()
        if (len(data) <= MAX_SEED_BYTES and (first is None or data.startswith(first))
                and not p.name.startswith("hostile")):  # regression inputs: they are findings, not seeds
            out.append(data)
    return out


def _pickles():
    out = []
    for data in _files("torch/*.pt", b"PK"):
        z = zipfile.ZipFile(io.BytesIO(data))
        out += [z.read(n) for n in z.namelist() if n.endswith(".pkl")]
    return out


def _rnnf_seeds():
    """.rnnf 1 chains and .rnnf 2 graphs written from the smallest PyTorch fixtures, and the .rnnf files kept in
    tests/data/rnnf (earlier findings)."""
    import rnnfast
    from rnnfast.exporters.rnnf import to_bytes
    from rnnfast.exporters.rnnf_graph import graph_to_bytes

    out = _files("rnnf/*.rnnf")
    for data in _files("torch/*.pt", b"PK")[:6]:
        try:
            model = rnnfast.load(data)
            out.append(to_bytes(model.to_pipeline()))
            out.append(graph_to_bytes(model.graph.compiled))
        except ValueError:
            continue
    return out


def _tf1():
    from tests.fuzz import tf1  # imports this module: loaded on first use

    return tf1


# name -> (function of the bytes, function giving the seed inputs)
TARGETS = {
    "onnx": (_load_and_run("fuzz.onnx"), lambda: _files("onnx/*.onnx")),
    # libhdf5 itself crashes or loops on some damaged files: the plain target finds those (docs/fuzzing.md), the safe
    # one checks that safe mode turns them into FormatError
    "h5": (_load_and_run("fuzz.h5"), lambda: _files("keras/*.h5")),
    "h5_safe": (_load_and_run("fuzz.h5", safe=5), lambda: _files("keras/*.h5")),
    "keras_zip": (_load_and_run("fuzz.keras"), lambda: _files("keras/*.keras")),
    "torch_zip": (_load_and_run("fuzz.pt"), lambda: _files("torch/*.pt", b"PK")),
    "torch_legacy": (_load_and_run("fuzz.pt"), lambda: _files("torch/*.pt", b"\x80")),
    "pickle": (_pickle, _pickles),
    "safetensors": (_safetensors, lambda: _files("torch/*.safetensors")),
    "rnnf": (_rnnf, _rnnf_seeds),
    "tf1": (lambda data: _tf1().target(data), lambda: _tf1().seeds()),
}


def run_one(name: str, data: bytes):
    """Feed one input to one target; Finding if rnnfast let out something it must not."""
    _guarded(TARGETS[name][0], data)
