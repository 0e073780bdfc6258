"""Run an ONNX graph of recurrent nodes and the glue exporters put around them.

Recurrent nodes run in the C engine; the glue (Transpose, Reshape, Squeeze, ...) is a few numpy calls per
run. Each operator is one small function in OPS, so more can be registered (issue #9). Anything else is
refused at load with its op type, domain and node name.
"""
from __future__ import annotations

import numpy as np

from ... import engine
from ...errors import FormatError, MemoryLimitError
from ...limits import FOLD_MAX_BYTES, check_allocation, check_bytes, generated_bytes, nbytes
from ...graph.infer import ONNX_DTYPES  # one table of ONNX element types for both paths
from ...model import Model, TensorInfo
from .defaults import state_defaults
from .recurrent import OP_CELLS, RecurrentNodeSpec
from .protos import AttributeProto, attribute_value, read_model, to_onnx
from .schemas import is_standard_op
from .tensors import to_array
from .quant import MS_DOMAIN, QuantizedLstmSpec
from .ops import LOAD_CHECKS as MODEL_LOAD_CHECKS, OPS as MODEL_OPS

F32 = np.dtype(np.float32)
TYPE_NAMES = {1: "tensor(float)", 2: "tensor(uint8)", 3: "tensor(int8)", 5: "tensor(int16)", 6: "tensor(int32)",
              7: "tensor(int64)", 9: "tensor(bool)", 10: "tensor(float16)", 11: "tensor(double)"}


def _axes(node_ctx, inputs, attr_name="axes", input_index=1):
    if len(inputs) > input_index and inputs[input_index] is not None:
        return [int(a) for a in np.asarray(inputs[input_index]).reshape(-1)]
    value = node_ctx.attrs.get(attr_name)
    return None if value is None else [int(a) for a in value]


def op_identity(ctx, x): return [x]
def op_transpose(ctx, x): return [np.asarray(x).transpose(ctx.attrs.get("perm"))]
def op_shape(ctx, x): return [np.array(x.shape[ctx.attrs.get("start", 0):ctx.attrs.get("end")], np.int64)]
def op_concat(ctx, *xs): return [np.concatenate(xs, axis=ctx.attrs["axis"])]
def op_cast(ctx, x): return [x.astype(ONNX_DTYPES[ctx.attrs["to"]])]
def op_expand(ctx, x, shape):
    out_shape = np.broadcast_shapes(x.shape, tuple(int(s) for s in shape))
    check_allocation(out_shape, x.dtype, ctx.where)
    return [x * np.ones([int(s) for s in shape], x.dtype)]


def op_squeeze(ctx, x, *rest):
    axes = _axes(ctx, (x,) + rest)
    return [np.squeeze(x, axis=tuple(axes)) if axes else np.squeeze(x)]


def op_unsqueeze(ctx, x, *rest):
    axes = _axes(ctx, (x,) + rest)
    if axes is None:
        raise FormatError(f"{ctx.where}: Unsqueeze needs axes (an attribute before opset 13, an input from 13)")
    out = x
    for a in sorted(a % (x.ndim + len(axes)) for a in axes):
        out = np.expand_dims(out, a)
    return [out]


