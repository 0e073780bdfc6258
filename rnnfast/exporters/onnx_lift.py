"""A .rnnf 2 file's graph back in the graph IR, so exporters/onnx.py writes it as ONNX like any other model.

A .rnnf 2 file holds the C executor's description (graph/compile.py made it; src_c/graph/graph.h lists each op's
attributes), not the source's operators. Each C node is lifted to the IR op that compile.py lowers to it, in opset
17's form: UNARY / BINARY kinds to their ONNX operator, MATMUL / CONV with their activation as the fused "_act" (and
MATMUL's bias as "_bias", CONV's pooling as "_pool"), CHANNEL_AFFINE to Mul + Add, REDUCE with its axis mask, SLICE /
PAD with their bounds, FILL / EXPAND to the output's shape, RECURRENT to a stack of its layers, IF with both branches
lifted. A tensor that aliases another (a view) is a Reshape to its own shape. Shapes are the file's symbolic sizes
(importers/rnnf_graph.py _dims), so the written graph takes any size the file takes."""
from __future__ import annotations

import numpy as np

from ..graph.compile import BINARY, DTYPE_CODES, OP_NAMES, REDUCE, UNARY, UNARY_OPS
from ..graph.ir import ZEROS, Graph, Node, Value

OPSET = 17  # the form the lifted nodes follow
UNARY_NAMES = {UNARY[kind]: op for op, (kind, _, _) in UNARY_OPS.items()}
BINARY_NAMES = {code: op for op, code in BINARY.items()}
REDUCE_NAMES = {code: op for op, code in REDUCE.items() if op.startswith("Reduce")}
DTYPES = {code: dtype for dtype, code in DTYPE_CODES.items()}


def lift(desc, in_names, out_names, name) -> Graph:
    return _Lift(desc, name).graph(in_names, out_names)


