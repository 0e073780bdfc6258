"""Lowering of an analysed Graph to the C executor's description (include/rnnfast/rnnf.h, rnnf_graph_desc).

One function per IR op family turns a node into C nodes (src_c/graph/graph.h lists each op's attributes).
Reshape-like ops become views of their input's storage, not nodes. Symbols are the graph inputs' axes, and every
shape is written as a dimension program over them. A node or form without a C kernel raises infer.Unfit."""
from __future__ import annotations

import numpy as np

from .dims import Dim, dim_program, shape_str
from .infer import ONNX_DTYPES, Unfit, attr_str, reduce_axes
from .ir import VIEW_OPS, ZEROS, Graph, Node

DTYPE_CODES = {np.dtype(np.float32): 0, np.dtype(np.int64): 1, np.dtype(np.int32): 2, np.dtype(np.bool_): 3,
               np.dtype(np.int8): 4}
OP = {name: i for i, name in enumerate(
    ["COPY", "UNARY", "BINARY", "WHERE", "CAST", "MATMUL", "CONV", "CONV_TRANSPOSE", "MAXPOOL", "AVGPOOL", "SOFTMAX",
     "LAYERNORM", "CHANNEL_AFFINE", "REDUCE", "TRANSPOSE", "CONCAT", "SPLIT", "SLICE", "GATHER", "PAD", "EXPAND",
     "FILL", "RECURRENT", "IF", "HOST"])}
OP_NAMES = {code: name for name, code in OP.items()}
UNARY = {name: i for i, name in enumerate(
    ["NONE", "RELU", "TANH", "SIGMOID", "LEAKYRELU", "HARDSIGMOID", "ELU", "SOFTPLUS", "SOFTSIGN", "GELU",
     "GELU_TANH", "ERF", "EXP", "LOG", "SQRT", "ABS", "NEG", "RECIPROCAL", "CLIP", "AFFINE", "IDENTITY", "SELU"])}
BINARY = {name: i for i, name in enumerate(
    ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual",
     "And", "Or", "Mod"])}
REDUCE = {"ReduceSum": 0, "ReduceMean": 1, "ReduceMax": 2, "ReduceMin": 3, "ReduceProd": 4, "ReduceL2": 5,
          "ReduceL1": 6, "ReduceSumSquare": 7, "GlobalAveragePool": 1, "GlobalMaxPool": 2}
# ONNX unary op -> (kind, alpha (attribute, default), beta (attribute, default))
UNARY_OPS = {"Relu": ("RELU", None, None), "Tanh": ("TANH", None, None), "Sigmoid": ("SIGMOID", None, None),
             "LeakyRelu": ("LEAKYRELU", ("alpha", 0.01), None),
             "HardSigmoid": ("HARDSIGMOID", ("alpha", 0.2), ("beta", 0.5)), "Elu": ("ELU", ("alpha", 1.0), None),
             "Softplus": ("SOFTPLUS", None, None), "Softsign": ("SOFTSIGN", None, None), "Erf": ("ERF", None, None),
             "Exp": ("EXP", None, None), "Log": ("LOG", None, None), "Sqrt": ("SQRT", None, None),
             "Abs": ("ABS", None, None), "Neg": ("NEG", None, None), "Reciprocal": ("RECIPROCAL", None, None),
             "Selu": ("SELU", ("alpha", 1.67326319217681884765625), ("gamma", 1.05070102214813232421875))}
INT64_MAX = 2 ** 63 - 1
MAX_NODE_IO = 64  # RNNF_G_MAX_IO (src_c/graph/plan.h): inputs or outputs of one C node