def op_reshape(ctx, x, shape):
    shape = np.asarray(shape, np.int64).reshape(-1).tolist()
    if not ctx.attrs.get("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return [x.reshape(shape)]


def op_gather(ctx, x, idx):
    return [np.take(x, idx.astype(np.int64), axis=ctx.attrs.get("axis", 0))]


def op_slice(ctx, x, *rest):
    if rest:
        starts, ends = rest[0], rest[1]
        axes = rest[2] if len(rest) > 2 and rest[2] is not None else range(len(starts))
        steps = rest[3] if len(rest) > 3 and rest[3] is not None else [1] * len(starts)
    else:
        starts, ends = ctx.attrs["starts"], ctx.attrs["ends"]
        axes, steps = ctx.attrs.get("axes", range(len(starts))), [1] * len(starts)
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[int(a)] = slice(int(s), int(e), int(st))
    return [x[tuple(index)]]


def op_constant_of_shape(ctx, shape):
    value = ctx.attrs.get("value")
    fill = np.zeros(1, np.float32) if value is None else value
    check_allocation(shape, fill.dtype, ctx.where)
    return [np.full([int(s) for s in shape], fill.reshape(-1)[0], fill.dtype)]


def _fold_fits(ctx, args) -> bool:
    """Whether the ops that make large arrays from small inputs (ConstantOfShape, Expand) stay within
    limits.FOLD_MAX_BYTES when computed at load."""
    op = ctx.node.op_type
    try:
        if op == "ConstantOfShape":
            value = ctx.attrs.get("value")
            return nbytes(args[0], np.float32 if value is None else value.dtype) <= FOLD_MAX_BYTES
        if op == "Expand":
            shape = np.broadcast_shapes(args[0].shape, tuple(int(s) for s in args[1]))
            return nbytes(shape, args[0].dtype) <= FOLD_MAX_BYTES
    except (ValueError, TypeError, OverflowError):
        return True  # a malformed shape: the op itself names the problem
    return True


def op_constant(ctx):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in ctx.attrs:
            v = ctx.attrs[key]
            return [np.asarray(v, np.float32 if "float" in key else np.int64) if not isinstance(v, np.ndarray) else v]
    raise FormatError(f"{ctx.where}: Constant without a supported value attribute ({sorted(ctx.attrs)})")


def check_cast(ctx):
    if ctx.attrs.get("to") not in ONNX_DTYPES:
        raise FormatError(f"{ctx.where}: Cast to ONNX type {ctx.attrs.get('to')} is not supported; supported: "
                          f"{sorted(TYPE_NAMES[t] for t in ONNX_DTYPES if t in TYPE_NAMES)}")


# Attribute checks run at load, so an unsupported form is refused before any input arrives.
LOAD_CHECKS = {**MODEL_LOAD_CHECKS, "Cast": check_cast}

OPS = {**MODEL_OPS, "Identity": op_identity, "Transpose": op_transpose, "Shape": op_shape, "Concat": op_concat, "Cast": op_cast,
       "Expand": op_expand, "Squeeze": op_squeeze, "Unsqueeze": op_unsqueeze, "Reshape": op_reshape,
       "Gather": op_gather, "Slice": op_slice, "ConstantOfShape": op_constant_of_shape, "Constant": op_constant}


class NoNumpyOperator(FormatError):
    """The node-by-node path has no implementation of an operator (the C executor may still run the graph)."""


def _spatial_rank(node, consts):
    """Spatial dimensions of a Conv / pooling node, from its constant weights or kernel_shape (None if unknown)."""
    for a in node.attribute:
        if a.name == "kernel_shape":
            return len(a.ints)
    w = consts.get(node.input[1]) if len(node.input) > 1 else None
    return None if w is None else np.ndim(w) - 2


def single_node_model(node, present, opset, inputs=None, initializers=()):
    """A model of one node (its op type and attributes), inputs named i0, i1... (absent where `present` is false),
    outputs o0, o1...: what onnx.reference runs and onnx shape inference types. `inputs` are the typed inputs'
    ValueInfos (untyped by default); `initializers` feed the constant ones."""
    from onnx import helper

    names = [f"i{k}" if p else "" for k, p in enumerate(present)]
    proto = helper.make_node(node.op_type, names, [f"o{k}" for k in range(len(node.output))])
    proto.attribute.extend(to_onnx(node).attribute)
    if inputs is None:
        inputs = [helper.make_tensor_value_info(n, 0, None) for n in names if n]
    outputs = [helper.make_tensor_value_info(f"o{k}", 0, None) for k in range(len(node.output))]
    return helper.make_model(helper.make_graph([proto], "one_node", inputs, outputs, list(initializers)),
                             opset_imports=[helper.make_opsetid("", opset)])


class ReferenceNode:
    """A standard operator rnnfast has no kernel of its own for (TopK, Hardmax, Sin, ...), run through onnx.reference's
    implementation of it, the ONNX project's executable spec. Operators with subgraphs are not taken here."""

    def __init__(self, node, where, opset):
        self.node, self.where, self.opset = node, where, opset
        self.input_names, self.output_names = list(node.input), list(node.output)
        self.feed_names = [f"i{k}" for k, n in enumerate(node.input) if n]
        self.evaluator = None  # made on the first run: importing onnx.reference costs ~10 MB the C path never needs
        self.fn = self._run

    def _evaluator(self):
        from onnx.reference import ReferenceEvaluator

        model = single_node_model(self.node, [bool(n) for n in self.node.input], self.opset)
        try:
            return ReferenceEvaluator(model)
        except Exception as e:  # onnx.reference's own exception types for an attribute form it does not take
            raise ValueError(f"onnx.reference cannot run this node: {type(e).__name__}: {e}") from None

    @staticmethod
    def applies(node, opset) -> bool:
        if node.domain not in ("", "ai.onnx") or any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS)
                                                      for a in node.attribute):
            return False
        return is_standard_op(node.op_type, opset)

    @staticmethod
    def _run(self, *args):
        check_bytes(generated_bytes(self.node.op_type, args), self.where)
        if self.evaluator is None:
            self.evaluator = self._evaluator()
        feeds = dict(zip(self.feed_names, [a for a in args if a is not None]))
        try:
            return self.evaluator.run(None, feeds)
        except (ValueError, IndexError, KeyError, TypeError, RuntimeError) as e:
            raise ValueError(f"{type(e).__name__}: {e}") from None


