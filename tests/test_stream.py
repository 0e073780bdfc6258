"""Model.stream(): step-by-step inference with the state kept in C, checked against whole-sequence runs."""
import os
import pickle
import re

import numpy as np
import pytest

import rnnfast
from conftest import assert_close
from onnx_builders import recurrent_model

from rnnfast.layers import N_GATES
from pathlib import Path

TORCH_DATA = Path(__file__).parent / "data" / "torch"


def onnx_model(cell, direction="forward", batch=3, hidden=6, inputs=4, seed=0):
    rng = np.random.default_rng(seed)
    D, G = (2 if direction == "bidirectional" else 1), N_GATES[cell]
    f = lambda *s: rng.uniform(-0.5, 0.5, s).astype(np.float32)
    attrs = {"hidden_size": hidden, "direction": direction}
    if cell == "gru":
        attrs["linear_before_reset"] = 1
    data, _ = recurrent_model(cell, attrs, [f(5, batch, inputs), f(D, G * hidden, inputs), f(D, G * hidden, hidden),
                                            f(D, 2 * G * hidden)], 3 if cell == "lstm" else 2)
    return rnnfast.load(data)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_steps_equal_run_and_state_round_trips(cell):
    model = onnx_model(cell)
    x = np.random.default_rng(1).standard_normal((9, 3, 4)).astype(np.float32)
    y = model.run(x)[0]  # [T, 1, B, H]
    stream = model.stream(batch=3)
    for t in range(4):
        assert np.array_equal(stream.step(x[t]), y[t, 0])
    saved = pickle.loads(pickle.dumps(stream.state))
    rest = stream.feed(x[4:])
    assert np.array_equal(rest, y[4:, 0])
    stream.state = saved  # back to after step 4: the same steps again give the same outputs
    assert np.array_equal(stream.feed(x[4:]), y[4:, 0])


def test_reset_rows_restarts_only_those_rows():
    model = onnx_model("lstm")
    x = np.random.default_rng(2).standard_normal((6, 3, 4)).astype(np.float32)
    stream = model.stream(batch=3)
    stream.feed(x[:3])
    stream.reset(rows=[1])
    out = stream.feed(x[3:])
    fresh = model.run(x[3:])[0][:, 0]
    cont = model.run(x)[0][3:, 0]
    assert np.array_equal(out[:, 1], fresh[:, 1])
    assert np.array_equal(out[:, [0, 2]], cont[:, [0, 2]])


def test_bidirectional_models_refuse_to_stream_by_name():
    with pytest.raises(rnnfast.FormatError, match="bidirectional.*sliding window"):
        onnx_model("gru", "bidirectional").stream()


def test_refused_step_leaves_the_state_unchanged():
    stream = onnx_model("gru").stream(batch=3)
    stream.step(np.ones((3, 4), np.float32))
    before = stream.state
    with pytest.raises(ValueError, match="\\[batch, input\\] = \\(3, 4\\)"):
        stream.step(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="must have shape"):
        stream.state = {"layer0.h": np.zeros((1, 2, 6), np.float32)}
    after = stream.state
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_torch_embedding_lstm_linear_streams_token_by_token():
    """Against torch's own recorded output (batch-first [2, 7] token ids -> [2, 7, 5])."""
    ref = np.load(TORCH_DATA / "emb_lstm_fc.npz")
    model = rnnfast.load(TORCH_DATA / "emb_lstm_fc.pt", embedding="emb", rnn="lstm", head="fc", batch_first=True)
    ids = ref["input"]
    stream = model.stream(batch=ids.shape[0])
    steps = np.stack([stream.step(ids[:, t]) for t in range(ids.shape[1])], axis=1)
    assert_close(steps, ref["output"])
    with pytest.raises(ValueError, match="integer token id"):
        stream.step(np.array([0.5, 1.5]))


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("hidden", [1, 7, 16, 17, 33, 64])
@pytest.mark.parametrize("seq_len", [1, 7, 13])
def test_batch_one_steps_equal_run_to_the_bit(cell, hidden, seq_len):
    """At batch 1 a step's input projection is a one-row GEMM while the run's covers all steps: each output must
    still be summed in the same order (seq_len 7 and 13 leave a lone last row beside 6-row blocks)."""
    from conftest import random_layer
    from rnnfast.engine import CompiledStack
    from rnnfast.stream import Stream

    rng = np.random.default_rng(hidden * 31 + seq_len)
    layer = random_layer(rng, cell, "forward", input_size=9, hidden_size=hidden)
    x = rng.standard_normal((seq_len, 1, 9)).astype(np.float32)
    y, _, _ = CompiledStack([layer]).run(x)
    stream = Stream([layer], 1)
    assert np.array_equal(np.stack([stream.step(x[t]) for t in range(seq_len)]), y[:, 0])


