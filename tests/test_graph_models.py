"""Whole models through the C graph executor: the four fixture models of tools/make_graph_fixtures.py (a VAD with
an If on the sample rate and its state in/out, a MatMul -> 2 x GRU -> MatMul denoiser, a streaming GRU with a conv
cache and LayerNorm, a Conv2d + pooling + BiGRU CRNN), each from both torch exporters, against torch's own recorded
outputs and onnxruntime; streamed chunk by chunk against torch's chunk-by-chunk records."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import rnnfast
from conftest import assert_close

DATA = Path(__file__).parent / "data" / "onnx" / "graph"
MODELS = ["vad", "denoiser", "stream_gru", "crnn"]
FILES = [(m, e) for m in MODELS for e in ("ts", "dynamo")]
STATE_PAIRS = {"vad": {"state": "stateN"}, "denoiser": {"h0": "hn"},
               "stream_gru": {"conv_cache": "conv_cache_out", "h": "h_out"}}


def records(npz, model):
    """(prefix, feeds, torch outputs) per recorded call: the vad has a 16 kHz and an 8 kHz record."""
    prefixes = ["", "sr8k/"] if model == "vad" else [""]
    for pre in prefixes:
        feeds = {k[len(pre) + 3:]: npz[k] for k in npz if k.startswith(pre + "in:")}
        outs = {k[len(pre) + 4:]: npz[k] for k in npz if k.startswith(pre + "out:")}
        yield pre, feeds, outs


@pytest.fixture(scope="module", params=FILES, ids=[f"{m}.{e}" for m, e in FILES])
def fixture_model(request):
    model, exporter = request.param
    path = DATA / f"{model}.{exporter}.onnx"
    return model, path, rnnfast.load(path), np.load(DATA / f"{model}.npz")


def test_runs_in_c_and_matches_torch_and_onnxruntime(fixture_model):
    model, path, m, npz = fixture_model
    assert m.graph.compiled is not None, m.graph.unfit_reason
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for pre, feeds, torch_outs in records(npz, model):
        got = m.run(feeds)
        onnxruntime = sess.run(None, feeds)
        assert sorted(m.output_names) == sorted(torch_outs)
        for name, g, o in zip(m.output_names, got, onnxruntime):
            assert g.dtype == np.float32 and g.shape == torch_outs[name].shape
            assert_close(g, o, what=f"{pre}{name} vs onnxruntime")
            assert_close(g, torch_outs[name], what=f"{pre}{name} vs torch")


def test_one_and_two_threads_give_the_same_bits(fixture_model):
    model, path, _, npz = fixture_model
    pre, feeds, _ = next(records(npz, model))
    one = rnnfast.load(path, n_threads=1).run(feeds)
    two = rnnfast.load(path, n_threads=2).run(feeds)
    for a, b in zip(one, two):
        assert np.array_equal(a, b)


def test_other_batch_and_length_replan_and_still_match_onnxruntime(fixture_model):
    """The same loaded model at a new batch / time size: the executor re-plans its arena for the new shapes."""
    model, path, m, npz = fixture_model
    rng = np.random.default_rng(1)
    pre, feeds, _ = next(records(npz, model))
    new = {}
    for name, v in feeds.items():
        v = np.asarray(v)
        if model == "vad":
            new[name] = np.repeat(v, 3, axis=1 if name == "state" else 0) if v.ndim else v
        elif name in ("input", "x") and model != "vad":
            shape = list(v.shape)
            shape[0] = 3
            axis = {"denoiser": 1, "stream_gru": 2, "crnn": 3}[model]
            shape[axis] = {"denoiser": 17, "stream_gru": 6, "crnn": 32}[model]
            new[name] = rng.standard_normal(shape).astype(np.float32)
        else:
            shape = list(v.shape)
            shape[1 if name in ("h0", "h") else 0] = 3
            new[name] = rng.standard_normal(shape).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for g, o in zip(m.run(new), sess.run(None, new)):
        assert_close(g, o, what="new shapes vs onnxruntime")
    for g, o in zip(m.run(feeds), sess.run(None, feeds)):  # and back to the first plan
        assert_close(g, o, what="first shapes again")


@pytest.mark.parametrize("model,exporter", [(m, e) for m, e in FILES if m in STATE_PAIRS])
def test_streams_chunk_by_chunk_like_torch(model, exporter):
    path = DATA / f"{model}.{exporter}.onnx"
    npz = np.load(DATA / f"{model}.npz")
    m = rnnfast.load(path)
    stream = m.stream(batch=1)
    assert stream.pairs == STATE_PAIRS[model]  # found by name and shape
    for pre in (["", "sr8k/"] if model == "vad" else [""]):
        steps = {k[len(pre) + len("stream_in:"):]: npz[k] for k in npz if k.startswith(pre + "stream_in:")}
        init = {k[len(pre) + len("stream_init:"):]: npz[k] for k in npz if k.startswith(pre + "stream_init:")}
        outs = {k[len(pre) + len("stream_out:"):]: npz[k] for k in npz if k.startswith(pre + "stream_out:")}
        stream.state = init
        states = dict(init)
        for t in range(8):
            feeds = {k: v[t] for k, v in steps.items()}
            got = stream.step(feeds)
            got = got if isinstance(got, list) else [got]
            for name, g in zip(stream.step_outputs, got):
                assert_close(g, outs[name][t], what=f"{pre}chunk {t} {name} vs torch")
            # a step is a run with the states fed in, to the bit
            ran = dict(zip(m.output_names, m.run(feeds | states)))
            for name, g in zip(stream.step_outputs, got):
                assert np.array_equal(g, ran[name])
            states = {i: ran[o] for i, o in stream.pairs.items()}
            for i in stream.pairs:
                assert np.array_equal(stream.state[i], states[i])


def test_stream_reset_rows_and_explicit_pairs():
    path = DATA / "stream_gru.ts.onnx"
    m = rnnfast.load(path)
    stream = m.stream(batch=2, states={"conv_cache": "conv_cache_out", "h": "h_out"})
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 40, 4)).astype(np.float32)
    first = stream.step(x)
    stream.step(x)
    stream.reset(rows=[1])
    state = stream.state
    assert not state["h"][:, 1].any() and state["h"][:, 0].any() and not state["conv_cache"][1].any()
    fresh = m.stream(batch=2)
    again = stream.step(x)
    fresh_out = fresh.step(x)
    assert np.array_equal(again[1], fresh_out[1]) and np.array_equal(first[1], fresh_out[1])
    assert not np.array_equal(again[0], fresh_out[0])  # row 0 went on from its state
    with pytest.raises(ValueError, match="step input"):
        stream.step({"x": x, "h": state["h"]})
    before = stream.state
    with pytest.raises(ValueError, match="input 'x' has dtype int64, expected float32"):
        stream.step(np.ones((2, 40, 4), np.int64))
    assert all(np.array_equal(before[k], v) for k, v in stream.state.items())  # a refused step changes nothing
    twin = m.stream(batch=2)
    twin.state = stream.state
    assert np.array_equal(stream.step(x.astype(np.float64)), twin.step(x))  # another float type is converted
    with pytest.raises(ValueError, match="state pair 'nope'"):
        m.stream(states={"nope": "h_out"})
