"""rnnfast against onnxruntime on randomized single-node models over the attribute grid (seeded), plus
layout=1 against onnx.reference (onnxruntime refuses it), every opset version, and a stacked graph with the
glue PyTorch's exporter emits."""
import itertools

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import rnnfast
from conftest import assert_close
from onnx_builders import recurrent_model

from rnnfast.layers import N_ACTIVATIONS as N_ACT
from rnnfast.layers import N_GATES as GATES

ACTS = [("Relu", (), ()), ("Tanh", (), ()), ("Sigmoid", (), ()), ("Affine", (0.8,), (0.1,)),
        ("LeakyRelu", (0.2,), ()), ("ThresholdedRelu", (0.3,), ()), ("ScaledTanh", (1.2,), (0.7,)),
        ("HardSigmoid", (0.3,), (0.4,)), ("Elu", (0.9,), ()), ("Softsign", (), ()), ("Softplus", (), ())]
GRID = list(itertools.product(["rnn", "gru", "lstm"], ["forward", "reverse", "bidirectional"], [0, 1],
                              [None, 0.9], ["default", "custom", "custom_defaults"],
                              ["none", "full", "mixed", "zeros"], [False, True], [1, 3, 7], [1, 7, 16, 33]))


def ort_run(data, feeds):
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)


def build_case(index):
    cell, direction, lbr, clip, acts, lens_kind, states, batch, hidden = GRID[index]
    rng = np.random.default_rng(index)
    D, G, T, I = (2 if direction == "bidirectional" else 1), GATES[cell], 5, 3
    # Weights as the frameworks initialise them (±1/sqrt(hidden)): the regime trained models live in, where
    # onnxruntime's own float32 activation error is not amplified past the shared tolerance.
    scale = 1 / np.sqrt(hidden)
    f32 = lambda *s: rng.uniform(-scale, scale, s).astype(np.float32)
    attrs = {"hidden_size": hidden, "direction": direction}
    if cell == "gru":
        attrs["linear_before_reset"] = lbr
    elif cell == "lstm":
        attrs["input_forget"] = lbr
    if clip:
        attrs["clip"] = clip
    if acts != "default":
        chosen = [ACTS[(index + k) % len(ACTS)] for k in range(N_ACT[cell] * D)]
        attrs["activations"] = [a[0] for a in chosen]
        if acts == "custom":  # explicit alpha/beta for every function that takes one
            attrs["activation_alpha"] = [v for a in chosen for v in a[1]] or None
            attrs["activation_beta"] = [v for a in chosen for v in a[2]] or None
        attrs = {k: v for k, v in attrs.items() if v is not None}
    lens = {"none": None, "full": np.full(batch, T, np.int32), "mixed": rng.integers(1, T + 1, batch, dtype=np.int32),
            "zeros": rng.integers(0, 2, batch, dtype=np.int32) * T}[lens_kind]
    inputs = [f32(T, batch, I), f32(D, G * hidden, I), f32(D, G * hidden, hidden), f32(D, 2 * G * hidden), lens,
              f32(D, batch, hidden) if states else None]
    if cell == "lstm":
        inputs += [f32(D, batch, hidden) if states else None, f32(D, 3 * hidden) if index % 2 else None]
    return recurrent_model(cell, attrs, inputs, 3 if cell == "lstm" else 2)


@pytest.mark.parametrize("index", range(0, len(GRID), 23))  # ~400 seeded configurations across every axis
def test_matches_onnxruntime(index):
    data, feeds = build_case(index)
    want = ort_run(data, feeds)
    got = rnnfast.load(data).run(feeds)
    for g, w in zip(got, want):
        assert_close(g, w, what=str(GRID[index]))


@pytest.mark.parametrize("name,alpha,beta", [
    ("LeakyRelu", [0.3], []), ("LeakyRelu", [0.0, 0.3], []), ("HardSigmoid", [], []), ("Elu", [], []),
    ("Affine", [], []), ("ScaledTanh", [], []), ("ThresholdedRelu", [], []), ("Affine", [0.5], [0.25])])
