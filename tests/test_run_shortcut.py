"""Model.run's shortcut into the C executor (importers/onnx/graph.py _direct_runner, CGraph.run_feeds): the feeds it
takes give the bits of the checked path (the graph's own run, which InferenceSession and Model.run took before), and
every feed it does not take still gets what the checked path gives: its conversion, its default, or its error naming
the input. The shortcut gives way while rnnfast verify traces the engine and once the graph's compiled form is gone."""
import numpy as np
import pytest

import rnnfast
from onnx_builders import lstm_with_initializer_state
from rnnfast import engine

H = 5


@pytest.fixture
def model():
    h0 = np.random.default_rng(1).standard_normal((1, 1, H)).astype(np.float32)
    return rnnfast.load(lstm_with_initializer_state(h0))


def feeds_of(batch=2, seq=6, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((seq, batch, 4)).astype(np.float32),
            rng.standard_normal((1, batch, H)).astype(np.float32))


def same_bits(a, b):
    return len(a) == len(b) and all(np.asarray(p).tobytes() == np.asarray(q).tobytes() for p, q in zip(a, b))


def test_the_feeds_it_takes_give_the_checked_paths_bits(model):
    x, h0 = feeds_of()
    for feeds in ({"X": x, "h0": h0}, {"X": x[:, :1]}, {"X": x[:, :1], "h0": None}):
        feeds = {k: None if v is None else np.ascontiguousarray(v) for k, v in feeds.items()}
        assert model._direct(feeds) is not None, list(feeds)
        assert same_bits(model.run(feeds), model.graph.run(dict(feeds))), list(feeds)
    session = rnnfast.InferenceSession(lstm_with_initializer_state(np.zeros((1, 1, H), np.float32)))
    assert same_bits(session.run(None, {"X": x, "h0": h0}), session._model.graph.run({"X": x, "h0": h0}))


def test_other_dtypes_and_views_are_converted_as_before(model):
    x, h0 = feeds_of()
    want = model.run({"X": x, "h0": h0})
    wide = np.empty((6, 2, 8), np.float32)
    wide[:, :, ::2] = x
    for feeds in ({"X": x.astype(np.float64), "h0": h0}, {"X": wide[:, :, ::2], "h0": h0},
                  {"X": x, "h0": np.repeat(h0, 2, axis=2)[:, :, ::2]}):
        assert model._direct(feeds) is None
        assert same_bits(model.run(feeds), want)


@pytest.mark.parametrize("feeds,match", [
    (lambda x, h0: {"X": x[:, :, :3], "h0": h0}, "input 'X' has size 3 on axis 2, expected 4"),
    (lambda x, h0: {"X": x[0], "h0": h0}, "input 'X' has 2 dimensions, expected 3"),
    (lambda x, h0: {"X": x.astype(np.int32), "h0": h0}, "input 'X' has dtype int32"),
    (lambda x, h0: {"X": x, "h0": h0, "x": x}, r"unknown input name\(s\) \['x'\]"),
    (lambda x, h0: {"h0": h0}, "missing input 'X'"),
    (lambda x, h0: {"X": None}, "input 'X' has 0 dimensions"),
])
def test_bad_feeds_are_refused_naming_the_input(model, feeds, match):
    x, h0 = feeds_of()
    feeds = feeds(np.ascontiguousarray(x), h0)
    assert model._direct(feeds) is None
    with pytest.raises(ValueError, match=match):
        model.run(feeds)
    with pytest.raises(ValueError, match=match):
        rnnfast.InferenceSession(lstm_with_initializer_state(np.zeros((1, 1, H), np.float32))).run(None, feeds)


def test_a_state_of_another_batch_than_x_is_refused_by_the_executor(model):
    """Each array fits its declared shape alone: the executor's own check names the node and the state."""
    x, _ = feeds_of(batch=2)
    _, h0 = feeds_of(batch=3)
    assert model.graph._check_input(model.graph.inputs[1], h0) is h0
    with pytest.raises(ValueError, match=r"node #0 \(LSTM\): initial_h is \[1, 3, 5\], must be float \[1, 2, 5\]"):
        model.run({"X": x, "h0": h0})


def test_it_gives_way_to_the_traced_path(model, monkeypatch):
    x, h0 = feeds_of()
    want = model.run({"X": x, "h0": h0})
    seen = []
    untraced = engine.CompiledStack.run

    def watched(self, *args, **kw):
        seen.append(1)
        return untraced(self, *args, **kw)
    monkeypatch.setattr(engine.CompiledStack, "run", watched)
    assert model._direct({"X": x, "h0": h0}) is None
    got = model.run({"X": x, "h0": h0})
    assert seen, "the traced engine did not see the run"
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-6)


def test_it_follows_the_graphs_compiled_form(model):
    x, h0 = feeds_of()
    want = model.run({"X": x, "h0": h0})
    model.graph.compiled = None  # the node-by-node path, as a test of it forces it
    assert model._direct({"X": x, "h0": h0}) is None
    np.testing.assert_allclose(model.run({"X": x, "h0": h0})[0], want[0], rtol=1e-5, atol=1e-6)
