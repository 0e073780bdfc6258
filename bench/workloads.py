"""The workloads of PERFORMANCE.md, the models every engine runs for them (built once from the same weights) and
one runner per engine. A runner is run(x=None) -> output, doing what a user's call does: a whole sequence in,
[seq, batch, n_dirs*hidden] out; for the stream workload one step [batch, input] in, [batch, n_dirs*hidden] out,
with the state carried to the next call. Used by bench/test_bench.py and bench/report.py."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto, helper, numpy_helper

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
STREAM_CHECK_STEPS = 8  # a stream is checked over several calls, so a state that is not carried shows up
# float32 against float64 over <= 100 steps: the error stays near float32 rounding of values in (-1, 1).
RTOL, ATOL = 1e-4, 1e-5


@dataclass
class Case:
    workload: str
    cell_name: str
    layers: list
    x: np.ndarray  # [seq, batch, input]; for the stream workload the STREAM_CHECK_STEPS step inputs

    @property
    def stream(self) -> bool:
        return self.workload == "stream"

    @property
    def flops(self) -> float:
        """2·seq·batch·n_gates·H·(I+H) per layer and direction (element-wise work not counted), per call."""
        T, B = WORKLOADS[self.workload][:2]
        return sum(2.0 * T * B * l.n_gates * l.hidden_size * (l.input_size + l.hidden_size) * l.n_dirs
                   for l in self.layers)

    @property
    def weight_bytes(self) -> int:
        return sum(l.w_ih.nbytes + l.w_hh.nbytes for l in self.layers)

    @property
    def out_size(self) -> int:
        return self.layers[-1].n_dirs * self.layers[-1].output_size


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
    steps = STREAM_CHECK_STEPS if workload == "stream" else T
    return Case(workload, cell_name, layers, rng.standard_normal((steps, B, I)).astype(np.float32))


def spec_of(case: Case) -> dict:
    """The case as plain arrays for torch: the torch worker imports neither rnnfast nor onnx, so it gets each
    direction's weights already in torch's gate order, converted here by the importers' one gate table."""
    from rnnfast.importers._gates import to_torch

    def torch_weights(l):
        per_dir = [to_torch(l.cell, l.w_ih[d], l.w_hh[d], l.b_ih[d], l.b_hh[d], l.hidden_size) for d in range(l.n_dirs)]
        return {name: np.ascontiguousarray(np.stack([w[k] for w in per_dir]), dtype=np.float32)
                for k, name in enumerate(("w_ih", "w_hh", "b_ih", "b_hh"))}

    layers = [dict(cell=l.cell, n_dirs=l.n_dirs, hidden_size=l.hidden_size, input_size=l.input_size,
                   **torch_weights(l)) for l in case.layers]
    return dict(stream=case.stream, layers=layers, x=case.x)


def expected_output(case: Case) -> np.ndarray:
    """The float64 reference over case.x, [seq, batch, out]: stacked layers joined as the ONNX graph joins them.
    A stream is a run of seq_len-1 calls with the states carried (for a bidirectional layer that is not one run
    over the whole sequence: each call's backward direction sees only that step)."""
    from rnnfast import reference

    def run(x, states):
        for k, layer in enumerate(case.layers):
            y, h, c = reference.run_layer(layer, x, initial_h=states[k][0], initial_c=states[k][1])
            states[k] = (h, c)
            x = y.transpose(0, 2, 1, 3).reshape(y.shape[0], y.shape[2], -1)
        return x

    x = case.x.astype(np.float64)
    if case.stream:
        states = [(None, None)] * len(case.layers)
        return np.concatenate([run(x[t:t + 1], states) for t in range(len(x))])
    return run(x, [(None, None)] * len(case.layers))


def outputs_over_case(case: Case, run) -> np.ndarray:
    """What a fresh runner gives for case.x, shaped like expected_output: a stream is stepped through it (each
    step copied, since a runner may hand back the same output buffer every call)."""
    if case.stream:
        return np.stack([np.array(run(x_t)).reshape(x_t.shape[0], -1) for x_t in case.x])
    return np.asarray(run()).reshape(case.x.shape[0], case.x.shape[1], -1)


def check(case: Case, got: np.ndarray, want: np.ndarray, who: str) -> float:
    """Raise unless got is within RTOL/ATOL of the reference; return the max abs error."""
    err = np.abs(got.astype(np.float64) - want)
    bad = err > ATOL + RTOL * np.abs(want)
    if bad.any():
        raise AssertionError(f"{who} on {case.workload} {case.cell_name}: {bad.sum()} values off the float64 "
                             f"reference, max abs error {err.max():.3g}")
    return float(err.max())


def checked_outputs(case: Case, runners: dict, want: np.ndarray, problems: list) -> dict:
    """{label: outputs} of the runners whose outputs match the reference; a runner with a wrong answer (or one that
    fails) is reported in problems and removed from runners, so it is never timed while the rest of the table runs."""
    outputs = {}
    for name in list(runners):
        try:
            outputs[name] = outputs_over_case(case, runners[name])
            check(case, outputs[name], want, name)
        except Exception as e:
            problems.append(f"{case.workload} {case.cell_name}, {name}: {str(e).splitlines()[-1]}")
            print("  !", problems[-1], flush=True)
            outputs.pop(name, None)
            runners.pop(name)
    return outputs


