"""C code export: a Pipeline as one C99 header + source with static weights, for embedded builds.

    from rnnfast.exporters.c import export_c
    export_c(pipeline, "out/", prefix="kws")        # writes out/kws.h, out/kws.c and out/kws_test.c
    python -m rnnfast.exporters.c MODEL -o DIR [--prefix NAME] [--quantize int8|fp16]

The generated code has no malloc and no global mutable state (all of it lives in the `<prefix>_state` struct the
caller owns), computes in float32 with expf/tanhf from <math.h>, and runs one sequence (batch 1) per call.
`<prefix>_step` exists only when every layer runs forward in time; `<prefix>_run` handles every pipeline, and
needs caller-provided scratch (`<PREFIX>_RUN_SCRATCH(seq_len)` floats, 0 when no layer runs in reverse).
docs/export-c.md is the user guide, with code size and speed figures.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, replace

import numpy as np

from ..errors import FormatError
from ..pipeline import DenseStage, EmbeddingStage, Pipeline, RecurrentStage, quantized_stages
from ..quantize import check_weight_dtype
from ._c_arrays import HALF_TO_FLOAT, QUANTIZE, check_finite, matrix_2d, float_literal
from ._c_cells import Emitter, dense_fn, layer_step
from ._c_math import CLIP, SIGMOID, Activations
from ._c_test import test_program

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class CExport:
    """What export_c wrote, and the test vectors embedded in the test program."""

    header: str
    source: str
    test: str
    test_input: np.ndarray  # [n_seq, seq_len, input_size] float, or [n_seq, seq_len] int ids
    expected: np.ndarray  # [n_seq, seq_len, output_size], or [n_seq, output_size] when no sequence is returned
    has_step: bool
    run_scratch_per_step: int  # floats of scratch per time step that <prefix>_run needs


def export_c(pipeline: Pipeline, out_dir, prefix: str = "model", quantize=None, test_input=None,
             test_seq_len: int = 6, test_sequences: int = 2, seed: int = 0) -> CExport:
    """Write `<prefix>.h`, `<prefix>.c` and `<prefix>_test.c` into out_dir.

    quantize: None (the weights as the pipeline stores them: float32, or a quantized layer's own int8 / float16),
    "int8" (per-output-row symmetric scales, float accumulation) or "fp16" (half storage, float32 compute), by
    rnnfast/quantize.py's rule, as Model.quantize: the recurrent matrices only, while embeddings, biases,
    peepholes and Dense weights stay float32.
    test_input: what the test program runs, in the chain's own layout (as its model's run takes it); by
    default `test_sequences` random sequences of `test_seq_len` steps. Its expected outputs are rnnfast's run of
    the pipeline (with the weights as stored, when quantized), computed now.
    """
    if not isinstance(pipeline, Pipeline):
        raise TypeError(f"export_c takes a chain (rnnfast.pipeline.Pipeline, as Model.to_pipeline() gives), got "
                        f"{type(pipeline).__name__}")
    if not isinstance(prefix, str) or not _IDENT.match(prefix):
        raise ValueError(f"prefix must be a C identifier (letters, digits, _), got {prefix!r}")
    if quantize not in QUANTIZE:
        raise ValueError(f"quantize must be one of {QUANTIZE}, got {quantize!r}")
    if quantize:  # the stored weights Model.quantize's chain computes with too
        pipeline = replace(pipeline, stages=quantized_stages(pipeline.stages, check_weight_dtype(quantize)))
    gen = _Generator(pipeline, prefix)
    header, source = gen.header(), gen.source()
    internal = set(re.findall(r"^static (?:inline )?(?:const )?\w+ (\w+)[\[(]", source, re.M))
    clash = sorted(internal & {f"{prefix}_{n}" for n in ("init", "reset", "step", "run", "state")})
    if clash:
        raise ValueError(f"prefix {prefix!r} makes {clash[0]}, a name the generated code uses inside; "
                         f"choose another prefix")
    x, expected = _test_vectors(pipeline, test_input, test_seq_len, test_sequences, seed)
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, f"{prefix}{suffix}") for suffix in (".h", ".c", "_test.c")]
    texts = [header, source, test_program(prefix, pipeline, x, expected, gen.storage_label, gen.has_step)]
    for path, text in zip(paths, texts):
        with open(path, "w") as f:
            f.write(text)
    return CExport(*paths, test_input=x, expected=expected, has_step=gen.has_step,
                   run_scratch_per_step=gen.scratch_per_step)


def _test_vectors(p: Pipeline, x, seq_len, n_seq, seed):
    """(input [n_seq, seq_len, ...], expected [n_seq, ...]) with one sequence per row."""
    if x is None:
        rng = np.random.default_rng(seed)
        if p.takes_ids:
            emb = p.stages[0]
            x = rng.integers(1 if emb.mask_zero else 0, emb.table.shape[0], (seq_len, n_seq))
            if emb.mask_zero and seq_len > 2:
                x[seq_len // 2, 0] = 0  # a masked step in the middle of a sequence, and a padded tail
                x[-1, n_seq - 1] = 0
        else:
            x = rng.standard_normal((seq_len, n_seq, p.input_size)).astype(np.float32)
        if p.batch_first:
            x = np.swapaxes(x, 0, 1)
    from ..graph.chain import ChainGraph

    y = ChainGraph.of(p).run({"input": x})[0]
    if not np.all(np.isfinite(y)):
        raise FormatError(f"{p.source or p.name or 'chain'}: the outputs on the test input are not finite; "
                          f"give a test_input the model handles")
    x = np.asarray(x)
    if not p.batch_first:
        x = np.swapaxes(x, 0, 1)
        if y.ndim == 3:
            y = np.swapaxes(y, 0, 1)
    x = np.ascontiguousarray(x.astype(np.int32) if p.takes_ids else x.astype(np.float32))
    return x, np.ascontiguousarray(y)


@dataclass
class _Op:
    kind: str  # embed, layer, dense, final
    stage: object = None
    layer: object = None
    index: int = 0  # layer or dense number
    masked: bool = False
    zero_on_mask: bool = False
    sequence: bool = True  # runs per time step (False: once, on the final vector)
    width: int = 0  # features of the output


class _Generator:
    def __init__(self, p: Pipeline, prefix: str):
        self.p, self.prefix, self.P = p, prefix, prefix.upper()
        self.where = p.source or p.name or "chain"
        self.state_type = f"{prefix}_state"
        self.acts = Activations(self.where)
        self.em = Emitter(self.state_type, self.acts, self.where)
        self.ops = self._ops()
        self.layers = [op for op in self.ops if op.kind == "layer"]
        self.has_step = all(op.layer.direction == "forward" for op in self.layers)
        self.emb = p.stages[0] if p.takes_ids else None
        if self.emb is not None:
            check_finite("the embedding table", self.emb.table, self.where)
            if self.emb.table.shape[0] == 0 or self.emb.table.shape[1] == 0:
                raise FormatError(f"{self.where}: embedding {self.emb.name!r} has shape {self.emb.table.shape}; "
                                  f"C code export needs a non-empty table")
        self.step_fns = {}
        for op in self.ops:
            if op.kind == "layer":
                self.step_fns[op.index] = [layer_step(self.em, op.layer, op.index, d, op.masked, op.zero_on_mask)
                                           for d in range(op.layer.n_dirs)]
            elif op.kind == "dense":
                op.fn = dense_fn(self.em, op.stage, op.index)
        self.run_body, self.scratch_per_step = self._run_layerwise() if not self.has_step else (None, 0)

    def _ops(self) -> list:
        ops, masked, sequence, n_layers, n_dense = [], False, True, 0, 0
        for s in self.p.stages:
            if isinstance(s, EmbeddingStage):
                masked = s.mask_zero
                ops.append(_Op("embed", s, width=s.output_size))
            elif isinstance(s, RecurrentStage):
                for li, layer in enumerate(s.layers):
                    final = li == len(s.layers) - 1 and not s.return_sequences
                    ops.append(_Op("layer", s, layer, n_layers, masked, s.mask_zero_output and not final,
                                   width=layer.n_dirs * layer.output_size))
                    n_layers += 1
                if not s.return_sequences:
                    ops.append(_Op("final", s, s.layers[-1], n_layers - 1, sequence=False, width=s.output_size))
                    masked, sequence = False, False
            elif isinstance(s, DenseStage):
                ops.append(_Op("dense", s, index=n_dense, sequence=sequence, width=s.output_size))
                n_dense += 1
            else:
                raise FormatError(f"{self.where}: C code export does not handle a {type(s).__name__} stage")
        return ops

    # -- the public functions ---------------------------------------------------------------------------------

    @property
    def x_type(self) -> str:
        return "int32_t" if self.p.takes_ids else "float"

    def _dense_call(self, op, x, y) -> str:
        return f"{op.fn}({x}, {y});"

    @property
    def storage_label(self):
        """How the recurrent matrices are stored: None (float32), "int8", "fp16", or both joined by "+"."""
        return "+".join(sorted(self.em.storage)) or None

    def _step_body(self) -> list[str]:
        P, lines = self.P, []
        lines += [f"int {self.prefix}_step({self.state_type} *s, const {self.x_type} *x, float *y)", "{",
                  f"    if (s == NULL || x == NULL || y == NULL) return {P}_ERR_ARG;"]
        cur = "x"
        if self.emb is not None:
            lines += [f"    if (x[0] < 0 || x[0] >= {P}_VOCAB_SIZE) return {P}_ERR_ID;"]
            if self.emb.mask_zero:
                lines += ["    const int real = x[0] != 0;  /* id 0 masks the step */"]
            cur = "emb[x[0]]"
        compute = [op for op in self.ops if op.kind in ("layer", "dense")]
        for n, op in enumerate(compute):
            out = "y" if n == len(compute) - 1 else f"s->vec[{n % 2}]"
            if op.kind == "layer":
                arg = ", real" if op.masked else ""
                lines.append(f"    {self.step_fns[op.index][0]}(s, {cur}, {out}{arg});")
            else:
                lines.append(f"    {self._dense_call(op, cur, out)}")
            cur = out
        lines += [f"    return {P}_OK;", "}"]
        return lines

    def _run_layerwise(self):
        """Layer after layer over the whole sequence, through two scratch buffers of [seq_len][width]."""
        lines, n_buf, width = [], 0, 0
        seq_ops = [op for op in self.ops if op.kind != "embed"]
        cur = ("x", self.p.input_size)  # (pointer, row stride) of the current sequence
        vec, n_vec = None, 0
        for n, op in enumerate(seq_ops):
            last = n == len(seq_ops) - 1
            if op.kind == "final":
                L = op.layer
                out = "y" if last else f"s->vec[{n_vec % 2}]"
                n_vec += 1
                lines.append(f"    /* the final state of layer {op.index}, directions concatenated */")
                for d in range(L.n_dirs):
                    at = f"{d * L.output_size} + i" if d else "i"
                    lines.append(f"    for (int i = 0; i < {L.output_size}; i++) "
                                 f"{out}[{at}] = s->l{op.index}_h[{d}][i];")
                vec = out
                continue
            if not op.sequence:
                out = "y" if last else f"s->vec[{n_vec % 2}]"
                n_vec += 1
                lines.append(f"    {self._dense_call(op, vec, out)}")
                vec = out
                continue
            if last:
                out = "y"
            else:
                out = f"buf{n_buf % 2}"
                n_buf += 1
                width = max(width, op.width)
            src = self._seq_row(cur, "t")
            if op.kind == "dense":
                lines += [f"    for (int t = 0; t < seq_len; t++) "
                          f"{self._dense_call(op, src, f'{out} + (size_t)t * {op.width}')}"]
            else:
                L, P = op.layer, op.layer.output_size
                lines.append(f"    /* layer {op.index}: {L.cell.upper()} {L.direction} */")
                for d, fn in enumerate(self.step_fns[op.index]):
                    reverse = d == 1 or L.direction == "reverse"
                    loop = "for (int t = seq_len - 1; t >= 0; t--)" if reverse else "for (int t = 0; t < seq_len; t++)"
                    real = ", x[t] != 0" if op.masked else ""
                    dst = f"{out} + (size_t)t * {op.width}" + (f" + {d * P}" if d else "")
                    lines.append(f"    {loop} {fn}(s, {src}, {dst}{real});")
            cur = (out, op.width)
        self._buffers = min(n_buf, 2)
        return lines, self._buffers * width

    def _seq_row(self, cur, t) -> str:
        ptr, stride = cur
        if ptr == "x" and self.emb is not None:
            return f"emb[x[{t}]]"
        return f"{ptr} + (size_t){t} * {stride}"

    def _run(self) -> list[str]:
        P, lines = self.P, []
        lines += [f"int {self.prefix}_run({self.state_type} *s, const {self.x_type} *x, int seq_len, float *y, "
                  f"float *scratch)", "{"]
        need_scratch = self.scratch_per_step > 0
        if not need_scratch:
            lines.append("    (void)scratch;  /* this model needs none */")
        lines.append(f"    if (s == NULL || x == NULL || y == NULL{' || scratch == NULL' if need_scratch else ''}"
                     f" || seq_len < 1) return {P}_ERR_ARG;")
        if self.emb is not None:
            lines += ["    for (int t = 0; t < seq_len; t++)  /* every id checked before the state changes */",
                      f"        if (x[t] < 0 || x[t] >= {P}_VOCAB_SIZE) return {P}_ERR_ID;"]
        lines.append(f"    {self.prefix}_reset(s);")
        if self.has_step:
            stride = 1 if self.emb is not None else self.p.input_size
            y_at = f"y + (size_t)t * {self.p.output_size}" if self.p.returns_sequence else "y"
            lines += ["    /* every layer runs forward: a run is a step per time step */",
                      "    for (int t = 0; t < seq_len; t++)",
                      f"        {self.prefix}_step(s, x + (size_t)t * {stride}, {y_at});"]
        else:
            w = self.scratch_per_step // max(self._buffers, 1)
            if self._buffers >= 1:
                lines.append("    float *const buf0 = scratch;")
            if self._buffers == 2:
                lines.append(f"    float *const buf1 = scratch + (size_t)seq_len * {w};")
            lines += self.run_body
        lines += [f"    return {P}_OK;", "}"]
        return lines

    # -- the files ---------------------------------------------------------------------------------------------

    def _state_struct(self) -> list[str]:
        lines = ["typedef struct {", "    /* recurrent state: h (and c for LSTM) of every layer, per direction */"]
        gates = hidden = gates_h = 1
        for op in self.layers:
            L, k = op.layer, op.index
            lines.append(f"    float l{k}_h[{L.n_dirs}][{L.output_size}];")
            if L.cell == "lstm":
                lines.append(f"    float l{k}_c[{L.n_dirs}][{L.hidden_size}];")
            gates = max(gates, L.n_gates * L.hidden_size)
            if L.cell == "gru" and L.linear_before_reset:
                gates_h = max(gates_h, 3 * L.hidden_size)
            if L.w_hr is not None or (L.cell == "gru" and not L.linear_before_reset):
                hidden = max(hidden, L.hidden_size)
        width = max([op.width for op in self.ops] + [1])
        lines += ["    /* per-step scratch */", f"    float gates[{gates}];"]
        if any(op.layer.cell == "gru" and op.layer.linear_before_reset for op in self.layers):
            lines.append(f"    float gates_h[{gates_h}];  /* GRU linear_before_reset: h R^T + Rb */")
        if any(op.layer.w_hr is not None or (op.layer.cell == "gru" and not op.layer.linear_before_reset)
               for op in self.layers):
            lines.append(f"    float cell[{hidden}];  /* LSTM projection input, or GRU r * h */")
        if self.em.qacc_size:
            lines.append(f"    float qacc[{self.em.qacc_size}];  /* int8 products before the row scale */")
        lines += [f"    float vec[2][{width}];  /* between stages */", f"}} {self.state_type};"]
        return lines

    def _describe(self) -> list[str]:
        p, out = self.p, []
        if self.emb is not None:
            out.append(f"Embedding {self.emb.table.shape[0]} ids -> {self.emb.output_size}"
                       f"{', id 0 masks the step (Keras mask_zero)' if self.emb.mask_zero else ''}")
        for op in self.ops:
            if op.kind == "layer":
                L = op.layer
                opts = [f"clip {L.clip:g}" if L.clip is not None else "",
                        "peepholes" if L.peepholes is not None else "",
                        "input_forget" if L.input_forget else "",
                        f"projection {L.proj_size}" if L.w_hr is not None else "",
                        ("linear_before_reset" if L.linear_before_reset else "reset before product")
                        if L.cell == "gru" else "",
                        "activations " + "/".join(a.name for a in L.activations[0])]
                out.append(f"{L.cell.upper()} {L.direction}: {L.input_size} -> hidden {L.hidden_size}"
                           f"{' x2' if L.n_dirs == 2 else ''} ({', '.join(o for o in opts if o)})")
            elif op.kind == "final":
                out.append("  (final state only, directions concatenated)")
            elif op.kind == "dense":
                out.append(f"Dense {op.stage.input_size} -> {op.stage.output_size} {op.stage.activation}"
                           f"{'' if op.sequence else ' (once, on the final state)'}")
        return out

    def _n_params(self) -> int:
        n = 0
        for s in self.p.stages:
            if isinstance(s, EmbeddingStage):
                n += s.table.size
            elif isinstance(s, DenseStage):
                n += s.weight.size + (0 if s.bias is None else s.bias.size)
            else:
                for L in s.layers:
                    n += sum(a.size for a in (L.w_ih, L.w_hh, L.b_ih, L.b_hh, L.peepholes, L.w_hr) if a is not None)
        return n

    def header(self) -> str:
        p, P, pre = self.p, self.P, self.prefix
        x_doc = (f"int32_t ids[seq_len], ids in [0, {P}_VOCAB_SIZE)" if self.emb is not None
                 else f"float x[seq_len][{P}_INPUT_SIZE]")
        y_doc = (f"float y[seq_len][{P}_OUTPUT_SIZE]" if p.returns_sequence
                 else f"float y[{P}_OUTPUT_SIZE] (the output after the last step)")
        kinds = {"int8": "int8 with a float32 scale per output row (float accumulation)",
                 "fp16": "IEEE half bit patterns, widened to float32 at use"}
        weights = ("float32" if not self.em.storage else
                   "recurrent matrices " + " or ".join(kinds[k] for k in sorted(self.em.storage))
                   + ", everything else float32")
        step_doc = ([f" *   int {pre}_step({self.state_type} *s, const {self.x_type} *x, float *y);",
                     " *       one time step: x is one step's input, y receives that step's output"
                     + ("" if p.returns_sequence
                        else " (the output the\n *       model would give if the sequence ended here)")
                     + "; the state carries to the next call.",
                     f" *       {pre}_run leaves the state where a step can continue it."]
                    if self.has_step else
                    [f" *   (no {pre}_step: a layer runs in reverse time, so an output needs the whole sequence)"])
        lines = [
            f"/* {pre}.h: generated by rnnfast's C code export from {self.where}; re-export rather than edit.",
            " *",
            " * Model (one sequence per call, float32 compute):",
            *[f" *   {d}" for d in self._describe()],
            f" *   input : {x_doc}",
            f" *   output: {y_doc}",
            f" *   weights: {weights};",
            f" *            {self._n_params()} parameters, all in {pre}.c as static const arrays.",
            " *",
            " * API (every int result is {P}_OK or a negative {P}_ERR_* code; on an error nothing changed):".replace(
                "{P}", P),
            f" *   void {pre}_init({self.state_type} *s);   once, before first use: zeroes everything",
            f" *   void {pre}_reset({self.state_type} *s);  zero the recurrent state: the next step starts a sequence",
            *step_doc,
            f" *   int {pre}_run({self.state_type} *s, const {self.x_type} *x, int seq_len, float *y, float *scratch);",
            " *       a whole sequence from a zero state (seq_len >= 1); scratch holds "
            f"{P}_RUN_SCRATCH(seq_len) floats",
            " *       (may be NULL when that is 0).",
            " *",
            " * The caller provides: the state (a plain struct: static, on the stack or inside your own object), the",
            " * output buffer and the run scratch. x, y and scratch must not overlap. Nothing is allocated; there is",
            f" * no global mutable state, so separate {self.state_type}s may run in separate threads at once.",
            " * Checked at run time: NULL pointers, seq_len < 1" + (", token ids out of range." if self.emb is not None
                                                                  else "."),
            " * Everything else (shapes, weights, options) was fixed when this file was generated.",
            " * Build: C99; link with -lm (expf, tanhf" + (", erff" if self._uses("erff") else "") + ").",
            " */",
            f"#ifndef {P}_H", f"#define {P}_H", "", "#include <stddef.h>", "#include <stdint.h>", "",
            "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
            f"#define {P}_INPUT_SIZE {p.input_size}{'  /* one token id per step */' if self.emb is not None else ''}",
            f"#define {P}_OUTPUT_SIZE {p.output_size}",
        ]
        if self.emb is not None:
            lines.append(f"#define {P}_VOCAB_SIZE {self.emb.table.shape[0]}")
        lines += [
            f"#define {P}_TAKES_IDS {int(self.emb is not None)}",
            f"#define {P}_RETURNS_SEQUENCE {int(p.returns_sequence)}",
            f"#define {P}_HAS_STEP {int(self.has_step)}",
            f"/* floats of scratch {pre}_run needs for a sequence of seq_len steps */",
            f"#define {P}_RUN_SCRATCH(seq_len) ((size_t)(seq_len) * {self.scratch_per_step}u)",
            f"#define {P}_OK 0",
            f"#define {P}_ERR_ARG (-1)  /* a NULL pointer or seq_len < 1 */",
        ]
        if self.emb is not None:
            lines.append(f"#define {P}_ERR_ID (-2)  /* a token id outside [0, {P}_VOCAB_SIZE) */")
        lines += [""] + self._state_struct() + ["",
                                                f"void {pre}_init({self.state_type} *s);",
                                                f"void {pre}_reset({self.state_type} *s);"]
        if self.has_step:
            lines.append(f"int {pre}_step({self.state_type} *s, const {self.x_type} *x, float *y);")
        lines += [f"int {pre}_run({self.state_type} *s, const {self.x_type} *x, int seq_len, float *y, "
                  f"float *scratch);", "", "#ifdef __cplusplus", "}", "#endif", "", f"#endif /* {P}_H */", ""]
        return "\n".join(lines)

    def _uses(self, fn: str) -> bool:
        return any(fn in f for f in self.em.functions) or (fn == "erff" and any(
            n == "Gelu" for n, _, _ in self.acts.names))

    def source(self) -> str:
        pre = self.prefix
        functions = list(self.em.functions)  # activations are known only once the cells are written
        acts = self.acts.definitions()
        sig = self.acts.needs_sigmoid() or any(op.kind == "dense" and op.stage.activation == "sigmoid"
                                               for op in self.ops)
        helpers = ([SIGMOID] if sig else []) + acts
        if any(op.layer.clip is not None for op in self.layers):
            helpers.insert(0, CLIP)
        if "fp16" in self.em.storage:
            helpers.insert(0, HALF_TO_FLOAT)
        arrays = list(self.em.arrays)
        if self.emb is not None:
            arrays.insert(0, matrix_2d("emb", self.emb.table, "float", float_literal))
        reset = []
        for op in self.layers:
            reset.append(f"    memset(s->l{op.index}_h, 0, sizeof s->l{op.index}_h);")
            if op.layer.cell == "lstm":
                reset.append(f"    memset(s->l{op.index}_c, 0, sizeof s->l{op.index}_c);")
        parts = [
            f"/* {pre}.c: generated by rnnfast's C code export; see {pre}.h for the model and the API. */",
            f'#include "{pre}.h"\n\n#include <math.h>\n#include <string.h>',
            "/* ---- weights (matrices stored [in][out]: the inner loops run over outputs, unit stride) ---- */",
            *arrays, "/* ---- math ---- */", *helpers, "/* ---- layers ---- */", *functions, "/* ---- API ---- */",
            f"void {pre}_init({self.state_type} *s)\n{{\n    memset(s, 0, sizeof *s);\n}}",
            f"void {pre}_reset({self.state_type} *s)\n{{\n" + "\n".join(reset) + "\n}",
        ]
        if self.has_step:
            parts.append("\n".join(self._step_body()))
        parts.append("\n".join(self._run()))
        return "\n\n".join(parts) + "\n"


def main(argv=None) -> int:
    """`python -m rnnfast.exporters.c ARGS` is `rnnfast export-c ARGS`: one command line, in rnnfast/commands."""
    from ..cli import main as cli_main

    return cli_main(["export-c", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
