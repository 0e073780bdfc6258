"""Sizes that depend on the input shapes, as ONNX operators: the graph IR knows a size as a polynomial in the graph
inputs' axes (graph/dims.py Dim), and folds away the Shape -> Gather -> Concat nodes that computed it. An exported
graph computes it again where an operator reads it (a Reshape's target, an Expand's shape, a Slice's bounds):
Shape(input)[axis] for each symbol, then Mul / Add / Div / Min / Max as the polynomial says (sizes are never
negative, so ONNX's truncating integer Div is the floor division Dim means)."""
from __future__ import annotations

from ..errors import FormatError
from ..graph.dims import Dim


def input_symbols(graph) -> dict:
    """symbol name -> (graph input, axis) for the axes of the graph's inputs that are a plain symbol, from the
    inputs that are always given first (a default of zeros takes its sizes from the others)."""
    out = {}
    defaults = getattr(graph, "defaults", {})
    for name in sorted(graph.inputs, key=lambda n: n in defaults):
        for axis, d in enumerate(graph.values[name].shape or ()):
            if isinstance(d, Dim) and len(d.terms) == 1:
                (mono, coeff), = d.terms.items()
                if coeff == 1 and len(mono) == 1 and isinstance(mono[0], str):
                    out.setdefault(mono[0], (name, axis))
    return out


class Sizes:
    def __init__(self, g, symbols: dict, where: str):
        self.g, self.symbols, self.where = g, symbols, where
        self._cache = {}

    def dim(self, d) -> str:
        """A 1-D int64 tensor [1] holding the size d (an int or a Dim)."""
        d = Dim.make(d)
        if not isinstance(d, Dim):
            return self.g.ints([int(d)])
        key = ("dim", repr(d))
        if key in self._cache:
            return self._cache[key]
        total = None
        for mono, coeff in sorted(d.terms.items(), key=lambda kv: repr(kv[0])):
            term = None
            for atom in mono:
                a = self._atom(atom)
                term = a if term is None else self.g.op("Mul", [term, a], "size")
            if term is None:
                term = self.g.ints([coeff])
            elif coeff != 1:
                term = self.g.op("Mul", [term, self.g.ints([coeff])], "size")
            total = term if total is None else self.g.op("Add", [total, term], "size")
        self._cache[key] = total
        return total

    def shape(self, dims) -> str:
        """A 1-D int64 tensor of the sizes `dims` (ints and Dims)."""
        dims = [Dim.make(d) for d in dims]
        if all(not isinstance(d, Dim) for d in dims):
            return self.g.ints([int(d) for d in dims])
        return self.g.op("Concat", [self.dim(d) for d in dims], "shape", axis=0)

    def _atom(self, atom) -> str:
        key = ("atom", repr(atom))
        if key in self._cache:
            return self._cache[key]
        if isinstance(atom, str):
            if atom not in self.symbols:
                raise FormatError(f"{self.where}: the size {atom!r} is no axis of a graph input, so the written graph "
                                  f"could not compute it")
            name, axis = self.symbols[atom]
            shape = self._cache.get(("shape", name))
            if shape is None:
                shape = self._cache[("shape", name)] = self.g.op("Shape", [name], "input_shape")
            out = self.g.op("Slice", [shape, self.g.ints([axis]), self.g.ints([axis + 1])], f"{atom}_size")
        elif atom[0] == "//":
            out = self.g.op("Div", [self.dim(atom[1]), self.g.ints([atom[2]])], "size")
        else:
            out = self.g.op("Min" if atom[0] == "min" else "Max", [self.dim(atom[1]), self.dim(atom[2])], "size")
        self._cache[key] = out
        return out