def test_a_direct_stream_times_its_steps_with_both_thread_counts_and_keeps_the_bits():
    """A stream's steps choose one thread or the asked count from their own times, as a graph's runs do (a stream
    stepped every few ms found its partner thread asleep at every step): after a few steps both are measured, and
    every step equals a one-thread stream's to the bit whichever ran it."""
    from conftest import random_layer
    from rnnfast.stream import Stream

    rng = np.random.default_rng(5)
    layer = random_layer(rng, "lstm", "forward", input_size=16, hidden_size=256)
    xs = rng.standard_normal((24, 2, 16)).astype(np.float32)
    two, one = Stream([layer], 2, n_threads=2), Stream([layer], 2, n_threads=1)
    assert two.thread_choice()["seconds_asked"] is None  # nothing measured yet
    for x in xs:
        assert np.array_equal(two.step(x), one.step(x))
    choice = two.thread_choice()
    assert choice["threads"] in (1, 2)
    assert choice["seconds_1_thread"] > 0 and choice["seconds_asked"] > 0
    assert one.thread_choice() == {"threads": 1, "seconds_1_thread": None, "seconds_asked": None}


def _stream_and_run(batch, seed=3):
    model = onnx_model("lstm", batch=batch, seed=seed)
    x = np.random.default_rng(seed).standard_normal((5, batch, 4)).astype(np.float32)
    return model, x, model.run(x)[0][:, 0]


def test_every_form_of_step_input_gives_the_same_step():
    """A float32 C-contiguous step takes one C call (CStream.step_new); a float64 one, a list, a strided view or a
    batch-1 row without its batch axis are converted first. All give run's output to the bit, and each output is
    a new array that later steps leave alone."""
    model, x, y = _stream_and_run(batch=2)
    forms = {"float32": lambda a: a, "float64": lambda a: a.astype(np.float64), "list": lambda a: a.tolist(),
             "strided": lambda a: np.ascontiguousarray(a.T).T}
    for name, form in forms.items():
        stream = model.stream(batch=2)
        outs = [stream.step(form(x[t])) for t in range(len(x))]
        assert all(o.dtype == np.float32 and o.shape == (2, 6) for o in outs), name
        assert np.array_equal(np.stack(outs), y), name
    model1, x1, y1 = _stream_and_run(batch=1)
    for name, form in {"row": lambda a: a[0], "row float64": lambda a: a[0].astype(np.float64),
                       "batch axis": lambda a: a}.items():
        stream = model1.stream()
        outs = [stream.step(form(x1[t])) for t in range(len(x1))]
        assert np.array_equal(np.stack(outs).reshape(y1.shape), y1), name
        assert outs[0].shape == ((6,) if name.startswith("row") else (1, 6)), name