class Lowering:
    def __init__(self, graph: Graph, checks, opset: int):
        self.g, self.opset = graph, opset
        self.tensors, self.ids, self.shapes = [], {}, []
        self.dim_programs = []
        self.nodes, self.subgraphs = [], []
        self.syms, self.sym_index = [], {}
        self.checks = []
        self.hosts = []  # islands.HostFunction per RNNF_OP_HOST node
        # symbols come from the inputs that are always given first: an absent zeros default takes its sizes from them
        zeros = [n for n in graph.inputs if graph.defaults.get(n) is ZEROS]
        for i, name in sorted(enumerate(graph.inputs), key=lambda p: p[1] in zeros):
            for a, d in enumerate(graph.values[name].shape):
                if isinstance(d, Dim) and len(d.terms) == 1 and list(d.terms.values()) == [1]:
                    (mono,) = d.terms
                    if len(mono) == 1 and isinstance(mono[0], str) and mono[0] not in self.sym_index:
                        self.sym_index[mono[0]] = len(self.syms)
                        self.syms.append((i, a))
        self.input_ids = [self.tensor(n) for n in graph.inputs]
        self.input_defaults = [self.input_default(n) for n in graph.inputs]
        node_first = {}
        for node in graph.nodes:
            node_first[id(node)] = len(self.nodes)
            self.lower(node)
        self.output_ids = []
        for name in graph.outputs:
            t = self.tensor(name)
            if self.tensors[t][4] >= 0 or self.tensors[t][3] is not None or t in self.input_ids \
                    or t in self.output_ids or not self.produced(t):
                copy = self.new_tensor(name + "/out", self.g.values[name].dtype, self.g.values[name].shape)
                self.emit("COPY", [t], [copy], name=f"output {name!r}")
                t = copy
            self.output_ids.append(t)
        for node, a, b, kind in checks:
            if id(node) in node_first:
                # named after the graph's node: a view (Reshape) has no C node of its own to name
                self.checks.append((self.dims_of([a])[0], self.dims_of([b])[0], min(node_first[id(node)],
                                    max(len(self.nodes) - 1, 0)), int(kind == "broadcast"), label(node)))

    # ---- tensors and dims ----
    def dims_of(self, shape) -> list:
        out = []
        for d in shape:
            if isinstance(d, Dim):
                missing = d.symbols() - set(self.sym_index)
                if missing:
                    raise Unfit(f"{self.g.name}: the size {d} depends on {sorted(missing)}, which is no input axis")
            out.append(len(self.dim_programs))
            self.dim_programs.append(dim_program(d, self.sym_index))
        return out

    def new_tensor(self, name, dtype, shape, data=None, alias_of=-1) -> int:
        dtype = np.dtype(dtype)
        if dtype not in DTYPE_CODES:
            raise Unfit(f"{self.g.name}: tensor {name!r} of dtype {dtype} (the C executor has float32, int64, int32, "
                        f"bool, int8)")
        if len(shape) > 8:
            raise Unfit(f"{self.g.name}: tensor {name!r} has rank {len(shape)} (at most 8)")
        at = self.dims_of(shape)
        self.shapes.append(tuple(shape))
        self.tensors.append((DTYPE_CODES[dtype], len(shape), at[0] if at else len(self.dim_programs), data,
                             alias_of, name))
        return len(self.tensors) - 1

    def tensor(self, name) -> int:
        if name in self.ids:
            return self.ids[name]
        v = self.g.values[name]
        data = v.const
        if data is None and v.sym is not None:
            raise Unfit(f"{self.g.name}: {name!r} holds sizes computed from the input shapes and is read as data "
                        f"(a graph output or an operand); the C executor cannot materialize it")
        if data is not None and data.dtype not in DTYPE_CODES:
            if data.dtype.kind == "f":
                data = data.astype(np.float32)
            elif data.dtype.kind in "iu":
                data = data.astype(np.int64)
        self.ids[name] = t = self.new_tensor(name, data.dtype if data is not None else v.dtype, v.shape, data)
        return t

    def const(self, name, arr) -> int:
        arr = np.ascontiguousarray(arr)
        return self.new_tensor(name, arr.dtype, arr.shape, arr)

    def input_default(self, name) -> int:
        """What the C executor makes of input `name` left out (rnnf_graph_desc.input_default)."""
        default, v = self.g.defaults.get(name), self.g.values[name]
        if default is None:
            return -1
        if default is ZEROS:
            if any(i == self.g.inputs.index(name) for i, _ in self.syms):  # a symbol only this input gives
                raise Unfit(f"{self.g.name}: input {name!r} defaults to zeros, but its shape {shape_str(v.shape)} "
                            f"has a size no other input gives")
            return -2
        arr = np.asarray(default)
        if arr.ndim != len(v.shape) or any(isinstance(d, int) and d != n for d, n in zip(v.shape, arr.shape)):
            raise Unfit(f"{self.g.name}: input {name!r} is {shape_str(v.shape)}, its default value {list(arr.shape)}")
        return self.const(f"{name}/default", arr.astype(v.dtype))

    def produced(self, t) -> bool:
        return any(t in outs for _, _, _, outs, _, _, _ in self.nodes)

    def emit(self, op, ins, outs, iattr=(), fattr=(), layers=None, name=""):
        if isinstance(name, Node):
            name = label(name)
        if len(ins) > MAX_NODE_IO or len(outs) > MAX_NODE_IO:
            raise Unfit(f"{self.g.name}: {name}: {len(ins)} inputs and {len(outs)} outputs (a C node takes at most "
                        f"{MAX_NODE_IO} of each)")
        self.nodes.append((OP[op], name, list(ins), list(outs), [int(v) for v in iattr],
                           [float(v) for v in fattr], layers))

    def view(self, src_name, dst_name):
        src = self.tensor(src_name)
        v = self.g.values[dst_name]
        self.ids[dst_name] = self.new_tensor(dst_name, v.dtype, v.shape, alias_of=src)

    # ---- nodes ----
    def lower(self, node: Node):
        op = node.op
        if node.attrs.get("_island"):
            from .islands import HostFunction

            self.hosts.append(HostFunction(node, self.opset))
            self.emit("HOST", [self.tensor(n) if n else -1 for n in node.inputs], self.outs(node),
                      [len(self.hosts) - 1], name=node)
            return
        fn = LOWER.get(op)
        if op in UNARY_OPS:
            fn = lower_unary
        if fn is None:
            raise Unfit(f"{node.where}: operator {op} has no C kernel")
        fn(self, node)

    def ins(self, node, *indices):
        return [self.tensor(node.inputs[i]) if i < len(node.inputs) and node.inputs[i] else -1 for i in indices]

    def outs(self, node):
        return [self.tensor(n) if n else -1 for n in node.outputs]

    def rank(self, name):
        return len(self.g.values[name].shape)

    def desc(self) -> dict:
        starts, prog = [0], []
        for p in self.dim_programs:
            for code, arg in p:
                prog += [code, int(arg)]
            starts.append(starts[-1] + len(p))
        return {"tensors": self.tensors, "nodes": self.nodes, "inputs": self.input_ids, "outputs": self.output_ids,
                "syms": self.syms, "dim_start": starts, "prog": prog, "checks": self.checks,
                "subgraphs": self.subgraphs, "hosts": self.hosts,
                "sym_names": sorted(self.sym_index, key=self.sym_index.get), "input_defaults": self.input_defaults}


