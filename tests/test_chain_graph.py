"""Models read as a chain (.rnnf 1, PyTorch, TF 1.x: graph/chain.py) are built as the graph IR, and their chain form
(Model.to_pipeline, what the chain writers read) is read back off that IR by graph/to_pipeline.py, as for ONNX. For
every chain-shaped fixture the chain read off the IR must be what the source holds: the same stages, weights bit for
bit, activations, directions, masks and their rule for masked steps. (Their outputs against the recorded framework
outputs and the float64 reference are checked by test_torch_import, test_tf1_checkpoints and test_rnnf_format.)"""
import json
import os
import re

import numpy as np
import pytest
from pipeline_builders import PIPELINE_CASES, random_input, random_pipeline

import rnnfast
from rnnfast.exporters.rnnf import to_bytes
from rnnfast.graph.chain import ChainGraph
from rnnfast.importers.rnnf import load_rnnf
from rnnfast.importers.torch.files import read_torch_weights
from rnnfast.pipeline import DenseStage, EmbeddingStage, RecurrentStage

DATA = os.path.join(os.path.dirname(__file__), "data")
TORCH = os.path.join(DATA, "torch")
TORCH_CASES = sorted(f[:-4] for f in os.listdir(TORCH) if f.endswith(".npz"))
TF1 = os.path.join(DATA, "tf1")
TF1_CASES = sorted(d for d in os.listdir(TF1) if os.path.exists(os.path.join(TF1, d, "expected.npz")))
LAYER_FIELDS = ("cell", "direction", "hidden_size", "input_size", "activations", "clip", "input_forget",
                "linear_before_reset", "proj_size", "weight_dtype")
LAYER_ARRAYS = ("w_ih", "w_hh", "b_ih", "b_hh", "peepholes", "w_hr")


def assert_same_chain(got, want, what):
    """The chain read off the IR (got) against the source's stages (want): everything but the names of recurrent
    stages (the IR names a stack after its first layer)."""
    assert len(got) == len(want), (what, [type(s).__name__ for s in got], [type(s).__name__ for s in want])
    for k, (g, w) in enumerate(zip(got, want)):
        where = f"{what} stage {k}"
        assert type(g) is type(w), where
        if isinstance(w, EmbeddingStage):
            assert g.mask_zero == w.mask_zero, where
            np.testing.assert_array_equal(g.table, w.table, err_msg=where)
        elif isinstance(w, DenseStage):
            assert (g.activation, g.bias is None) == (w.activation, w.bias is None), where
            np.testing.assert_array_equal(g.weight, w.weight, err_msg=where)
            if w.bias is not None:
                np.testing.assert_array_equal(g.bias, w.bias, err_msg=where)
        else:
            assert (g.return_sequences, g.mask_zero_output) == (w.return_sequences, w.mask_zero_output), where
            assert len(g.layers) == len(w.layers), where
            for lg, lw in zip(g.layers, w.layers):
                assert [getattr(lg, f) for f in LAYER_FIELDS] == [getattr(lw, f) for f in LAYER_FIELDS], where
                assert lg.name == lw.name, where
                for key in LAYER_ARRAYS:
                    a, b = getattr(lg, key), getattr(lw, key)
                    assert (a is None) == (b is None), (where, key)
                    if a is not None:
                        assert a.dtype == b.dtype, (where, key)
                        np.testing.assert_array_equal(a, b, err_msg=f"{where} {key}")
                assert (lg.qweights is None) == (lw.qweights is None), where
                for key, (values, scales) in (lw.qweights or {}).items():
                    np.testing.assert_array_equal(lg.qweights[key][0], values, err_msg=f"{where} stored {key}")
                    if scales is not None:
                        np.testing.assert_array_equal(lg.qweights[key][1], scales, err_msg=f"{where} {key} scales")


