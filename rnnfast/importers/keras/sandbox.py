"""rnnfast.load(path, safe=True) for HDF5: the file is parsed by libhdf5 (through h5py) in a child process with a
time and memory limit, and only plain data comes back, so a file that makes libhdf5 crash or loop (fuzzing found
both: a corrupted object header or attribute message) costs a FormatError, not the process.

The child reads every group, attribute and dataset (optimizer state left out), each dataset checked against the
memory budget and the inflation cap first (weights.check_dataset_size), and writes them to its stdout as an
uncompressed .npz plus a JSON manifest of the tree. The parent reads that with allow_pickle=False after checking
the archive's declared sizes, and hands the Keras importer a read-only stand-in of the h5py objects it uses
(Group, Dataset: attrs, `in`, [], get, iteration, name, shape, dtype, visititems)."""
from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import zipfile

import numpy as np

from ...errors import DeclaredSizeError, FormatError
from ...limits import LoadBudget, memory_limit

DEFAULT_SECONDS = 60.0
SKIPPED = ("optimizer_weights",)  # what the importer never reads; often as large as the weights


def open_h5_safely(data: bytes, where: str, seconds=None) -> "Group":
    """The HDF5 file's tree as a Group, parsed in a child process that may take `seconds` (default 60) and the
    memory budget plus 512 MiB; FormatError naming the file if it crashes, runs out of time or memory."""
    seconds = DEFAULT_SECONDS if seconds is None else float(seconds)
    memory = memory_limit() + (512 << 20)
    env = dict(os.environ, RNNFAST_MAX_MEMORY=str(memory_limit()), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "rnnfast.importers.keras.sandbox", str(memory), where]
    # `-m` puts the working directory first on the child's sys.path: run it where this rnnfast lives, so a source
    # checkout without the built extension in the caller's directory cannot stand in for the installed package.
    home = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    try:
        proc = subprocess.run(cmd, input=data, capture_output=True, timeout=seconds, env=env, cwd=home)
    except subprocess.TimeoutExpired:
        raise FormatError(f"{where}: reading the HDF5 file did not finish in {seconds:g} s (safe mode; a damaged "
                          f"file can make libhdf5 loop); refused") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        if proc.returncode < 0:
            raise FormatError(f"{where}: libhdf5 crashed reading the file (signal {-proc.returncode}, safe mode); "
                              f"refused")
        cls = DeclaredSizeError if proc.returncode == 5 else FormatError
        raise cls(err[-1] if err and err[-1].startswith(where) else
                  f"{where}: reading the HDF5 file failed in safe mode ({err[-1] if err else 'no message'})")
    return _unpack(proc.stdout, where)


def _unpack(blob: bytes, where: str) -> "Group":
    budget = LoadBudget(f"{where} (safe-mode reply)")
    try:
        archive = zipfile.ZipFile(io.BytesIO(blob))
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                raise FormatError(f"{where}: safe-mode reply member {info.filename!r} is compressed")
            budget.take(info.file_size, f"member {info.filename!r}")
        arrays = np.load(io.BytesIO(blob), allow_pickle=False)
        manifest = json.loads(bytes(arrays["manifest"]).decode("utf-8"))
        return _build(manifest, arrays)
    except FormatError:
        raise
    except Exception as e:  # noqa: BLE001 - the reply is ours, but it comes from the process that read the file
        raise FormatError(f"{where}: unreadable safe-mode reply ({type(e).__name__}: {e})") from None


def _value(arrays, key):
    arr = arrays[key]
    return arr[()] if arr.ndim == 0 else arr


def _build(manifest: dict, arrays) -> "Group":
    nodes = {"/": Group("/")}
    for path in manifest["groups"]:
        nodes[path] = Group(path)
    for path, (key, shape, dtype, stored) in manifest["datasets"].items():
        nodes[path] = Dataset(path, arrays[key] if key else None, tuple(shape), np.dtype(dtype), stored)
    for path, attrs in manifest["attrs"].items():
        nodes[path].attrs.update({name: _value(arrays, key) for name, key in attrs.items()})
    for path, node in sorted(nodes.items()):
        if path != "/":
            parent, _, leaf = path.rpartition("/")
            nodes[parent or "/"].children[leaf] = node
    return nodes["/"]