def label(node) -> str:
    """How messages name a node: its `where` without the graph's name ("node Conv_3 (Conv)")."""
    where = node.where or f"node {node.name} ({node.op})"
    return where.split(": ", 1)[1] if ": node " in where else where


def act_fields(node):
    kind, alpha, beta = node.attrs.get("_act") or ("NONE", 0.0, 0.0)
    return UNARY[kind], alpha, beta


def lower_view(L, node):
    out = node.outputs[0]
    L.view(node.inputs[0], out)
    for extra in node.outputs[1:]:  # Dropout's mask: all true in inference
        if extra:
            L.emit("FILL", [], [L.tensor(extra)], iattr=[1], fattr=[1.0], name=node)


def lower_unary(L, node):
    kind, a, b = UNARY_OPS[node.op]
    alpha = float(node.attrs.get(a[0], a[1])) if a else 0.0
    beta = float(node.attrs.get(b[0], b[1])) if b else 0.0
    _require_f32(L, node)
    L.emit("UNARY", L.ins(node, 0), L.outs(node), [UNARY[kind]], [alpha, beta], name=node)


def _require_f32(L, node):
    if L.g.values[node.inputs[0]].dtype != np.float32:
        raise Unfit(f"{node.where}: {node.op} on {L.g.values[node.inputs[0]].dtype} (float32 runs in C)")


def lower_gelu(L, node):
    _require_f32(L, node)
    kind = "GELU_TANH" if attr_str(node.attrs, "approximate", "none") == "tanh" else "GELU"
    L.emit("UNARY", L.ins(node, 0), L.outs(node), [UNARY[kind]], [0.0, 0.0], name=node)