def test_alpha_beta_consumed_and_defaulted_as_onnxruntime_does(name, alpha, beta):
    """Bidirectional RNN [Tanh, <name>]: values go only to functions that take them (SEMANTICS.md 1.1)."""
    rng = np.random.default_rng(1)
    f32 = lambda *s: rng.uniform(-1, 1, s).astype(np.float32)
    attrs = {"hidden_size": 4, "direction": "bidirectional", "activations": ["Tanh", name]}
    if alpha:
        attrs["activation_alpha"] = alpha
    if beta:
        attrs["activation_beta"] = beta
    data, feeds = recurrent_model("rnn", attrs, [f32(3, 2, 3), f32(2, 4, 3), f32(2, 4, 4), f32(2, 8)], 2)
    for g, w in zip(rnnfast.load(data).run(feeds), ort_run(data, feeds)):
        assert_close(g, w)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("states", [False, True])
def test_layout_1_against_onnx_reference(cell, direction, states):
    rng = np.random.default_rng(2)
    f32 = lambda *s: rng.uniform(-1, 1, s).astype(np.float32)
    B, T, I, H, G = 3, 4, 2, 5, GATES[cell]
    D = 2 if direction == "bidirectional" else 1
    inputs = [f32(B, T, I), f32(D, G * H, I), f32(D, G * H, H), f32(D, 2 * G * H), None,
              f32(B, D, H) if states else None]
    if cell == "lstm":
        inputs += [f32(B, D, H) if states else None, f32(D, 3 * H)]
    data, feeds = recurrent_model(cell, {"hidden_size": H, "layout": 1, "direction": direction}, inputs,
                                  3 if cell == "lstm" else 2)
    want = ReferenceEvaluator(data).run(None, feeds)
    got = rnnfast.load(data).run(feeds)
    assert got[0].shape == (B, T, D, H)
    for g, w in zip(got, want):
        assert_close(g, w)


@pytest.mark.parametrize("cell,opset", [("rnn", 1), ("rnn", 7), ("rnn", 14), ("rnn", 22), ("gru", 1), ("gru", 3),
                                        ("gru", 7), ("gru", 14), ("gru", 22), ("lstm", 1), ("lstm", 7), ("lstm", 14),
                                        ("lstm", 22)])
def test_every_opset_version(cell, opset):
    rng = np.random.default_rng(opset)
    f32 = lambda *s: rng.uniform(-1, 1, s).astype(np.float32)
    G = GATES[cell]
    data, feeds = recurrent_model(cell, {"hidden_size": 3}, [f32(4, 2, 2), f32(1, G * 3, 2), f32(1, G * 3, 3)],
                                  2, opset=opset)
    got = rnnfast.load(data).run(feeds)
    if opset >= 7:
        for g, w in zip(got, ort_run(data, feeds)):
            assert_close(g, w)
    else:  # onnxruntime has no kernels before opset 7; GRU-1's default direction "foward" means forward
        data3, feeds3 = recurrent_model(cell, {"hidden_size": 3, "direction": "forward"},
                                        [feeds["X"]] + list(_weights(data)), 2, opset=7)
        for g, w in zip(got, ort_run(data3, feeds3)):
            assert_close(g, w)


def _weights(data):
    import onnx

    return [numpy_helper.to_array(t) for t in onnx.load_from_string(data).graph.initializer]