def test_refused_steps_of_every_kind_name_the_problem_and_keep_the_state():
    model, x, _ = _stream_and_run(batch=1)
    stream = model.stream()
    stream.step(x[0])
    before = stream.state
    for bad in (np.ones((2, 4), np.float32), np.ones(5, np.float32), np.ones((1, 1, 4), np.float32),
                np.ones((1, 3), np.float64)):
        shown = bad.shape if bad.ndim > 1 else (1,) + bad.shape  # a row is shown with its batch axis
        with pytest.raises(ValueError, match=r"a step takes \[batch, input\] = \(1, 4\) \(or \[input\] for batch 1\), "
                                             rf"got {re.escape(str(shown))}"):
            stream.step(bad)
    with pytest.raises(ValueError):
        stream.step(np.array(["a", "b", "c", "d"]))
    after = stream.state
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert np.array_equal(stream.step(x[1]), model.run(x[:2])[0][1, 0])


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("n_layers", [2, 3])
def test_a_chain_of_forward_nodes_streams_and_equals_run_to_the_bit(cell, n_layers):
    from conftest import random_layer
    from onnx_builders import chain_model

    rng = np.random.default_rng(n_layers)
    layers = [random_layer(rng, cell, "forward", 4 if k == 0 else 6, 6) for k in range(n_layers)]
    model = rnnfast.load(chain_model(layers, glue="squeeze" if n_layers == 2 else "reshape"))
    x = rng.standard_normal((7, 2, 4)).astype(np.float32)
    y = model.run(x)[0]
    stream = model.stream(batch=2)
    assert np.array_equal(np.stack([stream.step(x[t]) for t in range(7)]), y)


def test_chains_that_cannot_stream_say_why():
    from conftest import random_layer
    from onnx_builders import chain_model

    rng = np.random.default_rng(0)
    fwd = [random_layer(rng, "gru", "forward", 4 if k == 0 else 6, 6) for k in range(2)]
    with pytest.raises(rnnfast.FormatError, match=r"cannot stream: its recurrent layers step on their own only when "
                       r"X is the graph's only input \(no initial state\).*inputs are \['X', 'h0', 'h1'\].*"
                       r"model.stream\(states="):
        rnnfast.load(chain_model(fwd, states=True)).stream()
    rev = [random_layer(rng, "gru", "reverse", 4 if k == 0 else 6, 6) for k in range(2)]
    with pytest.raises(rnnfast.FormatError, match="is reverse; a stream runs forward in time only"):
        rnnfast.load(chain_model(rev)).stream()



def _onnx_file(tmp_path, name, nodes, inputs, outputs, inits=()):
    """A small ONNX model written to tmp_path/name (a file, so messages can be checked to name it); inputs and
    outputs: (name, shape) of float tensors."""
    from onnx import TensorProto, helper

    vi = lambda n, shape: helper.make_tensor_value_info(n, TensorProto.FLOAT, shape)
    graph = helper.make_graph(nodes, "g", [vi(*i) for i in inputs], [vi(*o) for o in outputs], list(inits))
    path = tmp_path / name
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]).SerializeToString())
    return str(path)


def test_models_with_nothing_to_stream_or_reset_say_why_by_name(tmp_path):
    """A call that makes no sense for the model is a ValueError, a stream rnnfast cannot make a FormatError; each
    names the file and what would work."""
    from onnx import helper, numpy_helper

    relu = _onnx_file(tmp_path, "relu.onnx", [helper.make_node("Relu", ["x"], ["y"])], [("x", ["batch", 4])],
                      [("y", ["batch", 4])])
    model = rnnfast.load(relu)
    with pytest.raises(ValueError, match=re.escape(f"{relu}: cannot stream: no output of the graph is evidently the "
                                                   f"next value of an input") + r".*inputs are \['x'\] and its "
                                                   r"outputs \['y'\].*model.stream\(states="):
        model.stream()
    with pytest.raises(ValueError, match=re.escape(f"{relu}: nothing to reset: this model keeps no state between "
                                                   f"run calls")):
        model.reset_states()

    sized = _onnx_file(tmp_path, "sized.onnx", [helper.make_node("Neg", ["state"], ["state_out"]),
                                                helper.make_node("Relu", ["x"], ["y"])],
                       [("x", ["batch", 4]), ("state", ["batch", "n"])], [("y", ["batch", 4]),
                                                                          ("state_out", ["batch", "n"])])
    with pytest.raises(rnnfast.FormatError, match=re.escape(f"{sized}: cannot stream: state 'state' has the size n "
                                                            f"on axis 1") + ".*give that axis a fixed size"):
        rnnfast.load(sized).stream()

    ends = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
            (("starts", [0]), ("ends", [2 ** 62]), ("axes", [1]), ("steps", [2]))]
    strided = _onnx_file(tmp_path, "strided.onnx", [helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"],
                                                                     ["s"]), helper.make_node("Neg", ["s"], ["y"])],
                         [("x", ["batch", "time", 4])], [("y", None)], ends)
    by_nodes = rnnfast.load(strided)
    assert by_nodes.graph.compiled is None  # runs node by node: no C executor to stream or time threads with
    why = (re.escape(f"{strided}: cannot stream: rnnfast runs this graph node by node in Python (") +
           r".*\(Slice\): slice .* of a symbolic axis\), and streams such a graph only when it is one recurrent node "
           r"with constant weights.*has 2 node\(s\)")
    with pytest.raises(rnnfast.FormatError, match=why):
        by_nodes.stream()
    with pytest.raises(ValueError, match=re.escape(f"{strided}: no thread choice to report") + r".*Slice.*"
                                         r"n_threads\) as given"):
        by_nodes.thread_choice()