class NodeContext:
    def __init__(self, node, where, opset=None):
        self.node, self.where, self.opset = node, where, opset
        # Plain lists and the op function, read on every run: protobuf fields are slow to read per call.
        self.input_names, self.output_names = list(node.input), list(node.output)
        self.fn = OPS.get(node.op_type)
        self.attrs = {}
        for a in node.attribute:
            v = attribute_value(a, where)
            self.attrs[a.name] = to_array(v, f"{where}: attribute {a.name!r}") if hasattr(v, "dims") else v
        if node.op_type in LOAD_CHECKS:
            LOAD_CHECKS[node.op_type](self)


class RecurrentNode:
    """One RNN/GRU/LSTM node: its layer is built once when the weights are constants, else per run."""

    def __init__(self, spec: RecurrentNodeSpec, consts: dict, n_threads):
        self.spec, self.n_threads = spec, n_threads
        names = spec.inputs
        self.output_names = list(spec.node.output)  # a protobuf field is slow to read on every run
        self.layer = self.stack = None
        weight_names = [names[k] for k in spec.weight_keys]
        if all(not n or n in consts for n in weight_names):
            # packed on the first node-by-node run only: the C graph executor usually runs the model
            self.layer = spec.build_layer(*[consts.get(n) if n else None for n in weight_names])

    def run(self, values: dict):
        spec, names = self.spec, self.spec.inputs
        get = lambda key: values.get(names[key]) if names[key] else None
        layer = self.layer or spec.build_layer(*[get(k) for k in spec.weight_keys])
        x = values.get(names["X"])
        if x is None or (x.dtype if type(x) is np.ndarray else np.asarray(x).dtype).kind != "f":
            raise ValueError(f"{spec.where}: input X must be a float tensor")
        out_dtype = x.dtype
        h0, c0 = get("initial_h"), get("initial_c")
        if spec.layout == 1:  # batch-major: X [B,T,I], states [B,D,H]
            x = np.swapaxes(x, 0, 1)
            h0 = None if h0 is None else np.swapaxes(h0, 0, 1)
            c0 = None if c0 is None else np.swapaxes(c0, 0, 1)
        if x.ndim != 3 or x.shape[2] != layer.input_size:
            raise ValueError(f"{spec.where}: X has shape {tuple(np.shape(get('X')))}, expected a 3-D tensor with "
                             f"{layer.input_size} features ({'[batch, seq, input]' if spec.layout else '[seq, batch, input]'})")
        lens = get("sequence_lens")
        if x.shape[0] == 0 or x.shape[1] == 0:
            if lens is not None and np.any(np.asarray(lens) != 0):
                raise ValueError(f"{spec.where}: sequence_lens values must lie in [0, 0] (seq_len), got "
                                 f"{np.asarray(lens).tolist()}")
            y, y_h, y_c = _empty_run(layer, x.shape[0], x.shape[1])
        else:
            try:
                y, y_h, y_c = (self.stack or engine.compiled(layer)).run(
                    x, lens, None if h0 is None else [h0], None if c0 is None else [c0], n_threads=self.n_threads)
            except ValueError as e:
                raise ValueError(f"{spec.where}: {e}") from None
            y_h, y_c = y_h[0], y_c[0]
        if spec.layout == 1:
            y, y_h = y.transpose(2, 0, 1, 3), np.swapaxes(y_h, 0, 1)
            y_c = None if y_c is None else np.swapaxes(y_c, 0, 1)
        outs = [y, y_h, y_c]
        return {name: outs[i].astype(out_dtype, copy=False) for i, name in enumerate(self.output_names) if name}


def _empty_run(layer, seq_len, batch):
    """No steps or no rows: empty Y and zero states, as onnxruntime gives (every row has length 0)."""
    D, P = layer.n_dirs, layer.output_size
    y_c = np.zeros((D, batch, layer.hidden_size), np.float32) if layer.cell == "lstm" else None
    return np.zeros((seq_len, D, batch, P), np.float32), np.zeros((D, batch, P), np.float32), y_c