def test_stacked_bidirectional_graph_with_exporter_glue_and_dynamic_axes():
    """Two bidirectional LSTM layers joined as torch.onnx.export joins them: Transpose(0,2,1,3) + Reshape."""
    rng = np.random.default_rng(4)
    f32 = lambda *s: rng.uniform(-0.5, 0.5, s).astype(np.float32)
    H, I = 6, 3
    inits = [numpy_helper.from_array(a, n) for n, a in [
        ("W0", f32(2, 4 * H, I)), ("R0", f32(2, 4 * H, H)), ("B0", f32(2, 8 * H)),
        ("W1", f32(2, 4 * H, 2 * H)), ("R1", f32(2, 4 * H, H)), ("B1", f32(2, 8 * H)),
        ("shape", np.array([0, 0, -1], np.int64))]]
    nodes = [
        helper.make_node("LSTM", ["X", "W0", "R0", "B0"], ["Y0", "H0"], hidden_size=H, direction="bidirectional"),
        helper.make_node("Transpose", ["Y0"], ["Y0t"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["Y0t", "shape"], ["X1"]),
        helper.make_node("LSTM", ["X1", "W1", "R1", "B1"], ["Y1", "H1"], hidden_size=H, direction="bidirectional"),
        helper.make_node("Transpose", ["Y1"], ["Y1t"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["Y1t", "shape"], ["out"]),
    ]
    graph = helper.make_graph(nodes, "stack", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", I])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("H1", TensorProto.FLOAT, None)], inits)
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]).SerializeToString()
    model = rnnfast.load(data)
    for T, B in [(5, 1), (3, 4)]:
        x = f32(T, B, I)
        for g, w in zip(model.run(x), ort_run(data, {"X": x})):
            assert_close(g, w)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_half_and_double_models_are_computed_in_float32(dtype):
    """Documented behaviour: weights and inputs of other float types are converted to float32, computed, and the
    outputs returned in the input's dtype; the float32 model with the same (rounded) values is the oracle."""
    rng = np.random.default_rng(6)
    arrays = [rng.uniform(-0.5, 0.5, s).astype(dtype) for s in [(4, 2, 3), (1, 12, 3), (1, 12, 4), (1, 24)]]
    data, feeds = recurrent_model("gru", {"hidden_size": 4, "linear_before_reset": 1}, arrays, 2)
    data32, feeds32 = recurrent_model("gru", {"hidden_size": 4, "linear_before_reset": 1},
                                      [a.astype(np.float32) for a in arrays], 2)
    got = rnnfast.load(data).run(feeds)
    want = rnnfast.load(data32).run(feeds32)
    for g, w in zip(got, want):
        assert g.dtype == dtype
        assert np.array_equal(g, w.astype(dtype))
    if dtype == np.float16:  # onnxruntime runs fp16 recurrent models too (through float32 casts)
        for g, w in zip(got, ort_run(data, feeds)):
            assert_close(g, w, half=True)


def test_weights_computed_from_initializers_are_folded_at_load():
    """The dynamo exporter reorders torch's gates with Slice/Concat on the raw weights: fold them once."""
    rng = np.random.default_rng(8)
    H, I = 5, 3
    raw_w, raw_r = rng.uniform(-0.4, 0.4, (1, 4 * H, I)), rng.uniform(-0.4, 0.4, (1, 4 * H, H))
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in [("raw_w", raw_w), ("raw_r", raw_r)]]
    nodes = []
    for name in ("raw_w", "raw_r"):  # torch order i,f,g,o -> ONNX i,o,f,c
        parts = []
        for gate in (0, 3, 1, 2):
            for tag, v in (("s", gate * H), ("e", (gate + 1) * H)):
                inits.append(numpy_helper.from_array(np.array([v], np.int64), f"{name}_{tag}{gate}"))
            inits.append(numpy_helper.from_array(np.array([1], np.int64), f"{name}_ax{gate}"))
            nodes.append(helper.make_node("Slice", [name, f"{name}_s{gate}", f"{name}_e{gate}", f"{name}_ax{gate}"],
                                          [f"{name}_g{gate}"]))
            parts.append(f"{name}_g{gate}")
        nodes.append(helper.make_node("Concat", parts, [name[4:].upper()], axis=1))
    nodes.append(helper.make_node("LSTM", ["X", "W", "R"], ["Y"], hidden_size=H))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", 2, I])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]).SerializeToString()
    model = rnnfast.load(data)
    assert [kind for kind, _ in model.graph.steps] == ["recurrent"]  # everything else became constants
    x = rng.standard_normal((4, 2, I)).astype(np.float32)
    assert_close(model.run(x)[0], ort_run(data, {"X": x})[0])


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("output_sequence", [0, 1])
def test_opset_1_output_sequence_is_accepted_and_y_produced(cell, output_sequence):
    """output_sequence (opset 1) only says whether Y is optional; Y comes out whenever the node names it."""
    rng = np.random.default_rng(9)
    f32 = lambda *s: rng.uniform(-1, 1, s).astype(np.float32)
    G = GATES[cell]
    arrays = [f32(4, 2, 2), f32(1, G * 3, 2), f32(1, G * 3, 3)]
    data, feeds = recurrent_model(cell, {"hidden_size": 3, "output_sequence": output_sequence}, arrays, 2, opset=1)
    data7, feeds7 = recurrent_model(cell, {"hidden_size": 3}, arrays, 2, opset=7)
    for g, w in zip(rnnfast.load(data).run(feeds), ort_run(data7, feeds7)):
        assert_close(g, w)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_hidden_size_absent_is_taken_from_r(cell):
    """onnxruntime refuses a node without hidden_size; the same node with it is the oracle."""
    rng = np.random.default_rng(10)
    f32 = lambda *s: rng.uniform(-1, 1, s).astype(np.float32)
    G = GATES[cell]
    arrays = [f32(4, 2, 3), f32(2, G * 5, 3), f32(2, G * 5, 5), f32(2, 2 * G * 5)]
    data, feeds = recurrent_model(cell, {"direction": "bidirectional"}, arrays, 2)
    data_h, feeds_h = recurrent_model(cell, {"direction": "bidirectional", "hidden_size": 5}, arrays, 2)
    for g, w in zip(rnnfast.load(data).run(feeds), ort_run(data_h, feeds_h)):
        assert_close(g, w)