def _hammer(stream, x_t, threads=2, steps=300):
    """`threads` threads each stepping `stream` with the same x_t: whatever the interleaving, the state must end as
    threads * steps serial steps leave it (each step is whole)."""
    import threading

    start = threading.Barrier(threads)

    def work():
        start.wait()
        for _ in range(steps):
            stream.step(x_t)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return stream.state


def test_a_stream_stepped_from_two_threads_keeps_a_consistent_state():
    from conftest import random_layer

    rng = np.random.default_rng(7)
    layers = [random_layer(rng, "lstm", "forward", 8, 64), random_layer(rng, "lstm", "forward", 64, 64)]
    x_t = (rng.standard_normal((4, 8)) * 0.1).astype(np.float32)
    from rnnfast.stream import Stream

    serial = Stream(layers, batch=4)
    for _ in range(600):
        serial.step(x_t)
    want = serial.state
    for trial in range(3):
        got = _hammer(Stream(layers, batch=4), x_t)
        for key in want:
            assert np.array_equal(got[key], want[key]), (trial, key)


def test_a_graph_stream_stepped_from_two_threads_keeps_a_consistent_state():
    path = os.path.join(os.path.dirname(__file__), "data", "onnx", "graph", "stream_gru.ts.onnx")
    record = np.load(path.replace(".ts.onnx", ".npz"))
    first = {k[len("stream_in:"):]: record[k][0] for k in record.files if k.startswith("stream_in:")}
    serial = rnnfast.load(path).stream(batch=1)
    for _ in range(600):
        serial.step(first)
    want = serial.state
    for trial in range(3):
        got = _hammer(rnnfast.load(path).stream(batch=1), first)
        for key in want:
            assert np.array_equal(got[key], want[key]), (trial, key)



def _sign_keeping_stream(how):
    """A stream whose every state element keeps its sign forever, so a state that is all positive or all negative
    stays so, and a state with both signs is a mix of two (torn). how: the way it steps: "direct" and "graph loop",
    three RNN layers stepping h <- tanh(3 h) (no input weights, recurrent weights 3 I), stepped by the engine or by
    the graph's state loop (their states graph inputs); "looped stack", one LSTM layer whose gates hold its cell
    state (forget and output gates biased to 1, input gate to 0: c <- c, h <- tanh(c)), states as graph inputs."""
    from onnx_builders import chain_model
    from rnnfast.graph.stream import make_stream
    from rnnfast.layers import RecurrentLayer
    from rnnfast.stream import Stream

    H, B = 8, 2
    x = np.zeros((1, B, H), np.float32)
    if how == "looped stack":
        bias = np.zeros((1, 8 * H), np.float32)
        bias[0, :H], bias[0, H:3 * H] = -20, 20  # ONNX gate order i, o, f, c
        data, _ = recurrent_model("lstm", {"hidden_size": H}, [x, np.zeros((1, 4 * H, H), np.float32),
                                                               np.zeros((1, 4 * H, H), np.float32), bias, None,
                                                               np.zeros((1, B, H), np.float32),
                                                               np.zeros((1, B, H), np.float32)], 3)
        stream = rnnfast.load(data).stream(batch=B, states={"initial_h": "Y_h", "initial_c": "Y_c"})
        assert stream.direct
        return stream, x
    zeros = np.zeros((1, H), np.float32)
    layers = [RecurrentLayer(cell="rnn", direction="forward", hidden_size=H, input_size=H,
                             w_ih=np.zeros((1, H, H), np.float32), w_hh=3 * np.eye(H, dtype=np.float32)[None],
                             b_ih=zeros, b_hh=zeros) for _ in range(3)]
    if how == "direct":
        return Stream(layers, batch=B), x[0]
    model = rnnfast.load(chain_model(layers, states=True))
    return make_stream("model", B, compiled=model.graph.compiled, states={f"h{k}": f"Yh{k}" for k in range(3)},
                       direct=False), x


