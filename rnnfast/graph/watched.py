"""A C executor description whose recurrent layers run in Python through engine.CompiledStack.run, so that what
watches the engine (rnnfast verify and inspect, cli/trace.py) sees, records or replaces each layer's run.

Only a description is needed: a .rnnf 2 file holds nothing else, no graph to run node by node. Each recurrent node
becomes a host node (RNNF_OP_HOST, as an island): the executor runs every other node in C as always, stops there,
and the binding calls `RecurrentHost`, which runs the node's layers one engine call each (graph/interpret.py's
run_layers). The executor allows no host node inside an If branch, so an If whose branches hold a recurrent node
becomes a host node itself: `BranchHost` runs the branch the condition picks as a graph of its own, watched the same
way."""
from __future__ import annotations

import numpy as np

from .. import _core
from .compile import OP

_RECURRENT, _IF, _HOST = OP["RECURRENT"], OP["IF"], OP["HOST"]


def watched_desc(desc: dict, where: str) -> dict:
    """desc with its recurrent nodes (and the If nodes holding some) replaced by host nodes; None when it has none."""
    hosts, nodes = list(desc.get("hosts", ())), []
    for node in desc["nodes"]:
        op, name, ins, outs, iattr, fattr, layers = node
        host = None
        if op == _RECURRENT:
            host = RecurrentHost(name, [d["layer"] for d in layers], iattr,
                                 [desc["tensors"][t][1] if t >= 0 else 0 for t in outs])
        elif op == _IF:
            branches = [watched_desc(desc["subgraphs"][i], f"{where}: {name}") for i in iattr[:2]]
            if any(b is not None for b in branches):
                host = BranchHost(name, [b or desc["subgraphs"][i] for b, i in zip(branches, iattr[:2])], where)
        if host is None:
            nodes.append(node)
            continue
        nodes.append((_HOST, name, ins, outs, [len(hosts)], [], None))
        hosts.append(host)
    if len(hosts) == len(desc.get("hosts", ())):
        return None
    return {**desc, "nodes": nodes, "hosts": hosts}


class RecurrentHost:
    """A recurrent node's work (src_c/graph/recurrent_node.c has its inputs, outputs and attributes)."""

    def __init__(self, where: str, layers: list, iattr: list, out_ranks: list):
        self.where, self.layers = where, layers
        self.batch_dir = bool(iattr and iattr[0])
        self.zero_output = len(iattr) > 1 and bool(iattr[1])
        self.merged_y = out_ranks[0] == 3  # [T, B, D*P]: the batch-major Y with its last two axes merged

    def __call__(self, args):
        from .interpret import run_layers

        x, lens, h0, c0 = args[:4]
        mask = args[4] if len(args) > 4 else None
        T, B = x.shape[:2]
        first, last = self.layers[0], self.layers[-1]
        LD = len(self.layers) * first.n_dirs
        if T and B:
            y, h, c = run_layers(self.layers, x, lens, h0, c0, mask, self.zero_output)
        else:  # no steps or no rows: zeros, as the C node gives
            y, h = np.zeros((T, last.n_dirs, B, last.output_size), np.float32), None
            c = None
        if h is None:
            h = np.zeros((LD, B, first.output_size), np.float32)
        if c is None:  # no cell state (a GRU or RNN): the C node leaves Y_c as it is; zeros here
            c = np.zeros((LD, B, first.hidden_size), np.float32)
        if self.batch_dir or self.merged_y:
            y = y.transpose(0, 2, 1, 3)
        if self.merged_y:
            y = y.reshape(T, B, -1)
        return [y, h, c]


class BranchHost:
    """An If node's work: its branches as graphs of their own, run with the node's captured inputs."""

    def __init__(self, where: str, branches: list, graph_where: str):
        self.where = where
        self.branches = [_core.CGraph(b, f"{graph_where}: {where} {key}")
                         for b, key in zip(branches, ("then_branch", "else_branch"))]

    def __call__(self, args):
        cond = np.asarray(args[0])
        if cond.size != 1:
            raise ValueError(f"{self.where}: the condition must hold one value, it has {cond.size}")
        return self.branches[0 if any(cond.tobytes()) else 1].run(list(args[1:]))  # any nonzero byte, as in C
