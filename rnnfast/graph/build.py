"""A small builder of graph IRs for importers other than ONNX (PyTorch, .rnnf, Keras): named inputs with symbolic
dimensions, constants, nodes in ONNX's operator names and semantics, and the few compound pieces a recurrent
model is made of (a stack of canonical RecurrentLayers, a dense layer, an embedding lookup), then the standard
analysis and the compilation for the C executor, as an ONNX file gets.

    b = GraphBuilder("lstm.pt")
    x = b.input("input", np.float32, ["seq_len", "batch", 8])   # a str is a symbolic dimension
    y, h_n, c_n = b.recurrent(x, layers, states=True)            # y [T, B, D*P], h_n [L*D, B, P], c_n [L*D, B, H]
    b.output(b.dense(y, weight, bias), "output")
    compiled = b.compile()                                       # graph/runtime.py CompiledGraph

Value names are the builder's own ("<node>/out0") unless given; `output` renames a value to the name the user
sees. Nothing here runs anything: shapes are inferred, and anything unfit is refused, by the analysis."""
from __future__ import annotations

import dataclasses

import numpy as np

from .. import rnnf_spec as spec
from ..layers import N_GATES, RecurrentLayer
from .dims import Dim
from .ir import Graph, Node, Value
from .stack import SEQ_BATCH_DIR, StackLayer

OPSET = 17  # the ONNX semantics the built nodes follow (Softmax on axis -1, Squeeze/Unsqueeze axes as inputs)
# A dense layer's activation (rnnf_spec.DENSE_ACTIVATIONS: Keras's names, .rnnf 1's codes) -> the ONNX op that
# computes it (graph/fuse.py folds it into the product).
DENSE_ACTIVATIONS = dict(zip(spec.DENSE_ACTIVATIONS, (None, "Relu", "Tanh", "Sigmoid", "Softmax"), strict=True))


class LayerSpec:
    """What a Recurrent node's StackLayer needs from its spec (graph/stack.py), for a canonical layer given as it
    is: build_layer returns the layer itself, or a float32 copy with new input weights when the analysis folded a
    linear map before the stack into them (stack._fold_input_product)."""

    weight_keys = ("W", "R", "B", "P")

    def __init__(self, layer: RecurrentLayer):
        self.layer, self.cell, self.direction, self.n_dirs = layer, layer.cell, layer.direction, layer.n_dirs
        self.hidden_size, self.weight_dtype = layer.hidden_size, layer.weight_dtype
        self.where = layer.source or layer.name

    def weights(self) -> tuple:
        """(W, R, B, P) in ONNX's layout: W = w_ih, R = w_hh, B = [b_ih, b_hh], P = the peepholes."""
        l = self.layer
        return l.w_ih, l.w_hh, np.concatenate([l.b_ih, l.b_hh], axis=1), l.peepholes

    def build_layer(self, W, R, B=None, P=None) -> RecurrentLayer:
        l = self.layer
        if W is l.w_ih and R is l.w_hh and P is l.peepholes:
            return l
        rows = N_GATES[l.cell] * l.hidden_size
        return dataclasses.replace(l, w_ih=W, w_hh=R, b_ih=B[:, :rows], b_hh=B[:, rows:], peepholes=P)