class IfNode:
    """ONNX If: both branches are built (and checked) at load; the condition picks one per run."""

    def __init__(self, node, where, opset, known, n_threads):
        self.node, self.where = node, where
        attrs = {a.name: a.g for a in node.attribute if a.name in ("then_branch", "else_branch")}
        if set(attrs) != {"then_branch", "else_branch"}:
            raise FormatError(f"{where}: If needs then_branch and else_branch graphs")
        self.branches = {key: OnnxGraph(None, f"{where} {key}", n_threads, subgraph=g, opset=opset,
                                        outer_known=known) for key, g in attrs.items()}
        for key, branch in self.branches.items():
            if len(branch.outputs) != len(node.output):
                raise FormatError(f"{where}: {key} has {len(branch.outputs)} outputs, the node {len(node.output)}")

    def run(self, values):
        cond = np.asarray(values[self.node.input[0]])
        if cond.size != 1:
            raise ValueError(f"{self.where}: the condition must hold one value, got shape {cond.shape}")
        branch = self.branches["then_branch" if bool(cond.reshape(-1)[0]) else "else_branch"]
        outs = branch.execute(dict(values) | branch.consts)
        return dict(zip(self.node.output, outs))


class ScanNode:
    """ONNX Scan (opset 9+): the body runs once per step in numpy, carrying its state variables. rnnfast's own
    ONNX export writes what the recurrent operators cannot say this way (exporters/onnx_scan.py). Scan axes other
    than 0 are refused."""

    def __init__(self, node, where, opset, known, n_threads):
        self.node, self.where = node, where
        attrs = {a.name: a for a in node.attribute}
        if "body" not in attrs or "num_scan_inputs" not in attrs:
            raise FormatError(f"{where}: Scan needs the body and num_scan_inputs attributes")
        value = lambda key, default: attribute_value(attrs[key], where) if key in attrs else default
        self.n_scan = int(value("num_scan_inputs", 0))
        self.n_state = len(node.input) - self.n_scan
        if self.n_state < 0 or opset < 9:
            raise FormatError(f"{where}: {len(node.input)} inputs for {self.n_scan} scan inputs (Scan before opset "
                              f"9 is not supported)")
        self.in_dirs = list(value("scan_input_directions", [0] * self.n_scan))
        n_out = len(node.output) - self.n_state
        self.out_dirs = list(value("scan_output_directions", [0] * n_out))
        for key in ("scan_input_axes", "scan_output_axes"):
            if any(value(key, [])):
                raise FormatError(f"{where}: Scan {key} other than 0 are not supported")
        self.body = OnnxGraph(None, f"{where} body", n_threads, subgraph=attrs["body"].g, opset=opset,
                              outer_known=known)
        if len(self.body.inputs) != len(node.input) or len(self.body.outputs) != len(node.output):
            raise FormatError(f"{where}: the body takes {len(self.body.inputs)} inputs and gives "
                              f"{len(self.body.outputs)} outputs; the node has {len(node.input)} and "
                              f"{len(node.output)}")

    def run(self, values):
        args = [values[n] for n in self.node.input]
        states, scanned = list(args[:self.n_state]), args[self.n_state:]
        steps = {np.shape(a)[0] for a in scanned}
        if len(steps) != 1:
            raise ValueError(f"{self.where}: scan inputs differ in length: {sorted(steps)}")
        (T,) = steps
        if T == 0:
            raise ValueError(f"{self.where}: Scan over 0 steps is not supported (the output shapes would be unknown)")
        collected = [[] for _ in self.out_dirs]
        names = [i.name for i in self.body.inputs]
        for t in range(T):
            step = [a[T - 1 - t] if d else a[t] for a, d in zip(scanned, self.in_dirs)]
            feeds = dict(values) | self.body.consts | dict(zip(names, states + step))
            outs = self.body.execute(feeds)
            states = outs[:self.n_state]
            for k, o in enumerate(outs[self.n_state:]):
                collected[k].append(o)
        ys = [np.stack(c[::-1] if d else c) for c, d in zip(collected, self.out_dirs)]
        return dict(zip(self.node.output, states + ys))


