"""Read a whole graph stored as named arrays plus a structure JSON (.npz and .safetensors written by rnnfast;
docs/format.md, "Graphs in .npz and .safetensors") into a Model that runs through the C executor.

The JSON holds .rnnf 2's tables as lists of records. Each record is checked for its field count and field types and
packed into its .rnnf 2 struct (a field out of its range fails there), each blob's array for its dtype and axes,
and every array must be a blob; then the parts are laid out as a .rnnf 2 file (exporters/rnnf_graph.py's
assemble, after the rebuilt size is checked against the memory budget) and read by the .rnnf 2 reader, whose checks
(every count, range, id, dtype, shape) are thus the same for all three containers. Every refusal is a FormatError
naming the file and the entry or JSON key."""
from __future__ import annotations

import json
import re
import struct

import numpy as np

from .. import rnnf_spec as spec
from ..errors import FormatError
from ..limits import LoadBudget

SCALAR = {"d": "a number", "I": "an integer", "Q": "an integer"}


def load_graph_container(data: bytes, name: str, kind: str, n_threads=None):
    """rnnfast.load's entry for kind "rnnf-npz" or "rnnf-safetensors" (formats.detect)."""
    if kind == "rnnf-npz":
        from ._npz import read_npz

        arrays = read_npz(data, name, text_entries=(spec.NPZ_STRUCTURE,), as_stored=True)
        entry = spec.NPZ_STRUCTURE
        structure = arrays.pop(entry, None)
        if structure is None or structure.shape != () or structure.dtype.kind != "U":
            got = "missing" if structure is None else f"a {structure.dtype} array of shape {list(structure.shape)}"
            raise FormatError(f"{name}: entry {entry!r} is {got}, expected the structure as a 0-d unicode array")
        return load_graph_arrays(structure.item(), arrays, name, entry, ".npz", n_threads)
    from ._safetensors import read_safetensors

    arrays, metadata = read_safetensors(data, name, as_stored=True)
    entry = spec.SAFETENSORS_STRUCTURE
    if not isinstance(metadata, dict) or entry not in metadata:
        raise FormatError(f"{name}: __metadata__ has no {entry!r} entry (the structure rnnfast writes)")
    return load_graph_arrays(metadata[entry], arrays, name, f"__metadata__.{entry}", ".safetensors", n_threads)


def load_graph_arrays(text, arrays: dict, name: str, entry: str, kind: str, n_threads=None):
    """A Model of the graph that `text` (the structure entry `entry`) and `arrays` describe."""
    from ..exporters.rnnf_graph import GraphParts, assemble
    from ..model import Model
    from .rnnf_graph import RnnfGraph

    where = f"{name}: entry {entry!r}"
    doc = _document(text, where)
    tables = {key: _records(doc[key], f"{where}: key {key!r}", st) for key, st in spec.RECORDS.items()}
    for key, fmt in spec.POOLS.items():
        tables[key] = _pool(doc[key], f"{where}: key {key!r}", fmt)
    if not isinstance(doc["strings"], str):
        raise FormatError(f"{where}: key 'strings' is a {type(doc['strings']).__name__}, expected a string")
    tables["strings"] = doc["strings"].encode("utf-8")
    source, producer = (_pair(doc[k], f"{where}: key {k!r}") for k in ("source", "producer"))
    blobs, names = _blobs(doc["blobs"], arrays, name, entry)
    size = sum(len(t) for t in tables.values()) + sum(a.nbytes + spec.ALIGN for a, _, _ in blobs)
    LoadBudget(name).take(size, f"the graph of entry {entry!r}, laid out for the executor,")
    data = assemble(GraphParts(tables, blobs, source, producer, doc["version"][1]))
    try:
        graph = RnnfGraph(data, name, n_threads, where=where, kind=kind)
    except FormatError as e:  # the .rnnf 2 reader's "blob N" is an array here
        text = str(e)
        named = [f"blob {k} is array {names[int(k)]!r}" for k in dict.fromkeys(re.findall(r"blob (\d+)", text))
                 if int(k) < len(names)]
        raise FormatError(text + (f" ({'; '.join(named)})" if named else "")) from None
    return Model(graph, source=name)


def _document(text, where) -> dict:
    if not isinstance(text, str):
        raise FormatError(f"{where}: the structure is a {type(text).__name__}, expected JSON text")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise FormatError(f"{where}: the structure is not JSON ({e})") from None
    except RecursionError:
        raise FormatError(f"{where}: the structure nests too deeply to be rnnfast's") from None
    if not isinstance(doc, dict):
        raise FormatError(f"{where}: the structure is a JSON {type(doc).__name__}, expected an object")
    if doc.get("format") != spec.CONTAINER_FORMAT:
        raise FormatError(f"{where}: key 'format' is {doc.get('format')!r}, expected {spec.CONTAINER_FORMAT!r}")
    version = doc.get("version")
    if not (isinstance(version, list) and len(version) == 2 and version[0] == spec.GRAPH_MAJOR
            and type(version[1]) is int and 0 <= version[1] <= spec.GRAPH_MINOR):
        raise FormatError(f"{where}: key 'version' is {version!r}; this reader reads [{spec.GRAPH_MAJOR}, 0] to "
                          f"[{spec.GRAPH_MAJOR}, {spec.GRAPH_MINOR}]")
    want = {"format", "version", "source", "producer", "blobs", *spec.TABLE_KEYS}
    missing, unknown = sorted(want - doc.keys()), sorted(doc.keys() - want)
    if missing or unknown:
        raise FormatError(f"{where}: the structure " + " and ".join(
            f"{what} key(s) {keys}" for what, keys in (("lacks", missing), ("has unknown", unknown)) if keys))
    return doc