class _Lift:
    def __init__(self, desc, name):
        from ..importers.rnnf_graph import _dims

        self.desc, self.name = desc, name
        self.shapes = [_dims(desc, t) for t in range(len(desc["tensors"]))]
        self.values, self.nodes, self.names, self.used = {}, [], {}, set()
        self.reserved = {}  # tensor -> the graph output name it takes when it is made

    def graph(self, in_names, out_names, captured=None) -> Graph:
        d = self.desc
        for t, n in zip(d["inputs"], in_names):
            self._name(t, n)
        for t, n in (captured or {}).items():
            self.names[t] = n
        for t, n in zip(d["outputs"], out_names):
            if n is not None and t not in self.names and t not in self.reserved and n not in self.used:
                self.reserved[t] = n
                self.used.add(n)
        for k, node in enumerate(d["nodes"]):
            self._node(k, *node)
        outs = []
        for t, n in zip(d["outputs"], out_names):
            src = self.tensor(t)
            if n is None:
                n = src
            elif src != n:
                self._value(n, t)
                self.nodes.append(Node("Identity", [src], [n], name=f"output {n}", where=f"{self.name}: output {n}"))
            outs.append(n)
        defaults = {}
        for t, n, k in zip(d["inputs"], in_names, d.get("input_defaults") or ()):
            if k != -1:  # the file's default: zeros, or a constant tensor's value
                defaults[n] = ZEROS if k == -2 else np.asarray(d["tensors"][k][3]).reshape(self.shapes[k])
        return Graph(self.name, list(in_names), outs, self.values, self.nodes, defaults=defaults)

    # ---- tensors ----
    def _name(self, t, wanted=None) -> str:
        if t in self.reserved:
            n = self.reserved.pop(t)
            self.names[t] = n
            self._value(n, t)
            return n
        base = wanted or self.desc["tensors"][t][5] or f"t{t}"
        n, k = base, 0
        while n in self.used:
            k += 1
            n = f"{base}#{k}"
        self.used.add(n)
        self.names[t] = n
        self._value(n, t)
        return n

    def _value(self, n, t):
        dtype, _, _, data, _, _ = self.desc["tensors"][t]
        shape = self.shapes[t]
        const = None
        if data is not None:
            const = np.asarray(data).astype(DTYPES[dtype]).reshape([int(s) for s in shape])
        self.values[n] = Value(n, DTYPES[dtype], shape, const=const)

    def tensor(self, t) -> str:
        """The IR name of tensor t ("" for an absent one); a view is a Reshape of the tensor it aliases."""
        if t < 0:
            return ""
        if t in self.names:
            return self.names[t]
        alias = self.desc["tensors"][t][4]
        if alias is not None and alias >= 0:
            src = self.tensor(alias)
            n = self._name(t)
            shape = self._shape_value(self.shapes[t], n)
            self.nodes.append(Node("Reshape", [src, shape], [n], name=n, where=f"{self.name}: view {n}"))
            return n
        return self._name(t)

    def _shape_value(self, dims, hint) -> str:
        n = f"{hint}/shape"
        self.used.add(n)
        if all(isinstance(d, (int, np.integer)) for d in dims):
            self.values[n] = Value(n, np.dtype(np.int64), (len(dims),), const=np.array(dims, np.int64))
        else:
            self.values[n] = Value(n, np.dtype(np.int64), (len(dims),), sym=list(dims))
        return n

    def _const(self, arr, hint) -> str:
        n = f"{hint}"
        while n in self.used:
            n += "_"
        self.used.add(n)
        arr = np.asarray(arr)
        self.values[n] = Value(n, arr.dtype, arr.shape, const=arr)
        return n

    # ---- nodes ----
    def _node(self, k, op, name, ins, outs, ia, fa, layers):
        kind = OP_NAMES[op]
        ins_n = [self.tensor(t) for t in ins]
        outs_n = [self.tensor(t) if t >= 0 else "" for t in outs]
        where = f"{self.name}: node {name or k} ({kind})"
        add = lambda o, i, attrs=None, out=None, payload=None: self.nodes.append(
            Node(o, i, out or outs_n, dict(attrs or {}), name or f"n{k}", where, payload))
        f = lambda i: float(fa[i]) if i < len(fa) else 0.0
        act = lambda i: None if ia[i] == UNARY["NONE"] else (_kind(ia[i]), f(0), f(1))
        if kind == "COPY":
            add("Identity", ins_n)
        elif kind == "UNARY":
            self._unary(add, ia[0], f(0), f(1), ins_n, outs_n, name or f"n{k}")
        elif kind == "BINARY":
            op_name = BINARY_NAMES[ia[0]]
            fmod = {"fmod": 1} if op_name == "Mod" and self.values[ins_n[0]].dtype.kind == "f" else {}
            add(op_name, ins_n, fmod)
        elif kind == "WHERE":
            add("Where", ins_n)
        elif kind == "CAST":
            from onnx import helper

            add("Cast", ins_n, {"to": helper.np_dtype_to_tensor_dtype(self.values[outs_n[0]].dtype)})
        elif kind == "MATMUL":
            attrs = {"_act": act(0)} if act(0) else {}
            if len(ins_n) > 2 and ins_n[2]:
                attrs["_bias"] = self.values[ins_n[2]].const
            add("MatMul", ins_n[:2], attrs)
        elif kind == "CONV":
            n_sp, group = ia[0], ia[1]
            attrs = {"group": group, "strides": ia[2:2 + n_sp], "dilations": ia[4:4 + n_sp],
                     "pads": ia[6:6 + n_sp] + ia[8:8 + n_sp]}
            if act(10):
                attrs["_act"] = act(10)
            if len(ia) > 11 and ia[11]:
                attrs["_pool"] = ia[11]  # MaxPool 2x2 stride 2 after it (graph/fuse.py)
            add("Conv", ins_n, attrs)
        elif kind == "CONV_TRANSPOSE":
            self._conv_transpose(add, ins, ins_n, outs, ia)
        elif kind in ("MAXPOOL", "AVGPOOL"):
            n_sp = ia[0]
            attrs = {"kernel_shape": ia[1:1 + n_sp], "strides": ia[3:3 + n_sp], "dilations": ia[5:5 + n_sp],
                     "pads": ia[7:7 + n_sp] + ia[9:9 + n_sp]}
            if kind == "AVGPOOL":
                del attrs["dilations"]
                attrs["count_include_pad"] = ia[11]
            add("MaxPool" if kind == "MAXPOOL" else "AveragePool", ins_n, attrs)
        elif kind == "SOFTMAX":
            add("LogSoftmax" if ia[1] else "Softmax", ins_n, {"axis": ia[0]})
        elif kind == "LAYERNORM":
            add("LayerNormalization", ins_n, {"axis": ia[0], "epsilon": f(0)})
        elif kind == "CHANNEL_AFFINE":
            self._channel_affine(add, ins_n, outs_n, act(0), name or f"n{k}")
        elif kind == "REDUCE":
            rank = len(self.shapes[ins[0]])
            axes = [a for a in range(rank) if ia[1] >> a & 1]
            op_name = REDUCE_NAMES[ia[0]]
            if op_name == "ReduceSum":
                add(op_name, [ins_n[0], self._const(np.array(axes, np.int64), f"{name}/axes")], {"keepdims": 1})
            else:
                add(op_name, ins_n, {"axes": axes, "keepdims": 1})
        elif kind == "TRANSPOSE":
            add("Transpose", ins_n, {"perm": list(ia)})
        elif kind in ("CONCAT", "SPLIT", "GATHER"):
            add(kind.capitalize(), ins_n, {"axis": ia[0]})
        elif kind == "SLICE":
            parts = [np.array(ia[j::4], np.int64) for j in range(4)]  # axis, start, end, step per sliced axis
            bounds = [self._const(parts[j], f"{name}/{key}") for j, key in ((1, "starts"), (2, "ends"),
                                                                           (0, "axes"), (3, "steps"))]
            add("Slice", [ins_n[0]] + bounds)
        elif kind == "PAD":
            rank = (len(ia) - 1) // 2
            dtype = self.values[ins_n[0]].dtype
            value = self._const(np.array(f(0), dtype), f"{name}/value")
            add("Pad", [ins_n[0], "", value], {"mode": ("constant", "reflect", "edge")[ia[0]],
                                               "_pads": (list(ia[1:1 + rank]), list(ia[1 + rank:]))})
        elif kind == "EXPAND":
            add("Expand", [ins_n[0], self._shape_value(self.shapes[outs[0]], outs_n[0])])
        elif kind == "FILL":
            dtype = self.values[outs_n[0]].dtype
            fill = np.array([fa[0] if dtype.kind == "f" else ia[0]], dtype)
            add("ConstantOfShape", [self._shape_value(self.shapes[outs[0]], outs_n[0])], {"value": fill})
        elif kind == "RECURRENT":
            self._recurrent(add, ins_n, ia, layers)
        elif kind == "IF":
            self._if(add, ins_n, ia, name or f"n{k}")
        else:
            raise ValueError(f"{where}: no ONNX form for this C operator")  # HOST: .rnnf 2 never holds it

    def _unary(self, add, kind, alpha, beta, ins_n, outs_n, name):
        op = UNARY_NAMES.get(kind)
        key = {v: k for k, v in UNARY.items()}[kind]
        if key in ("NONE", "IDENTITY"):
            add("Identity", ins_n)
        elif key in ("GELU", "GELU_TANH"):
            add("Gelu", ins_n, {"approximate": "tanh" if key == "GELU_TANH" else "none"})
        elif key == "CLIP":
            lo, hi = (self._const(np.array(v, np.float32), f"{name}/{b}") for v, b in ((alpha, "min"), (beta, "max")))
            add("Clip", ins_n + [lo, hi])
        elif key == "AFFINE":  # alpha * x + beta
            tmp = self._tmp(outs_n[0])
            add("Mul", [ins_n[0], self._const(np.array(alpha, np.float32), f"{name}/alpha")], out=[tmp])
            add("Add", [tmp, self._const(np.array(beta, np.float32), f"{name}/beta")])
        else:
            _, a, b = UNARY_OPS[op]
            add(op, ins_n, {spec[0]: v for spec, v in ((a, alpha), (b, beta)) if spec})

    def _tmp(self, like) -> str:
        n = f"{like}/part"
        while n in self.used:
            n += "_"
        self.used.add(n)
        v = self.values[like]
        self.values[n] = Value(n, v.dtype, v.shape)
        return n

    def _channel_affine(self, add, ins_n, outs_n, act, name):
        x, scale, shift = ins_n
        rank = len(self.values[x].shape)
        per_channel = lambda v, key: self._const(self.values[v].const.reshape([-1] + [1] * (rank - 2)),
                                                 f"{name}/{key}")
        scaled = self._tmp(outs_n[0])
        add("Mul", [x, per_channel(scale, "scale")], out=[scaled])
        if act is None:
            add("Add", [scaled, per_channel(shift, "shift")])
            return
        shifted = self._tmp(outs_n[0])
        add("Add", [scaled, per_channel(shift, "shift")], out=[shifted])
        self._unary(add, UNARY[act[0]], act[1], act[2], [shifted], outs_n, name)

    def _conv_transpose(self, add, ins, ins_n, outs, ia):
        from ..graph.dims import Dim

        group, s, d, pb = ia[:4]
        k = self.values[ins_n[1]].shape[2]
        L, L_out = self.shapes[ins[0]][2], self.shapes[outs[0]][2]
        extra = Dim.make(Dim.of(L_out) - ((Dim.of(L) - 1) * s + (k - 1) * d + 1 - pb))  # output_padding - pad_end
        if isinstance(extra, Dim):
            raise ValueError(f"{self.name}: a ConvTranspose whose output length is not its input's by a constant")
        add("ConvTranspose", ins_n, {"group": group, "strides": [s], "dilations": [d],
                                     "pads": [pb, max(0, -extra)], "output_padding": [max(0, extra)]})

    def _recurrent(self, add, ins_n, ia, layers):
        from ..graph.build import LayerSpec
        from ..graph.stack import StackLayer

        payload = []
        for j, lay in enumerate(layers):
            spec = LayerSpec(lay["layer"])
            payload.append(StackLayer(spec, spec.weights(), "", "", lay["layer"].name or f"layer{j}"))
        attrs = {"_y_layout": ia[0] if ia else 0}
        if len(ins_n) > 4 and ins_n[4]:
            attrs["_mask_zero_output"] = ia[1] if len(ia) > 1 else 0
        add("Recurrent", (ins_n + [""] * 4)[:max(4, len(ins_n))], attrs, payload=payload)

    def _if(self, add, ins_n, ia, name):
        branches = []
        for sub_index in ia[:2]:
            sub = self.desc["subgraphs"][sub_index]
            lifted = _Lift(sub, f"{self.name}/{name}")
            lifted.used = self.used  # one name space: the branches read outer values by name
            inner = {t: n for t, n in zip(sub["inputs"], ins_n[1:])}
            for t, n in inner.items():
                lifted.values[n] = self.values[n]
            g = lifted.graph([], [None] * len(sub["outputs"]), captured=inner)
            g.inputs = list(inner.values())
            branches.append(g)
        add("If", [ins_n[0]] + ins_n[1:], payload=tuple(branches))


def _kind(code) -> str:
    return {v: k for k, v in UNARY.items()}[code]