class OnnxGraph:
    def __init__(self, model_proto, name: str, n_threads=None, subgraph=None, opset=None, outer_known=()):
        """A model, or (subgraph=GraphProto, opset, outer_known) an If branch that reads outer-scope names."""
        graph = model_proto.graph if subgraph is None else subgraph
        self.name = name
        if opset is None:
            versions = {o.domain: o.version for o in model_proto.opset_import}
            opset = versions.get("") or versions.get("ai.onnx")
            if not opset:
                raise FormatError(f"{name}: the model imports no opset of the ai.onnx domain (opset_import: "
                                  f"{versions}); truncated or corrupt?")
        _refuse_duplicates(name, "initializer", [init.name for init in graph.initializer])
        _refuse_duplicates(name, "graph input", [v.name for v in graph.input])
        self.consts = {init.name: to_array(init, f"{name}: initializer {init.name!r}") for init in graph.initializer}
        # initializer-backed states stay inputs, their initializer the default (never folded as a constant)
        self.defaults = {n: self.consts.pop(n) for n in (state_defaults(model_proto) if subgraph is None else ())}
        self.inputs = [self._info(v, is_input=True, optional=v.name in self.defaults) for v in graph.input
                       if v.name not in self.consts]
        self.outputs = [self._info(v) for v in graph.output]
        self._fixed_dims = {}
        self.steps = []
        known = set(outer_known) | set(self.consts) | {v.name for v in graph.input}
        for i, node in enumerate(graph.node):
            where = f"{name}: node {node.name or '#' + str(i)} ({node.op_type})"
            if (node.domain, node.op_type) == (MS_DOMAIN, "DynamicQuantizeLSTM"):
                spec = QuantizedLstmSpec(node, opset, where)
            elif node.domain not in ("", "ai.onnx"):
                raise FormatError(f"{where}: operator domain {node.domain!r} is not supported (of {MS_DOMAIN} only "
                                  f"DynamicQuantizeLSTM is)")
            else:
                spec = RecurrentNodeSpec(node, opset, where) if node.op_type in OP_CELLS else None
            for inp in node.input:
                if inp and inp not in known:
                    raise FormatError(f"{where}: input {inp!r} {_unknown_input(graph.node, i, inp)}")
            for out in node.output:
                if out and out in known:
                    raise FormatError(f"{where}: output {out!r} is produced twice")
                known.add(out)
            if spec is not None:
                self.steps.append(("recurrent", RecurrentNode(spec, self.consts, n_threads)))
            elif node.op_type == "If":
                self.steps.append(("if", IfNode(node, where, opset, known, n_threads)))
            elif node.op_type == "Scan":
                self.steps.append(("scan", ScanNode(node, where, opset, known, n_threads)))
            elif node.op_type in ("Conv", "MaxPool", "AveragePool") and _spatial_rank(node, self.consts) != 1:
                self.steps.append(("op", ReferenceNode(node, where, opset)))  # numpy here has 1-D only
            elif node.op_type in OPS:
                ctx = NodeContext(node, where, opset)
                if not (all(not n or n in self.consts for n in node.input) and self._fold(ctx)):
                    self.steps.append(("op", ctx))
            elif ReferenceNode.applies(node, opset):
                self.steps.append(("op", ReferenceNode(node, where, opset)))
            else:
                raise NoNumpyOperator(f"{where}: operator {node.op_type!r} (domain {node.domain or 'ai.onnx'!r}) is not "
                                  f"supported; supported: RNN, GRU, LSTM, If, Scan, {', '.join(sorted(OPS))}")
        for out in self.outputs:
            if out.name not in known:
                raise FormatError(f"{name}: graph output {out.name!r} is not produced by any node")
        self.n_threads = n_threads
        self.compiled, self.unfit_reason = None, "not compiled"  # load_onnx sets both

    def _fold(self, ctx) -> bool:
        """Compute a node whose inputs are all constants once, at load, so recurrent nodes see plain weights; False
        (left to the run, which checks the memory limit) for a constant larger than limits.FOLD_MAX_BYTES."""
        args = [self.consts[n] if n else None for n in ctx.node.input]
        if not _fold_fits(ctx, args):
            return False
        try:
            results = OPS[ctx.node.op_type](ctx, *args)
        except (ValueError, IndexError, KeyError, TypeError) as e:
            raise FormatError(f"{ctx.where}: cannot evaluate this constant expression: {e}") from None
        self.consts.update((name, np.asarray(r)) for name, r in zip(ctx.node.output, results) if name)
        return True

    def _info(self, value_info, is_input=False, optional=False):
        t = value_info.type.tensor_type
        if is_input and t.elem_type not in TYPE_NAMES:  # feeds are checked against the type: it must be known
            raise FormatError(f"{self.name}: graph input {value_info.name!r} has ONNX element type {t.elem_type}; "
                              f"supported: {sorted(TYPE_NAMES.values())}")
        shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
        if optional:  # as lower.py: an axis not declared as the initializer's fixed size is the input's own
            default = self.defaults[value_info.name]
            declared = shape if len(shape) == default.ndim else [None] * default.ndim
            shape = [d if d == n else f"{value_info.name}:{a}" for a, (d, n) in enumerate(zip(declared,
                                                                                               default.shape))]
        return TensorInfo(value_info.name, shape, TYPE_NAMES.get(t.elem_type, f"tensor(type {t.elem_type})"),
                          optional)

    def run(self, feeds: dict, output_names=None) -> list:
        # While rnnfast verify watches CompiledStack.run (cli/trace.py), the graph runs node by node for it.
        if self.compiled is not None and output_names is None and not engine.run_is_traced():
            return self.compiled.run(_ordered_feeds(self, feeds))
        values = dict(self.consts)
        for info in self.inputs:
            if feeds.get(info.name) is None and info.optional:
                values[info.name] = self.defaults[info.name]
                continue
            if info.name not in feeds:
                raise ValueError(f"{self.name}: missing input {info.name!r} (inputs: {[i.name for i in self.inputs]})")
            values[info.name] = self._check_input(info, feeds[info.name])
        return self.execute(values, output_names)

    def execute(self, values: dict, output_names=None) -> list:
        """Run the nodes over `values` (inputs, constants and, for a branch, the outer scope)."""
        for kind, step in self.steps:
            if kind == "recurrent":
                values.update(step.run(values))
                continue
            if kind in ("if", "scan"):
                values.update(step.run(values))
                continue
            args = [values[n] if n else None for n in step.input_names]
            try:
                results = step.fn(step, *args)
            except MemoryLimitError:
                raise  # names the node already
            except (ValueError, IndexError, KeyError, TypeError) as e:
                raise ValueError(f"{step.where}: {e}") from None
            values.update(zip(step.output_names, results))
        wanted = output_names or [o.name for o in self.outputs]
        return [values[n] for n in wanted]

    def direct_runner(self):
        """Model.run's shortcut past run and _check_input (_direct_runner), or None without the C executor."""
        return None if self.compiled is None else _direct_runner(self)

    def _check_input(self, info, value):
        if type(value) is np.ndarray and value.dtype is F32 and info.type == "tensor(float)":
            fixed = self._fixed_dims.get(info.name)
            if fixed is None:  # the axes with a fixed size, worked out once per input
                fixed = self._fixed_dims[info.name] = (len(info.shape), _fixed_sizes(info))
            if not fixed[0] or value.ndim == fixed[0]:
                shape = value.shape
                for a, w in fixed[1]:  # a loop, not all(genexpr): a generator costs more than this whole check
                    if shape[a] != w:
                        break
                else:
                    return value  # the usual feed, accepted without the checks below (which name the problem)
        value = np.asarray(value)
        if len(info.shape) and value.ndim != len(info.shape):
            raise ValueError(f"{self.name}: input {info.name!r} has {value.ndim} dimensions, expected "
                             f"{len(info.shape)} {info.shape}")
        for axis, (got, want) in enumerate(zip(value.shape, info.shape)):
            if isinstance(want, int) and want > 0 and got != want:
                raise ValueError(f"{self.name}: input {info.name!r} has size {got} on axis {axis}, expected {want}")
        if not _dtype_fits(info, value.dtype):
            raise ValueError(f"{self.name}: input {info.name!r} has dtype {value.dtype}, expected {info.type}")
        return value

    def stream(self, batch=1, n_threads=None, states=None):
        """An rnnfast.Stream of the compiled graph (graph/stream.py make_stream: its state pairs, `states` or found
        by name and shape; one stack of forward layers steps directly), or, on the node-by-node path, of a graph of
        one recurrent node, its step returning the first output's step."""
        from ...graph.stream import make_stream

        if self.compiled is not None:
            return make_stream(self.name, batch, n_threads or self.n_threads, compiled=self.compiled, states=states)
        recurrent = [step for kind, step in self.steps if kind == "recurrent"]
        why = f"rnnfast runs this graph node by node in Python ({self.unfit_reason}), and streams such a graph"
        if len(self.steps) != 1 or len(recurrent) != 1 or recurrent[0].layer is None:
            raise FormatError(f"{self.name}: cannot stream: {why} only when it is one recurrent node with constant "
                              f"weights, or a stack of them joined by Squeeze or Transpose + Reshape; this one has "
                              f"{len(self.steps)} node(s)")
        node = recurrent[0]
        if node.spec.inputs["X"] != self.inputs[0].name or len(self.inputs) != 1:
            raise FormatError(f"{self.name}: cannot stream: {why} only when the recurrent node's X is the graph's "
                              f"only input; its inputs are {[i.name for i in self.inputs]}")
        return make_stream(node.spec.where, batch, n_threads or node.n_threads, layers=[node.layer])

    def to_pipeline(self):
        from .pipeline import onnx_to_pipeline

        return onnx_to_pipeline(self)

    quantizes_weight_constants = True  # Model.quantize's scope "all"

    def quantized(self, weight_dtype, scope="recurrent"):
        """The graph with its weights of `scope` stored in weight_dtype (Model.quantize), or None when the C
        executor does not run it (Model.quantize then says why)."""
        return _quantized(self.compiled, weight_dtype, self.name, scope)

    def describe(self) -> str:
        lines = [f"ONNX graph {self.name}: inputs {[i.name for i in self.inputs]}, outputs "
                 f"{[o.name for o in self.outputs]}"]
        for kind, step in self.steps:
            if kind == "recurrent":
                s = step.spec
                lines.append(f"  {s.where}: {s.cell} {s.direction} hidden {s.hidden_size} layout {s.layout}")
            else:
                lines.append(f"  {step.where}")
        return "\n".join(lines)


