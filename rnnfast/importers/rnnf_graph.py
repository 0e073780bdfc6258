"""Read a .rnnf 2 file (docs/format.md, "Version 2") into the C executor's graph description, and give rnnfast.load
a Model that runs it through the C executor, streams along the file's state loops and describes itself.

The checks are the C reader's (src_c/rnnf_graph_file.c), in the same order with the same record and field names,
so both readers give one verdict on any file: every count, range, id, enum, dtype, rank and dimension program is
checked before use; then the executor (rnnf_graph_create) checks what the ops need, and its refusal is a
FormatError naming the file too."""
from __future__ import annotations

import math

import numpy as np

from .. import rnnf_spec as spec
from .. import engine
from ..engine import layer_desc
from ..errors import FormatError
from ..graph.compile import DTYPE_CODES, OP
from .rnnf import READS, _Reader

N_OPS, OP_RECURRENT, OP_HOST = len(OP), OP["RECURRENT"], OP["HOST"]
NUMPY = {code: dtype.type for dtype, code in DTYPE_CODES.items()}
TYPE_NAMES = {code: "tensor(float)" if dtype == np.float32 else f"tensor({dtype.name})" for dtype, code in
              DTYPE_CODES.items()}


class _GraphReader(_Reader):
    DTYPE_NAMES, DTYPE_NUMPY = spec.DTYPE_NAMES2, spec.DTYPE_NUMPY2

    def header(self):
        data = self.data
        if len(data) < spec.HEADER2.size:
            self.fail("header", f"the file is {len(data)} bytes, shorter than the {spec.HEADER2.size}-byte header")
        magic, major, minor, header_size, flags, file_size, table_offset, *rest = spec.HEADER2.unpack_from(data, 0)
        counts, (src_off, src_len, prod_off, prod_len), reserved = rest[:14], rest[14:18], rest[18:]
        if magic != spec.MAGIC:
            self.fail("header", f"magic {bytes(magic)!r} is not {spec.MAGIC!r}: not a .rnnf file")
        if major != spec.GRAPH_MAJOR or minor > spec.GRAPH_MINOR:
            self.fail("header", f"format version {major}.{minor} is not readable by this reader ({READS})")
        if header_size != spec.HEADER2.size:
            self.fail("header", f"header_size {header_size}, expected {spec.HEADER2.size}")
        if flags:
            self.fail("header", f"flags 0x{flags:x} has unknown bits")
        if file_size != len(data):
            self.fail("header", f"file_size says {file_size} bytes, the file has {len(data)} (truncated or padded)")
        if any(reserved):
            self.fail("header", "reserved field is not zero")
        if table_offset < spec.HEADER2.size or table_offset % 8 or table_offset > file_size:
            self.fail("header", f"table_offset {table_offset} must be a multiple of 8 in "
                                f"[{spec.HEADER2.size}, {file_size}]")
        self.count = dict(zip((name for name, _ in spec.TABLES2), counts))
        if not 1 <= self.count["n_graphs"] <= spec.MAX_GRAPHS:
            self.fail("header", f"n_graphs is {self.count['n_graphs']}, expected 1 to {spec.MAX_GRAPHS}")
        self.at, at = {}, table_offset
        for name, size in spec.TABLES2:
            at = (at + 7) // 8 * 8
            self.at[name] = at
            at += size * self.count[name]
        if at > file_size:
            self.fail("header", f"tables end at {at}, past the end of the {file_size}-byte file")
        self.major, self.minor = major, minor
        self.n_blobs, self.blobs_at = self.count["n_blobs"], self.at["n_blobs"]
        self.layers_at, self.n_layers = self.at["n_layers"], self.count["n_layers"]
        self.strings_at, self.strings_size = self.at["strings_size"], self.count["strings_size"]
        self.table_end = at
        self.source = self.string("header", src_off, src_len)
        self.producer = self.string("header", prod_off, prod_len)

    def record(self, table: str, st, index: int):
        return st.unpack_from(self.data, self.at[table] + st.size * index)

    def pool(self, table: str, fmt: str, first: int, n: int) -> np.ndarray:
        size = np.dtype(fmt).itemsize
        return np.frombuffer(self.data, fmt, n, self.at[table] + size * first)

    # ---- the graphs ----

    def graphs(self) -> dict:
        self.cur = {k: 0 for k in ("tensor", "node", "sym", "dim", "check", "graph", "id", "int", "float", "layer")}
        self.cur["graph"] = 1
        descs = [self.graph(g) for g in range(self.count["n_graphs"])]
        for key, table in (("graph", "n_graphs"), ("tensor", "n_tensors"), ("node", "n_nodes"), ("sym", "n_syms"),
                           ("dim", "n_dims"), ("check", "n_checks"), ("id", "n_ids"), ("int", "n_ints"),
                           ("float", "n_floats"), ("layer", "n_layers")):
            if self.cur[key] != self.count[table]:
                self.fail("graphs", f"use {self.cur[key]} of the {self.count[table]} {key} records")
        unused = [i for i, u in enumerate(self.blob_used) if u is None]
        if unused:
            self.fail(f"blob {unused[0]}", f"not used by any record ({len(unused)} unused blob(s))")
        for g, desc in enumerate(descs):
            first, n = desc.pop("_subs")
            desc["subgraphs"] = descs[first:first + n]
        return descs[0]

    def span(self, where, field, first, n, key, table):
        """A (first, count) pair: it must start where the previous record's ended and fit in its table."""
        if first != self.cur[key] or first + n > self.count[table]:
            self.fail(where, f"{field} {first} (+{n}): expected {self.cur[key]}, within the file's "
                             f"{self.count[table]}")
        self.cur[key] += n

    def graph(self, g: int) -> dict:
        where = f"graph {g}"
        (t0, nt, n0, nn, i0, ni, o0, no, s0, ns, d0, nd, c0, nc, g0, ng) = self.record("n_graphs", spec.GRAPH, g)
        self.span(where, "first_tensor", t0, nt, "tensor", "n_tensors")
        self.span(where, "first_node", n0, nn, "node", "n_nodes")
        self.span(where, "first_input", i0, ni, "id", "n_ids")
        self.span(where, "first_output", o0, no, "id", "n_ids")
        self.span(where, "first_sym", s0, ns, "sym", "n_syms")
        self.span(where, "first_dim", d0, nd, "dim", "n_dims")
        self.span(where, "first_check", c0, nc, "check", "n_checks")
        if g0 != self.cur["graph"] or g0 + ng > self.count["n_graphs"] or (ng and g0 <= g):
            self.fail(where, f"first_subgraph {g0} (+{ng}): expected {self.cur['graph']}, within the file's "
                             f"{self.count['n_graphs']}")
        self.cur["graph"] += ng
        if no < 1:
            self.fail(where, "n_outputs is 0")
        inputs = self.ids(where, "input", i0, ni, nt, absent=False)
        outputs = self.ids(where, "output", o0, no, nt, absent=False)
        prog, starts = [], [0]
        for k in range(d0, d0 + nd):
            prog += self.dim(k, g, ns)
            starts.append(len(prog) // 2)
        self.stored = {}  # this graph's quantized constants: local tensor id -> (values, scales or None)
        tensors = [self.tensor(t0 + k, k, g, nt, d0, nd, inputs) for k in range(nt)]
        defaults = [self.input_default(t0, g, t, tensors) for t in inputs]
        stored = self.stored
        syms, names = [], []
        for k in range(s0, s0 + ns):
            inp, axis, off, length = self.record("n_syms", spec.SYM, k)
            w = f"symbol {k} (graph {g})"
            if inp >= ni:
                self.fail(w, f"input {inp}, the graph has {ni} inputs")
            if axis >= tensors[inputs[inp]][1]:
                self.fail(w, f"axis {axis} of input {inp}, which has rank {tensors[inputs[inp]][1]}")
            syms.append((inp, axis))
            names.append(self.string(w, off, length))
        nodes = [self.node(n0 + k, g, nt) for k in range(nn)]
        checks = []
        for k in range(c0, c0 + nc):
            a, b, node, kind, off, length = self.record("n_checks", spec.CHECK, k)
            w = f"check {k} (graph {g})"
            if a >= nd or b >= nd or node >= nn or kind > 1:
                self.fail(w, f"dims {a} and {b}, node {node} and kind {kind}: the graph has {nd} dims and {nn} "
                             f"nodes; kinds are 0 and 1")
            checks.append((a, b, node, kind, self.string(w, off, length) or None))
        desc = {"tensors": tensors, "nodes": nodes, "inputs": inputs, "outputs": outputs, "syms": syms,
                "sym_names": names, "dim_start": starts, "prog": prog, "checks": checks, "_subs": (g0, ng),
                "hosts": [], "input_defaults": defaults}
        if stored:
            desc["quantized"] = stored
        return desc

    def ids(self, where, field, first, n, n_tensors, absent=True) -> list:
        out = []
        for k, t in enumerate(self.pool("n_ids", "<u4", first, n).tolist()):
            if t == spec.NONE and absent:
                out.append(-1)
            elif t >= n_tensors:
                self.fail(where, f"{field} {k} is tensor {t}, the graph has {n_tensors}")
            else:
                out.append(t)
        return out

    def dim(self, k: int, g: int, n_syms: int) -> list:
        where = f"dim {k} (graph {g})"
        first, n = self.record("n_dims", spec.DIM, k)
        if first != self.cur["int"] or n < 1 or first + 2 * n > self.count["n_ints"]:
            self.fail(where, f"program at int {first} (+{n} instructions): expected {self.cur['int']}, 1 or more "
                             f"instructions within the file's {self.count['n_ints']} ints")
        self.cur["int"] += 2 * n
        prog = self.pool("n_ints", "<i8", first, 2 * n).tolist()
        depth = 0
        for i in range(n):
            op, arg = prog[2 * i], prog[2 * i + 1]
            if op == 0 or (op == 1 and 0 <= arg < n_syms):
                depth += 1
            elif 2 <= op < spec.DIM_OPCODES and depth >= 2:
                depth -= 1
            else:
                self.fail(where, f"instruction {i} ({op}, {arg}) is unknown, reads a symbol the graph lacks "
                                 f"({n_syms}) or has too few operands")
            if depth > spec.DIM_STACK:
                self.fail(where, f"the program needs more than {spec.DIM_STACK} stack entries")
        if depth != 1:
            self.fail(where, f"the program leaves {depth} values, not 1")
        return prog

    def tensor(self, k: int, local: int, g: int, n_tensors: int, d0: int, n_dims: int, inputs: list):
        where = f"tensor {k} (graph {g})"
        dtype, rank, dims_at, alias_of, blob, default, off, length = self.record("n_tensors", spec.TENSOR, k)
        name = self.string(where, off, length)
        if dtype not in spec.TENSOR_DTYPE_NAMES:
            self.fail(where, f"dtype {dtype} is unknown (0 float32, 1 int64, 2 int32, 3 bool, 4 int8)")
        if rank > spec.MAX_RANK or dims_at + rank > n_dims:
            self.fail(where, f"rank {rank} and dims_at {dims_at}: rank at most {spec.MAX_RANK}, dims within the "
                             f"graph's {n_dims}")
        if default:
            if self.minor < spec.DEFAULT_MINOR:
                self.fail(where, f"default {default} needs format {spec.GRAPH_MAJOR}.{spec.DEFAULT_MINOR}")
            if g != 0 or local not in inputs:
                self.fail(where, f"default {default}: only an input of graph 0 has one")
            c = default - spec.DEFAULT_CONSTANT
            if default >= spec.DEFAULT_CONSTANT and (c >= n_tensors or c == local):
                self.fail(where, f"default {default}: tensor {c} is not another of the graph's {n_tensors} tensors")
        if alias_of != spec.NONE and (alias_of >= n_tensors or alias_of == local):
            self.fail(where, f"alias_of {alias_of}: another of the graph's {n_tensors} tensors, or NONE")
        if blob != spec.NONE and alias_of != spec.NONE:
            self.fail(where, "both a view (alias_of) and a constant (data blob)")
        data = None
        if blob != spec.NONE:
            dims = []
            for a in range(rank):
                first, n = self.record("n_dims", spec.DIM, d0 + dims_at + a)
                op, value = self.pool("n_ints", "<i8", first, 2).tolist()
                if n != 1 or op != 0 or value < 0:
                    self.fail(where, f"a constant's dim {a} must be one CONST instruction of a size >= 0")
                dims.append(value)
            numel = 1
            for v in dims:
                numel = min(numel * v, len(self.data) + 1)
            data = self.constant(where, blob, dtype, numel, local).reshape(dims)
        return (dtype, rank, dims_at, data, -1 if alias_of == spec.NONE else alias_of, name)

    def input_default(self, t0: int, g: int, t: int, tensors: list) -> int:
        """rnnf_graph_desc's input_default of the input that is tensor t: -1 none, -2 zeros, else the constant tensor
        holding it, which must be of the input's dtype and rank."""
        default = self.record("n_tensors", spec.TENSOR, t0 + t)[5]
        if default < spec.DEFAULT_CONSTANT:
            return -2 if default == spec.DEFAULT_ZEROS else -1
        c = default - spec.DEFAULT_CONSTANT
        if tensors[c][3] is None or tensors[c][:2] != tensors[t][:2]:
            self.fail(f"tensor {t0 + t} (graph {g})", f"default {default}: tensor {c} is not a constant of the "
                                                       f"input's dtype and rank")
        return c

    def constant(self, where, index, dtype, numel, local) -> np.ndarray:
        field = "data"
        if index >= self.n_blobs:
            self.fail(where, f"{field} names blob {index}, the file has {self.n_blobs}")
        if self.blob_used[index] is not None:
            self.fail(where, f"{field} reuses blob {index}, already used by {self.blob_used[index]}")
        self.blob_used[index] = f"{where} {field}"
        offset, got, blob_dtype, _ = self.blob_info[index]
        want = spec.TENSOR_BLOB_DTYPE[dtype]
        if dtype == 0 and blob_dtype in (spec.DTYPE_F16, spec.DTYPE_I8):
            return self.stored_constant(where, index, numel, local)
        if blob_dtype != want or len(got) != 1 or got[0] != numel:
            self.fail(where, f"{field} (blob {index}) is {self.DTYPE_NAMES[blob_dtype]} {list(got)}, expected "
                             f"{self.DTYPE_NAMES[want]} [{numel}]")
        values = np.frombuffer(self.data, spec.DTYPE_NUMPY2[want], numel, offset)
        if dtype == 3:
            if np.any(values > 1):
                self.fail(where, f"{field} (blob {index}): a bool constant holds a value other than 0 and 1")
            return values.astype(np.bool_)
        return values.astype(NUMPY[dtype])

    def stored_constant(self, where, index, numel, local) -> np.ndarray:
        """A float32 constant stored by the quantization rule (float16 [numel], or int8 [outer, channels, inner]
        with float32 [channels] scales), as the float32 values it stands for; the stored form is kept."""
        from ..quantize import dequantize_channels

        offset, got, blob_dtype, scale_blob = self.blob_info[index]
        name = self.DTYPE_NAMES[blob_dtype]
        if self.minor < spec.QUANTIZED_CONSTANTS_MINOR:
            self.fail(where, f"data (blob {index}) is {name}: a quantized constant needs format {spec.GRAPH_MAJOR}."
                             f"{spec.QUANTIZED_CONSTANTS_MINOR}, the file says {self.major}.{self.minor}")
        if (blob_dtype == spec.DTYPE_F16 and len(got) != 1) or (blob_dtype == spec.DTYPE_I8 and len(got) != 3) \
                or math.prod(got) != numel:
            self.fail(where, f"data (blob {index}) is {name} {list(got)}, expected " + (
                f"float16 [{numel}]" if blob_dtype == spec.DTYPE_F16 else
                f"int8 [outer, channels, inner] of {numel} elements"))
        values = np.frombuffer(self.data, spec.DTYPE_NUMPY2[blob_dtype], numel, offset).reshape(got)
        scale = None
        if blob_dtype == spec.DTYPE_I8:
            scale = self.scales(where, "data", scale_blob, (got[1],))  # one per channel
            values = values.astype(np.int8)
        else:
            values = values.astype(np.float16)
        self.stored[local] = (values, scale)
        return dequantize_channels(values, scale, (numel,))

    def node(self, k: int, g: int, n_tensors: int):
        where = f"node {k} (graph {g})"
        (op, reserved, off, length, i0, ni, o0, no, a0, na, f0, nf, l0, nl, reserved2) = self.record(
            "n_nodes", spec.NODE, k)
        name = self.string(where, off, length)
        if op >= N_OPS or op == OP_HOST:
            self.fail(where, f"op {op} is unknown or runs outside C (0..{N_OPS - 1} but {OP_HOST})")
        if reserved or reserved2:
            self.fail(where, "reserved field is not zero")
        if ni > spec.MAX_NODE_IO or not 1 <= no <= spec.MAX_NODE_IO:
            self.fail(where, f"{ni} inputs and {no} outputs (0..{spec.MAX_NODE_IO} and 1..{spec.MAX_NODE_IO})")
        self.span(where, "first_in", i0, ni, "id", "n_ids")
        self.span(where, "first_out", o0, no, "id", "n_ids")
        self.span(where, "first_iattr", a0, na, "int", "n_ints")
        self.span(where, "first_fattr", f0, nf, "float", "n_floats")
        if (op == OP_RECURRENT) != (nl > 0) or (nl == 0 and l0 != 0):
            self.fail(where, f"{nl} layers: a recurrent node has 1 or more, any other none (first_layer 0)")
        if nl:
            self.span(where, "first_layer", l0, nl, "layer", "n_layers")
        ins = self.ids(where, "input", i0, ni, n_tensors)
        outs = self.ids(where, "output", o0, no, n_tensors)
        iattr = self.pool("n_ints", "<i8", a0, na).tolist()
        fattr = self.pool("n_floats", "<f4", f0, nf).tolist()
        layers = None
        if nl:
            objs = [self.layer(l0 + j, f"node {k}") for j in range(nl)]
            for j in range(1, nl):
                prev, nxt = objs[j - 1], objs[j]
                if nxt.input_size != prev.n_dirs * prev.output_size:
                    self.fail(f"layer {l0 + j} (node {k})", f"input_size {nxt.input_size}, the layer before "
                                                            f"gives {prev.n_dirs * prev.output_size}")
            layers = [layer_desc(layer) for layer in objs]
        return (op, name, ins, outs, iattr, fattr, layers)

    # ---- what a user of the file needs ----

    def interface(self, desc):
        n_in, n_out = len(desc["inputs"]), len(desc["outputs"])
        if self.count["n_io"] != n_in + n_out:
            self.fail("io", f"{self.count['n_io']} records, graph 0 has {n_in} inputs and {n_out} outputs")
        names, shapes = [], []
        for k in range(n_in + n_out):
            off, length, s_off, s_len = self.record("n_io", spec.IO, k)
            name = self.string(f"io {k}", off, length)
            if name in (names[:k] if k < n_in else names[n_in:k]):
                self.fail(f"io {k}", f"name {name!r} repeats")
            # an output may pass an input through under its name, but then it is that input's tensor
            if k >= n_in and name in names[:n_in] and desc["outputs"][k - n_in] != desc["inputs"][names.index(name)]:
                self.fail(f"io {k}", f"output name {name!r} is an input's, but names another tensor")
            names.append(name)
            shapes.append(self.string(f"io {k}", s_off, s_len))
        loops, seen_in, seen_out = [], set(), set()
        for k in range(self.count["n_loops"]):
            i, o = self.record("n_loops", spec.LOOP, k)
            where = f"loop {k}"
            if i >= n_in or o >= n_out or i in seen_in or o in seen_out:
                self.fail(where, f"input {i} -> output {o}: each of the {n_in} inputs and {n_out} outputs at most "
                                 f"once")
            ti, to = desc["tensors"][desc["inputs"][i]], desc["tensors"][desc["outputs"][o]]
            if ti[0] != to[0] or ti[1] != to[1]:
                self.fail(where, f"input {i} ({spec.TENSOR_DTYPE_NAMES[ti[0]]}, rank {ti[1]}) and output {o} "
                                 f"({spec.TENSOR_DTYPE_NAMES[to[0]]}, rank {to[1]}) differ")
            seen_in.add(i)
            seen_out.add(o)
            loops.append((i, o))
        return names[:n_in], names[n_in:], shapes, loops

    def read(self):
        self.header()
        self.blobs()
        desc = self.graphs()
        return desc, self.interface(desc)


def read_rnnf_graph(data, name: str = "<bytes>"):
    """(description, (input names, output names, shape strings, loops), source, producer) of .rnnf 2 content."""
    r = _GraphReader(data, name)
    desc, interface = r.read()
    return desc, interface, r.source, r.producer


# A dimension program is expanded into a polynomial only while that stays small: a crafted program of products of
# sums grows exponentially in terms and in integer size. Past these bounds the dim is an opaque name; the C
# executor still evaluates the program itself.
_MAX_DIM_PROGRAM, _MAX_DIM_TERMS, _MAX_DIM_VALUE = 64, 64, 1 << 62


class _Opaque(Exception):
    pass


def _too_big(d) -> bool:
    from ..graph.dims import Dim

    if not isinstance(d, Dim):
        return abs(d) > _MAX_DIM_VALUE
    return len(d.terms) > _MAX_DIM_TERMS or any(abs(c) > _MAX_DIM_VALUE for c in d.terms.values())


def _dims(desc, t) -> tuple:
    """Tensor t's shape in named symbolic dims, rebuilt from its dimension programs."""
    from ..graph.dims import Dim, NotSymbolic, dim_max, dim_min

    names = desc["sym_names"]
    dtype, rank, dims_at = desc["tensors"][t][:3]
    out = []
    for k in range(dims_at, dims_at + rank):
        a, b = desc["dim_start"][k], desc["dim_start"][k + 1]
        stack = []
        try:
            if b - a > _MAX_DIM_PROGRAM:
                raise _Opaque
            for i in range(a, b):
                op, arg = desc["prog"][2 * i], desc["prog"][2 * i + 1]
                if op == 0:
                    stack.append(arg)
                elif op == 1:
                    stack.append(Dim.symbol(names[arg] or f"s{arg}"))
                else:
                    y, x = stack.pop(), stack.pop()
                    stack.append({2: lambda: x + y, 3: lambda: x - y, 4: lambda: x * y, 5: lambda: x // y,
                                  6: lambda: -((-x) // y), 7: lambda: dim_max(x, y), 8: lambda: dim_min(x, y),
                                  9: lambda: x % y}[op]())
                    if _too_big(stack[-1]):
                        raise _Opaque
            d = stack[0]
        except (ArithmeticError, TypeError, NotSymbolic, _Opaque):  # e.g. a division by zero: refused at run
            d = Dim.symbol(f"dim{k}")
        out.append(Dim.make(d) if isinstance(d, Dim) else int(d))
    return tuple(out)


class RnnfGraph:
    """A .rnnf 2 graph as a Model graph: runs in the C executor, streams along the file's state loops."""

    def __init__(self, data, name: str, n_threads=None, where: str | None = None, kind: str = ".rnnf 2"):
        from ..graph.ir import Graph, Value
        from ..graph.runtime import CompiledGraph
        from ..model import TensorInfo

        where = where or name  # what messages about the file's content name (an entry, in an array container)
        desc, (in_names, out_names, shapes, loops), self.source, self.producer = read_rnnf_graph(data, where)
        self.name, self.kind = name, kind
        values = {}
        for n, t in list(zip(in_names, desc["inputs"])) + list(zip(out_names, desc["outputs"])):
            values[n] = Value(n, np.dtype(NUMPY[desc["tensors"][t][0]]), _dims(desc, t))
        graph = Graph(name, in_names, out_names, values, [],
                      state_loops=[(out_names[o], in_names[i]) for i, o in loops])
        try:
            self.compiled = CompiledGraph.from_desc(desc, graph, n_threads, f"{where}: graph",
                                                    {in_names[i]: out_names[o] for i, o in loops})
        except ValueError as e:  # the executor's refusal (GraphError) of what the file describes
            raise FormatError(str(e)) from None
        self.unfit_reason = None

        def info(n, t, optional=False):
            shape = [d if isinstance(d, int) else str(d) for d in values[n].shape]
            return TensorInfo(n, shape, TYPE_NAMES[desc["tensors"][t][0]], optional)

        self.inputs = [info(n, t, d != -1) for n, t, d in zip(in_names, desc["inputs"], desc["input_defaults"])]
        self.outputs = [info(n, t) for n, t in zip(out_names, desc["outputs"])]
        self.shape_strings = shapes

    def run(self, feeds: dict, output_names=None) -> list:
        missing = [i.name for i in self.inputs if feeds.get(i.name) is None and not i.optional]
        if missing:
            raise ValueError(f"{self.name}: missing input(s) {missing} (inputs: {[i.name for i in self.inputs]}; "
                             f"optional: {[i.name for i in self.inputs if i.optional]})")
        # rnnfast verify / inspect watch every recurrent layer's engine run, which the one C call would not make
        compiled = self.compiled.watched() if engine.run_is_traced() else self.compiled
        outs = compiled.run([feeds.get(i.name) for i in self.inputs])  # None: the input's default
        if output_names is None:
            return outs
        by_name = dict(zip(self.compiled.output_names, outs))
        return [by_name[n] for n in output_names]

    def stream(self, batch=1, n_threads=None, states=None):
        from ..graph.stream import make_stream

        return make_stream(self.name, batch, n_threads, compiled=self.compiled, states=states)

    quantizes_weight_constants = True  # Model.quantize's scope "all"

    def quantized(self, weight_dtype, scope="recurrent") -> "RnnfGraph":
        """The same graph with its weights of `scope` stored in weight_dtype (rnnfast/quantize.py's rule)."""
        import copy

        new = copy.copy(self)
        new.compiled = self.compiled.quantized(weight_dtype, scope)
        return new

    def describe(self) -> str:
        loops = ", ".join(f"{i} -> {o}" for i, o in (self.compiled.state_pairs or {}).items()) or "none"
        return (f"{self.kind} graph {self.name} (from {self.source or 'an unnamed source'}, written by "
                f"{self.producer}): {self.compiled.describe()}; state loops: {loops}")


def load_rnnf_graph_model(data, name: str = "<bytes>", n_threads=None):
    from ..model import Model

    return Model(RnnfGraph(data, name, n_threads), source=name)
