"""Models and sessions pickle as their source bytes and load options (rnnfast/portable.py): a round trip of a
fixture of every format still matches what the real framework recorded, is rebuilt once per process, keeps
n_threads, and works in a process pool; a model made in memory pickles as .rnnf when it is a pipeline and is
refused by name otherwise."""
import concurrent.futures
import multiprocessing
import os
import pickle

import numpy as np
import pytest
from conftest import assert_close

import rnnfast
from rnnfast import portable
from rnnfast.model import Model

DATA = os.path.join(os.path.dirname(__file__), "data")


def _vad_feeds(npz, prefix=""):
    return {k[len(prefix) + 3:]: npz[k] for k in npz.files if k.startswith(prefix + "in:")}


def _roundtrip(model):
    return pickle.loads(pickle.dumps(model))


def test_onnx_whole_model_round_trip_matches_torch_record():
    npz = np.load(os.path.join(DATA, "onnx", "graph", "vad.npz"))
    model = rnnfast.load(os.path.join(DATA, "onnx", "graph", "vad.ts.onnx"))
    back = _roundtrip(model)
    assert back is not model and back.origin.key == model.origin.key
    for prefix in ("", "sr8k/"):
        feeds = _vad_feeds(npz, prefix)
        got = back.run(feeds)
        for out, y in zip(back.outputs, got):
            assert_close(y, npz[f"{prefix}out:{out.name}"], what=f"vad {prefix}{out.name}")
        for a, b in zip(got, model.run(feeds)):
            np.testing.assert_array_equal(a, b)


def test_onnx_chain_round_trip_matches_record():
    npz = np.load(os.path.join(DATA, "onnx", "emb_lstm_linear.dynamo.npz"))
    back = _roundtrip(rnnfast.load(os.path.join(DATA, "onnx", "emb_lstm_linear.dynamo.onnx")))
    assert_close(back.run(npz["case1.in.ids"])[0], npz["case1.out.logits"], what="emb_lstm_linear")


@pytest.mark.parametrize("ext", ["h5", "keras"])
def test_keras_round_trip_matches_keras_predict(ext):
    npz = np.load(os.path.join(DATA, "keras", "k3_seed_stacked_lstm.npz"))
    back = _roundtrip(rnnfast.load(os.path.join(DATA, "keras", f"k3_seed_stacked_lstm.{ext}")))
    assert_close(back.run(npz["x0"])[0], npz["y0"], what=f"k3_seed_stacked_lstm.{ext}")


@pytest.mark.parametrize("name", ["lstm.pt", "gru_bidir_2layer.safetensors"])
def test_torch_round_trip_matches_torch(name):
    npz = np.load(os.path.join(DATA, "torch", name.rsplit(".", 1)[0] + ".npz"))
    model = rnnfast.load(os.path.join(DATA, "torch", name))
    back = _roundtrip(model)
    feeds = {i.name: npz[i.name] for i in back.inputs if i.name in npz.files}
    for out, y in zip(back.outputs, back.run(feeds)):
        assert_close(y, npz[out.name], what=f"{name} {out.name}")


def test_rnnf_round_trip_matches_torch():
    from rnnfast.exporters.rnnf import to_bytes

    npz = np.load(os.path.join(DATA, "torch", "lstm_no_state.npz"))  # a record from zero state, as a pipeline runs
    data = to_bytes(rnnfast.load(os.path.join(DATA, "torch", "lstm_no_state.pt")).to_pipeline())
    back = _roundtrip(rnnfast.load(data))
    assert back.origin.data == data
    assert_close(back.run(npz["input"])[0], npz["output"], what="lstm_no_state.rnnf")


def test_rebuilt_once_per_process_and_options_kept():
    model = rnnfast.load(os.path.join(DATA, "torch", "lstm.pt"), n_threads=1)
    blob = pickle.dumps(model)
    before = portable.builds
    first, second = pickle.loads(blob), pickle.loads(blob)
    assert first is second  # one rebuild, shared: the packed weights are built once per process
    assert portable.builds == before + 1
    assert first.n_threads == 1
    model.n_threads = 2  # a thread count set after load travels too
    assert _roundtrip(model).n_threads == 2
    limited = _roundtrip(rnnfast.load(os.path.join(DATA, "torch", "lstm.pt"), max_memory="64M"))
    assert limited.origin.options == {"max_memory": "64M"}


def test_session_round_trip():
    npz = np.load(os.path.join(DATA, "onnx", "graph", "vad.npz"))
    session = rnnfast.InferenceSession(os.path.join(DATA, "onnx", "graph", "vad.ts.onnx"))
    back = _roundtrip(session)
    assert [i.name for i in back.get_inputs()] == ["input", "state", "sr"]
    (prob,) = back.run(["output"], _vad_feeds(npz))
    assert_close(prob, npz["out:output"], what="vad session")


def test_quantized_model_pickles_as_its_source_and_the_step():
    model = rnnfast.load(os.path.join(DATA, "torch", "gru_2layer.pt"))
    q = model.quantize("int8")
    back = _roundtrip(q)
    assert back.origin.data == model.origin.data and back.origin.steps == (("quantize", "int8"),)
    x = np.load(os.path.join(DATA, "torch", "gru_2layer.npz"))["input"]
    np.testing.assert_array_equal(back.run(x)[0], q.run(x)[0])
    assert_close(back.run(x)[0], model.run(x)[0], int8=True, what="int8 gru_2layer after pickling")


def test_memory_chain_pickles_as_rnnf():
    from rnnfast.exporters.rnnf import to_bytes
    from rnnfast.graph.chain import ChainGraph

    npz = np.load(os.path.join(DATA, "torch", "lstm_no_state.npz"))
    pipeline = rnnfast.load(os.path.join(DATA, "torch", "lstm_no_state.pt")).to_pipeline()
    back = _roundtrip(Model(ChainGraph.of(pipeline)))
    assert back.origin.data == to_bytes(pipeline)
    assert_close(back.run(npz["input"])[0], npz["output"], what="lstm_no_state chain from memory")


def test_memory_model_without_a_file_form_is_refused_by_name():
    loaded = rnnfast.load(os.path.join(DATA, "onnx", "graph", "vad.ts.onnx"))
    with pytest.raises(portable.NotPicklableError, match="made in memory.*OnnxGraph.*no source bytes"):
        pickle.dumps(Model(loaded.graph))
    with pytest.raises(pickle.PicklingError):  # what pool code that catches pickling errors expects
        pickle.dumps(Model(loaded.graph))
    checkpoint = rnnfast.load(os.path.join(DATA, "tf1", "basic_rnn", "model.ckpt"))
    with pytest.raises(portable.NotPicklableError, match="TF 1.x checkpoint.*TF1Graph"):
        pickle.dumps(checkpoint)


def _score(model, x):
    return model.run(x)[0], portable.builds, os.getpid()


def test_process_pool_matches_a_plain_loop():
    model = rnnfast.load(os.path.join(DATA, "torch", "gru_2layer.pt"))
    rng = np.random.default_rng(3)
    chunks = [rng.standard_normal((6, 3, 4)).astype(np.float32) for _ in range(6)]
    context = multiprocessing.get_context("spawn")  # fork would copy an OpenMP thread pool into the children
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        results = list(pool.map(_score, [model] * len(chunks), chunks))
    for (y, builds, _), x in zip(results, chunks):
        np.testing.assert_array_equal(y, model.run(x)[0])
    for pid in {pid for _, _, pid in results}:
        assert max(b for _, b, p in results if p == pid) == 1  # each process built the model once