def _refuse_duplicates(name, what, names):
    seen = set()
    for n in names:
        if n in seen:
            raise FormatError(f"{name}: {what} {n!r} is defined twice")
        seen.add(n)


def _unknown_input(nodes, i, name) -> str:
    """Why node i cannot read `name`: produced nowhere, produced later (the graph is not topologically sorted,
    as ONNX requires), or produced by a node that itself depends on node i (a cycle)."""
    producer = {out: j for j, node in enumerate(nodes) for out in node.output if out}
    if name not in producer:
        return "is not produced by any node, initializer or graph input (dangling)"
    j = producer[name]
    label = lambda k: nodes[k].name or f"#{k}"
    stack, seen = [j], {j}
    while stack:
        for inp in nodes[stack.pop()].input:
            k = producer.get(inp)
            if k == i:
                return f"is produced by node {label(j)}, which depends on this node's output: the graph has a cycle"
            if k is not None and k not in seen:
                seen.add(k)
                stack.append(k)
    return f"is produced by the later node {label(j)}: the nodes are not in topological order, as ONNX requires"


def load_onnx(path_or_bytes, name: str = None, n_threads=None, folder=None) -> Model:
    """An ONNX model (path, bytes or binary file object) as a Model; `name` is used in messages, `folder` is where
    external data files are looked for (by default the folder of a model loaded from a path).

    The graph is lowered to the IR and compiled for the C executor (rnnfast/graph/); a graph the executor cannot
    take yet (an operator without a C kernel, sizes that depend on the data) runs node by node here, and
    `unfit_reason` on the graph says why. Neither imports the onnx package unless the model needs onnx itself (an
    operator run through onnx.reference)."""
    from ...formats import folder_of, read_source

    data, source_name = read_source(path_or_bytes)
    name = name or source_name
    proto = read_model(data, name, folder if folder is not None else folder_of(path_or_bytes))
    if not proto.graph.node:
        raise FormatError(f"{name}: the ONNX graph has no nodes (truncated or not an ONNX model?)")
    compiled, why = compile_onnx(proto, name, n_threads)
    try:
        graph = OnnxGraph(proto, name, n_threads)
    except NoNumpyOperator:
        if compiled is None:
            raise
        graph = CompiledOnnxGraph(compiled, name)
    graph.compiled, graph.unfit_reason = compiled, why
    graph.proto = proto if compiled is None else None  # pipeline.py analyses it again, without the C lowering
    return Model(graph, source=name)


