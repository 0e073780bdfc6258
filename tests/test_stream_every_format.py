"""Model.stream() gives one class, rnnfast.Stream, for every format that streams (ONNX with a state in and out, an
ONNX stack with h0/c0, Keras with an Embedding or stacked layers, PyTorch chains, TF1, .rnnf 1 and 2, .safetensors
graphs), and its methods behave the same whichever way a step runs: steps equal run (to the bit where the step runs
what run runs: the graph, or the engine's own layers), feed equals repeated steps, a reset of one row restarts that
row only, and the state round-trips through pickle."""
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_close

import rnnfast

DATA = Path(__file__).parent / "data"
GRAPH = DATA / "onnx" / "graph"
B = 2  # batch rows: row 1 is reset alone


@dataclass
class Case:
    model: object
    steps: list          # per-step inputs (an array, or a dict by name)
    want: list           # run's output for each step, from zero state (None where run does not give it)
    exact: bool          # the step runs what run runs: equal to the bit
    pairs: dict
    pairs_from: str
    direct: bool
    batch_axis: int = 0  # of a step's output


def _vad(model):
    rec = np.load(GRAPH / "vad.npz")
    chunks = rec["stream_in:input"]  # [8, 1, 512]
    steps = [{"input": np.concatenate([chunks[t], chunks[(t + 3) % 8]]), "sr": rec["stream_in:sr"][t]}
             for t in range(len(chunks))]
    state, want = np.zeros((2, B, 64), np.float32), []
    for feeds in steps:  # run with the state fed back, as a stateless caller streams
        out, state = model.run({**feeds, "state": state})
        want.append(out)
    return steps, want


def onnx_vad():
    model = rnnfast.load(GRAPH / "vad.ts.onnx")
    return Case(model, *_vad(model), True, {"state": "stateN"}, "names", False)


def rnnf2_vad():
    from rnnfast.exporters.rnnf_graph import graph_to_bytes

    model = rnnfast.load(graph_to_bytes(rnnfast.load(GRAPH / "vad.ts.onnx").graph.compiled, "vad.ts.onnx"))
    return Case(model, *_vad(model), True, {"state": "stateN"}, "graph", False)


def safetensors_vad():
    from rnnfast.exporters import safetensors

    model = rnnfast.load(safetensors.to_bytes(rnnfast.load(GRAPH / "vad.ts.onnx")))
    return Case(model, *_vad(model), True, {"state": "stateN"}, "graph", False)


def onnx_lstm_states():
    model = rnnfast.load(DATA / "onnx" / "lstm_states.ts.onnx")
    x = np.random.default_rng(0).standard_normal((7, 1, B, 5)).astype(np.float32)
    y = model.run({"x": x[:, 0], "h0": np.zeros((1, B, 16), np.float32), "c0": np.zeros((1, B, 16), np.float32)})[0]
    return Case(model, list(x), [y[t:t + 1] for t in range(7)], True, {"h0": "h_n", "c0": "c_n"}, "names", True, 1)


def _torch(name, **options):
    model = rnnfast.load(DATA / "torch" / f"{name}.pt", **options)
    x = np.load(DATA / "torch" / f"{name}.npz")["input"]
    if model.graph.batch_first:
        x = x.swapaxes(0, 1)
    x = np.concatenate([x, x[:, ::-1]], axis=1)[:, :B] if x.shape[1] < B else x[:, :B]
    y = model.run(x.swapaxes(0, 1) if model.graph.batch_first else x)[0]
    y = y.swapaxes(0, 1) if model.graph.batch_first else y
    return model, list(x), list(y)


def torch_emb_lstm_fc():
    model, steps, want = _torch("emb_lstm_fc", embedding="emb", rnn="lstm", head="fc", batch_first=True)
    return Case(model, steps, want, True, {"layer0.h": "layer0.h_n", "layer0.c": "layer0.c_n"}, "layers", False)


def torch_gru_2layer():
    model, steps, want = _torch("gru_2layer", batch_first=False)
    return Case(model, steps, want, True, {"layer0.h": "layer0.h_n", "layer1.h": "layer1.h_n"}, "layers", True)


def rnnf1_gru_2layer():
    from rnnfast.exporters.rnnf import to_bytes

    source, steps, want = _torch("gru_2layer", batch_first=False)
    model = rnnfast.load(to_bytes(source.to_pipeline()))
    return Case(model, steps, want, True, {"layer0.h": "layer0.h_n", "layer1.h": "layer1.h_n"}, "layers", True)


def keras_embedding():
    model = rnnfast.load(DATA / "keras" / "k3_seed_imdb_embedding_simplernn.keras")
    ids = np.load(DATA / "keras" / "k3_seed_imdb_embedding_simplernn.npz")["x0"][:B]
    # The model takes 12 steps and returns the last: run gives the last step's output only.
    want = [None] * (ids.shape[1] - 1) + [model.run(ids)[0]]
    return Case(model, list(ids.T), want, False, {"layer0.h": "layer0.h_n"}, "layers", False)