def onnx_model(case: Case, with_states: bool = False) -> bytes:
    """The same layers as an ONNX graph (stacked layers joined as torch.onnx.export joins them). With
    with_states, initial states are graph inputs and final states outputs, as a streaming ORT user needs."""
    nodes, inits, inputs, outputs = [], [], [], []
    B, I = case.x.shape[1:]
    inputs.append(helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, B, I]))
    x_name = "X"
    inits.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), "merge_shape"))
    for k, l in enumerate(case.layers):
        names = [f"W{k}", f"R{k}", f"B{k}"]
        inits += [numpy_helper.from_array(l.w_ih, names[0]), numpy_helper.from_array(l.w_hh, names[1]),
                  numpy_helper.from_array(np.concatenate([l.b_ih, l.b_hh], axis=1), names[2])]
        node_in, node_out = [x_name] + names, [f"Y{k}", f"Yh{k}"] + ([f"Yc{k}"] if l.cell == "lstm" else [])
        if with_states:
            node_in += ["", f"h{k}"] + ([f"c{k}"] if l.cell == "lstm" else [])
            for s in ("h", "c") if l.cell == "lstm" else ("h",):
                inputs.append(helper.make_tensor_value_info(f"{s}{k}", TensorProto.FLOAT, [l.n_dirs, B, l.hidden_size]))
            outputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in node_out[1:]]
        nodes.append(_recurrent_node(l, node_in, node_out))
        nodes.append(helper.make_node("Transpose", [f"Y{k}"], [f"Yt{k}"], perm=[0, 2, 1, 3]))
        nodes.append(helper.make_node("Reshape", [f"Yt{k}", "merge_shape"], [f"out{k}"]))
        x_name = f"out{k}"
    outputs.insert(0, helper.make_tensor_value_info(x_name, TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "bench", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]).SerializeToString()


def _recurrent_node(l: RecurrentLayer, node_in: list, node_out: list):
    attrs = {"hidden_size": l.hidden_size, "direction": l.direction}
    if l.cell == "gru":
        attrs["linear_before_reset"] = 1
    return helper.make_node({"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}[l.cell], node_in, node_out, **attrs)


def _feeding_states(sess, case: Case):
    """A stateless session (onnxruntime's, or rnnfast's InferenceSession) streamed the only way it can be: a
    seq_len-1 model whose states go in and come out of every call and are fed back into the next."""
    B = case.x.shape[1]
    state = {i.name: np.zeros([d if isinstance(d, int) else B for d in i.shape], np.float32)
             for i in sess.get_inputs() if i.name != "X"}
    x0 = case.x[:1]

    def step(x_t=None):
        outs = sess.run(None, {"X": x0 if x_t is None else x_t[None], **state})
        state.update(zip(list(state), outs[1:]))
        return outs[0][0]
    return step


def rnnfast_runner(case: Case, n_threads):
    """rnnfast through its public API, on the same ONNX model as onnxruntime (n_threads None: rnnfast's default).
    The stream workload uses Model.stream() (state kept in C) where it applies, as a user would: forward layers,
    one node or stacked; a bidirectional model streams through the session fed its states, as onnxruntime does."""
    import rnnfast

    if case.stream and all(l.n_dirs == 1 for l in case.layers):
        stream = rnnfast.load(onnx_model(case), n_threads=n_threads).stream(batch=case.x.shape[1],
                                                                            n_threads=n_threads)
        x0 = case.x[0]
        return lambda x_t=None: stream.step(x0 if x_t is None else x_t)
    if case.stream:
        return _feeding_states(rnnfast.InferenceSession(onnx_model(case, with_states=True), n_threads=n_threads),
                               case)
    sess = rnnfast.InferenceSession(onnx_model(case), n_threads=n_threads)
    return lambda: sess.run(None, {"X": case.x})[0]


def engine_runner(case: Case, n_threads: int):
    """rnnfast's engine without the Python API above it (CompiledStack; CStream.step is one C call per
    step): what the kernels reach, so the gap to rnnfast_runner is the cost of the Python layer."""
    from rnnfast.engine import Y_SEQ_BATCH_DIR, CompiledStack

    stack = CompiledStack(case.layers)
    B = case.x.shape[1]
    if case.stream and all(l.n_dirs == 1 for l in case.layers):
        stream = stack.stream(batch=B)
        out = np.empty((B, case.out_size), np.float32)
        x0 = case.x[0]

        def step(x_t=None):
            stream.step(x0 if x_t is None else x_t, out, n_threads)
            return out
        return step
    if case.stream:  # CStream runs forward layers only: a bidirectional step is a seq_len-1 run, states fed back
        state = {"h": None, "c": None}

        def step(x_t=None):
            y, state["h"], c = stack.run((case.x[0] if x_t is None else x_t)[None], initial_h=state["h"],
                                         initial_c=state["c"], y_layout=Y_SEQ_BATCH_DIR, n_threads=n_threads)
            state["c"] = c if case.layers[0].cell == "lstm" else None
            return y[0]
        return step
    return lambda: stack.run(case.x, y_layout=Y_SEQ_BATCH_DIR, n_threads=n_threads)[0]


def ort_runner(case: Case, n_threads):
    """n_threads None: onnxruntime's own default (intra_op_num_threads 0, one thread per physical core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = n_threads or 0
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    model = onnx_model(case, with_states=case.stream)
    sess = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    if case.stream:
        return _feeding_states(sess, case)
    return lambda: sess.run(None, {"X": case.x})[0]


def torch_runner(case: Case, n_threads: int):
    """In-process torch (the caller has checked it imports)."""
    from torch_peer import make_runner

    return make_runner(spec_of(case), n_threads)
