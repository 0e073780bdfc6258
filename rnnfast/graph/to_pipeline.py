"""An analysed graph (graph/analysis.py) as a rnnfast.pipeline.Pipeline, when it is one embedding -> recurrent stack
-> dense heads chain: what .rnnf 1, export-c, convert and Model.quantize hold.

The values computed from the input are followed with their axes by role: x0 / x1 for the input's two outer axes
(time and batch, told apart by the first recurrent node that reads them), D and P for a recurrent output's
directions and per-direction features, L for the layers of a stack's final state, F for features. An axis is a tuple
of those labels, so a view is read from the shapes alone (its labels cut into runs of the new sizes): whatever an
exporter spelled it with (Squeeze, Reshape with 0 / -1 / sizes, Flatten, a Transpose the analysis made a View), the
labels say whether the directions ended up next to each other in the features, beside time and batch. Recognised:
- the input: float [x0, x1, F], or int ids [x0, x1] through Gather(constant table, ids) on axis 0 (the embedding);
  other inputs only when their default is zeros and they are initial states (PyTorch's optional h0 / c0);
- "Recurrent" nodes (graph/stack.py) and the recurrent nodes the analysis leaves as they are (layout 1), with
  constant weights, no sequence_lens and zero initial states; a node reading the previous one's sequence joins its
  stage (so does a Linear graph/stack.py folded into a first layer's input weights), whose rule for masked steps is
  its last layer's (each layer skips the masked steps, so none reads what the one before gives there);
  Greater(ids, 0) as the mask every recurrent node reads (the embedding's mask_zero);
- Transpose, Cast to float (of ids: to int32 / int64), views; Slice of a stack's final state to its last layer;
- MatMul(x, constant W) and Gemm(final state, constant W, constant C) as dense stages, with the bias and the
  Relu / Tanh / Sigmoid that graph/fuse.py folded into them, and an Add, activation or Softmax (over the features)
  right after one.
The graph's first output is the pipeline's output; further outputs may only be final states of its own recurrent
layers (dropped, as a chain starts from zero state and returns one tensor), and a graph with state loops (a stateful
model) is none. Anything else is refused naming the node, by the source's layer it was lowered from when it has one
(ir.Node.origin: Keras)."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from ..errors import FormatError
from ..pipeline import DenseStage, EmbeddingStage, Pipeline, RecurrentStage
from .build import DENSE_ACTIVATIONS

# What a refusal says the model does not fit: the form the chain exporters (.rnnf 1, export-c's chain export) hold
CHAIN = "a chain (embedding, recurrent layers and dense head, the form .rnnf 1 and export-c's chain export hold)"
from .fuse import EPILOGUE_ACTS
from .ir import VIEW_OPS, ZEROS
from .stack import CELL_OPS, SEQ_BATCH_DIR, _is_zero

OUTER = ("x0", "x1")
DENSE_ACTS = {"RELU": "relu", "TANH": "tanh", "SIGMOID": "sigmoid"}  # graph/fuse.py's "_act" kinds a stage applies
ACT_OPS = {op: name for name, op in DENSE_ACTIVATIONS.items() if op}  # ONNX op -> a Dense stage's activation
FUSED_OPS = {kind: op for op, (kind, _, _) in EPILOGUE_ACTS.items()}
FLOAT_TYPES, ID_TYPES = (1, 10, 11), (6, 7)  # ONNX element types a Cast may go to: float, float16, double; int32, int64
# What a refusal of a node between the layers says a chain has there, and what holds any other node
BETWEEN_LAYERS = ("between its layers a chain has only views (Reshape, Flatten, Squeeze...), Transpose, Cast, the "
                  "Slice of a recurrent stack's final state, and dense layers (MatMul, Gemm) with an Add and an "
                  f"activation ({', '.join(ACT_OPS)}) after them")
WHOLE_GRAPH = "to keep it, write the whole graph: .rnnf 2 (convert's default), or export-c with --graph or --dim"


@dataclass(frozen=True)
class Flow:
    """What a value computes from the graph input."""
    kind: str                 # "ids", "seq" (features), "state" (a stack's final h), "aux" (droppable: c, inner
                              # layers), "mask" (id 0 of the ids masks a step)
    axes: tuple = ()          # a tuple of labels per axis
    feat: tuple = ()          # the labels that together are the features
    stages: tuple = ()
    rows: tuple = ()          # a state's (L, D) labels: the axis that holds its layers' rows
    stack: bool = False       # a recurrent stage's sequence, through views only: a next layer joins that stage
    open_dense: bool = False  # a dense stage's output before any activation: an Add or an activation may join it
    what: str = ""            # what an "aux" value is, for the refusal when it is the output


def graph_to_pipeline(graph, where: str = "", opset: int | None = None) -> Pipeline:
    """graph: an analysed IR Graph. opset: the model's, for Softmax's default axis; None for a graph the C executor
    compiled, whose lowering refuses the softmax of opsets before 13 over any axis but the last."""
    return _Converter(graph, where or graph.name, opset).run()


class _Converter:
    def __init__(self, graph, where, opset):
        self.g, self.where, self.opset = graph, where, opset
        self.flows, self.size, self.bind = {}, {}, {}  # value -> Flow; label -> size; x0 / x1 -> "T" / "B"
        self.producers = graph.producers()
        self.masked = []  # whether each recurrent node read a mask
        self.recurrent_nodes = []  # (node, its layers as the stages hold them)

    def refuse(self, where, why):
        raise FormatError(f"{where} does not fit {CHAIN}: {why}")

    def label(self, prefix, size):
        name = f"{prefix}{len(self.size)}"
        self.size[name] = size
        return name

    def show(self, axes) -> list:
        name = lambda l: self.bind.get(l, l) if l in OUTER else l.rstrip("0123456789")
        return ["*".join(name(l) for l in axis) or "1" for axis in axes]

    def nonunit(self, labels) -> tuple:
        return tuple(l for l in labels if self.size[l] != 1)

    def is_feat(self, flow, axis) -> bool:
        return self.nonunit(axis) == self.nonunit(flow.feat)

    def run(self) -> Pipeline:
        g = self.g
        for out, inp in g.state_loops:  # a stateful model (Keras stateful layers): its state is a graph input
            node = self.producers.get(out)
            self.refuse(_at(node) if node is not None else f"{self.where}: output {out!r}",
                        f"it keeps its state between calls (as input {inp!r} of the next one); a chain starts every "
                        f"call from zero state")
        main = [n for n in g.inputs if g.defaults.get(n) is not ZEROS]  # zero initial states: what a chain starts from
        if len(main) != 1:
            raise FormatError(f"{self.where}: a chain has one input; this model has the inputs {list(g.inputs)}")
        v = g.values[main[0]]
        shape = tuple(v.shape)
        self.size.update(zip(OUTER, shape[:2]))
        if v.dtype.kind == "f":
            if len(shape) != 3 or not isinstance(shape[2], int):
                raise FormatError(f"{self.where}: input {v.name!r} must be [seq, batch, features] with a fixed "
                                  f"feature count to fit a chain, got {_dims(shape)}")
            f = self.label("F", shape[2])
            self.flows[v.name] = Flow("seq", (("x0",), ("x1",), (f,)), (f,))
        elif v.dtype.kind in "iu" and len(shape) == 2:
            self.flows[v.name] = Flow("ids", (("x0",), ("x1",)))
        else:
            raise FormatError(f"{self.where}: input {v.name!r} ({v.dtype} {_dims(shape)}) is neither a float "
                              f"sequence nor 2-D token ids")
        for node in g.nodes:
            self.visit(node)
        return self.finish()

    def visit(self, node):
        ins = [self.flows.get(n) if n else None for n in node.inputs]
        flows = [f for f in ins if f is not None]
        if not flows:
            return  # sizes and constants only (the zeros of an initial state): its readers below say what they need
        op, out = node.op, node.outputs[0]
        if op == "Recurrent" or op in CELL_OPS:
            return self.recurrent(node, ins[0])
        if all(f.kind == "aux" for f in flows) and op in VIEW_OPS + ("Transpose", "Cast", "Slice", "Concat"):
            self.flows[out] = flows[0]  # final states left out of the pipeline, wherever they go on the way out
            return
        if op == "Concat":
            if len(flows) != len(ins) or any(f.kind not in ("state", "aux") for f in flows):
                self.refuse(_at(node), "only final states are concatenated in a chain")
            self.flows[out] = Flow("aux", what="the final states of several layers")  # torch's h_n / c_n
            return
        handler = getattr(self, "op_" + op.lower(), None)
        if handler is None and op in VIEW_OPS:
            handler = self.view
        if handler is None and op in ACT_OPS:
            handler = self.activation
        if handler is None:
            self.refuse(_at(node), f"{BETWEEN_LAYERS}, and {op} is none of these; {WHOLE_GRAPH}")
        self.flows[out] = handler(node, ins)

    # recurrent nodes ------------------------------------------------------------------------------------------
    def recurrent(self, node, x):
        where = _at(node)
        if node.op == "Recurrent":
            layers = [layer.spec.build_layer(*layer.weights) for layer in node.payload]
            layout, lens, h0, c0 = 0, node.inputs[1], node.inputs[2], node.inputs[3]
        else:  # left as it is by graph/stack.py: layout 1, or weights computed at run time
            arg = lambda k: node.inputs[k] if k < len(node.inputs) else ""
            weights = [self.g.values[arg(k)].const if arg(k) else None for k in (1, 2, 3, 7)]
            if any(w is None and arg(k) for w, k in zip(weights, (1, 2, 3, 7))):
                self.refuse(where, "its weights are not constants")
            layers = [node.payload.build_layer(*weights)]
            layout, lens, h0, c0 = node.payload.layout, arg(4), arg(5), arg(6)
        if (x is None or x.kind != "seq" or len(x.axes) != 3 or not self.is_feat(x, x.axes[2])
                or any(len(a) != 1 or a[0] not in OUTER for a in x.axes[:2])):
            self.refuse(where, "its input X is not a [seq, batch, features] sequence from the graph input")
        roles = ("B", "T") if layout == 1 else ("T", "B")
        for (label,), role in zip(x.axes[:2], roles):
            if self.bind.setdefault(label, role) != role:
                self.refuse(where, f"X has axes {self.show(x.axes)}, the node (layout {layout}) reads "
                                   f"{list(roles) + ['F']}")
        if lens:
            self.refuse(where, "sequence_lens depends on the data; a chain takes no lengths")
        for key, name in (("initial_h", h0), ("initial_c", c0)):
            if name and not (_is_zero(self.g, name, self.producers) or self.zero_input(name)):
                self.refuse(where, f"{key} is not zero; a chain starts from zero state")
        mask = node.inputs[4] if node.op == "Recurrent" and len(node.inputs) > 4 else ""
        zero_output = self.mask(node, mask, x)
        stages = list(x.stages)
        if mask:  # the embedding's mask_zero, which every recurrent stage of a chain then reads
            stages[0] = replace(stages[0], mask_zero=True)
        if x.stack:  # the stage's rule for masked steps is its last layer's: the layers read one mask, so no layer
            # reads what the one before it gives at a masked step
            stages[-1] = replace(stages[-1], layers=stages[-1].layers + layers, mask_zero_output=zero_output)
        else:
            stages.append(RecurrentStage(layers, mask_zero_output=zero_output, name=layers[0].name))
        self.recurrent_nodes.append((node, layers))
        stages = tuple(stages)
        final = stages[:-1] + (replace(stages[-1], return_sequences=False),)
        d, p = self.label("D", layers[-1].n_dirs), self.label("P", layers[-1].output_size)
        (t,), (b,) = x.axes[:2] if layout == 0 else x.axes[1::-1]
        y, y_h, y_c = (list(node.outputs) + ["", "", ""])[:3]
        if y:
            if len(self.g.values[y].shape) == 3:  # graph/stack.py: the engine writes the merged [T, B, D*P] itself
                axes = ((t,), (b,), (d, p))
            elif layout == 1:
                axes = ((b,), (t,), (d,), (p,))
            elif node.attrs.get("_y_layout") == SEQ_BATCH_DIR:
                axes = ((t,), (b,), (d,), (p,))
            else:
                axes = ((t,), (d,), (b,), (p,))
            self.flows[y] = Flow("seq", axes, (d, p), stages, stack=True)
        if y_h:
            rows = (self.label("L", len(layers)), d)
            axes = ((b,), rows, (p,)) if layout == 1 else (rows, (b,), (p,))
            self.flows[y_h] = Flow("state", axes, (d, p), final, rows)
        if y_c:
            self.flows[y_c] = Flow("aux", what="an LSTM's final cell state")  # a pipeline's final state is h

    def zero_input(self, name) -> bool:
        """Is `name` (through views and slices) a graph input whose default is zeros (PyTorch's optional h0 / c0)?"""
        while name not in self.g.defaults:
            node = self.producers.get(name)
            if node is None or node.op not in VIEW_OPS + ("Slice",):
                return False
            name = node.inputs[0]
        return self.g.defaults[name] is ZEROS

    def mask(self, node, mask, x) -> bool:
        """Checks a recurrent node's mask (Keras': id 0 of the embedding's ids masks a step) and returns whether it
        gives zeros for masked steps (a rule graph/build.py keeps without a mask too, as Keras' Bidirectional has
        it). Every recurrent node of a chain reads the mask, or none does."""
        self.masked.append(bool(mask))
        zero_output = bool(node.attrs.get("_mask_zero_output"))
        if not mask:
            return zero_output
        m = self.flows.get(mask)
        if (m is None or m.kind != "mask" or m.axes != x.axes[:2] or not x.stages
                or not isinstance(x.stages[0], EmbeddingStage)):
            self.refuse(_at(node), "its mask is not id 0 of the embedding's token ids (Greater(ids, 0)) over the "
                                   "same steps")
        return zero_output

    def op_greater(self, node, ins):
        ids, zero = ins[0], self.g.values[node.inputs[1]].const
        if ids is None or ids.kind != "ids" or ins[1] is not None or zero is None or np.size(zero) != 1 or np.any(zero):
            self.refuse(_at(node), "only Greater(token ids, 0), an embedding's mask of id 0, is part of a chain")
        return Flow("mask", ids.axes)

    def final(self, flow):
        """A final state as the [batch, features] a pipeline's last recurrent stage returns, or None."""
        if flow is None or flow.kind != "state" or not self.batch_and_features(flow):
            return None
        return Flow("seq", flow.axes, flow.feat, flow.stages)

    def batch_and_features(self, flow) -> bool:
        axes = flow.axes
        return len(axes) == 2 and len(axes[0]) == 1 and self.bind.get(axes[0][0]) == "B" and self.is_feat(flow, axes[1])

    # views ----------------------------------------------------------------------------------------------------
    def view(self, node, ins):
        x = ins[0]
        if node.op in ("Identity", "Dropout"):
            return x
        return replace(x, axes=self.regroup(x, self.g.values[node.outputs[0]].shape, _at(node)), open_dense=False)

    def regroup(self, x, shape, where) -> tuple:
        """The axes of a view of x with this shape: x's labels in order, cut into runs whose sizes are the new dims.
        Labels of size 1 other than x0 / x1 go (they say nothing about the order of the data); x0 and x1 stay
        axes of their own (a pipeline never merges time or batch into another axis)."""
        labels = [l for axis in x.axes for l in axis if l in OUTER or self.size[l] != 1]
        why = f"it makes {_dims(shape)} of {self.show(x.axes)}, which is not time, batch and features kept apart"
        axes, i = [], 0
        for d in shape:
            if d == 1:
                taken = i < len(labels) and labels[i] in OUTER and self.size[labels[i]] == 1
                axes.append((labels[i],) if taken else ())
                i += taken
                continue
            run, n = [], 1
            while i < len(labels) and n != d:
                n = n * self.size[labels[i]]
                run.append(labels[i])
                i += 1
            if n != d or (len(run) > 1 and any(l in OUTER for l in run)):
                self.refuse(where, why)
            axes.append(tuple(run))
        if i != len(labels):
            self.refuse(where, why)
        return tuple(axes)

    def op_transpose(self, node, ins):
        x = ins[0]
        perm = node.attrs.get("perm") or list(range(len(x.axes)))[::-1]
        # Keeping the features last, it only reorders a dense layer's output rows, so its bias and activation may
        # still follow (graph/fuse.py moves the time/batch Transpose after a narrowing MatMul).
        keeps_features = bool(perm) and perm[-1] % len(x.axes) == len(x.axes) - 1
        return replace(x, axes=tuple(x.axes[p] for p in perm), open_dense=x.open_dense and keeps_features)

    def op_cast(self, node, ins):
        x, to = ins[0], node.attrs.get("to")
        if to in (ID_TYPES if x.kind == "ids" else FLOAT_TYPES):
            return x
        self.refuse(_at(node), f"Cast to type {to} of a {x.kind} value")

    def op_slice(self, node, ins):
        """Rows of a stack's final state: the last layer's are its final state, the others are left out."""
        x = ins[0]
        params = self._slice_params(node)
        if x.kind == "seq":
            self.refuse(_at(node), self._sequence_slice(x, params))
        if x.kind != "state":
            self.refuse(_at(node), f"a chain slices only the rows of a recurrent stack's final state; {WHOLE_GRAPH}")
        if params is None or len(params) != 1:
            self.refuse(_at(node), "only the rows of a recurrent stack's final state are sliced in a chain's "
                                   "graph")
        axis, start, end, step = params[0]
        k = axis % len(x.axes)
        d, rows = x.rows[1], self.size[x.rows[0]] * self.size[x.rows[1]]
        if self.nonunit(x.axes[k]) != self.nonunit(x.rows) or step != 1:
            self.refuse(_at(node), f"it slices axis {k} of {self.show(x.axes)}, not the layers of a final state")
        start, end = (max(0, min(v + rows if v < 0 else v, rows)) for v in (start, end))
        if (start, end) != (rows - self.size[d], rows):
            return Flow("aux", what="the final state of a layer before the last")
        return replace(x, axes=x.axes[:k] + ((d,),) + x.axes[k + 1:])

    def _sequence_slice(self, x, params) -> str:
        """Why a Slice of a sequence is no part of a chain, saying what it takes (and what Keras does so)."""
        for axis, _, _, step in params or ():
            labels = x.axes[axis % len(x.axes)]
            if labels and self.bind.get(labels[0]) == "T":
                if step < 0:
                    return ("it reverses the steps, which a chain's layers do not (Keras: go_backwards with "
                            "return_sequences gives the outputs last step first)")
                return ("it takes some of the steps; a chain returns the whole sequence or the final state (Keras: "
                        "without return_sequences, zero_output_for_mask or an initial state make the output the last "
                        "step's, which is not the final state when the last steps are masked)")
            if self.is_feat(x, labels):
                return ("it takes some of the features; a chain's layers pass all of them on (Keras: a Bidirectional "
                        "merge_mode other than 'concat' takes the directions apart)")
        return f"it slices a sequence of axes {self.show(x.axes)}, which a chain's layers do not"

    def _slice_params(self, node):
        """[(axis, start, end, step)] of constant bounds (inputs from opset 10, attributes before), or None."""
        const = lambda n: None if not n else self.g.values[n].const
        if len(node.inputs) > 1:
            starts, ends, axes, steps = ([const(n) for n in node.inputs[1:5]] + [None] * 4)[:4]
            if starts is None or ends is None or (len(node.inputs) > 3 and node.inputs[3] and axes is None) or \
                    (len(node.inputs) > 4 and node.inputs[4] and steps is None):
                return None
        else:
            starts, ends, axes, steps = node.attrs.get("starts"), node.attrs.get("ends"), node.attrs.get("axes"), None
            if starts is None or ends is None:
                return None
        starts, ends = list(np.ravel(starts)), list(np.ravel(ends))
        axes = range(len(starts)) if axes is None else list(np.ravel(axes))
        steps = [1] * len(starts) if steps is None else list(np.ravel(steps))
        return [tuple(int(v) for v in p) for p in zip(axes, starts, ends, steps)]

    # embedding and dense stages -------------------------------------------------------------------------------
    def op_gather(self, node, ins):
        table, ids = self.g.values[node.inputs[0]].const, ins[1]
        if (ins[0] is not None or table is None or ids is None or ids.kind != "ids" or np.ndim(table) != 2
                or node.attrs.get("axis", 0) % 2):
            self.refuse(_at(node), "only Gather(constant table, token ids) on axis 0 is an embedding")
        stage = EmbeddingStage(np.asarray(table), name=node.name)
        f = self.label("F", stage.output_size)
        return Flow("seq", ids.axes + ((f,),), (f,), (stage,))

    def _features_in(self, node, x):
        x = self.final(x) or x
        if x is None or x.kind != "seq" or not x.axes or not self.is_feat(x, x.axes[-1]):
            self.refuse(_at(node), "its input is not a sequence or final state with features last")
        return x

    def op_matmul(self, node, ins):
        x = self._features_in(node, ins[0])
        w, width = self.g.values[node.inputs[1]].const, _product(self.size[l] for l in x.feat)
        if ins[1] is not None or w is None or w.ndim != 2 or w.shape[0] != width:
            self.refuse(_at(node), f"only x @ W with a constant W of shape [{width}, out] is a dense layer")
        return self._dense(node, x, np.asarray(w).T, node.attrs.get("_bias"))

    def op_gemm(self, node, ins):
        x = self.final(ins[0]) or ins[0]
        consts = [self.g.values[n].const if n else None for n in node.inputs[1:3]]
        if (x is None or x.kind != "seq" or not self.batch_and_features(x) or any(f is not None for f in ins[1:])
                or consts[0] is None or node.attrs.get("transA", 0)
                or (len(node.inputs) > 2 and node.inputs[2] and consts[1] is None)):
            self.refuse(_at(node), "only Gemm(final state, constant W, constant C) is a dense layer")
        w, c = np.asarray(consts[0]), consts[1] if len(consts) > 1 else None
        w = (w if node.attrs.get("transB", 0) else w.T) * node.attrs.get("alpha", 1.0)
        width = _product(self.size[l] for l in x.feat)
        if w.ndim != 2 or w.shape[1] != width:
            self.refuse(_at(node), f"W does not take {width} features")
        bias = None
        for b in (None if c is None else np.asarray(c).reshape(-1) * node.attrs.get("beta", 1.0),
                  node.attrs.get("_bias")):
            if b is not None and b.size not in (1, w.shape[0]):
                self.refuse(_at(node), f"C of shape {list(np.shape(c))} is not a bias of the {w.shape[0]} outputs")
            if b is not None:
                bias = np.broadcast_to(b, (w.shape[0],)) + (0 if bias is None else bias)
        return self._dense(node, x, w, bias)

    def _dense(self, node, x, weight, bias):
        act = node.attrs.get("_act")
        if act and act[0] not in DENSE_ACTS:
            self.refuse(_at(node), f"the {FUSED_OPS.get(act[0], act[0])} after it (folded into it) is not an "
                                   f"activation of a dense stage (relu, tanh, sigmoid, softmax)")
        stage = DenseStage(weight, bias, DENSE_ACTS[act[0]] if act else "linear", name=node.name)
        f = self.label("F", stage.output_size)
        return Flow("seq", x.axes[:-1] + ((f,),), (f,), x.stages + (stage,), open_dense=not act)

    def op_add(self, node, ins):
        k = 0 if ins[0] is not None else 1
        x, b = ins[k], self.g.values[node.inputs[1 - k]].const
        last = x.stages[-1] if x.stages else None
        if (not x.open_dense or last.bias is not None or b is None or ins[1 - k] is not None
                or b.size != last.output_size or b.shape[-1:] != (last.output_size,)):
            self.refuse(_at(node), "only a constant bias [out] added right after a MatMul is part of a dense layer")
        return replace(x, stages=x.stages[:-1] + (replace(last, bias=np.asarray(b).reshape(-1)),))

    def activation(self, node, ins):
        x = ins[0]
        if not x.open_dense:
            self.refuse(_at(node), "an activation fits a chain only right after a dense layer")
        if node.op == "Softmax":
            axis = node.attrs.get("axis", -1 if self.opset is None or self.opset >= 13 else 1)
            if axis % len(x.axes) != len(x.axes) - 1:
                self.refuse(_at(node), f"softmax over axis {axis}, not the features")
        last = replace(x.stages[-1], activation=ACT_OPS[node.op])
        return replace(x, stages=x.stages[:-1] + (last,), open_dense=False)

    # the outputs ----------------------------------------------------------------------------------------------
    def finish(self) -> Pipeline:
        g = self.g
        out = self.flows.get(g.outputs[0])
        where = f"{self.where}: output {g.outputs[0]!r}"
        if out is not None and out.kind == "state":
            if self.final(out) is None:
                self.refuse(where, f"it is a recurrent node's final state, axes {self.show(out.axes)}; a chain "
                                   f"returns [batch, features] (Y_h -> Squeeze of D, or Transpose + Reshape)")
            out = self.final(out)
        if out is not None and out.kind == "aux":
            self.refuse(where, f"it is {out.what}; a chain returns the last layer's sequence or final state h")
        if out is None or out.kind != "seq" or not any(isinstance(s, RecurrentStage) for s in out.stages):
            self.refuse(where, "it is not computed from the input through recurrent layers")
        if any(self.masked) and not all(self.masked):
            self.refuse(where, "some of its recurrent layers read the embedding's mask and some do not; in a chain "
                               "the mask of id 0 reaches every recurrent layer")
        for name in g.outputs[1:]:
            if name not in self.flows or self.flows[name].kind not in ("state", "aux"):
                self.refuse(f"{self.where}: output {name!r}", "a chain has one output; only final-state outputs "
                                                              "may be left out")
        on_path = {id(l) for s in out.stages if isinstance(s, RecurrentStage) for l in s.layers}
        for node, layers in self.recurrent_nodes:  # one off the output's path: its final states are a branch's outputs
            if not all(id(l) in on_path for l in layers):
                self.refuse(_at(node), f"it is not on the way from the input to output {g.outputs[0]!r}; a chain is "
                                       f"one path of layers, and its final-state outputs are the path's own")
        order = tuple(self.bind[a] for a in OUTER)
        axes, sequence = out.axes, _returns_sequence(out)
        if sequence:  # in the input's layout
            fits = len(axes) == 3 and axes[:2] == (("x0",), ("x1",)) and self.is_feat(out, axes[2])
        else:
            fits = self.batch_and_features(out)
        if not fits:
            if out.stack and (out.feat[0],) in axes:  # the directions on an axis of their own
                self.refuse(where, f"it is a recurrent node's Y, axes {self.show(axes)}; a chain returns the "
                                   f"sequence with the directions merged into the features (Y -> Squeeze of D, or "
                                   f"Transpose + Reshape, as exporters write it)")
            self.refuse(where, f"its axes are {self.show(axes)}; a chain returns {list(order) + ['F']} (the "
                               f"input's layout) or [B, F]")
        return Pipeline(list(out.stages), batch_first=order == ("B", "T"), name=g.name, source=self.where)


def refuse_unfit(name: str, reason: str):
    """FormatError for a model whose IR could not be made or analysed, for `reason` (graph/infer.py's Unfit): naming
    the node or layer it names ("file: node n (Op): why", "file: layer 'n' (LSTM): why") the way a refusal does."""
    m = re.fullmatch(r"(.*?: (?:node .*? \([\w.]+\)|layer .*? \([^)]*\))): (.*)", reason or "", re.S)
    if m:
        raise FormatError(f"{m[1]} does not fit {CHAIN}: {m[2]}")
    raise FormatError(f"{name} does not fit {CHAIN}: {reason}")


def _at(node) -> str:
    """How a refusal names a node: by the source's layer it was lowered from (ir.Node.origin), when it has one."""
    return f"{node.origin}, node {node.name} ({node.op})" if node.origin else node.where


def _returns_sequence(flow) -> bool:
    return all(s.return_sequences for s in flow.stages if isinstance(s, RecurrentStage))


def _product(sizes):
    n = 1
    for s in sizes:
        n = n * s
    return n


def _dims(shape) -> list:
    return [d if isinstance(d, int) else str(d) for d in shape]
