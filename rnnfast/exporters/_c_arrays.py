"""Weights as C99 `static const` arrays, in float32, int8 (per-output-row scales) or fp16 storage.

Every matrix is written transposed, [in][out], so the generated product is an axpy over the outputs
(`acc[i] += w[j][i] * x[j]`): no reduction, hence vectorizable by gcc -O2 without -ffast-math.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import FormatError

QUANTIZE = (None, "int8", "fp16")
PER_LINE = 8


def float_literal(v) -> str:
    """The float32 value v as a C literal that reads back to the same bits (9 significant digits suffice)."""
    s = "%.9g" % float(np.float32(v))
    if "e" not in s and "." not in s:
        s += ".0"
    return s + "f"


def check_finite(name: str, a: np.ndarray, where: str) -> None:
    if not np.all(np.isfinite(a)):
        raise FormatError(f"{where}: {name} holds inf or nan values, which C code export does not write")


def _rows(values, fmt, indent) -> list[str]:
    flat = [fmt(v) for v in np.asarray(values).reshape(-1)]
    return [indent + ", ".join(flat[i:i + PER_LINE]) + "," for i in range(0, len(flat), PER_LINE)]


def vector(name: str, values, ctype="float") -> str:
    values = np.asarray(values)
    fmt = float_literal if ctype == "float" else str
    body = _rows(values, fmt, "    ")
    return "\n".join([f"static const {ctype} {name}[{values.size}] = {{"] + body + ["};"])


def nested(values, fmt, indent="    ") -> list[str]:
    """Initializer lines of an n-d array, one brace level per dimension (gcc -Wmissing-braces wants them)."""
    values = np.asarray(values)
    if values.ndim <= 1:
        return _rows(values, fmt, indent)
    lines = []
    for sub in values:
        lines += [indent + "{"] + nested(sub, fmt, indent + "    ") + [indent + "},"]
    return lines


def array(ctype: str, name: str, values, fmt=None) -> str:
    """`static const ctype name[d0][d1]... = {...};`"""
    values = np.asarray(values)
    fmt = fmt or (float_literal if ctype == "float" else str)
    dims = "".join(f"[{n}]" for n in values.shape)
    return "\n".join([f"static const {ctype} {name}{dims} = {{"] + nested(values, fmt) + ["};"])


def matrix_2d(name: str, values, ctype, fmt) -> str:
    return array(ctype, name, values, fmt)


@dataclass
class Matrix:
    """A weight matrix [out, in] as written to C, and how generated code reads its element (j, i)."""

    name: str
    n_out: int
    n_in: int
    quantize: object = None

    def element(self, j: str, i: str) -> str:
        if self.quantize == "fp16":
            return f"half_to_float({self.name}[{j}][{i}])"
        if self.quantize == "int8":
            return f"(float){self.name}[{j}][{i}]"
        return f"{self.name}[{j}][{i}]"


def matrix(name: str, w: np.ndarray, stored, where: str) -> tuple[Matrix, str]:
    """(Matrix, C definition) for w [out, in]; stored: None (float32), or the (values, int8 row scales or None) a
    quantized layer holds (rnnfast/quantize.py's rule), written as they are so the code computes with them."""
    w = np.asarray(w, np.float32)
    check_finite(name, w, where)
    n_out, n_in = w.shape
    if n_in == 0:
        raise FormatError(f"{where}: {name} has no input columns; C code export needs at least one")
    if stored is None:
        return Matrix(name, n_out, n_in), matrix_2d(name, w.T, "float", float_literal)
    q, scale = stored
    if q.dtype == np.int8:
        return (Matrix(name, n_out, n_in, "int8"),
                matrix_2d(name, q.T, "int8_t", str) + "\n" + vector(name + "_scale", scale))
    return (Matrix(name, n_out, n_in, "fp16"),
            matrix_2d(name, q.view(np.uint16).T, "uint16_t", lambda v: "0x%04x" % int(v)))


UNROLL = 4  # input columns per pass over the outputs: a quarter of the loads and stores of the accumulator


def _axpy(acc: str, m: "Matrix", x: str, n: int, off: str, indent: str) -> list[str]:
    """acc (an element in terms of i) += W[off + i, j] x[j] over j, UNROLL columns per pass, then one at a time
    for the remainder."""
    main = m.n_in - m.n_in % UNROLL
    lines = []
    if main:
        xs = ", ".join(f"x{u} = {x}[j{f' + {u}' if u else ''}]" for u in range(UNROLL))
        terms = " + ".join(f"{m.element(f'j + {u}' if u else 'j', off + 'i')} * x{u}" for u in range(UNROLL))
        lines += [f"{indent}for (int j = 0; j < {main}; j += {UNROLL}) {{",
                  f"{indent}    const float {xs};",
                  f"{indent}    for (int i = 0; i < {n}; i++)",
                  f"{indent}        {acc} += {terms};",
                  f"{indent}}}"]
    if main < m.n_in:
        lines += [f"{indent}for (int j = {main}; j < {m.n_in}; j++) {{",
                  f"{indent}    const float xj = {x}[j];",
                  f"{indent}    for (int i = 0; i < {n}; i++) {acc} += {m.element('j', off + 'i')} * xj;",
                  f"{indent}}}"]
    return lines


def matvec(acc: str, m: Matrix, x: str, cols=None, indent="    ", qacc="s->qacc") -> list[str]:
    """C lines doing acc[i] += sum_j W[i, j] * x[j] for i in `cols` (a (start, stop) range of outputs)."""
    start, stop = cols or (0, m.n_out)
    n = stop - start
    off = f"{start} + " if start else ""
    if m.quantize == "int8":
        # Integer weights summed in float; the row scale is applied once per output.
        inner = indent + "    "
        return ([f"{indent}{{", f"{inner}float *restrict q = {qacc};",
                 f"{inner}for (int i = 0; i < {n}; i++) q[i] = 0.0f;"]
                + _axpy("q[i]", m, x, n, off, inner)
                + [f"{inner}for (int i = 0; i < {n}; i++) {acc}[{off}i] += {m.name}_scale[{off}i] * q[i];",
                   f"{indent}}}"])
    return _axpy(f"{acc}[{off}i]", m, x, n, off, indent)


HALF_TO_FLOAT = """\
/* IEEE 754 binary16 bits -> float, exact for every finite half. The exponent and mantissa bits shifted into a
 * float are the value times 2^-112 (a float subnormal when the half is one); the multiply rebiases both cases
 * without a branch, so loops over weights stay vectorizable. Weights are finite: no inf/nan case. */
static inline float half_to_float(uint16_t h)
{
    union { uint32_t u; float f; } v;
    v.u = (uint32_t)(h & 0x7fffu) << 13;
    v.f *= 0x1p112f;
    v.u |= (uint32_t)(h & 0x8000u) << 16;
    return v.f;
}"""