@pytest.mark.parametrize("acts,alpha,beta", [
    (["LeakyRelu", "LeakyRelu"], [0.3], []),  # the list runs out: the second takes its default
    (["HardSigmoid", "HardSigmoid"], [0.3, 0.4], []),
    (["HardSigmoid", "HardSigmoid"], [], [0.3]),
    (["Affine", "Elu"], [0.7], [0.2]),
    (["Elu", "Affine"], [0.7], [0.2]),  # alpha and beta are consumed independently
    (["ScaledTanh", "ThresholdedRelu"], [0.7], [0.9]),
    (["Tanh", "Tanh"], [0.7], [0.9])])  # nobody takes them: ignored (with a warning)
def test_partial_alpha_beta_lists_as_onnxruntime(acts, alpha, beta):
    rng = np.random.default_rng(11)
    f32 = lambda *s: rng.uniform(-2, 2, s).astype(np.float32)
    attrs = {"hidden_size": 3, "direction": "bidirectional", "activations": acts}
    attrs |= {"activation_alpha": alpha} if alpha else {}
    attrs |= {"activation_beta": beta} if beta else {}
    data, feeds = recurrent_model("rnn", attrs, [f32(4, 2, 3), f32(2, 3, 3), f32(2, 3, 3)], 2)
    for g, w in zip(rnnfast.load(data).run(feeds), ort_run(data, feeds)):
        assert_close(g, w)


def test_alpha_without_activations_is_ignored_with_a_warning_as_onnxruntime_does():
    rng = np.random.default_rng(12)
    f32 = lambda *s: rng.uniform(-1, 1, s).astype(np.float32)
    data, feeds = recurrent_model("lstm", {"hidden_size": 3, "activation_alpha": [0.5]},
                                  [f32(4, 2, 3), f32(1, 12, 3), f32(1, 12, 3)], 3)
    with pytest.warns(UserWarning, match="activation_alpha \\[0.5\\].*ignored"):
        model = rnnfast.load(data)
    for g, w in zip(model.run(feeds), ort_run(data, feeds)):
        assert_close(g, w)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("shape", [(0, 2, 3), (4, 0, 3)])
def test_empty_sequence_or_batch(cell, shape):
    """No steps or no rows: empty Y, and zero states even with initial states given (every row has length 0,
    SEMANTICS.md 1.1). onnxruntime 1.32 agrees for RNN; for LSTM with T=0 its Y_h/Y_c are sometimes garbage
    (uninitialised memory) and it aborts the process on GRU with T=0 or B=0 and LSTM with B=0, so the
    documented rule is the oracle here."""
    rng = np.random.default_rng(13)
    f32 = lambda *s: rng.uniform(-1, 1, s).astype(np.float32)
    G, D, H, (T, B, I) = GATES[cell], 2, 3, shape
    inputs = [f32(T, B, I), f32(D, G * H, I), f32(D, G * H, H), None, None, f32(D, B, H)]
    if cell == "lstm":
        inputs.append(f32(D, B, H))
    data, feeds = recurrent_model(cell, {"hidden_size": H, "direction": "bidirectional"}, inputs,
                                  3 if cell == "lstm" else 2)
    got = rnnfast.load(data).run(feeds)
    want = [np.zeros((T, D, B, H), np.float32)] + [np.zeros((D, B, H), np.float32)] * (len(got) - 1)
    if cell == "rnn":
        assert all(np.array_equal(w, z) for w, z in zip(ort_run(data, feeds), want))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert_close(g, w)
