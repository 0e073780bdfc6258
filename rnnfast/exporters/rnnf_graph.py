"""Write a whole graph as a .rnnf 2 file (docs/format.md, "Version 2"): the C executor's description
(rnnf_graph_desc, made by rnnfast/graph/compile.py) with the graph's input and output names and shapes, its state
loops and where it came from, so the C library runs and streams it with no Python.

Graphs are written breadth first (graph 0 the model, then If branches), and every pool (tensor ids, int64s,
float32s, layer records) in the one order the readers check, so no record can point anywhere but its own slot."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import __version__
from .. import rnnf_spec as spec
from ..errors import FormatError
from ..graph.runtime import compiled_graph_of
from ._output import write_bytes
from .rnnf import _layer, _Writer


class _GraphWriter(_Writer):
    def __init__(self):
        super().__init__()
        self.codes: list[int] = []  # per blob: its dtype code

    def blob(self, arr, scale_blob=spec.NONE) -> int:
        if arr is None:
            return spec.NONE
        arr = np.asarray(arr)
        code = {"<f4": spec.DTYPE_F32, "<f2": spec.DTYPE_F16, "|i1": spec.DTYPE_I8}.get(arr.dtype.str)
        if code is None:
            arr = arr.astype("<f4")
            code = spec.DTYPE_F32
        index = super().blob(arr, scale_blob)
        self.codes.append(code)
        return index

    def constant(self, data, dtype: int, where: str) -> int:
        """A graph constant's elements as a 1-D blob of its tensor's dtype."""
        arr = np.ascontiguousarray(data).reshape(-1).astype(spec.DTYPE_NUMPY2[spec.TENSOR_BLOB_DTYPE[dtype]])
        if arr.size == 0:
            raise FormatError(f"{where}: a constant with no elements cannot be stored in .rnnf")
        self.blobs.append(arr)
        self.scales.append(spec.NONE)
        self.codes.append(spec.TENSOR_BLOB_DTYPE[dtype])
        return len(self.blobs) - 1

    def stored_constant(self, values, scale) -> int:
        """A float32 constant stored by the quantization rule: float16 [numel], or int8 [outer, channels, inner]
        followed by its float32 [channels] scales (rnnfast/quantize.py quantize_channels)."""
        index = self.blob(values)
        if scale is not None:
            self.scales[index] = self.blob(np.asarray(scale, np.float32))
        return index


def _flatten(desc) -> list:
    """Graph 0 and every If branch, breadth first: the branches of one graph are consecutive records."""
    order, k = [desc], 0
    while k < len(order):
        order += order[k]["subgraphs"]
        k += 1
    return order


def _refuse_hosts(desc, where):
    from ..graph.compile import OP

    for g in _flatten(desc):
        for op, name, *_ in g["nodes"]:
            if op == OP["HOST"]:
                raise FormatError(f"{where}: {name}: this operator has no C kernel (it runs through Python), so the "
                                  f"graph cannot be written as .rnnf 2, which the C library runs alone")


class GraphParts(NamedTuple):
    """A graph as .rnnf 2 describes it, before it is put in a container: every table of spec.TABLES2 but the blobs
    as its packed records (keyed by spec.TABLE_KEYS), the blobs as (array, blob dtype code, scale blob), the
    header's source and producer as (offset, length) in the strings, and the minor version its content needs."""
    tables: dict
    blobs: list
    source: tuple
    producer: tuple
    minor: int = 0


def graph_to_bytes(compiled, source: str = "", weight_dtype: str | None = None, scope: str = "recurrent") -> bytes:
    """The .rnnf 2 content of a CompiledGraph (rnnfast/graph/runtime.py); weight_dtype "int8" / "float16" stores
    the weights of `scope` that way (rnnfast/quantize.py's rule); constants quantized already stay so."""
    return assemble(graph_parts(compiled, source, weight_dtype, scope))


