"""Recurrent layers stacked into one C node (rnnfast/graph/stack.py): what the exporters write between layers goes,
the results stay onnxruntime's. Each case counts the C nodes, so a stacking that stops applying (or applies where
it must not) fails, and runs the compiled graph itself, not the chain fast path."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import rnnfast
from conftest import assert_close
from rnnfast.graph.compile import OP_NAMES

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


class Builder:
    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []

    def const(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def input(self, name, shape, dtype=TensorProto.FLOAT):
        self.inputs.append(helper.make_tensor_value_info(name, dtype, shape))
        return name

    def output(self, name):
        self.outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))

    def node(self, op, ins, outs, **attrs):
        self.nodes.append(helper.make_node(op, ins, outs, name=f"{op}_{len(self.nodes)}", **attrs))
        return outs[0] if len(outs) == 1 else outs

    def layer(self, op, x, i, h, d, tag, h0="", c0="", lens="", out_states=True):
        g = GATES[op]
        w = self.const(f"W{tag}", self.rng.uniform(-0.4, 0.4, (d, g * h, i)).astype(np.float32))
        r = self.const(f"R{tag}", self.rng.uniform(-0.4, 0.4, (d, g * h, h)).astype(np.float32))
        b = self.const(f"B{tag}", self.rng.uniform(-0.2, 0.2, (d, 2 * g * h)).astype(np.float32))
        ins = [x, w, r, b, lens, h0] + ([c0] if op == "LSTM" else [])
        outs = [f"Y{tag}"] + ([f"Yh{tag}"] if out_states else [])
        if op == "LSTM" and out_states:
            outs.append(f"Yc{tag}")
        extra = {"linear_before_reset": 1} if op == "GRU" else {}
        self.node(op, ins, outs, hidden_size=h, direction="bidirectional" if d == 2 else "forward", **extra)
        return outs

    def merge_dirs(self, y, d, h, tag):
        """What torch writes after a layer: [T, D, B, H] -> [T, B, D*H]."""
        if d == 1:
            return self.node("Squeeze", [y, self.const(f"ax{tag}", np.array([1], np.int64))], [f"seq{tag}"])
        t = self.node("Transpose", [y], [f"t{tag}"], perm=[0, 2, 1, 3])
        return self.node("Reshape", [t, self.const(f"shape{tag}", np.array([0, 0, d * h], np.int64))], [f"seq{tag}"])

    def rows(self, src, a, b, tag):
        return self.node("Slice", [src, self.const(f"s{tag}", np.array([a], np.int64)),
                                   self.const(f"e{tag}", np.array([b], np.int64)),
                                   self.const(f"a{tag}", np.array([0], np.int64))], [f"rows{tag}"])

    def model(self, opset=17) -> bytes:
        graph = helper.make_graph(self.nodes, "stack", self.inputs, self.outputs, self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 8
        return m.SerializeToString()


def torch_like_stack(op, n_layers, d, i=5, h=8, fed_states=True, own_state_of=None):
    """n_layers layers as torch.onnx.export writes them: states sliced per layer from [L*D, B, H] inputs, the
    sequence merged between layers, the final states concatenated."""
    m = Builder()
    x = m.input("x", ["T", "B", i])
    h0 = m.input("h0", [n_layers * d, "B", h]) if fed_states else ""
    c0 = m.input("c0", [n_layers * d, "B", h]) if fed_states and op == "LSTM" else ""
    seq, yhs, ycs = x, [], []
    for l in range(n_layers):
        lh = m.rows(h0, l * d, (l + 1) * d, f"h{l}") if h0 else ""
        lc = m.rows(c0, l * d, (l + 1) * d, f"c{l}") if c0 else ""
        outs = m.layer(op, seq, i if l == 0 else d * h, h, d, l, lh, lc)
        yhs.append(outs[1])
        ycs += outs[2:]
        seq = m.merge_dirs(outs[0], d, h, l)
    m.node("Identity", [seq], ["y"])
    m.output("y")
    m.node("Concat", yhs, ["h_n"], axis=0)
    m.output("h_n")
    if ycs:
        m.node("Concat", ycs, ["c_n"], axis=0)
        m.output("c_n")
    if own_state_of is not None:
        m.node("Identity", [yhs[own_state_of]], ["h_own"])
        m.output("h_own")
    return m.model()


def feeds_for(data, rng, T=6, B=3):
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    feeds = {}
    for inp in sess.get_inputs():
        shape = [T if d == "T" else B if d == "B" else d for d in inp.shape]
        feeds[inp.name] = (rng.standard_normal(shape) * 0.5).astype(np.float32) if inp.type == "tensor(float)" \
            else np.full(shape, T, np.int32)
    return sess, feeds


def c_ops(model):
    return [OP_NAMES[n[0]] for n in model.graph.compiled.desc["nodes"]]


def compiled_agrees(data, T=6, B=3, seed=0):
    model = rnnfast.load(data)
    sess, feeds = feeds_for(data, np.random.default_rng(seed), T, B)
    compiled = model.graph.compiled
    got = compiled.run([feeds[n] for n in compiled.input_names])
    want = sess.run(compiled.output_names, feeds)
    for g, w in zip(got, want):
        assert_close(g, w)
    assert [np.asarray(g).tobytes() for g in got] == \
        [np.asarray(g).tobytes() for g in compiled.run([feeds[n] for n in compiled.input_names], n_threads=2)]
    return model


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("fed", [True, False])
def test_a_torch_stack_is_one_recurrent_node(op, d, fed):
    data = torch_like_stack(op, 3, d, fed_states=fed)
    ops = c_ops(compiled_agrees(data))
    assert ops.count("RECURRENT") == 1
    assert not {"TRANSPOSE", "CONCAT", "SLICE"} & set(ops), ops


def test_a_layer_state_read_on_its_own_is_a_slice_of_the_stack_state():
    data = torch_like_stack("LSTM", 3, 2, own_state_of=1)
    ops = c_ops(compiled_agrees(data))
    assert ops.count("RECURRENT") == 1 and ops.count("SLICE") == 1, ops


def test_layers_of_other_sizes_sequence_lengths_or_a_moved_axis_stay_apart():
    m = Builder(1)
    x = m.input("x", [4, 3, 5])  # static, so the Reshape below can move time and batch
    lens = m.input("lens", [3], TensorProto.INT32)
    y0 = m.layer("GRU", x, 5, 8, 1, 0)[0]
    s0 = m.merge_dirs(y0, 1, 8, 0)
    y1 = m.layer("GRU", s0, 8, 6, 1, 1)[0]  # another hidden size
    s1 = m.merge_dirs(y1, 1, 6, 1)
    y2 = m.layer("GRU", s1, 6, 6, 1, 2, lens=lens)[0]  # lengths the first two do not take
    s2 = m.merge_dirs(y2, 1, 6, 2)
    moved = m.node("Reshape", [s2, m.const("swap", np.array([3, -1, 6], np.int64))], ["moved"])  # [T,B,F] read as [B,T,F]
    m.layer("GRU", moved, 6, 6, 1, 3, out_states=False)
    m.node("Identity", ["Y3"], ["y"])
    m.output("y")
    ops = c_ops(compiled_agrees(m.model(), T=4, B=3))
    assert ops.count("RECURRENT") == 4, ops


def test_states_from_two_inputs_are_concatenated_and_zeros_of_another_shape_are_refused():
    m = Builder(2)
    x = m.input("x", ["T", "B", 5])
    ha, hb = m.input("ha", [1, "B", 8]), m.input("hb", [1, "B", 8])
    y0 = m.layer("GRU", x, 5, 8, 1, 0, ha)[0]
    m.layer("GRU", m.merge_dirs(y0, 1, 8, 0), 8, 8, 1, 1, hb)
    m.node("Identity", ["Y1"], ["y"])
    m.output("y")
    ops = c_ops(compiled_agrees(m.model()))
    assert ops.count("RECURRENT") == 1 and ops.count("CONCAT") == 1, ops

    m = Builder(3)
    x = m.input("x", ["T", "B", 5])
    zeros = m.const("zeros", np.zeros((2, 3, 8), np.float32))  # two directions' worth for a forward layer
    m.layer("GRU", x, 5, 8, 1, 0, zeros)
    m.node("Identity", ["Y0"], ["y"])
    m.output("y")
    model = rnnfast.load(m.model())
    with pytest.raises(ValueError, match="initial_h"):
        model.graph.compiled.run([np.zeros((4, 3, 5), np.float32)])


def test_stacked_stream_steps_equal_the_run():
    data = torch_like_stack("LSTM", 3, 1)  # forward layers: a step sees all it needs
    model = rnnfast.load(data)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 1, 5)).astype(np.float32)
    h0 = rng.standard_normal((3, 1, 8)).astype(np.float32)
    c0 = rng.standard_normal((3, 1, 8)).astype(np.float32)
    whole = model.graph.compiled.run([x, h0, c0])
    h, c, ys = h0, c0, []
    for t in range(5):
        y, h, c = model.graph.compiled.run([x[t:t + 1], h, c])
        ys.append(y)
    assert np.concatenate(ys).tobytes() == whole[0].tobytes()
    assert h.tobytes() == whole[1].tobytes() and c.tobytes() == whole[2].tobytes()


def linear_then_gru(act=None, reuse=False, batch_first=True):
    """x [B, T, 6] (or [T, B, 6]) -> MatMul + Add (a Linear) [-> act] [-> Transpose] -> GRU, as the denoiser has it."""
    m = Builder(5)
    x = m.input("x", ["B", "T", 6] if batch_first else ["T", "B", 6])
    lin = m.node("MatMul", [x, m.const("wm", m.rng.uniform(-0.5, 0.5, (6, 5)).astype(np.float32))], ["lin"])
    lin = m.node("Add", [lin, m.const("bm", m.rng.uniform(-0.5, 0.5, 5).astype(np.float32))], ["lin_b"])
    if act:
        lin = m.node(act, [lin], ["lin_act"])
    seq = m.node("Transpose", [lin], ["seq"], perm=[1, 0, 2]) if batch_first else lin
    m.layer("GRU", seq, 5, 8, 1, 0)
    m.node("Identity", ["Y0"], ["y"])
    m.output("y")
    if reuse:
        m.node("Identity", [lin], ["lin_out"])
        m.output("lin_out")
    return m.model()


@pytest.mark.parametrize("batch_first", [True, False])
def test_a_linear_map_before_the_first_layer_is_folded_into_its_input_weights(batch_first):
    ops = c_ops(compiled_agrees(linear_then_gru(batch_first=batch_first), T=7, B=3))
    assert "MATMUL" not in ops and ops.count("RECURRENT") == 1, ops


@pytest.mark.parametrize("case", [{"act": "Relu"}, {"reuse": True}])
def test_a_linear_map_with_an_activation_or_another_reader_stays(case):
    ops = c_ops(compiled_agrees(linear_then_gru(**case), T=7, B=3))
    assert ops.count("MATMUL") == 1, ops
