"""An ONNX graph as a Pipeline, when it is one recurrent stack with the glue exporters put around it.

The graph is walked once with symbolic values instead of arrays: each value knows its axes by role (T time,
B batch, D directions, P per-direction output, F features; x0/x1 for the input's two outer axes until the first
recurrent node tells which is time) and the stages that produced it. Recognised:
- the input: float [x0, x1, F], or int ids [x0, x1] through Gather(table, ids) as the embedding;
- RNN/GRU/LSTM nodes with constant W/R/B/P, layout 0 or 1, no sequence_lens, zero or absent initial states
  (constants, or ConstantOfShape / Expand of 0 over the input's shape, as torch.onnx.export writes them);
- Y -> Squeeze(D) or Transpose + Reshape merging [D, P] into features; Y_h the same way as the final state;
- Transpose of the outer axes (batch_first), Identity, Dropout, Cast to float;
- MatMul(x, W) [+ Add(b)] or Gemm on [B, F], then optionally Relu/Tanh/Sigmoid/Softmax(last axis) as a dense stage;
- shape arithmetic (Shape, Gather, Concat, Unsqueeze, ...) that only feeds the zero initial states and Reshapes.
The graph's first output is the pipeline's output; further outputs may only be recurrent final states (dropped,
as a pipeline starts from zero state and returns one tensor). Anything else is refused naming the node.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from ...errors import FormatError
from ...pipeline import DenseStage, EmbeddingStage, Pipeline, RecurrentStage

PASS_THROUGH = ("Identity", "Dropout")
ACTIVATIONS = {"Relu": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "Softmax": "softmax"}


def fills_zeros(op_type, attrs, value) -> bool:
    """Whether ConstantOfShape (value: its attribute) or Expand (value: its constant first input) fills with 0."""
    if op_type == "ConstantOfShape" and value is None:
        return True  # the operator's default is a float32 0
    return value is not None and not np.any(np.asarray(value))


@dataclass
class Sym:
    kind: str  # "shape" (dynamic shape arithmetic), "zeros", "ids", "seq", "state"
    axes: tuple = ()
    sizes: Optional[dict] = None  # D, P, F
    stages: tuple = ()
    open_dense: bool = False  # the value is a dense stage's output that a bias or activation may still join
    from_state: bool = False  # only recurrent final states went into it: as an extra output it may be dropped

    def size(self, label):
        return (self.sizes or {}).get(label)


class Converter:
    def __init__(self, graph):
        self.graph, self.where = graph, graph.name
        self.consts = graph.consts
        self.values = {}
        self.bind = {}  # x0/x1 -> T/B

    def refuse(self, where, why):
        raise FormatError(f"{where} does not fit a pipeline: {why}")

    def run(self) -> Pipeline:
        g = self.graph
        if len(g.inputs) != 1:
            raise FormatError(f"{self.where}: a pipeline has one input; this graph has {[i.name for i in g.inputs]}")
        info = g.inputs[0]
        if info.type in ("tensor(float)", "tensor(double)", "tensor(float16)"):
            if len(info.shape) != 3 or not isinstance(info.shape[2], int) or info.shape[2] <= 0:
                raise FormatError(f"{self.where}: input {info.name!r} must be [seq, batch, features] with a fixed "
                                  f"feature count to fit a pipeline, got {info.shape}")
            self.values[info.name] = Sym("seq", ("x0", "x1", "F"), {"F": info.shape[2]})
        elif len(info.shape) == 2:
            self.values[info.name] = Sym("ids", ("x0", "x1"))
        else:
            raise FormatError(f"{self.where}: input {info.name!r} ({info.type} {info.shape}) is neither a float "
                              f"sequence nor 2-D token ids")
        for kind, step in g.steps:
            if kind == "recurrent":
                self.recurrent(step)
            elif kind == "op":
                self.op(step)
            else:
                self.refuse(step.where, f"{step.node.op_type} nodes have no pipeline form")
        return self.finish()

    def get(self, name):
        if name in self.consts:
            return self.consts[name]
        return self.values[name]

    def finish(self) -> Pipeline:
        g = self.graph
        out = self.get(g.outputs[0].name)
        where = f"{self.where}: output {g.outputs[0].name!r}"
        if isinstance(out, Sym) and out.kind == "y":
            self.refuse(where, f"it is a recurrent node's Y, axes {list(out.axes)}; a pipeline returns the sequence "
                               f"with the directions merged into the features (Y -> Squeeze of D, or Transpose + "
                               f"Reshape, as exporters write it)")
        if isinstance(out, Sym) and out.kind == "state":
            self.refuse(where, f"it is a recurrent node's final state, axes {list(out.axes)}; a pipeline returns "
                               f"[batch, features] (Y_h -> Squeeze of D, or Transpose + Reshape)")
        if not isinstance(out, Sym) or out.kind != "seq" or not out.stages:
            self.refuse(where, "it is not computed from the input through recurrent layers")
        for o in g.outputs[1:]:
            v = self.get(o.name)
            if not (isinstance(v, Sym) and (v.kind == "state" or v.from_state)):
                self.refuse(f"{self.where}: output {o.name!r}", "a pipeline has one output; only final-state "
                            "outputs may be left out")
        axes = tuple(self.bind.get(a, a) for a in out.axes)
        inp = tuple(self.bind.get(a, a) for a in ("x0", "x1"))
        if axes not in (inp + ("F",), ("B", "F")):
            self.refuse(where, f"its axes are {list(axes)}; a pipeline returns {list(inp) + ['F']} (the input's "
                               f"layout) or [B, F]")
        return Pipeline(list(out.stages), batch_first=inp == ("B", "T"), name=g.name, source=g.name)

    # recurrent nodes ------------------------------------------------------------------------------------------
    def recurrent(self, node):
        spec, where = node.spec, node.spec.where
        if node.layer is None:
            self.refuse(where, "its weights are not constants")
        x = self.get(spec.inputs["X"])
        if not isinstance(x, Sym) or x.kind != "seq" or x.axes[-1] != "F" or len(x.axes) != 3:
            self.refuse(where, "its input X is not a [seq, batch, features] sequence from the graph input")
        outer = ("B", "T") if spec.layout == 1 else ("T", "B")
        for label, role in zip(x.axes[:2], outer):
            bound = self.bind.setdefault(label, role) if label in ("x0", "x1") else label
            if bound != role:
                self.refuse(where, f"X has axes {list(x.axes)}, the node (layout {spec.layout}) reads "
                                   f"{list(outer) + ['F']}")
        if spec.inputs["sequence_lens"]:
            self.refuse(where, "sequence_lens depends on the data; a pipeline has no lengths")
        for key in ("initial_h", "initial_c"):
            name = spec.inputs[key]
            if name and not self._zero(self.get(name)):
                self.refuse(where, f"{key} is not zero; a pipeline starts from zero state")
        layer = node.layer
        stages = list(x.stages)
        last = stages[-1] if stages else None
        if isinstance(last, RecurrentStage) and last.return_sequences and not x.open_dense and x.size("stack"):
            stages[-1] = RecurrentStage(last.layers + [layer], name=last.name)
        else:
            stages.append(RecurrentStage([layer], name=layer.name))
        sizes = {"D": layer.n_dirs, "P": layer.output_size}
        outs = spec.node.output
        lay = ("B", "T", "D", "P") if spec.layout == 1 else ("T", "D", "B", "P")
        if len(outs) > 0 and outs[0]:
            self.values[outs[0]] = Sym("y", lay, sizes, tuple(stages))
        final = stages[:-1] + [replace(stages[-1], return_sequences=False)]
        st = ("B", "D", "P") if spec.layout == 1 else ("D", "B", "P")
        for name in outs[1:]:
            if name:
                self.values[name] = Sym("state", st, sizes, tuple(final))

    def _zero(self, v):
        if isinstance(v, Sym):
            return v.kind == "zeros"
        return not np.any(np.asarray(v))

    # other operators ------------------------------------------------------------------------------------------
    def op(self, ctx):
        node, where = ctx.node, ctx.where
        args = [self.get(n) if n else None for n in node.input]
        syms = [a for a in args if isinstance(a, Sym)]
        t = node.op_type
        if all(a.kind == "shape" for a in syms) and t != "ConstantOfShape" and not (t == "Expand" and
                                                                                    self._zero(args[0])):
            for name in node.output:
                self.values[name] = Sym("shape")
            return
        if t == "Shape":
            self.values[node.output[0]] = Sym("shape")
            return
        if t == "ConstantOfShape" or t == "Expand":
            value = ctx.attrs.get("value") if t == "ConstantOfShape" else args[0]
            if isinstance(value, Sym) or not fills_zeros(t, ctx.attrs, value):
                self.refuse(where, "only zero-filled initial states fit a pipeline")
            self.values[node.output[0]] = Sym("zeros")
            return
        x = args[0]
        if not isinstance(x, Sym):
            x = args[1] if len(args) > 1 and isinstance(args[1], Sym) else None
        if x is None:
            self.refuse(where, "unexpected constant input")
        if x.kind == "zeros" and t in ("Identity", "Cast", "Unsqueeze", "Squeeze", "Reshape", "Transpose"):
            self.values[node.output[0]] = x
            return
        handler = getattr(self, "op_" + t.lower(), None)
        if handler is None:
            self.refuse(where, f"{t} is not part of the glue a pipeline understands")
        self.values[node.output[0]] = handler(ctx, args, where)

    def op_concat(self, ctx, args, where):
        if all(isinstance(a, Sym) and a.kind == "state" for a in args):
            return Sym("state")  # torch's h_n / c_n: every layer's final state, left out of the pipeline
        self.refuse(where, "only final states are concatenated in a pipeline's graph")

    def op_identity(self, ctx, args, where):
        return args[0]

    op_dropout = op_identity

    def op_cast(self, ctx, args, where):
        x = args[0]
        floats = (1, 10, 11)
        if x.kind == "ids" and ctx.attrs["to"] in (6, 7):
            return x
        if x.kind != "ids" and ctx.attrs["to"] in floats:
            return x
        self.refuse(where, f"Cast to type {ctx.attrs['to']} of a {x.kind} value")

    def op_transpose(self, ctx, args, where):
        x = args[0]
        perm = ctx.attrs.get("perm") or list(range(len(x.axes)))[::-1]
        return replace(x, axes=tuple(x.axes[p] for p in perm), open_dense=False)

    def op_squeeze(self, ctx, args, where):
        x = args[0]
        axes = [int(a) for a in (args[1] if len(args) > 1 and args[1] is not None else ctx.attrs.get("axes", []))]
        axes = sorted(a % len(x.axes) for a in axes)
        if x.kind not in ("y", "state") or [x.axes[a] for a in axes] != ["D"] or x.size("D") != 1:
            self.refuse(where, f"Squeeze of axes {axes} of {list(x.axes)}: only the direction axis of one "
                               f"direction can be squeezed")
        return self._merged(x, tuple(a if a != "P" else "F" for a in x.axes if a != "D"))

    def op_reshape(self, ctx, args, where):
        x, shape = args[0], args[1]
        if isinstance(shape, Sym) or x.kind not in ("y", "state"):
            self.refuse(where, "only a Reshape with a constant shape that joins the directions of a recurrent "
                               "output into features is understood")
        axes = list(x.axes)
        k = axes.index("D")
        if k + 1 >= len(axes) or axes[k + 1] != "P":
            self.refuse(where, f"the directions {list(x.axes)} are not next to the features; Transpose first")
        want = tuple(axes[:k] + ["F"] + axes[k + 2:])
        shape = [int(s) for s in np.asarray(shape).reshape(-1)]
        F = x.size("D") * x.size("P")
        ok = len(shape) == len(want) and shape.count(-1) <= 1
        for i, (s, label) in enumerate(zip(shape, want)) if ok else ():
            if s == 0 and not ctx.attrs.get("allowzero", 0):
                ok = ok and i < len(axes) and axes[i] == label
            elif s > 0:
                ok = ok and label == "F" and s == F
        if not ok:
            self.refuse(where, f"shape {shape} does not turn {list(x.axes)} into {list(want)}")
        return self._merged(x, want)

    def _merged(self, x, axes):
        F = x.size("D") * x.size("P")
        kind = "seq" if x.kind == "y" else "final"
        stages = x.stages
        if kind == "final":
            if axes != ("B", "F"):
                return Sym("state", axes, x.sizes, stages)
            kind = "seq"
        return Sym(kind, axes, {"F": F, "stack": 1 if x.kind == "y" else 0}, stages, from_state=x.kind == "state")

    def op_gather(self, ctx, args, where):
        table, ids = args
        if isinstance(table, Sym) or not isinstance(ids, Sym) or ids.kind != "ids" or ctx.attrs.get("axis", 0):
            self.refuse(where, "only Gather(constant table, token ids) on axis 0 is an embedding")
        if ids.stages:
            self.refuse(where, "a second embedding")
        stage = EmbeddingStage(np.asarray(table), name=ctx.node.name)
        return Sym("seq", ids.axes + ("F",), {"F": stage.output_size}, (stage,))

    def _input_seq(self, x, where):
        if not isinstance(x, Sym) or x.kind != "seq" or x.axes[-1] != "F":
            self.refuse(where, "its input is not a sequence or final state with features last")

    def op_matmul(self, ctx, args, where):
        x, w = args
        self._input_seq(x, where)
        if isinstance(w, Sym) or np.ndim(w) != 2 or w.shape[0] != x.size("F"):
            self.refuse(where, f"only x @ W with a constant W of shape [{x.size('F')}, out] is a dense layer")
        return self._dense(x, DenseStage(np.asarray(w).T, name=ctx.node.name))

    def op_gemm(self, ctx, args, where):
        x, w = args[0], args[1]
        c = args[2] if len(args) > 2 else None
        self._input_seq(x, where)
        if x.axes != ("B", "F") or ctx.attrs.get("transA", 0) or isinstance(w, Sym) or isinstance(c, Sym):
            self.refuse(where, "only Gemm(final state, constant W, constant C) is a dense layer")
        w = np.asarray(w) if ctx.attrs.get("transB", 0) else np.asarray(w).T
        w = w * ctx.attrs.get("alpha", 1.0)
        bias = None
        if c is not None:
            bias = np.broadcast_to(np.asarray(c).reshape(-1) * ctx.attrs.get("beta", 1.0), (w.shape[0],))
        if w.shape[1] != x.size("F"):
            self.refuse(where, f"W does not take {x.size('F')} features")
        return self._dense(x, DenseStage(w, bias, name=ctx.node.name))

    def _dense(self, x, stage):
        return Sym("seq", x.axes, {"F": stage.output_size}, x.stages + (stage,), open_dense=True, from_state=False)

    def op_add(self, ctx, args, where):
        x = args[0] if isinstance(args[0], Sym) else args[1]
        b = args[1] if x is args[0] else args[0]
        last = x.stages[-1] if x.stages else None
        if (not x.open_dense or last.bias is not None or last.activation != "linear" or isinstance(b, Sym)
                or np.asarray(b).size != last.output_size or np.asarray(b).shape[-1:] != (last.output_size,)):
            self.refuse(where, "only a constant bias [out] added right after a MatMul is part of a dense layer")
        stage = replace(last, bias=np.asarray(b).reshape(-1))
        return replace(x, stages=x.stages[:-1] + (stage,))

    def _activation(self, ctx, args, where):
        x = args[0]
        last = x.stages[-1] if x.stages else None
        if not x.open_dense or last.activation != "linear":
            self.refuse(where, "an activation fits a pipeline only right after a dense layer")
        if ctx.node.op_type == "Softmax":
            axis = ctx.attrs.get("axis", -1 if ctx.opset >= 13 else 1)
            if axis % len(x.axes) != len(x.axes) - 1:
                self.refuse(where, f"softmax over axis {axis}, not the features")
        stage = replace(last, activation=ACTIVATIONS[ctx.node.op_type])
        return replace(x, stages=x.stages[:-1] + (stage,), open_dense=False)

    op_relu = op_tanh = op_sigmoid = op_softmax = _activation


def onnx_to_pipeline(graph) -> Pipeline:
    return Converter(graph).run()
