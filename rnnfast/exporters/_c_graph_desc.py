"""A lowered graph description (rnnfast/graph/compile.py, Lowering.desc()) as C99 static const data: the
rnnf_graph_desc the library's rnnf_graph_create reads, with every constant 64-byte aligned so that a graph loaded
into a pool reads the weights where they are (src_c/graph/graph.c) instead of copying them.

A MatMul's (or Gemm's) B stored as int8 or float16 (Model.quantize's scope "all") is written as it is stored,
int8_t with its float32 column scales or IEEE half bit patterns, and the executor widens it into scratch at each
run (rnnf_tensor_desc.stored): the exported code keeps no float32 copy of it.

Everything the export cannot carry is refused here by node: operators outside the C executor (run through
onnx.reference as host nodes), and a Conv / ConvTranspose weight stored quantized: the executor has no kernel reading
it, and writing the float32 values it stands for would not be the quantized model a user asked for."""
from __future__ import annotations

import numpy as np

from ..errors import FormatError
from ..graph.compile import OP, OP_NAMES
from ._c_arrays import float_literal

PER_LINE = 8
ALIGN = "RNNF_EXPORT_ALIGN"  # defined by the generated source: 64-byte alignment with GNU C compilers
CTYPES = {0: "float", 1: "int64_t", 2: "int32_t", 3: "uint8_t", 4: "int8_t"}
HOST_OP, MATMUL_OP = OP["HOST"], OP["MATMUL"]


def c_string(s: str) -> str:
    out = []
    for ch in s.encode():
        c = chr(ch)
        if c in '"\\?':
            out.append("\\" + c)
        elif 32 <= ch < 127:
            out.append(c)
        else:
            out.append("\\%03o" % ch)
    return '"' + "".join(out) + '"'


def c_float(v) -> str:
    v = np.float32(v)
    if np.isnan(v):
        return "NAN"
    if np.isinf(v):
        return "INFINITY" if v > 0 else "-INFINITY"
    return float_literal(v)


def c_int(v, ctype) -> str:
    v = int(v)
    if ctype == "int64_t":
        return "INT64_MIN" if v == -2 ** 63 else f"INT64_C({v})"
    if ctype == "int32_t" and v == -2 ** 31:
        return "INT32_MIN"
    return str(v)