def compile_onnx(proto, name, n_threads):
    """(CompiledGraph, None), or (None, why) when the C executor cannot take this graph."""
    from ...graph.runtime import Unfit, compile_graph
    from .lower import lower_model

    try:
        graph, opset = lower_model(proto, name)
        return compile_graph(graph, opset, n_threads), None
    except Unfit as e:
        return None, str(e)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, ArithmeticError, RecursionError) as e:
        # Not a documented error class: a form the lowering does not expect (a damaged file, or a gap in it). The
        # node-by-node path then loads the file, and names what is wrong with it if anything is.
        if isinstance(e, FormatError):
            raise
        return None, f"{name}: rnnfast could not translate the graph for the C executor ({type(e).__name__}: {e})"


class CompiledOnnxGraph:
    """A graph only the C executor runs (the node-by-node path has no implementation of some of its operators)."""

    def __init__(self, compiled, name):
        self.name, self.compiled = name, compiled
        g = compiled.graph
        self.inputs = [_info_of(g.values[n], n in g.defaults) for n in g.inputs]
        self.outputs = [_info_of(g.values[n]) for n in g.outputs]

    def run(self, feeds: dict, output_names=None) -> list:
        outs = self.compiled.run(_ordered_feeds(self, feeds))
        if output_names is None:
            return outs
        by_name = dict(zip(self.compiled.output_names, outs))
        return [by_name[n] for n in output_names]

    def direct_runner(self):
        """Model.run's shortcut past run (_direct_runner)."""
        return _direct_runner(self)

    def describe(self) -> str:
        return f"ONNX graph {self.name}: {self.compiled.describe()}"

    def stream(self, batch=1, n_threads=None, states=None):
        from ...graph.stream import make_stream

        return make_stream(self.name, batch, n_threads, compiled=self.compiled, states=states)

    def to_pipeline(self):
        from .pipeline import onnx_to_pipeline

        if self.compiled.stored_constants:
            raise FormatError(f"{self.name}: its MatMul / Gemm / Conv weights are stored quantized (Model.quantize "
                              f"scope 'all'), which a chain of embedding, recurrent and dense layers cannot hold; "
                              f"write the whole graph (.rnnf 2, .npz, .safetensors) instead")
        return onnx_to_pipeline(self)

    quantizes_weight_constants = True

    def quantized(self, weight_dtype, scope="recurrent"):
        return _quantized(self.compiled, weight_dtype, self.name, scope)