@pytest.mark.parametrize("how", ["direct", "graph loop", "looped stack"])
def test_states_set_and_read_while_another_thread_steps_are_never_torn(how):
    """One thread steps, one sets the whole state to all +0.5 or all -0.5 in turn, one reads it: every read is one
    state (one sign), whatever falls between: setting and reading take the lock a step holds, across every layer."""
    import sys
    import threading

    stream, x = _sign_keeping_stream(how)
    plus = {name: np.full(v.shape, 0.5, np.float32) for name, v in stream.state.items()}
    minus = {name: -v for name, v in plus.items()}
    assert len(plus) >= 2
    stop, torn, reads, steps = threading.Event(), [], [0], [0]

    def step():
        while not stop.is_set():
            stream.step(x)
            steps[0] += 1

    def read():
        while not stop.is_set():
            state = stream.state
            signs = np.unique(np.sign(np.concatenate([v.ravel() for v in state.values()])))
            reads[0] += 1
            if len(signs) != 1:
                torn.append({k: v.ravel()[:2] for k, v in state.items()})

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns often, so the interleavings a lock must exclude do happen
    pool = [threading.Thread(target=step), threading.Thread(target=read)]
    try:
        for t in pool:
            t.start()
        for i in range(6000):
            stream.state = plus if i % 2 else minus
    finally:
        stop.set()
        for t in pool:
            t.join()
        sys.setswitchinterval(switch)
    assert reads[0] > 0 and steps[0] > 0 and not torn, torn[:3]
    signs = np.unique(np.sign(np.concatenate([v.ravel() for v in stream.state.values()])))
    assert signs.tolist() == [1.0]  # the last state set (i = 5999: plus), stepped or not

EMB_LSTM_FC_OPTIONS = dict(embedding="emb", rnn="lstm", head="fc", batch_first=True)


@pytest.mark.parametrize("fixture", ["lstm", "gru_2layer", "lstm_proj", "emb_lstm_fc", "lstm_no_bias_3layer"])
def test_torch_models_stream_in_c_and_equal_run_to_the_bit(fixture):
    """A PyTorch chain with a head streams through its one-step graph (graph/chain.py, the graph's state loop), a
    lone recurrent stack by the direct C step: every step equals run to the bit, the state is each layer's own
    ("layer0.h" [1, batch, out], ...) and a run from a stream's state (h0/c0 stacked as PyTorch stacks them) goes
    on where the stream stands."""
    opts = EMB_LSTM_FC_OPTIONS if fixture == "emb_lstm_fc" else {}
    model = rnnfast.load(TORCH_DATA / f"{fixture}.pt", **opts)
    ref = np.load(TORCH_DATA / f"{fixture}.npz")
    x = ref["input"]
    batch_first = model.graph.batch_first
    xt = x.swapaxes(0, 1) if batch_first else x  # time-major
    y = model.run(x)[0]
    y = y.swapaxes(0, 1) if batch_first else y
    stream = model.stream(batch=xt.shape[1])
    assert type(stream) is rnnfast.Stream and stream.direct == (fixture != "emb_lstm_fc")
    steps = [stream.step(xt[t]) for t in range(3)]
    steps += list(stream.feed(xt[3:]))
    assert np.array_equal(np.stack(steps), y)
    layers = model.graph.layers
    assert sorted(stream.state) == sorted([f"layer{k}.h" for k in range(len(layers))] +
                                          [f"layer{k}.c" for k in range(len(layers)) if layers[k].cell == "lstm"])
    stream.reset()
    half = xt.shape[0] // 2
    for t in range(half):
        stream.step(xt[t])
    state = stream.state
    feeds = {"input": xt[half:].swapaxes(0, 1) if batch_first else xt[half:],
             "h0": np.concatenate([state[f"layer{k}.h"] for k in range(len(layers))])}
    if layers[0].cell == "lstm":
        feeds["c0"] = np.concatenate([state[f"layer{k}.c"] for k in range(len(layers))])
    rest = model.run(feeds)[0]
    assert_close(rest.swapaxes(0, 1) if batch_first else rest, y[half:])