def _is_int(v) -> bool:
    return type(v) is int


def _records(value, where, st) -> bytes:
    """A table's records, each a list of its struct's fields, packed as .rnnf 2 stores them."""
    codes = st.format[1:]
    if not isinstance(value, list):
        raise FormatError(f"{where}: a {type(value).__name__}, expected a list of records")
    out = bytearray()
    for i, rec in enumerate(value):
        if not isinstance(rec, list) or len(rec) != len(codes):
            raise FormatError(f"{where}: record {i} is not a list of {len(codes)} fields")
        for k, (code, v) in enumerate(zip(codes, rec)):
            if not (_is_int(v) or (code == "d" and type(v) is float)):
                raise FormatError(f"{where}: record {i} field {k} is {v!r}, expected {SCALAR[code]}")
        try:
            out += st.pack(*rec)
        except (OverflowError, struct.error) as e:
            raise FormatError(f"{where}: record {i} has a field out of range ({e})") from None
    return bytes(out)


def _pool(value, where, fmt) -> bytes:
    if not isinstance(value, list):
        raise FormatError(f"{where}: a {type(value).__name__}, expected a list")
    is_float = fmt == "<f4"
    bad = next((k for k, v in enumerate(value) if not (_is_int(v) or (is_float and type(v) is float))), None)
    if bad is not None:
        raise FormatError(f"{where}: item {bad} is {value[bad]!r}, expected {'a number' if is_float else 'an integer'}")
    if is_float:
        wide = np.asarray(value, np.float64)
        with np.errstate(over="ignore"):
            arr = wide.astype(fmt)
        bad = np.flatnonzero(~((arr == wide) | (np.isnan(arr) & np.isnan(wide))))
        if bad.size:
            raise FormatError(f"{where}: item {bad[0]} is {value[bad[0]]!r}, not a float32 value")
        return arr.tobytes()
    info = np.iinfo(fmt)
    bad = next((k for k, v in enumerate(value) if not info.min <= v <= info.max), None)
    if bad is not None:
        raise FormatError(f"{where}: item {bad} is {value[bad]}, outside [{info.min}, {info.max}]")
    return np.asarray(value, fmt).tobytes()


def _pair(value, where) -> tuple:
    if not (isinstance(value, list) and len(value) == 2 and all(_is_int(v) and 0 <= v <= 0xFFFFFFFF for v in value)):
        raise FormatError(f"{where}: {value!r}, expected [offset, length] in the strings")
    return tuple(value)


def _blobs(value, arrays: dict, name: str, entry: str):
    """(array, dtype code, scale blob) per blob, and the arrays' names; every array must be one blob."""
    where = f"{name}: entry {entry!r}"
    if not isinstance(value, list):
        raise FormatError(f"{where}: key 'blobs' is a {type(value).__name__}, expected a list")
    blobs, names = [], []
    for k, rec in enumerate(value):
        w = f"{where}: key 'blobs' record {k}"
        if not (isinstance(rec, list) and len(rec) == 3 and isinstance(rec[0], str) and _is_int(rec[1])
                and _is_int(rec[2]) and 0 <= rec[2] <= 0xFFFFFFFF):
            raise FormatError(f"{w}: {rec!r}, expected [array name, dtype code, scale blob]")
        array_name, code, scale = rec
        if array_name in names:
            raise FormatError(f"{w}: array {array_name!r} is named by two blobs")
        if array_name not in arrays:
            raise FormatError(f"{name}: array {array_name!r} (blob {k} of entry {entry!r}) is missing")
        if code not in spec.DTYPE_NUMPY2:
            raise FormatError(f"{w}: dtype code {code} is unknown (known: {spec.DTYPE_NAMES2})")
        arr, want = arrays[array_name], np.dtype(spec.DTYPE_NUMPY2[code])
        if arr.dtype != want:
            raise FormatError(f"{name}: array {array_name!r} is {arr.dtype}, blob {k} of entry {entry!r} says "
                              f"{spec.DTYPE_NAMES2[code]} ({want.name})")
        if not 1 <= arr.ndim <= 4:
            raise FormatError(f"{name}: array {array_name!r} has {arr.ndim} axes, a blob 1 to 4")
        blobs.append((np.ascontiguousarray(arr), code, scale))
        names.append(array_name)
    unused = sorted(set(arrays) - set(names))
    if unused:
        raise FormatError(f"{name}: array(s) {unused[:5]} are not blobs of the graph entry {entry!r} describes")
    return blobs, names
