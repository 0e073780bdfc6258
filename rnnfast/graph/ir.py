"""The graph IR every importer lowers to: values with a dtype and a shape in symbolic dimensions, nodes with an op
kind (ONNX's operator names and semantics, plus "Recurrent" for a stack of RNN/GRU/LSTM layers) and attributes.

A chain (embedding -> recurrent stack -> dense) is simply a graph; a state loop (an output fed back as an input
on the next call) is recorded in `state_loops` so a whole model streams. An input with a default (`defaults`) may be
left out of a run: it is then a constant (an ONNX input backed by an initializer) or ZEROS of its shape, whose
symbolic sizes the other inputs give (PyTorch's h0/c0)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .dims import shape_str


# Ops that only reinterpret their input's memory (inference-mode Dropout included): the C lowering makes them views,
# and the passes that follow a value through them (stack.py, to_pipeline.py) read them as such.
VIEW_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout", "View")
ZEROS = "zeros"  # Graph.defaults: zeros of the input's shape


@dataclass
class Value:
    name: str
    dtype: np.dtype | None = None     # None until inferred
    shape: tuple | None = None        # ints and dims.Dim; None until inferred
    const: np.ndarray | None = None   # a constant's value
    sym: list | None = None           # a 1-D integer tensor known as symbolic sizes (what Shape gives)

    def describe(self) -> str:
        dt = "?" if self.dtype is None else np.dtype(self.dtype).name
        return f"{self.name}: {dt}{'?' if self.shape is None else shape_str(self.shape)}"


@dataclass
class Node:
    op: str
    inputs: list                      # value names, "" for an absent optional input
    outputs: list
    attrs: dict = field(default_factory=dict)
    name: str = ""
    where: str = ""                   # for messages: "model.onnx: node Conv_3 (Conv)"
    payload: object = None            # Recurrent: the list of canonical RecurrentLayers; If: the two branch Graphs
    proto: object = None              # the ONNX NodeProto it came from (constant folding through onnx.reference)
    origin: str = ""                  # the source's layer it was lowered from, when the source is not a graph of
                                      # such nodes: what a refusal names ("model.keras: layer 'lstm' (LSTM)")


@dataclass
class Graph:
    name: str
    inputs: list                      # value names, in the order the user feeds them
    outputs: list
    values: dict                      # name -> Value
    nodes: list
    state_loops: list = field(default_factory=list)  # (output name, input name) pairs
    defaults: dict = field(default_factory=dict)  # input name -> its value (np.ndarray) or ZEROS, when optional

    def value(self, name) -> Value:
        return self.values[name]

    def consumers(self) -> dict:
        users = {}
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    users.setdefault(name, []).append(node)
        return users

    def producers(self) -> dict:
        return {name: node for node in self.nodes for name in node.outputs if name}

    def describe(self) -> str:
        ins = [self.values[n].describe() + (" = zeros" if self.defaults.get(n) is ZEROS else " = default"
                                            if n in self.defaults else "") for n in self.inputs]
        lines = [f"graph {self.name}: inputs {ins}"]
        for node in self.nodes:
            lines.append(f"  {node.name or '?'} {node.op}({', '.join(node.inputs)}) -> {', '.join(node.outputs)}")
        lines.append(f"  outputs {[self.values[n].describe() for n in self.outputs]}")
        return "\n".join(lines)