def _graph_path_stream(model, batch):
    """The one-step graph stream a chain with a head takes (what a lone stack took before the direct path)."""
    from rnnfast.stream.step_input import Features
    from rnnfast.graph.stream import make_stream

    return make_stream("model", batch, 1, compiled=model.graph.variant(step=True), direct=False,
                       step_input=Features(model.graph.layers[0].input_size, "model"))


@pytest.mark.parametrize("fixture", ["lstm", "gru_2layer", "lstm_proj", "rnn_relu_2layer", "lstm_no_bias_3layer"])
@pytest.mark.parametrize("quantized", [None, "int8"])
def test_lone_stack_streams_take_the_direct_step_with_the_graph_paths_bits(fixture, quantized):
    """A chain that is recurrent layers alone steps directly (one C step, no executor run): the same bits as the
    one-step graph and within the float32 tolerance of the float64 reference, layer by layer with the states
    carried; batch 3 and batch 1 unbatched."""
    from rnnfast import reference

    opts = {"nonlinearity": "relu"} if fixture == "rnn_relu_2layer" else {}
    model = rnnfast.load(TORCH_DATA / f"{fixture}.pt", **opts)
    if quantized:
        model = model.quantize(quantized)
    x = np.random.default_rng(5).standard_normal((9, 3, model.graph.layers[0].input_size)).astype(np.float32)
    fast, slow = model.stream(batch=3, n_threads=1), _graph_path_stream(model, 3)
    assert type(fast) is rnnfast.Stream and fast.direct and not slow.direct
    got = np.stack([fast.step(x_t) for x_t in x])
    assert np.array_equal(got, np.stack([slow.step(x_t) for x_t in x]))
    for key, value in slow.state.items():
        assert np.array_equal(fast.state[key], value), key
    if not quantized:
        want = x.astype(np.float64)
        for layer in model.graph.layers:
            y = reference.run_layer(layer, want)[0]
            want = y.transpose(0, 2, 1, 3).reshape(y.shape[0], y.shape[2], -1)
        assert_close(got, want)
    one, one_slow = model.stream(batch=1), _graph_path_stream(model, 1)
    assert np.array_equal(np.stack([one.step(x_t[0]) for x_t in x]), np.stack([one_slow.step(x_t[0]) for x_t in x]))