def graph_parts(compiled, source: str = "", weight_dtype: str | None = None, scope: str = "recurrent") -> GraphParts:
    """The one walk of a CompiledGraph that every container of a graph (.rnnf 2, .npz, .safetensors) stores."""
    from ..graph.quantized import quantize_desc

    desc, graph = compiled.desc, compiled.graph
    if weight_dtype:
        desc = quantize_desc(desc, weight_dtype, scope, source or graph.name)
    where = source or graph.name
    _refuse_hosts(desc, where)
    w = _GraphWriter()
    graphs = _flatten(desc)
    recs = {k: [] for k in ("graph", "tensor", "node", "layer", "sym", "dim", "check", "io", "loop")}
    ints, ids, floats = [], [], []
    counts = {"tensor": 0, "node": 0, "sym": 0, "dim": 0, "check": 0}
    next_sub, minor = 1, 0
    for gi, g in enumerate(graphs):
        n_dims = len(g["dim_start"]) - 1
        first = dict(counts)
        ids_inputs = len(ids)
        ids += g["inputs"]
        ids_outputs = len(ids)
        ids += g["outputs"]
        recs["graph"].append(spec.GRAPH.pack(
            first["tensor"], len(g["tensors"]), first["node"], len(g["nodes"]), ids_inputs, len(g["inputs"]),
            ids_outputs, len(g["outputs"]), first["sym"], len(g["syms"]), first["dim"], n_dims,
            first["check"], len(g["checks"]), next_sub, len(g["subgraphs"])))
        next_sub += len(g["subgraphs"])
        prog = g["prog"]
        for k in range(n_dims):
            a, b = g["dim_start"][k], g["dim_start"][k + 1]
            recs["dim"].append(spec.DIM.pack(len(ints), b - a))
            ints += prog[2 * a:2 * b]
        names = g.get("sym_names") or [""] * len(g["syms"])
        for (inp, axis), name in zip(g["syms"], names):
            recs["sym"].append(spec.SYM.pack(inp, axis, *w.name(name)))
        stored = g.get("quantized") or {}
        defaults = dict(zip(g["inputs"], g.get("input_defaults") or ())) if gi == 0 else {}
        for t, (dtype, rank, dims_at, data, alias_of, name) in enumerate(g["tensors"]):
            if t in stored:
                blob = w.stored_constant(*stored[t])
            else:
                blob = spec.NONE if data is None else w.constant(data, dtype, f"{where}: tensor {name!r}")
            default = _default_field(defaults.get(t, -1))
            minor = max(minor, spec.DEFAULT_MINOR if default else 0)
            recs["tensor"].append(spec.TENSOR.pack(dtype, rank, dims_at, spec.NONE if alias_of < 0 else alias_of,
                                                   blob, default, *w.name(name)))
        for n, (op, name, ins, outs, ia, fa, layers) in enumerate(g["nodes"]):
            at_in = len(ids)
            ids += [spec.NONE if t < 0 else t for t in ins]
            at_out = len(ids)
            ids += [spec.NONE if t < 0 else t for t in outs]
            at_ia, at_fa, at_layer = len(ints), len(floats), len(recs["layer"])
            ints += ia
            floats += fa
            for lay in layers or ():
                recs["layer"].append(_layer(w, lay["layer"]))
            recs["node"].append(spec.NODE.pack(op, 0, *w.name(name), at_in, len(ins), at_out, len(outs), at_ia,
                                               len(ia), at_fa, len(fa), at_layer if layers else 0,
                                               len(layers or ()), 0))
        for a, b, node, *rest in g["checks"]:
            kind = rest[0] if rest else 0
            label = rest[1] if len(rest) > 1 and rest[1] else ""
            recs["check"].append(spec.CHECK.pack(a, b, node, kind, *w.name(label)))
        for key, n in (("tensor", len(g["tensors"])), ("node", len(g["nodes"])), ("sym", len(g["syms"])),
                       ("dim", n_dims), ("check", len(g["checks"]))):
            counts[key] += n
    from ..graph.dims import shape_str

    for name in list(graph.inputs) + list(graph.outputs):
        recs["io"].append(spec.IO.pack(*w.name(name), *w.name(shape_str(graph.values[name].shape))))
    for inp, out in state_loops(compiled):
        recs["loop"].append(spec.LOOP.pack(graph.inputs.index(inp), graph.outputs.index(out)))
    source_name = w.name(source)
    producer = w.name(f"rnnfast {__version__}")
    tables = {key if key == "io" else f"{key}s": b"".join(recs[key]) for key in recs}
    tables.update(ints=np.asarray(ints, "<i8").tobytes(), ids=np.asarray(ids, "<u4").tobytes(),
                  floats=np.asarray(floats, "<f4").tobytes(), strings=bytes(w.strings))
    if any(g.get("quantized") for g in graphs):
        minor = max(minor, spec.QUANTIZED_CONSTANTS_MINOR)
    return GraphParts(tables, list(zip(w.blobs, w.codes, w.scales)), source_name, producer, minor)