def lower_clip(L, node):
    _require_f32(L, node)
    # ONNX's defaults are the float type's limits, not infinities: Clip(-inf) without a min gives -FLT_MAX
    lowest, highest = float(np.finfo(np.float32).min), float(np.finfo(np.float32).max)
    if L.opset < 11:
        lo, hi = node.attrs.get("min", lowest), node.attrs.get("max", highest)
    else:
        vals = []
        for i in (1, 2):
            name = node.inputs[i] if i < len(node.inputs) else ""
            if name and L.g.values[name].const is None:
                raise Unfit(f"{node.where}: Clip bounds that are not constants")
            vals.append(float(L.g.values[name].const) if name else (lowest if i == 1 else highest))
        lo, hi = vals
    L.emit("UNARY", L.ins(node, 0), L.outs(node), [UNARY["CLIP"]], [lo, hi], name=node)


def lower_binary(L, node):
    names = [n for n in node.inputs if n]
    dtypes = {L.g.values[n].dtype for n in names}
    if len(dtypes) != 1:
        raise Unfit(f"{node.where}: {node.op} of {sorted(str(d) for d in dtypes)}")
    if node.op == "Mod" and not node.attrs.get("fmod", 0) and L.g.values[names[0]].dtype.kind == "f":
        raise Unfit(f"{node.where}: Mod with fmod=0 on floats")
    if node.op == "Mod" and node.attrs.get("fmod", 0) and L.g.values[names[0]].dtype.kind != "f":
        raise Unfit(f"{node.where}: Mod with fmod=1 on integers (the C kernel has the sign of the divisor)")
    if node.op in ("Max", "Min") and len(names) > 2:
        raise Unfit(f"{node.where}: {node.op} of {len(names)} inputs")
    if len(names) == 1:
        L.emit("COPY", [L.tensor(names[0])], L.outs(node), name=node)
        return
    L.emit("BINARY", [L.tensor(n) for n in names], L.outs(node), [BINARY[node.op]], name=node)


def lower_where(L, node):
    L.emit("WHERE", L.ins(node, 0, 1, 2), L.outs(node), name=node)


def lower_cast(L, node):
    to = np.dtype(ONNX_DTYPES[node.attrs["to"]])
    if to not in DTYPE_CODES:
        raise Unfit(f"{node.where}: Cast to {to}")
    L.emit("CAST", L.ins(node, 0), L.outs(node), name=node)


def lower_matmul(L, node):
    kind, alpha, beta = act_fields(node)
    ins = L.ins(node, 0, 1)
    bias = node.attrs.get("_bias")
    ins.append(L.const(f"{node.name}/bias", bias) if bias is not None else -1)
    L.emit("MATMUL", ins, L.outs(node), [kind], [alpha, beta], name=node)


def lower_gemm(L, node):
    a_name, b_name = node.inputs[0], node.inputs[1]
    av, bv = L.g.values[a_name], L.g.values[b_name]
    alpha, beta_c = float(node.attrs.get("alpha", 1.0)), float(node.attrs.get("beta", 1.0))
    if node.attrs.get("transA", 0):
        raise Unfit(f"{node.where}: Gemm with transA=1")
    if bv.const is None:
        if node.attrs.get("transB", 0) or alpha != 1.0:
            raise Unfit(f"{node.where}: Gemm with a non-constant B and transB or alpha")
        b = L.tensor(b_name)
    else:
        w = bv.const.astype(np.float32)
        w = (w.T if node.attrs.get("transB", 0) else w) * np.float32(alpha)
        b = L.const(f"{node.name}/B", w)
    c_name = node.inputs[2] if len(node.inputs) > 2 else ""
    bias = node.attrs.get("_bias")
    if c_name:
        cv = L.g.values[c_name]
        if cv.const is None:
            raise Unfit(f"{node.where}: Gemm with a non-constant C")
        c = cv.const.astype(np.float32) * np.float32(beta_c)
        bias = c if bias is None else c + bias
    kind, a_act, b_act = act_fields(node)
    bias_id = L.const(f"{node.name}/C", np.asarray(bias, np.float32)) if bias is not None else -1
    L.emit("MATMUL", [L.tensor(a_name), b, bias_id], L.outs(node), [kind], [a_act, b_act], name=node)


def lower_conv(L, node):
    n_sp = L.rank(node.inputs[0]) - 2
    s = list(node.attrs.get("strides", [1] * n_sp)) + [1]
    d = list(node.attrs.get("dilations", [1] * n_sp)) + [1]
    p = list(node.attrs.get("pads", [0] * (2 * n_sp)))
    pb, pe = p[:n_sp] + [0], p[n_sp:] + [0]
    kind, alpha, beta = act_fields(node)
    iattr = [n_sp, node.attrs.get("group", 1), s[0], s[1], d[0], d[1], pb[0], pb[1], pe[0], pe[1], kind]
    if node.attrs.get("_pool"):
        iattr.append(int(node.attrs["_pool"]))
    L.emit("CONV", L.ins(node, 0, 1, 2), L.outs(node), iattr, [alpha, beta], name=node)


