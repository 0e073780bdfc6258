"""C code export of a whole graph: any model the C executor runs, as standalone C99 with no malloc.

    from rnnfast.exporters.c_graph import export_c_graph
    export_c_graph(rnnfast.load("vad.onnx"), "out/", prefix="vad", dims={"batch": 1, "chunk": 512})

writes out/vad.h and out/vad.c (the graph description and every weight as static const data) and out/rnnf_runtime/
(the library's own executor, op and kernel sources, _c_runtime.py). The exported code runs one shape: every size
the graph leaves open (batch, time) is fixed at export by `dims`, so the plan is made once and all the memory it
needs is one byte array of a size known now, inside the caller's `<prefix>_state` struct:

    static vad_state st;                       (about <PREFIX>_MEM_BYTES; do not copy it once initialized)
    vad_init(&st);                             packs the weights into st, plans, zeroes the stream state
    vad_run(&st, input, state, sr, output, stateN);    one call of the graph, every input and output given
    vad_step(&st, input, sr, output);          graphs with state loops: the state inputs come from st and the state
                                               outputs go back into it (as onnxruntime's run with them fed back)
    vad_reset(&st);

An input with a default (PyTorch's h0 and c0: zeros; an ONNX input backed by an initializer: its value) may be given
as NULL to vad_run or vad_step, which then uses the default; the header marks such inputs "optional".

Build: gcc -std=c99 -O2 [-mavx2 -mfma -mf16c [-mavx512f -mavx512vl -mavx512dq -mavx512bw]] -Iout/rnnf_runtime
-Iout/rnnf_runtime/src -Iout/rnnf_runtime/include out/vad.c out/rnnf_runtime/*.c -lm. The kernel table (AVX-512,
AVX2, NEON or the portable reference) follows the compiler's target. Functions return 0 (RNNF_OK) or an rnnf_status; `<prefix>_error(st)` says what went wrong, naming the node.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FormatError
from ..graph.runtime import compiled_graph_of
from ._c_graph_desc import CTYPES, DescWriter
from ._c_runtime import include_dirs, write_runtime

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class GraphCExport:
    """What export_c_graph wrote, and the shapes it fixed."""

    header: Path
    source: Path
    units: list  # the runtime's compilation units
    includes: list  # directories a build passes with -I
    inputs: dict  # name -> (shape, numpy dtype), in the graph's order
    outputs: dict
    states: dict  # state input -> the output that is its next value (step exists when not empty)
    mem_bytes: int
    weight_bytes: int
    c_names: dict = field(default_factory=dict)  # graph name -> C parameter name
    test: Path = None  # <prefix>_test.c (None: see test_note)
    test_note: str = ""  # why there is no test program
    test_feeds: dict = field(default_factory=dict)  # its embedded inputs and expected outputs, by graph name
    expected: dict = field(default_factory=dict)
    optional: list = field(default_factory=list)  # the inputs a call may give as NULL (their default)


def _c_ident(name: str, taken: set) -> str:
    base = re.sub(r"[^A-Za-z0-9_]", "_", name) or "t"
    if base[0].isdigit():
        base = "t_" + base
    ident, k = base, 2
    while ident in taken:
        ident, k = f"{base}_{k}", k + 1
    taken.add(ident)
    return ident


def _shapes(graph, names, dims, where):
    from ..graph.dims import Dim

    out = {}
    for name in names:
        v = graph.values[name]
        shape = []
        for d in v.shape:
            if isinstance(d, Dim):
                missing = sorted(d.symbols() - set(dims))
                if missing:
                    raise ValueError(f"{where}: {name!r} has the size {d}; the exported code runs one shape: give "
                                     f"{', '.join(repr(m) for m in missing)} in dims (--dim NAME=SIZE)")
                d = d.evaluate(dims)
            if int(d) < 0:
                raise ValueError(f"{where}: {name!r} would have the size {int(d)} with dims {dims}")
            shape.append(int(d))
        out[name] = (tuple(shape), np.dtype(v.dtype))
    return out


def export_c_graph(model, out_dir, prefix: str = "model", dims: dict | None = None, states=None,
                   where: str = "model", lengths: bool = False, test: bool = True) -> GraphCExport:
    """Write `<prefix>.h`, `<prefix>.c` and `rnnf_runtime/` into out_dir (see the module docstring); `lengths`:
    the model's variant with a sequence_lens input (graph/runtime.py compiled_graph_of). With `test`, also
    `<prefix>_test.c` (_c_graph_test.py): embedded inputs and the outputs rnnfast computes for them now, checked by
    the compiled code; left out, saying why in test_note, when the model does not run on the generated inputs.

    dims: the size of every symbolic dimension of the inputs ({"batch": 1, "chunk": 512}); batch >= 1.
    states: {state input: output} for `<prefix>_step`; by default the pairs rnnfast finds by name and shape
    (rnnfast.graph.stream.find_state_pairs); {} for none."""
    from .. import _core
    from ..graph.stream import find_state_pairs

    if not isinstance(prefix, str) or not _IDENT.match(prefix):
        raise ValueError(f"prefix must be a C identifier (letters, digits, _), got {prefix!r}")
    compiled = compiled_graph_of(model, where, "export-c", lengths)
    graph, desc = compiled.graph, compiled.desc
    dims = {str(k): int(v) for k, v in (dims or {}).items()}
    for k, v in dims.items():
        if v < 1:
            raise ValueError(f"{where}: dims[{k!r}] = {v}; every size must be >= 1")
    _default_dims(graph, desc, dims)
    inputs = _shapes(graph, graph.inputs, dims, where)
    outputs = _shapes(graph, graph.outputs, dims, where)
    for name, (_, dt) in {**inputs, **outputs}.items():
        if dt not in (np.dtype(np.float32), np.dtype(np.int64), np.dtype(np.int32), np.dtype(np.bool_),
                      np.dtype(np.int8)):
            raise FormatError(f"{where}: {name!r} is {dt}, which the exported code has no type for")
    pairs = dict(find_state_pairs(graph) if states is None else states)
    for i, o in pairs.items():
        if i not in inputs or o not in outputs or inputs[i] != outputs[o]:
            raise ValueError(f"{where}: state pair {i!r} -> {o!r} is not an input and an output of the same shape and "
                             f"type (inputs {list(inputs)}, outputs {list(outputs)})")
    writer = DescWriter(prefix, where)
    fields = writer.graph(desc)
    mem = _core.graph_pool_bytes(desc, [list(s) for s, _ in inputs.values()], where)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    units = write_runtime(out)
    taken = {"st"}
    names = {n: _c_ident(n, taken) for n in list(inputs) + [o for o in outputs if o not in inputs]}
    header = out / f"{prefix}.h"
    source = out / f"{prefix}.c"
    optional = {n: d for n, d in zip(graph.inputs, desc.get("input_defaults") or ()) if d != -1}
    header.write_text(_header(prefix, inputs, outputs, pairs, names, mem, where, optional))
    source.write_text(_source(prefix, inputs, outputs, pairs, names, writer, fields, optional))
    written = GraphCExport(header, source, units, include_dirs(out), inputs, outputs, pairs, mem,
                           writer.weight_bytes, names, optional=list(optional))
    if test:
        _write_test(written, compiled, prefix, out, where)
    return written


def _write_test(written: GraphCExport, compiled, prefix, out: Path, where):
    from ._c_graph_test import test_feeds, test_program

    feeds = test_feeds(written.inputs, written.states)
    try:
        got = compiled.run([feeds[n] for n in written.inputs], 1)
    except ValueError as e:
        written.test_note = f"no test program: the model does not run on generated inputs ({e})"
        return
    expected = dict(zip(written.outputs, got))
    if not all(np.all(np.isfinite(v)) for v in expected.values() if v.dtype.kind == "f"):
        written.test_note = "no test program: the outputs on generated inputs are not finite"
        return
    written.test = out / f"{prefix}_test.c"
    written.test.write_text(test_program(prefix, written.inputs, written.outputs, written.states, written.c_names,
                                         _ctype, feeds, expected, where))
    written.test_feeds, written.expected = feeds, expected


def _default_dims(graph, desc, dims):
    """A size only an input with a default value has (an ONNX initializer-backed input's own axis, "h0:1") is, unless
    dims gives it, the default's: the exported code then runs with the input left out or given at that size."""
    from ..graph.dims import Dim

    for name, d in zip(graph.inputs, desc.get("input_defaults") or ()):
        if d < 0:
            continue
        value = np.asarray(desc["tensors"][d][3])
        for axis, size in enumerate(graph.values[name].shape):
            if isinstance(size, Dim) and len(size.symbols()) == 1 and Dim.symbol(next(iter(size.symbols()))) == size:
                dims.setdefault(next(iter(size.symbols())), int(value.shape[axis]))


def _ctype(dt) -> str:
    from ..graph.compile import DTYPE_CODES

    return CTYPES[DTYPE_CODES[np.dtype(dt)]]


def _shape_str(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _params(inputs, outputs, names, skip_in=(), skip_out=()) -> str:
    ps = [f"const {_ctype(dt)} *{names[n]}" for n, (s, dt) in inputs.items() if n not in skip_in]
    ps += [f"{_ctype(dt)} *{names[n]}" for n, (s, dt) in outputs.items() if n not in skip_out]
    return ", ".join(["%s_state *st" % "{P}"] + ps)


def _header(prefix, inputs, outputs, pairs, names, mem, where, optional) -> str:
    P = prefix.upper()
    lines = [f"/* {prefix}.h: {where} exported by rnnfast export-c as a whole graph (rnnfast/exporters/c_graph.py).",
             " *", " * Fixed shapes (row-major, contiguous):"]
    for n, (s, dt) in inputs.items():
        lines.append(f" *   input  {n!r}: {dt} {_shape_str(s)}" + (f" (state, next value: {pairs[n]!r})"
                                                                   if n in pairs else "")
                     + (f" (optional: NULL means {'zeros' if optional[n] == -2 else 'its default value'})"
                        if n in optional else ""))
    for n, (s, dt) in outputs.items():
        lines.append(f" *   output {n!r}: {dt} {_shape_str(s)}")
    lines += [" * All memory is inside the state struct: no malloc, no writable globals. Do not copy a state once it",
              " * is initialized (it points into itself). Functions return 0 or an rnnf_status (rnnfast/rnnf.h).",
              " */",
              f"#ifndef {P}_H", f"#define {P}_H", "", "#include <stddef.h>", "#include <stdint.h>", "",
              '#include "pool.h"', '#include "rnnfast/rnnf.h"', "",
              "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
              f"#define {P}_MEM_BYTES {mem}u /* packed weights, plans and intermediates */", ""]
    for n, (s, dt) in {**inputs, **outputs}.items():
        lines.append(f"#define {P}_{names[n].upper()}_SIZE {int(np.prod(s, dtype=np.int64))}")
    lines += ["", "typedef struct {", "    rnnf_pool pool;", "    struct rnnf_graph *graph;",
              "    struct rnnf_graph_state *run;", "    int parity; /* which state buffer holds the current state */"]
    for i in pairs:
        s, dt = inputs[i]
        lines.append(f"    {_ctype(dt)} {names[i]}[2][{max(int(np.prod(s, dtype=np.int64)), 1)}];")
    lines += ["    rnnf_error error;", f"    unsigned char mem[{P}_MEM_BYTES + 64];", f"}} {prefix}_state;", "",
              f"int {prefix}_init({prefix}_state *st);",
              f"int {prefix}_run({_params(inputs, outputs, names).replace('{P}', prefix)});"]
    if pairs:
        step = _params(inputs, outputs, names, pairs, pairs.values()).replace("{P}", prefix)
        lines.append(f"int {prefix}_step({step});")
        for i in pairs:
            lines.append(f"/* the current value of state {i!r} (what the next step reads) */")
            lines.append(f"const {_ctype(inputs[i][1])} *{prefix}_state_{names[i]}(const {prefix}_state *st);")
    lines += [f"void {prefix}_reset({prefix}_state *st);",
              f"const char *{prefix}_error(const {prefix}_state *st);", "", "#ifdef __cplusplus", "}", "#endif", "",
              "#endif", ""]
    return "\n".join(lines)


def _tensors(var, items, names, data_of, optional=()) -> list[str]:
    """C statements filling var[k] with the k-th tensor's rnnf_tensor (its fixed shape, data from data_of(name));
    an `optional` one given as NULL is left out (RNNF_DT_NONE: the executor uses its default)."""
    from ..graph.compile import DTYPE_CODES

    lines = []
    for k, (n, (s, dt)) in enumerate(items.items()):
        dims = ", ".join(str(d) for d in s) or "0"
        lines.append(f"    {var}[{k}] = (rnnf_tensor){{{DTYPE_CODES[np.dtype(dt)]}, {len(s)}, {{{dims}}}, "
                     f"(void *){data_of(n)}}};")
        if n in optional:
            lines.append(f"    if (!{data_of(n)}) {var}[{k}].dtype = RNNF_DT_NONE;")
    return lines


def _source(prefix, inputs, outputs, pairs, names, writer, fields, optional) -> str:
    P = prefix.upper()
    n_in, n_out = len(inputs), len(outputs)
    lines = [f"/* {prefix}.c: the graph description and its weights (static const), and the entry points of "
             f"{prefix}.h. Generated by rnnfast export-c. */",
             "#include <math.h>", "#include <string.h>", "", f'#include "{prefix}.h"', '#include "graph/plan.h"', "",
             "#if defined(__GNUC__)", "#define RNNF_EXPORT_ALIGN __attribute__((aligned(64)))", "#else",
             "#define RNNF_EXPORT_ALIGN", "#endif", ""]
    lines += writer.lines
    lines += ["", f"static const rnnf_graph_desc {prefix}_desc = {{{fields}}};", ""]
    lines += [f"static int {prefix}_fail({prefix}_state *st, rnnf_status status)",
              "{", "    if (!st->error.message[0]) {",
              "        strncpy(st->error.message, rnnf_status_str(status), sizeof st->error.message - 1);",
              "        st->error.message[sizeof st->error.message - 1] = 0;", "    }", "    return (int)status;", "}",
              "",
              f"static int {prefix}_call({prefix}_state *st, const rnnf_tensor *in, rnnf_tensor *out)", "{",
              f"    void *data[{n_out}];", "    rnnf_status status;", "    int k;",
              "    st->error.message[0] = 0;",
              f"    if (!st->run) return {prefix}_fail(st, RNNF_ERR_ARG);",
              f"    for (k = 0; k < {n_out}; k++) data[k] = out[k].data;",
              "    /* planned at init: this checks the shapes and sets the outputs' (their data pointers NULL) */",
              "    status = rnnf_graph_prepare(st->run, in, out, &st->error);",
              f"    for (k = 0; k < {n_out}; k++) out[k].data = data[k];",
              "    if (status == RNNF_OK) status = rnnf_graph_run(st->run, in, out, 1, &st->error);",
              f"    return status == RNNF_OK ? 0 : {prefix}_fail(st, status);", "}", "",
              f"void {prefix}_reset({prefix}_state *st)", "{"]
    for i in pairs:
        lines.append(f"    memset(st->{names[i]}, 0, sizeof st->{names[i]});")
    lines += ["    st->parity = 0;", "}", "",
              f"const char *{prefix}_error(const {prefix}_state *st) {{ return st->error.message; }}", "",
              f"int {prefix}_init({prefix}_state *st)", "{",
              f"    rnnf_tensor in[{max(n_in, 1)}], out[{n_out}];", "    rnnf_status status;",
              "    const size_t skip = (size_t)(-(uintptr_t)st->mem & 63u);",
              "    st->error.message[0] = 0;", "    st->graph = NULL;", "    st->run = NULL;",
              "    st->pool.base = st->mem + skip;", f"    st->pool.size = {P}_MEM_BYTES;", "    st->pool.used = 0;", "    st->pool.short_by = 0;",
              f"    {prefix}_reset(st);",
              f"    status = rnnf_graph_create_in(&{prefix}_desc, &st->pool, &st->graph, &st->error);",
              "    if (status == RNNF_OK) status = rnnf_graph_state_create_in(st->graph, &st->pool, &st->run);"]
    lines += _tensors("in", inputs, names, lambda n: "NULL")
    lines += _tensors("out", outputs, names, lambda n: "NULL")
    lines += ["    if (status == RNNF_OK) status = rnnf_graph_prepare(st->run, in, out, &st->error);",
              "    if (status != RNNF_OK) st->run = NULL;",
              f"    return status == RNNF_OK ? 0 : {prefix}_fail(st, status);", "}", "",
              f"int {prefix}_run({_params(inputs, outputs, names).replace('{P}', prefix)})", "{",
              f"    rnnf_tensor in[{max(n_in, 1)}], out[{n_out}];"]
    lines += _tensors("in", inputs, names, lambda n: names[n], optional)
    lines += _tensors("out", outputs, names, lambda n: names[n])
    lines += [f"    return {prefix}_call(st, in, out);", "}", ""]
    if pairs:
        nxt = {o: i for i, o in pairs.items()}
        step = _params(inputs, outputs, names, pairs, pairs.values()).replace("{P}", prefix)
        lines += [f"int {prefix}_step({step})",
                  "{", f"    rnnf_tensor in[{max(n_in, 1)}], out[{n_out}];", "    int status;"]
        lines += _tensors("in", inputs, names,
                          lambda n: f"st->{names[n]}[st->parity]" if n in pairs else names[n],
                          [n for n in optional if n not in pairs])
        lines += _tensors("out", outputs, names,
                          lambda n: f"st->{names[nxt[n]]}[1 - st->parity]" if n in nxt else names[n])
        lines += [f"    status = {prefix}_call(st, in, out);", "    if (status == 0) st->parity = 1 - st->parity;",
                  "    return status;", "}", ""]
        for i in pairs:
            lines += [f"const {_ctype(inputs[i][1])} *{prefix}_state_{names[i]}(const {prefix}_state *st)",
                      f"{{ return st->{names[i]}[st->parity]; }}", ""]
    return "\n".join(lines)