def _default_field(default: int) -> int:
    """A tensor record's `default` (docs/format.md) from rnnf_graph_desc's input_default: -1 none, -2 zeros, else
    the constant tensor holding it."""
    return {-1: spec.DEFAULT_NONE, -2: spec.DEFAULT_ZEROS}.get(default, spec.DEFAULT_CONSTANT + default)


def state_loops(compiled) -> list:
    """(input, output) pairs: the graph's own state loops, else the ones streams find by name and shape."""
    from ..graph.stream import find_state_pairs

    graph = compiled.graph
    if getattr(compiled, "state_pairs", None) is not None:
        return list(compiled.state_pairs.items())
    if graph.state_loops:
        return [(inp, out) for out, inp in graph.state_loops]
    return list(find_state_pairs(graph).items())


def assemble(parts: GraphParts) -> bytes:
    """The .rnnf 2 container: header, the tables in spec.TABLES2's order (8-byte aligned), then the blobs at
    64-byte aligned offsets so the file can be mapped and used in place."""
    sizes = dict(zip(spec.TABLE_KEYS, (size for _, size in spec.TABLES2)))
    counts = [len(parts.blobs) if key == "blobs" else len(parts.tables[key]) // sizes[key] for key in spec.TABLE_KEYS]
    at = spec.HEADER2.size
    starts = []
    for (_, size), n in zip(spec.TABLES2, counts):
        at = (at + 7) // 8 * 8
        starts.append(at)
        at += size * n
    file_size, blob_recs = at, []
    for arr, code, scale_blob in parts.blobs:
        offset = spec.align(file_size)
        dims = list(arr.shape) + [0] * (4 - arr.ndim)
        blob_recs.append(spec.BLOB.pack(offset, arr.nbytes, code, arr.ndim, *dims, scale_blob, 0))
        file_size = offset + arr.nbytes
    tables = {**parts.tables, "blobs": b"".join(blob_recs)}
    header = spec.HEADER2.pack(spec.MAGIC, spec.GRAPH_MAJOR, parts.minor, spec.HEADER2.size, 0, file_size,
                               spec.HEADER2.size, *counts, *parts.source, *parts.producer, *([0] * 6))
    out = bytearray(header)
    for start, key in zip(starts, spec.TABLE_KEYS):
        out += bytes(start - len(out))
        out += tables[key]
    for arr, _, _ in parts.blobs:
        out += bytes(spec.align(len(out)) - len(out))
        out += np.ascontiguousarray(arr).tobytes()
    assert len(out) == file_size
    return bytes(out)


def save_rnnf_graph(model, path, weight_dtype: str | None = None, lengths: bool = False,
                    scope: str = "recurrent") -> None:
    """Write a Model (or a CompiledGraph) whose graph runs fully in C to `path` (str, PathLike or binary file);
    `lengths`: the variant with a sequence_lens input (runtime.compiled_graph_of); weight_dtype and scope:
    rnnfast/quantize.py's rule, as Model.quantize."""
    source = getattr(model, "source", "") or ""
    compiled = compiled_graph_of(model, purpose=".rnnf 2", lengths=lengths)
    write_bytes(graph_to_bytes(compiled, source, weight_dtype, scope), path)