def tf1_lstm2_dense():
    model = rnnfast.load(str(DATA / "tf1" / "lstm2_dense" / "model.ckpt"))
    x = np.load(DATA / "tf1" / "lstm2_dense" / "expected.npz")["x"][:B]
    pairs = {f"layer{k}.{w}": f"layer{k}.{w}_n" for k in range(2) for w in "hc"}
    # the one-step graph (its dense head in C, as run computes it): the same bits as run
    return Case(model, list(x.swapaxes(0, 1)), list(model.run(x)[0].swapaxes(0, 1)), True, pairs, "layers", False)


CASES = {f.__name__: f for f in (onnx_vad, rnnf2_vad, safetensors_vad, onnx_lstm_states, torch_emb_lstm_fc,
                                 torch_gru_2layer, rnnf1_gru_2layer, keras_embedding, tf1_lstm2_dense)}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rnnfast.AssumptionWarning)
        return CASES[request.param]()


def _steps(stream, steps):
    return [stream.step(x) for x in steps]


def _same(got, want, exact, what):
    for t, (g, w) in enumerate(zip(got, want)):
        if w is None:
            continue
        if exact:
            assert g.shape == w.shape and np.array_equal(g, w), f"{what}: step {t}"
        else:
            assert_close(g, w, what=f"{what}: step {t}")


def test_one_class_with_its_pairs_and_how_they_were_chosen(case):
    stream = case.model.stream(batch=B)
    assert type(stream) is rnnfast.Stream
    assert stream.pairs == case.pairs and sorted(stream.state) == sorted(case.pairs)
    assert stream.pairs_from == case.pairs_from and stream.direct == case.direct
    assert stream.batch == B and isinstance(stream.n_threads, int)
    assert "rnnfast.Stream" in repr(stream)


def test_steps_equal_run_and_feed_equals_the_steps(case):
    stream = case.model.stream(batch=B)
    stepped = _steps(stream, case.steps)
    _same(stepped, case.want, case.exact, "step vs run")
    fed = case.model.stream(batch=B)
    if isinstance(case.steps[0], dict):  # several step inputs: one step at a time
        with pytest.raises(ValueError, match="feed takes a stream of one step input"):
            fed.feed(case.steps)
        return
    assert np.array_equal(fed.feed(np.stack(case.steps)), np.stack(stepped))


def test_a_reset_row_starts_again_and_the_others_go_on(case):
    stream = case.model.stream(batch=B)
    _steps(stream, case.steps[:3])
    stream.reset(rows=[1])
    after = _steps(stream, case.steps[3:])
    fresh = _steps(case.model.stream(batch=B), case.steps[3:])
    going_on = _steps(case.model.stream(batch=B), case.steps)[3:]
    row = lambda ys, r: [np.take(y, [r], axis=case.batch_axis) for y in ys]
    _same(row(after, 1), row(fresh, 1), True, "reset row vs a fresh stream")
    _same(row(after, 0), row(going_on, 0), True, "the other row vs a stream left alone")
    with pytest.raises(ValueError, match=r"rows must lie in \[0, 2\)"):
        stream.reset(rows=[2])


def test_the_state_round_trips_through_pickle(case):
    stream = case.model.stream(batch=B)
    _steps(stream, case.steps[:3])
    saved = pickle.loads(pickle.dumps(stream.state))
    assert all(type(v) is np.ndarray for v in saved.values())
    first = _steps(stream, case.steps[3:])
    stream.state = saved
    _same(_steps(stream, case.steps[3:]), first, True, "the same stream from its saved state")
    other = case.model.stream(batch=B)
    other.state = saved
    _same(_steps(other, case.steps[3:]), first, True, "another stream from that state")
    _same(first, case.want[3:], case.exact, "steps from a restored state vs run")
    with pytest.raises(ValueError, match="a stream state has the keys"):
        stream.state = {"nope": next(iter(saved.values()))}


def test_refusals_name_what_was_expected():
    """A step with another number of rows than the stream's batch is refused naming both (not the state it no
    longer matches), and leaves the state alone; states= is refused by a model whose states are its layers'."""
    model = rnnfast.load(GRAPH / "vad.ts.onnx")
    steps, want = _vad(model)
    stream = model.stream(batch=B)
    stream.step(steps[0])
    before = stream.state
    with pytest.raises(ValueError, match=r"step input 'input' has 3 rows \(axis 0 of \(3, 512\)\); this stream "
                                         r"steps 2"):
        stream.step({**steps[1], "input": np.concatenate([steps[1]["input"], steps[1]["input"][:1]])})
    assert all(np.array_equal(before[k], v) for k, v in stream.state.items())
    assert np.array_equal(stream.step(steps[1]), want[1])
    torch_model = rnnfast.load(DATA / "torch" / "gru_2layer.pt", batch_first=False)
    with pytest.raises(ValueError, match="this model's states are its recurrent layers' own"):
        torch_model.stream(states={"h0": "h_n"})