class GraphBuilder:
    def __init__(self, name: str):
        self.g = Graph(name, [], [], {}, [])
        self._count = 0
        self._node_names = set()
        self.origin = ""  # stamped on the nodes made from now on (ir.Node.origin): the importer's layer being lowered

    # ---- values ----
    def _fresh(self, stem: str) -> str:
        name = stem
        while name in self.g.values or name in self._node_names:
            self._count += 1
            name = f"{stem}_{self._count}"
        return name

    def input(self, name: str, dtype, shape, default=None) -> str:
        """A graph input; `shape` holds ints and symbolic dimensions (a str names the symbol: inputs that share a
        name share the size, checked at run time). `default`: ir.ZEROS or a value, for an input a run may leave
        out."""
        if name in self.g.values:
            raise ValueError(f"{self.g.name}: value {name!r} is defined twice")
        dims = tuple(Dim.symbol(d) if isinstance(d, str) else int(d) for d in shape)
        self.g.values[name] = Value(name, np.dtype(dtype), dims)
        self.g.inputs.append(name)
        if default is not None:
            self.g.defaults[name] = default
        return name

    def const(self, array, name: str = "const") -> str:
        array = np.asarray(array)
        name = self._fresh(name)
        self.g.values[name] = Value(name, array.dtype, tuple(array.shape), const=array)
        return name

    def node(self, op: str, inputs, attrs=None, name: str = None, outputs=1, payload=None):
        """One node in ONNX's semantics; inputs are value names ("" for an absent optional one) or arrays (made
        constants). outputs: a count (names made here; "" stays absent) or the names. Returns the output name, or
        the list of them when there are several."""
        name = self._fresh(name or op)
        self._node_names.add(name)
        ins = [v if isinstance(v, str) else self.const(v, f"{name}/in{k}") for k, v in enumerate(inputs)]
        for v in ins:
            if v and v not in self.g.values:
                raise ValueError(f"{self.g.name}: node {name} ({op}) reads {v!r}, which is not defined")
        if isinstance(outputs, int):
            outputs = [f"{name}/out{k}" for k in range(outputs)]
        for v in outputs:
            if v and v in self.g.values:
                raise ValueError(f"{self.g.name}: node {name} ({op}) writes {v!r}, which is already defined")
            if v:
                self.g.values[v] = Value(v)  # typed by the analysis
        self.g.nodes.append(Node(op, ins, list(outputs), dict(attrs or {}), name, f"{self.g.name}: node {name} ({op})",
                                 payload, origin=self.origin))
        return outputs[0] if len(outputs) == 1 else list(outputs)

    # ---- compound pieces ----
    def recurrent(self, x: str, layers, h0: str = "", c0: str = "", sequence_lens: str = "", states: bool = False,
                  sequence: bool = True, name: str = None, mask: str = "", zero_output: bool = False):
        """A stack of canonical layers over x [T, B, I] (time-major; sequence_lens int32 [B]; h0 [L*D, B, P] and
        c0 [L*D, B, H] as PyTorch stacks them). Returns (y [T, B, D*P] or None, h_n [L*D, B, P] or None, c_n
        [L*D, B, H] or None); the states when `states`, c_n for an LSTM only. `mask` (bool [T, B]) is a Keras
        mask: a masked step keeps the state and repeats the previous output, or gives zeros with `zero_output`."""
        layers = list(layers)
        first = layers[0]
        if states or h0 or c0:
            shapes = {(l.cell, l.n_dirs, l.output_size, l.hidden_size) for l in layers}
            if len(shapes) > 1:
                raise ValueError(f"{self.g.name}: the layers of a stack with state inputs or outputs need one cell, "
                                 f"direction count and size; got {sorted(shapes)}")
        if c0 and first.cell != "lstm":
            raise ValueError(f"{self.g.name}: c0 is only an input of an LSTM")
        name = self._fresh(name or first.name or "recurrent")
        specs = [LayerSpec(l) for l in layers]
        payload = [StackLayer(s, s.weights(), "", "", l.name or f"{name}/layer{k}")
                   for k, (s, l) in enumerate(zip(specs, layers))]
        outs = [f"{name}/Y" if sequence else "", f"{name}/Y_h" if states else "",
                f"{name}/Y_c" if states and first.cell == "lstm" else ""]
        if len(payload) == 1:  # a lone layer's states are its own: a stack the analysis merges it into keeps them
            payload[0].y_h, payload[0].y_c = outs[1], outs[2]
        attrs = {"_y_layout": SEQ_BATCH_DIR}
        if mask or zero_output:  # without a mask the rule changes nothing, but a chain read back keeps it
            attrs["_mask_zero_output"] = int(bool(zero_output))
        y, y_h, y_c = self.node("Recurrent", [x, sequence_lens, h0, c0] + ([mask] if mask else []), attrs, name,
                                outs, payload)
        if y:  # [T, B, D, P] -> [T, B, D*P]: the memory the engine writes (the analysis makes it a view)
            y = self.node("Reshape", [y, np.array([0, 0, -1], np.int64)], name=f"{name}/merge_directions")
        return y or None, y_h or None, y_c or None

    def dense(self, x: str, weight, bias=None, activation: str = "linear", name: str = "dense") -> str:
        """activation(x @ weight.T + bias) over the last axis (weight [out, in], torch Linear's layout)."""
        if activation not in DENSE_ACTIVATIONS:
            raise ValueError(f"{self.g.name}: dense {name!r}: activation {activation!r} is not one of "
                             f"{list(DENSE_ACTIVATIONS)}")
        weight = np.asarray(weight, np.float32)
        y = self.node("MatMul", [x, np.ascontiguousarray(weight.T)], name=name)
        if bias is not None:
            y = self.node("Add", [y, np.asarray(bias, np.float32)], name=f"{name}/bias")
        op = DENSE_ACTIVATIONS[activation]
        if op is not None:
            y = self.node(op, [y], {"axis": -1} if op == "Softmax" else {}, name=f"{name}/{activation}")
        return y

    def embedding(self, ids: str, table, name: str = "embedding") -> str:
        """table[ids]: rows of a [vocab, dim] table (ONNX Gather on axis 0; a negative id counts from the end)."""
        return self.node("Gather", [np.asarray(table, np.float32), ids], {"axis": 0}, name=name)

    # ---- the graph ----
    def output(self, value: str, name: str = None) -> str:
        """Make `value` a graph output, named `name` (the producing node's output is renamed when it can be)."""
        if name is not None and name != value:
            if name in self.g.values:
                raise ValueError(f"{self.g.name}: output name {name!r} is already a value")
            producer = next((n for n in self.g.nodes if value in n.outputs), None)
            if producer is not None and value not in self.g.outputs:
                producer.outputs = [name if o == value else o for o in producer.outputs]
                for layer in producer.payload if producer.op == "Recurrent" else ():
                    layer.y_h, layer.y_c = (name if o == value else o for o in (layer.y_h, layer.y_c))
                for node in self.g.nodes:
                    node.inputs = [name if i == value else i for i in node.inputs]
                self.g.values[name] = Value(name)
                del self.g.values[value]
            else:
                self.node("Identity", [value], name=f"{name}/identity", outputs=[name])
            value = name
        self.g.outputs.append(value)
        return value

    def state_loop(self, output: str, input: str):
        """Record that `output` is the next call's `input` (what a stream keeps between steps)."""
        self.g.state_loops.append((output, input))

    def graph(self) -> Graph:
        return self.g

    def compile(self, n_threads=None):
        """The analysed graph compiled for the C executor (graph/runtime.py CompiledGraph)."""
        from .runtime import compile_graph

        return compile_graph(self.g, OPSET, n_threads)