def lower_conv_transpose(L, node):
    iattr = [node.attrs.get("group", 1), node.attrs.get("strides", [1])[0], node.attrs.get("dilations", [1])[0],
             node.attrs.get("pads", [0, 0])[0]]
    L.emit("CONV_TRANSPOSE", L.ins(node, 0, 1, 2), L.outs(node), iattr, name=node)


def lower_pool(L, node):
    n_sp = L.rank(node.inputs[0]) - 2
    k = list(node.attrs["kernel_shape"]) + [1]
    s = list(node.attrs.get("strides", [1] * n_sp)) + [1]
    d = list(node.attrs.get("dilations", [1] * n_sp)) + [1]
    p = list(node.attrs.get("pads", [0] * (2 * n_sp)))
    pb, pe = p[:n_sp] + [0], p[n_sp:] + [0]
    iattr = [n_sp, k[0], k[1], s[0], s[1], d[0], d[1], pb[0], pb[1], pe[0], pe[1]]
    if node.op == "AveragePool":
        iattr.append(node.attrs.get("count_include_pad", 0))
    L.emit("MAXPOOL" if node.op == "MaxPool" else "AVGPOOL", L.ins(node, 0), L.outs(node)[:1], iattr, name=node)


def lower_softmax(L, node):
    rank = L.rank(node.inputs[0])
    axis = int(node.attrs.get("axis", -1 if L.opset >= 13 else 1)) % max(rank, 1)
    if L.opset < 13 and axis != rank - 1:
        raise Unfit(f"{node.where}: {node.op} before opset 13 on axis {axis} of rank {rank} (coerced to 2-D)")
    _require_f32(L, node)
    L.emit("SOFTMAX", L.ins(node, 0), L.outs(node), [axis, int(node.op == "LogSoftmax")], name=node)


def lower_layernorm(L, node):
    rank = L.rank(node.inputs[0])
    axis = int(node.attrs.get("axis", -1)) % rank
    L.emit("LAYERNORM", L.ins(node, 0, 1, 2), L.outs(node)[:1], [axis], [node.attrs.get("epsilon", 1e-5)],
           name=node)


def lower_batchnorm(L, node):
    vals = [L.g.values[n].const for n in node.inputs[1:5]]
    if any(v is None for v in vals) or node.attrs.get("training_mode", 0) or any(node.outputs[1:]):
        raise Unfit(f"{node.where}: BatchNormalization needs constant statistics and inference mode")
    scale, shift, mean, var = (v.astype(np.float64) for v in vals)
    k = scale / np.sqrt(var + float(node.attrs.get("epsilon", 1e-5)))
    ins = [L.tensor(node.inputs[0]), L.const(f"{node.name}/scale", k.astype(np.float32)),
           L.const(f"{node.name}/shift", (shift - mean * k).astype(np.float32))]
    L.emit("CHANNEL_AFFINE", ins, L.outs(node)[:1], [UNARY["NONE"]], [0.0, 0.0], name=node)


def lower_reduce(L, node):
    x = node.inputs[0]
    rank = L.rank(x)
    if node.op.startswith("Global"):
        axes = list(range(2, rank))
        keep = 1
    else:
        from .infer import Ctx

        axes = reduce_axes(Ctx(node, [L.g.values[n] if n else None for n in node.inputs], L.opset, []))
        keep = node.attrs.get("keepdims", 1)
    if L.g.values[x].dtype != np.float32:
        raise Unfit(f"{node.where}: {node.op} on {L.g.values[x].dtype}")
    mask = sum(1 << a for a in axes)
    out = node.outputs[0]
    if keep:
        L.emit("REDUCE", [L.tensor(x)], [L.tensor(out)], [REDUCE[node.op], mask], name=node)
        return
    shape = [1 if i in axes else d for i, d in enumerate(L.g.values[x].shape)]
    tmp = L.new_tensor(out + "/keepdims", np.float32, shape)
    L.emit("REDUCE", [L.tensor(x)], [tmp], [REDUCE[node.op], mask], name=node)
    v = L.g.values[out]
    L.ids[out] = L.new_tensor(out, v.dtype, v.shape, alias_of=tmp)