def _looped_model(cell, batch=3, hidden=6, inputs=4, seed=1):
    """One forward recurrent node whose initial states are graph inputs and final states outputs."""
    rng = np.random.default_rng(seed)
    G = N_GATES[cell]
    f = lambda *s: rng.uniform(-0.5, 0.5, s).astype(np.float32)
    attrs = {"hidden_size": hidden, "linear_before_reset": 1} if cell == "gru" else {"hidden_size": hidden}
    state = [f(1, batch, hidden), f(1, batch, hidden) if cell == "lstm" else None]
    data, _ = recurrent_model(cell, attrs, [f(5, batch, inputs), f(1, G * hidden, inputs), f(1, G * hidden, hidden),
                                            f(1, 2 * G * hidden), None] + state, 3 if cell == "lstm" else 2)
    pairs = {"initial_h": "Y_h", "initial_c": "Y_c"} if cell == "lstm" else {"initial_h": "Y_h"}
    return rnnfast.load(data), pairs


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm", "fixture"])
def test_a_looped_lone_stack_steps_directly_with_the_graph_streams_bits(cell):
    """A graph that is one stack of forward layers with its states as inputs fed back from its outputs (an LSTM
    exported with h0/c0) steps directly: the same outputs and states as the graph's state loop to the bit, from a
    state set by the caller, one step at a time and several at once, and within the float32 tolerance of the
    float64 reference carried from that state."""
    from rnnfast import reference
    from rnnfast.graph.stack import looped_stack
    from rnnfast.graph.stream import make_stream

    if cell == "fixture":
        model, pairs = rnnfast.load(Path(__file__).parent / "data" / "onnx" / "lstm_states.ts.onnx"), None
    else:
        model, pairs = _looped_model(cell)
    fast = model.stream(batch=3, n_threads=1, states=pairs)
    slow = make_stream("model", 3, 1, compiled=model.graph.compiled, states=pairs, direct=False)
    assert type(fast) is rnnfast.Stream and fast.direct and not slow.direct and fast.pairs == slow.pairs
    rng = np.random.default_rng(2)
    start = {k: rng.uniform(-0.5, 0.5, v.shape).astype(np.float32) for k, v in slow.state.items()}
    fast.state, slow.state = start, start
    x_name = fast.step_inputs[0]
    x = rng.standard_normal((12, 1, 3, model.graph.compiled.graph.values[x_name].shape[-1])).astype(np.float32)
    got = [fast.step(x_t) for x_t in x[:6]] + [fast.step({x_name: x[6:9, 0]}), fast.step([x[9]])]
    want = [slow.step(x_t) for x_t in x[:6]] + [slow.step({x_name: x[6:9, 0]}), slow.step([x[9]])]
    for g, w in zip(got, want):
        assert g.shape == w.shape and np.array_equal(g, w)
    for key, value in slow.state.items():
        assert np.array_equal(fast.state[key], value), key
    layers, _, _, which = looped_stack(model.graph.compiled.graph, fast.pairs)
    layer = layers[0]
    h0 = start[next(k for k, v in which.items() if v == "h")]
    c0 = start[next(k for k, v in which.items() if v == "c")] if layer.cell == "lstm" else None
    y = reference.run_layer(layer, x[:10, 0].astype(np.float64), initial_h=h0, initial_c=c0)[0]
    assert_close(np.concatenate([g.reshape(-1, 3, layer.output_size) for g in got]), y[:, 0])
    if cell == "fixture":  # a symbolic batch axis: rows reset
        fast.reset([1])
        slow.reset([1])
    else:
        for stream in (fast, slow):
            with pytest.raises(ValueError, match=r"cannot reset rows: state 'initial_[hc]' \(shape \(1, 3, 6\)\) has "
                               r"no axis the graph declares as the batch size.*reset\(\) without rows"):
                stream.reset([1])
    assert np.array_equal(fast.step(x[10]), slow.step(x[10]))
    fast.reset()
    slow.reset()
    assert np.array_equal(fast.step(x[11]), slow.step(x[11]))



def test_complex_or_object_steps_are_refused_not_converted_by_every_way_of_stepping():
    """float32 conversion would drop a complex step's imaginary part and make None NaN; the graph executor refuses
    both, and so do the direct steps (a chain's layers, a looped lone stack), leaving the state as it was."""
    model, x, _ = _stream_and_run(batch=3)
    looped, pairs = _looped_model("lstm")
    cases = {"layers": (model.stream(batch=3), x[0]), "looped stack": (looped.stream(batch=3, states=pairs), x[:1])}
    for name, (stream, x_t) in cases.items():
        assert stream.direct, name
        stream.step(x_t)
        before = stream.state
        for bad in (x_t.astype(np.complex64) + 1j, np.full(x_t.shape, None, object)):
            with pytest.raises(ValueError, match=rf"real-valued features \[batch, input\], got {bad.dtype}"):
                stream.step(bad)
        after = stream.state
        assert all(np.array_equal(before[k], after[k]) for k in before), name