def _quantized(compiled, weight_dtype, name, scope):
    if compiled is None:
        return None
    return CompiledOnnxGraph(compiled.quantized(weight_dtype, scope), name)


def _info_of(v, optional=False) -> TensorInfo:
    from ...graph.dims import Dim

    types = {np.dtype(t): TYPE_NAMES[k] for k, t in ONNX_DTYPES.items() if k in TYPE_NAMES}
    shape = [None if isinstance(d, Dim) else d for d in v.shape]
    return TensorInfo(v.name, shape, types.get(np.dtype(v.dtype), str(v.dtype)), optional)


def _fixed_sizes(info) -> list:
    """[(axis, size)] of the input's axes that have a fixed size."""
    return [(a, w) for a, w in enumerate(info.shape) if isinstance(w, int) and w > 0]


def _dtype_fits(info, dtype) -> bool:
    """Whether an array of this dtype may feed the input: any floating type for a float input, bool for a bool one,
    any integer type otherwise. dtype.kind ('f', 'i'/'u', 'b') says what np.issubdtype says, several times faster."""
    if info.type in ("tensor(float)", "tensor(float16)", "tensor(double)"):
        return dtype.kind == "f"
    if info.type == "tensor(bool)":
        return dtype == np.bool_
    return dtype.kind in "iu"


def _direct_runner(graph):
    """feeds -> outputs in one call into the C executor (CGraph.run_feeds) for a feed dict that the graph's run would
    pass on unchanged: arrays of each input's executor dtype, C-contiguous, of the declared rank and fixed sizes
    (the first test of OnnxGraph._check_input), no unknown or missing names. Anything else gives None, and Model.run
    takes the graph's run, whose checks name the problem; so does a run while rnnfast verify traces the engine, or
    once graph.compiled is no longer the compiled graph this was made for."""
    compiled, rules = graph.compiled, []
    for info, dtype in zip(graph.inputs, compiled.input_dtypes):
        # an array of the executor's own dtype must pass _check_input's dtype check to be taken as it is
        fits = _dtype_fits(info, dtype)
        rules.append((info.name, info.optional, len(info.shape) or -1, tuple(_fixed_sizes(info))) if fits else None)
    compiled.c_graph.accept_feeds(rules, compiled.n_threads)
    return engine.compiled_shortcut(compiled.c_graph.run_feeds, graph, compiled)


def _ordered_feeds(graph, feeds: dict) -> list:
    out = []
    for info in graph.inputs:
        if feeds.get(info.name) is None and info.optional:
            out.append(None)  # the C executor's default
            continue
        if info.name not in feeds:
            raise ValueError(f"{graph.name}: missing input {info.name!r} (inputs: {[i.name for i in graph.inputs]})")
        out.append(graph._check_input(info, feeds[info.name]) if hasattr(graph, "_check_input") else
                   np.asarray(feeds[info.name]))
    return out
