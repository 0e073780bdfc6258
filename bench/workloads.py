"""The workloads of PERFORMANCE.md and the models every peer runs for them, built once from the same weights.

Used by the pytest-benchmark suite (bench/test_bench.py) and the report script (bench/report.py)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from rnnfast.engine import CompiledStack
from rnnfast.layers import RecurrentLayer

WORKLOADS = {  # name: (seq_len, batch, input_size, hidden_size)
    "stream": (1, 1, 64, 256),
    "lat-h128": (100, 1, 64, 128),
    "lat-h256": (100, 1, 64, 256),
    "lat-h512": (100, 1, 64, 512),
    "thru": (100, 64, 128, 256),
    "tiny": (50, 1, 8, 32),
}
CELLS = {  # name: (cell, direction, layers)
    "lstm": ("lstm", "forward", 1), "gru": ("gru", "forward", 1), "rnn": ("rnn", "forward", 1),
    "bilstm": ("lstm", "bidirectional", 1), "lstm2": ("lstm", "forward", 2),
}
GATES = {"rnn": 1, "gru": 3, "lstm": 4}


@dataclass
class Case:
    workload: str
    cell_name: str
    layers: list
    x: np.ndarray

    @property
    def flops(self) -> float:
        """2·seq·batch·n_gates·H·(I+H) per layer and direction (element-wise work not counted)."""
        T, B = self.x.shape[:2]
        return sum(2.0 * T * B * l.n_gates * l.hidden_size * (l.input_size + l.hidden_size) * l.n_dirs
                   for l in self.layers)


def make_case(workload: str, cell_name: str, seed: int = 0) -> Case:
    T, B, I, H = WORKLOADS[workload]
    cell, direction, n_layers = CELLS[cell_name]
    rng = np.random.default_rng(seed)
    D, G, s = (2 if direction == "bidirectional" else 1), GATES[cell], 1 / np.sqrt(H)
    layers, in_size = [], I
    for _ in range(n_layers):
        u = lambda *shape: rng.uniform(-s, s, shape).astype(np.float32)
        layers.append(RecurrentLayer(cell, direction, H, in_size, u(D, G * H, in_size), u(D, G * H, H), u(D, G * H),
                                     u(D, G * H), linear_before_reset=cell == "gru"))
        in_size = D * H
    return Case(workload, cell_name, layers, rng.standard_normal((T, B, I)).astype(np.float32))


def onnx_model(case: Case, with_states: bool = False) -> bytes:
    """The same layers as an ONNX graph (stacked layers joined as torch.onnx.export joins them). With
    with_states, initial states are graph inputs and final states outputs, as a streaming ORT user needs."""
    nodes, inits, inputs, outputs = [], [], [], []
    T, B, I = case.x.shape
    inputs.append(helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, B, I]))
    x_name = "X"
    inits.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), "merge_shape"))
    for k, l in enumerate(case.layers):
        op = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}[l.cell]
        names = [f"W{k}", f"R{k}", f"B{k}"]
        inits += [numpy_helper.from_array(l.w_ih, names[0]), numpy_helper.from_array(l.w_hh, names[1]),
                  numpy_helper.from_array(np.concatenate([l.b_ih, l.b_hh], axis=1), names[2])]
        node_in, node_out = [x_name] + names, [f"Y{k}", f"Yh{k}"] + ([f"Yc{k}"] if l.cell == "lstm" else [])
        if with_states:
            node_in += ["", f"h{k}"] + ([f"c{k}"] if l.cell == "lstm" else [])
            for s in ("h", "c") if l.cell == "lstm" else ("h",):
                inputs.append(helper.make_tensor_value_info(f"{s}{k}", TensorProto.FLOAT, [l.n_dirs, B, l.hidden_size]))
            outputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in node_out[1:]]
        attrs = {"hidden_size": l.hidden_size, "direction": l.direction}
        if l.cell == "gru":
            attrs["linear_before_reset"] = 1
        nodes.append(helper.make_node(op, node_in, node_out, **attrs))
        nodes.append(helper.make_node("Transpose", [f"Y{k}"], [f"Yt{k}"], perm=[0, 2, 1, 3]))
        nodes.append(helper.make_node("Reshape", [f"Yt{k}", "merge_shape"], [f"out{k}"]))
        x_name = f"out{k}"
    outputs.insert(0, helper.make_tensor_value_info(x_name, TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "bench", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]).SerializeToString()


def rnnfast_runner(case: Case, n_threads: int):
    """A callable doing what a user's call does: x in, the output sequence out. The stream workload steps a
    persistent stream (state kept in C), the others run whole sequences."""
    stack = CompiledStack(case.layers)
    T, B, _ = case.x.shape
    if case.workload == "stream":
        stream = stack.stream(batch=B)
        out = np.empty((B, case.layers[-1].n_dirs * case.layers[-1].output_size), np.float32)
        x0 = case.x[0]

        def step():
            stream.step(x0, out, n_threads)
            return out
        return step
    from rnnfast.engine import Y_SEQ_BATCH_DIR

    return lambda: stack.run(case.x, y_layout=Y_SEQ_BATCH_DIR, n_threads=n_threads)[0]


def ort_runner(case: Case, n_threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = n_threads
    options.inter_op_num_threads = 1
    if case.workload == "stream":
        sess = ort.InferenceSession(onnx_model(case, with_states=True), options, providers=["CPUExecutionProvider"])
        B = case.x.shape[1]
        state = {i.name: np.zeros([d if isinstance(d, int) else B for d in i.shape], np.float32)
                 for i in sess.get_inputs() if i.name != "X"}
        names = [o.name for o in sess.get_outputs()]
        x0 = case.x[:1]

        def step():  # an ORT streaming user feeds the states back in on every call
            outs = sess.run(None, {"X": x0, **state})
            state.update(zip([n for n in state], outs[1:]))
            return outs[0]
        return step
    sess = ort.InferenceSession(onnx_model(case), options, providers=["CPUExecutionProvider"])
    return lambda: sess.run(None, {"X": case.x})[0]
