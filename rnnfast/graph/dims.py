"""Symbolic dimensions: integer polynomials over the graph inputs' dimensions, with floor division by constants.

A tensor's shape in the graph IR is a tuple of `int` and `Dim`; a Dim is kept in a canonical form (a map from
monomials to coefficients), so two spellings of the same size compare equal and `T*2 // 2` simplifies to `T`.
Sizes the analysis cannot express this way (data-dependent ones) make the graph unfit for the C executor.
`program()` writes a Dim as the C executor's stack program (include/rnnfast/rnnf.h, RNNF_DIM_*)."""
from __future__ import annotations

# Opcodes of include/rnnfast/rnnf.h's rnnf_dim_opcode.
CONST, SYM, ADD, SUB, MUL, FLOORDIV, CEILDIV, MAX, MIN, MOD = range(10)


class Dim:
    """sum(coeff * product(atoms)); an atom is a symbol name (str), ("//", Dim, divisor), or ("min" | "max", Dim, Dim)
    (a slice's clamping on a symbolic axis)."""

    __slots__ = ("terms",)

    def __init__(self, terms):
        self.terms = {m: c for m, c in terms.items() if c}

    @staticmethod
    def symbol(name: str) -> "Dim":
        return Dim({(name,): 1})

    @staticmethod
    def make(value) -> "int | Dim":
        """An int when the polynomial is a constant, else the Dim."""
        if isinstance(value, Dim):
            if not value.terms:
                return 0
            if set(value.terms) == {()}:
                return value.terms[()]
        return value

    @staticmethod
    def of(x) -> "Dim":
        return x if isinstance(x, Dim) else Dim({(): int(x)})

    def __add__(self, other):
        out = dict(self.terms)
        for m, c in Dim.of(other).terms.items():
            out[m] = out.get(m, 0) + c
        return Dim.make(Dim(out))

    __radd__ = __add__

    def __neg__(self):
        return Dim.make(Dim({m: -c for m, c in self.terms.items()}))

    def __sub__(self, other):
        return self + (-Dim.of(other))

    def __rsub__(self, other):
        return Dim.of(other) - self

    def __mul__(self, other):
        out = {}
        for m1, c1 in self.terms.items():
            for m2, c2 in Dim.of(other).terms.items():
                m = tuple(sorted(m1 + m2, key=_atom_key))
                out[m] = out.get(m, 0) + c1 * c2
        return Dim.make(Dim(out))

    __rmul__ = __mul__

    def __floordiv__(self, other):
        if isinstance(other, Dim) or int(other) == 0:
            raise NotSymbolic(f"{self} // {other}: only division by a nonzero constant is symbolic")
        d = int(other)
        if d == 1:
            return Dim.make(self)
        if all(c % d == 0 for c in self.terms.values()):
            return Dim.make(Dim({m: c // d for m, c in self.terms.items()}))
        return Dim({(("//", self, d),): 1})

    def __rfloordiv__(self, other):
        raise NotSymbolic(f"{other} // {self}: division by a symbolic size")

    def __mod__(self, other):
        return Dim.make(self - (self // other) * other)

    def __eq__(self, other):
        if isinstance(other, (int, Dim)):
            return Dim.of(other).terms == self.terms
        return NotImplemented

    def __hash__(self):
        return hash(tuple(sorted(self.terms.items(), key=lambda kv: _monomial_key(kv[0]))))

    def __repr__(self):
        parts = []
        for m, c in sorted(self.terms.items(), key=lambda kv: _monomial_key(kv[0])):
            atoms = "*".join(_atom_str(a) for a in m)
            parts.append(str(c) if not m else atoms if c == 1 else f"{c}*{atoms}")
        return " + ".join(parts) or "0"

    def symbols(self) -> set:
        out = set()
        for m in self.terms:
            for a in m:
                if isinstance(a, str):
                    out.add(a)
                else:
                    out |= a[1].symbols() | (Dim.of(a[2]).symbols() if a[0] in ("min", "max") else set())
        return out

    def evaluate(self, values: dict) -> int:
        total = 0
        for m, c in self.terms.items():
            v = c
            for a in m:
                if isinstance(a, str):
                    v *= values[a]
                elif a[0] == "//":
                    v *= a[1].evaluate(values) // a[2]
                else:
                    pick = min if a[0] == "min" else max
                    v *= pick(a[1].evaluate(values), Dim.of(a[2]).evaluate(values))
            total += v
        return total

    def program(self, sym_index: dict) -> list:
        """The stack program (a list of (opcode, operand)) that computes this value."""
        prog = []
        for i, (m, c) in enumerate(sorted(self.terms.items(), key=lambda kv: _monomial_key(kv[0]))):
            prog.append((CONST, c))
            for a in m:
                if isinstance(a, str):
                    prog.append((SYM, sym_index[a]))
                elif a[0] == "//":
                    prog += a[1].program(sym_index) + [(CONST, a[2]), (FLOORDIV, 0)]
                else:
                    prog += a[1].program(sym_index) + Dim.of(a[2]).program(sym_index) + [
                        (MIN if a[0] == "min" else MAX, 0)]
                prog.append((MUL, 0))
            if i:
                prog.append((ADD, 0))
        return prog or [(CONST, 0)]


def dim_min(a, b):
    return _pick("min", a, b)


def dim_max(a, b):
    return _pick("max", a, b)


def _pick(kind, a, b):
    a, b = Dim.make(a) if isinstance(a, Dim) else a, Dim.make(b) if isinstance(b, Dim) else b
    if not isinstance(a, Dim) and not isinstance(b, Dim):
        return min(a, b) if kind == "min" else max(a, b)
    if a == b:
        return a
    for x, y in ((a, b), (b, a)):  # sizes are never negative: min(0, size) = 0, max(0, size) = size
        if not isinstance(x, Dim) and x == 0 and non_negative(y):
            return 0 if kind == "min" else y
    diff = Dim.make(Dim.of(a) - b)
    if not isinstance(diff, Dim):  # a and b differ by a constant: the larger one is known
        return (b if diff > 0 else a) if kind == "min" else (a if diff > 0 else b)
    return Dim({((kind, Dim.of(a), Dim.of(b)),): 1})


def non_negative(d) -> bool:
    """Whether d is a size that can never be negative (positive terms of sizes)."""
    if not isinstance(d, Dim):
        return d >= 0
    for m, c in d.terms.items():
        if c < 0:
            return False
        for a in m:
            if not isinstance(a, str) and not (a[0] == "//" and a[2] > 0 and non_negative(a[1])) and not (
                    a[0] in ("min", "max") and non_negative(a[1]) and non_negative(a[2])):
                return False
    return True


class NotSymbolic(Exception):
    """A size that is not a polynomial of the inputs' dimensions (or a division by one)."""


def _atom_str(a):
    if isinstance(a, str):
        return a
    return f"({a[1]})//{a[2]}" if a[0] == "//" else f"{a[0]}({a[1]}, {a[2]})"


def _atom_key(a):
    return (0, a) if isinstance(a, str) else (1, a[0], repr(a[1]), repr(a[2]))


def _monomial_key(m):
    return (len(m), [_atom_key(a) for a in m])


def dim_program(d, sym_index: dict) -> list:
    return [(CONST, int(d))] if not isinstance(d, Dim) else d.program(sym_index)


def is_static(shape) -> bool:
    return all(not isinstance(d, Dim) for d in shape)


def dim_str(d) -> str:
    return str(d) if not isinstance(d, Dim) else repr(d)


def shape_str(shape) -> str:
    return "[" + ", ".join(dim_str(d) for d in shape) + "]"