@pytest.mark.parametrize("case", sorted(PIPELINE_CASES))
@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_rnnf1_chain_read_off_the_graph_is_the_file(rng, case, dtype):
    p = random_pipeline(rng, **PIPELINE_CASES[case])
    if dtype != "float32":
        from rnnfast.pipeline import quantized_stages

        p.stages = quantized_stages(p.stages, dtype)
    data = to_bytes(p)
    model = rnnfast.load(data)
    assert isinstance(model.graph, ChainGraph)
    stored = load_rnnf(data)  # the file's records, read without building a graph
    back = model.to_pipeline()
    assert (back.batch_first, back.name) == (stored.batch_first, stored.name)
    assert_same_chain(back.stages, stored.stages, case)
    assert_same_chain(back.stages, p.stages, case)
    x = random_input(rng, p)
    np.testing.assert_array_equal(rnnfast.load(to_bytes(back)).run(x)[0], model.run(x)[0])


def _torch_fixture(name):
    (path,) = [os.path.join(TORCH, f) for f in os.listdir(TORCH) if f.startswith(name + ".") and not f.endswith(".npz")]
    with np.load(os.path.join(TORCH, name + ".npz")) as z:
        options = json.loads(str(z["load_options"]))
    return path, options


def _file_values(tensors, prefix, kind, k, n_dirs):
    """The sorted values of layer k's `kind` tensors (both directions) as the file stores them."""
    keys = [f"{prefix}{kind}_l{k}{sfx}" for sfx in ("", "_reverse")[:n_dirs]]
    if not all(key in tensors for key in keys):
        return None
    return np.sort(np.concatenate([np.asarray(tensors[key], np.float32).ravel() for key in keys]))


@pytest.mark.parametrize("name", TORCH_CASES)
def test_torch_chain_read_off_the_graph_is_the_module(name):
    path, options = _torch_fixture(name)
    model = rnnfast.load(path, **options)
    graph = model.graph
    if type(graph).__name__ == "TorchCellGraph":
        with pytest.raises(rnnfast.FormatError, match="is not a chain over a sequence"):
            model.to_pipeline()
        return
    back = model.to_pipeline()
    assert back.batch_first == graph.batch_first
    assert_same_chain(back.stages, graph.stages, name)
    if options.get("rename") or options.get("cell_loop"):
        return  # the file's own keys are not the module's
    # the layers' weights are the file's tensors, value for value (in the canonical gate order)
    with open(path, "rb") as f:
        tensors = read_torch_weights(f.read(), path, options.get("allow_classes") or (),
                                     options.get("state_dict_key")).tensors
    prefix = f"{graph.name}." if graph.name else ""
    stack = next(s for s in back.stages if isinstance(s, RecurrentStage))
    for k, layer in enumerate(stack.layers):
        assert re.fullmatch(rf"{re.escape(prefix)}l{k}", layer.name), layer.name
        for kind, key in (("weight_ih", "w_ih"), ("weight_hh", "w_hh"), ("weight_hr", "w_hr"), ("bias_ih", "b_ih"),
                          ("bias_hh", "b_hh")):
            values = _file_values(tensors, prefix, kind, k, layer.n_dirs)
            ours = getattr(layer, key)
            if values is None:
                assert key in ("w_hr", "b_ih", "b_hh") and (ours is None or not np.any(ours)), (name, k, key)
                continue
            np.testing.assert_array_equal(np.sort(ours.ravel()), values, err_msg=f"{name} layer {k} {key}")


@pytest.mark.parametrize("name", TF1_CASES)
def test_tf1_chain_read_off_the_graph_is_the_checkpoint(name):
    with np.load(os.path.join(TF1, name, "expected.npz")) as z:
        options = json.loads(str(z["load_options"]))
    model = rnnfast.load(os.path.join(TF1, name, "model.ckpt"), **options)
    back = model.to_pipeline()
    assert back.batch_first == model.graph.batch_first
    assert_same_chain(back.stages, model.graph.stages, name)


def test_quantized_models_read_back_their_stored_weights():
    path, options = _torch_fixture("emb_lstm_fc")
    model = rnnfast.load(path, **options)
    for dtype in ("int8", "float16"):
        q = model.quantize(dtype)
        back = q.to_pipeline()
        assert_same_chain(back.stages, q.graph.stages, dtype)
        assert {l.weight_dtype for s in back.stages if isinstance(s, RecurrentStage) for l in s.layers} == {dtype}