def lower_transpose(L, node):
    rank = L.rank(node.inputs[0])
    perm = node.attrs.get("perm") or list(range(rank))[::-1]
    L.emit("TRANSPOSE", L.ins(node, 0), L.outs(node), perm, name=node)


def lower_concat(L, node):
    rank = L.rank(node.inputs[0])
    L.emit("CONCAT", [L.tensor(n) for n in node.inputs if n], L.outs(node), [int(node.attrs["axis"]) % rank],
           name=node)


def lower_split(L, node):
    rank = L.rank(node.inputs[0])
    L.emit("SPLIT", L.ins(node, 0), L.outs(node), [int(node.attrs.get("axis", 0)) % rank], name=node)


def lower_slice(L, node):
    from .infer import Ctx, _slice_params

    params = _slice_params(Ctx(node, [L.g.values[n] if n else None for n in node.inputs], L.opset, []))
    iattr = []
    for axis, s, e, st in params:
        if any(isinstance(v, Dim) for v in (s, e, st)):
            raise Unfit(f"{node.where}: slice bounds computed from the input shapes")
        clamp = lambda v: max(min(int(v), INT64_MAX), -INT64_MAX - 1)
        iattr += [axis, clamp(s), clamp(e), clamp(st)]
    L.emit("SLICE", L.ins(node, 0), L.outs(node), iattr, name=node)


def lower_gather(L, node):
    rank = L.rank(node.inputs[0])
    idx = node.inputs[1]
    iv = L.g.values[idx]
    if iv.dtype not in (np.dtype(np.int64), np.dtype(np.int32)):
        raise Unfit(f"{node.where}: Gather indices of {iv.dtype}")
    L.emit("GATHER", L.ins(node, 0, 1), L.outs(node), [int(node.attrs.get("axis", 0)) % rank], name=node)