class DescWriter:
    """Collects the static arrays of one export; `graph(desc)` returns a macro holding its rnnf_graph_desc's fields
    (a branch is an element of its parent's array, the whole graph one struct: no unused static)."""

    def __init__(self, prefix: str, where: str):
        self.prefix, self.where = prefix, where
        self.lines: list[str] = []
        self.count = 0
        self.weight_bytes = 0

    def _name(self, what) -> str:
        self.count += 1
        return f"{self.prefix}_{what}{self.count}"

    def array(self, ctype, values, what="a", align=False) -> str:
        """A static const array of these values, or NULL when there are none (C has no empty arrays)."""
        flat = np.asarray(values).reshape(-1)
        if flat.size == 0:
            return "NULL"
        name = self._name(what)
        fmt = c_float if ctype == "float" else (lambda v: c_int(v, ctype))
        items = [fmt(v) for v in flat.tolist()]
        rows = ["    " + ", ".join(items[i:i + PER_LINE]) + "," for i in range(0, len(items), PER_LINE)]
        attr = f" {ALIGN}" if align else ""
        self.lines.append(f"static const {ctype} {name}[{flat.size}]{attr} = {{\n" + "\n".join(rows) + "\n};")
        if align:
            self.weight_bytes += flat.size * np.dtype(_NP[ctype]).itemsize
        return name

    def strings(self, values) -> str:
        name = self._name("s")
        items = ",\n".join("    " + (c_string(v) if v else "NULL") for v in values)
        self.lines.append(f"static const char *const {name}[{len(values)}] = {{\n{items}\n}};")
        return name

    def layers(self, node_name, layers) -> str:
        entries = []
        for k, lay in enumerate(layers):
            ptr = {key: (self.array("float", np.asarray(lay[key], np.float32), "w") if lay.get(key) is not None
                         else "NULL") for key in ("b_ih", "b_hh", "peepholes")}
            quant = ""
            if lay.get("weight_dtype", 0):  # the stored values and row scales the engine computes with
                ctype = "int8_t" if lay["layer"].weight_dtype == "int8" else "uint16_t"
                q = {key: ("NULL", "NULL") for key in ("ih", "hh", "hr")}
                for key, (values, scale) in lay["qweights"].items():
                    values = values if ctype == "int8_t" else np.asarray(values).view(np.uint16)
                    q[key[2:]] = (self.array(ctype, values, "q", align=True),
                                  "NULL" if scale is None else self.array("float", scale, "s"))
                for key in ("w_ih", "w_hh", "w_hr"):
                    ptr[key] = "NULL"
                quant = (f",\n     .weight_dtype = {lay['weight_dtype']}, "
                         + ", ".join(f".q_{k} = {v[0]}" for k, v in q.items()) + ", "
                         + ", ".join(f".s_{k} = {v[1]}" for k, v in q.items()))
            else:
                ptr.update({key: (self.array("float", np.asarray(lay[key], np.float32), "w") if lay.get(key) is not
                                  None else "NULL") for key in ("w_ih", "w_hh", "w_hr")})
            acts = []
            for d in range(2):
                per = lay["activations"][d] if d < len(lay["activations"]) else []
                row = [f"{{{int(c)}, {c_float(a)}, {c_float(b)}}}" for c, a, b in per[:3]]
                row += ["{0, 0.0f, 0.0f}"] * (3 - len(row))
                acts.append("{" + ", ".join(row) + "}")
            entries.append(
                f"    {{.cell = {lay['cell']}, .n_dirs = {lay['n_dirs']}, .reverse = {lay['reverse']}, "
                f".input_size = {lay['input_size']}, .hidden_size = {lay['hidden_size']}, "
                f".proj_size = {lay['proj_size']},\n"
                f"     .w_ih = {ptr['w_ih']}, .w_hh = {ptr['w_hh']}, .b_ih = {ptr['b_ih']}, .b_hh = {ptr['b_hh']}, "
                f".peepholes = {ptr['peepholes']}, .w_hr = {ptr['w_hr']},\n"
                f"     .act = {{{', '.join(acts)}}},\n"
                f"     .clip = {c_float(lay['clip'])}, .input_forget = {lay['input_forget']}, "
                f".linear_before_reset = {lay['linear_before_reset']}{quant}}}")
        name = self._name("layers")
        self.lines.append(f"static const rnnf_layer_desc {name}[{len(layers)}] = {{\n" + ",\n".join(entries) + "\n};")
        return name

    def graph(self, desc: dict) -> str:
        for op, name, *_ in desc["nodes"]:
            if op == HOST_OP:
                raise FormatError(f"{self.where}: {name} has no C kernel (rnnfast runs it through onnx.reference); "
                                  f"export-c cannot write it")
        stored = desc.get("quantized") or {}
        for op, name, ins, *_ in desc["nodes"]:
            for k, t in enumerate(ins):
                if t in stored and not (op == MATMUL_OP and k == 1 and desc["tensors"][t][1] == 2):
                    raise FormatError(f"{self.where}: {name} reads the constant "
                                      f"{desc['tensors'][t][5]!r} stored as {stored[t][0].dtype}: export-c has no "
                                      f"kernel that reads a quantized {OP_NAMES[op]} weight; export the model "
                                      f"quantized with scope 'recurrent' (the recurrent layers only), or run its "
                                      f".rnnf 2 file with the C library")
        subs = [self.graph(sub) for sub in desc["subgraphs"]]
        sub_name = "NULL"
        if subs:
            sub_name = self._name("branches")
            self.lines.append(f"static const rnnf_graph_desc {sub_name}[{len(subs)}] = {{\n" +
                              ",\n".join(f"    {{{s}}}" for s in subs) + "\n};")
        tensors = []
        for t, (dtype, rank, dims_at, data, alias_of, name) in enumerate(desc["tensors"]):
            if t in stored:  # the values as stored, widened by the MatMul at each run
                values, scale = stored[t]
                ctype = "int8_t" if values.dtype == np.int8 else "uint16_t"
                ptr = self.array(ctype, values if ctype == "int8_t" else values.view(np.uint16), "q", align=True)
                scales = "NULL" if scale is None else self.array("float", scale, "s")
                kind = 2 if ctype == "int8_t" else 1  # rnnf_weight_dtype
                tensors.append(f"    {{{dtype}, {rank}, {dims_at}, {ptr}, {alias_of}, {c_string(name)}, {kind}, "
                               f"{scales}}}")
                continue
            ptr = "NULL" if data is None else self.array(CTYPES[dtype], np.asarray(data), "c", align=True)
            tensors.append(f"    {{{dtype}, {rank}, {dims_at}, {ptr}, {alias_of}, {c_string(name)}, 0, NULL}}")
        t_name = self._name("tensors")
        self.lines.append(f"static const rnnf_tensor_desc {t_name}[{len(tensors)}] = {{\n" + ",\n".join(tensors) +
                          "\n};")
        nodes = []
        for op, name, ins, outs, ia, fa, lay in desc["nodes"]:
            lay_name = self.layers(name, lay) if lay else "NULL"
            nodes.append(f"    {{.op = {op}, .name = {c_string(name)}, .n_in = {len(ins)}, .n_out = {len(outs)}, "
                         f".in = {self.array('int32_t', ins, 'i')}, .out = {self.array('int32_t', outs, 'o')},\n"
                         f"     .n_iattr = {len(ia)}, .n_fattr = {len(fa)}, "
                         f".iattr = {self.array('int64_t', ia, 'ia')}, "
                         f".fattr = {self.array('float', np.asarray(fa, np.float32), 'fa')}, .layers = {lay_name}, "
                         f".n_layers = {len(lay) if lay else 0}}}")
        n_name = self._name("nodes")
        self.lines.append(f"static const rnnf_node_desc {n_name}[{len(nodes)}] = {{\n" + ",\n".join(nodes) + "\n};")
        checks = desc["checks"]
        fields = {
            "n_tensors": len(tensors), "tensors": t_name, "n_nodes": len(nodes), "nodes": n_name,
            "n_inputs": len(desc["inputs"]), "n_outputs": len(desc["outputs"]),
            "inputs": self.array("int32_t", desc["inputs"], "in"),
            "outputs": self.array("int32_t", desc["outputs"], "out"),
            "n_syms": len(desc["syms"]), "sym_input": self.array("int32_t", [s[0] for s in desc["syms"]], "si"),
            "sym_axis": self.array("int32_t", [s[1] for s in desc["syms"]], "sa"),
            "n_dims": len(desc["dim_start"]) - 1, "dim_start": self.array("int32_t", desc["dim_start"], "ds"),
            "prog": self.array("int64_t", desc["prog"], "prog"), "n_checks": len(checks),
            "check_a": self.array("int32_t", [c[0] for c in checks], "ca"),
            "check_b": self.array("int32_t", [c[1] for c in checks], "cb"),
            "check_node": self.array("int32_t", [c[2] for c in checks], "cn"),
            "check_kind": self.array("int32_t", [c[3] if len(c) > 3 else 0 for c in checks], "ck"),
            "check_name": self.strings([c[4] if len(c) > 4 else None for c in checks]) if checks else "NULL",
            "n_subgraphs": len(subs), "subgraphs": sub_name,
        }
        defaults = desc.get("input_defaults") or []
        if any(d != -1 for d in defaults):  # inputs a call may leave out (rnnf_graph_desc.input_default)
            fields["input_default"] = self.array("int32_t", defaults, "idef")
        g_name = self._name("graph").upper() + "_FIELDS"
        self.lines.append(f"#define {g_name} " + ", \\\n    ".join(f".{k} = {v}" for k, v in fields.items()))
        return g_name


_NP = {"float": np.float32, "int64_t": np.int64, "int32_t": np.int32, "uint8_t": np.uint8, "int8_t": np.int8,
       "uint16_t": np.uint16}