class _Id:
    def __init__(self, stored):
        self.stored = stored

    def get_storage_size(self):
        return self.stored


class Dataset:
    def __init__(self, name, array, shape, dtype, stored):
        self.name, self.array, self.shape, self.dtype = name, array, shape, dtype
        self.attrs, self.id = {}, _Id(stored)

    def __getitem__(self, key):
        if key != ():
            raise FormatError(f"{self.name}: only ds[()] is kept in safe mode")
        if self.array is None:
            raise FormatError(f"{self.name}: not read in safe mode (under {'/'.join(SKIPPED)})")
        return self.array


class Group:
    def __init__(self, name):
        self.name, self.attrs, self.children = name, {}, {}

    def _find(self, path):
        node = self
        for part in str(path).strip("/").split("/"):
            if not isinstance(node, Group) or part not in node.children:
                return None
            node = node.children[part]
        return node

    def __contains__(self, path):
        return self._find(path) is not None

    def __getitem__(self, path):
        node = self._find(path)
        if node is None:
            raise KeyError(f"{path!r} is not in {self.name}")
        return node

    def get(self, path, default=None):
        node = self._find(path)
        return default if node is None else node

    def __iter__(self):
        return iter(self.children)

    def keys(self):
        return self.children.keys()

    def visititems(self, fn):
        def walk(group, prefix):
            for key, node in group.children.items():
                path = f"{prefix}{key}"
                fn(path, node)
                if isinstance(node, Group):
                    walk(node, f"{path}/")

        walk(self, "")


def _child(memory: int, where: str):
    """In the child: read stdin's HDF5 file, write the .npz reply to stdout."""
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    import h5py

    from .weights import check_dataset_size

    data = sys.stdin.buffer.read()
    arrays, manifest = {}, {"groups": [], "datasets": {}, "attrs": {}}
    budget = LoadBudget(where)

    def keep(value):
        key = f"a{len(arrays)}"
        value = np.asarray(value)
        if value.dtype == object:  # variable-length strings
            items = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in value.reshape(-1)]
            value = np.array(items, dtype=str).reshape(value.shape)
        arrays[key] = value
        return key

    def attrs_of(path, obj):
        names = list(obj.attrs.keys())
        if names:
            manifest["attrs"][path] = {n: keep(obj.attrs[n]) for n in names}

    f = h5py.File(io.BytesIO(data), "r")
    attrs_of("/", f)

    def visit(name, obj):
        path = "/" + name
        if name.split("/")[0] in SKIPPED:
            return
        if isinstance(obj, h5py.Dataset):
            check_dataset_size(obj, f"{where}: dataset {path}", budget)
            manifest["datasets"][path] = [keep(obj[()]), list(obj.shape or ()), obj.dtype.str,
                                          int(obj.id.get_storage_size())]
        else:
            manifest["groups"].append(path)
        attrs_of(path, obj)

    f.visititems(visit)
    arrays["manifest"] = np.frombuffer(json.dumps(manifest).encode("utf-8"), np.uint8)
    out = io.BytesIO()
    np.savez(out, **arrays)
    sys.stdout.buffer.write(out.getvalue())


if __name__ == "__main__":
    try:
        _child(int(sys.argv[1]), sys.argv[2])
    except FormatError as e:
        print(str(e), file=sys.stderr)
        sys.exit(5 if isinstance(e, DeclaredSizeError) else 2)
    except MemoryError:
        print(f"{sys.argv[2]}: reading the HDF5 file ran out of the safe mode's memory limit", file=sys.stderr)
        sys.exit(3)
    except Exception as e:  # noqa: BLE001 - reported to the parent as a damaged file
        print(f"{sys.argv[2]}: damaged HDF5 file ({type(e).__name__}: {e})", file=sys.stderr)
        sys.exit(4)