def lower_pad(L, node):
    begin, end = node.attrs["_pads"]
    mode = attr_str(node.attrs, "mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        raise Unfit(f"{node.where}: Pad mode {mode!r}")
    value = 0.0
    if L.opset < 11:
        value = node.attrs.get("value", 0.0)
    elif len(node.inputs) > 2 and node.inputs[2]:
        cv = L.g.values[node.inputs[2]].const
        if cv is None:
            raise Unfit(f"{node.where}: a Pad value that is not a constant")
        value = float(cv.reshape(-1)[0]) if cv.size else 0.0
    L.emit("PAD", L.ins(node, 0), L.outs(node), [("constant", "reflect", "edge").index(mode)] + begin + end, [value],
           name=node)


def lower_expand(L, node):
    L.emit("EXPAND", L.ins(node, 0), L.outs(node), name=node)


def lower_constant_of_shape(L, node):
    value = node.attrs.get("value")
    v = 0.0 if value is None else value.reshape(-1)[0]
    L.emit("FILL", [], L.outs(node), [int(v) if np.asarray(v).dtype.kind in "iub" else 0], [float(v)],
           name=node)


def lower_recurrent(L, node):
    from ..engine import layer_desc

    spec = node.payload
    consts = [L.g.values[node.inputs[i]].const if i < len(node.inputs) and node.inputs[i] else None
              for i in (1, 2, 3, 7)]
    for key, i in (("W", 1), ("R", 2), ("B", 3), ("P", 7)):
        if i < len(node.inputs) and node.inputs[i] and L.g.values[node.inputs[i]].const is None:
            raise Unfit(f"{node.where}: input {key} is not a constant")
    layer = spec.build_layer(*consts)
    x, lens, h0, c0 = (L.ins(node, 0, 4, 5, 6))
    if lens >= 0 and L.g.values[node.inputs[4]].dtype != np.int32:
        raise Unfit(f"{node.where}: sequence_lens of {L.g.values[node.inputs[4]].dtype} (ONNX says int32)")
    outs = L.outs(node) + [-1] * (3 - len(node.outputs))
    if spec.layout == 1:  # batch-major: transpose in and out around the time-major engine
        def tr(t, perm, name):
            if t < 0:
                return -1
            new = L.new_tensor(name, np.float32, [L.shapes[t][p] for p in perm])
            L.emit("TRANSPOSE", [t], [new], perm, name=node)
            return new
        x = tr(x, [1, 0, 2], f"{node.name}/X_tm")
        h0 = tr(h0, [1, 0, 2], f"{node.name}/h0_tm")
        c0 = tr(c0, [1, 0, 2], f"{node.name}/c0_tm")
        T, B = L.g.values[node.inputs[0]].shape[1], L.g.values[node.inputs[0]].shape[0]
        D, H = layer.n_dirs, layer.output_size
        tmp = [L.new_tensor(f"{node.name}/Y_tm", np.float32, [T, D, B, H]) if outs[0] >= 0 else -1,
               L.new_tensor(f"{node.name}/Yh_tm", np.float32, [D, B, H]) if outs[1] >= 0 else -1,
               L.new_tensor(f"{node.name}/Yc_tm", np.float32, [D, B, layer.hidden_size]) if outs[2] >= 0 else -1]
        L.emit("RECURRENT", [x, lens, h0, c0], tmp, layers=[layer_desc(layer)], name=node)
        for t, o, perm in zip(tmp, outs, ([2, 0, 1, 3], [1, 0, 2], [1, 0, 2])):
            if o >= 0:
                L.emit("TRANSPOSE", [t], [o], perm, name=node)
        return
    L.emit("RECURRENT", [x, lens, h0, c0], outs, layers=[layer_desc(layer)], name=node)


def lower_stack(L, node):
    from ..engine import layer_desc

    layers = [layer_desc(layer.spec.build_layer(*layer.weights)) for layer in node.payload]
    x, lens, h0, c0 = L.ins(node, 0, 1, 2, 3)
    if lens >= 0 and L.g.values[node.inputs[1]].dtype != np.int32:
        raise Unfit(f"{node.where}: sequence_lens of {L.g.values[node.inputs[1]].dtype} (ONNX says int32)")
    ins, iattr = [x, lens, h0, c0], [node.attrs["_y_layout"]]
    if len(node.inputs) > 4 and node.inputs[4]:  # a Keras mask [T, B] (bool)
        if L.g.values[node.inputs[4]].dtype != np.bool_:
            raise Unfit(f"{node.where}: a mask of {L.g.values[node.inputs[4]].dtype} (bool [steps, batch] runs in C)")
        ins.append(L.tensor(node.inputs[4]))
        iattr.append(int(bool(node.attrs.get("_mask_zero_output", 0))))
    L.emit("RECURRENT", ins, L.outs(node), iattr, layers=layers, name=node)


def lower_if(L, node):
    then_g, else_g = node.payload
    # Constants and sizes known at load are the branches' own; only run-time values cross into them.
    captured = [n for n in node.inputs[1:] if L.g.values[n].const is None and L.g.values[n].sym is None]
    subs = []
    for branch in (then_g, else_g):
        branch.inputs = captured
        sub = Lowering(branch, getattr(branch, "checks", []), L.opset)
        if sub.hosts:
            raise Unfit(f"{node.where}: a branch holds an operator outside the C set ({sub.hosts[0].where})")
        subs.append(len(L.subgraphs))
        L.subgraphs.append(sub.desc())
    L.emit("IF", [L.tensor(node.inputs[0])] + [L.tensor(n) for n in captured], L.outs(node), subs, name=node)


LOWER = {
    **{op: lower_view for op in VIEW_OPS},
    **{op: lower_binary for op in BINARY},
    "Gelu": lower_gelu, "Clip": lower_clip, "Where": lower_where, "Cast": lower_cast, "MatMul": lower_matmul,
    "Gemm": lower_gemm, "Conv": lower_conv, "ConvTranspose": lower_conv_transpose, "MaxPool": lower_pool,
    "AveragePool": lower_pool, "Softmax": lower_softmax, "LogSoftmax": lower_softmax,
    "LayerNormalization": lower_layernorm, "BatchNormalization": lower_batchnorm,
    **{op: lower_reduce for op in REDUCE},
    "Transpose": lower_transpose, "Concat": lower_concat, "Split": lower_split, "Slice": lower_slice,
    "Gather": lower_gather, "Pad": lower_pad, "Expand": lower_expand, "ConstantOfShape": lower_constant_of_shape,
    "LSTM": lower_recurrent, "GRU": lower_recurrent, "RNN": lower_recurrent, "Recurrent": lower_stack,
    "If": lower_if,
}


def lower_graph(graph: Graph, checks, opset: int) -> dict:
    return Lowering(graph, checks, opset).desc()
