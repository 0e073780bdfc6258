"""Models read as a chain (.rnnf 1, PyTorch, TF 1.x: graph/chain.py) are built as the graph IR, and their chain form
(Model.to_pipeline, what the chain writers read) is read back off that IR by graph/to_pipeline.py, as for ONNX and
Keras (whose layers importers/keras/lower.py lowers to the IR). For every chain-shaped fixture the chain read off the
IR must be what the source holds: the same stages, weights bit for bit, activations, directions, masks and their
rule for masked steps; every Keras fixture that is no chain is refused naming its layer. (Their outputs against the
recorded framework outputs and the float64 reference are checked by test_torch_import, test_tf1_checkpoints,
test_rnnf_format and, for Keras chains, test_to_pipeline.)"""
import glob
import dataclasses
import json
import os
import re

import numpy as np
import pytest
from pipeline_builders import PIPELINE_CASES, random_input, random_pipeline

import rnnfast
from rnnfast.exporters.rnnf import to_bytes
from rnnfast.graph.chain import ChainGraph
from rnnfast.importers.keras.activations import activation_name
from rnnfast.importers.keras.layers import Dense, Embedding
from rnnfast.importers.keras.rnn import Bidirectional, KerasRNN
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
                assert_same_layer(lg, lw, where)


def assert_same_layer(got, want, where):
    """Two RecurrentLayers: the same name, cell, sizes, activations, options and weights bit for bit."""
    assert [getattr(got, f) for f in LAYER_FIELDS] == [getattr(want, f) for f in LAYER_FIELDS], where
    assert got.name == want.name, where
    for key in LAYER_ARRAYS:
        a, b = getattr(got, key), getattr(want, key)
        assert (a is None) == (b is None), (where, key)
        if a is not None:
            assert a.dtype == b.dtype, (where, key)
            np.testing.assert_array_equal(a, b, err_msg=f"{where} {key}")
    assert (got.qweights is None) == (want.qweights is None), where
    for key, (values, scales) in (want.qweights or {}).items():
        np.testing.assert_array_equal(got.qweights[key][0], values, err_msg=f"{where} stored {key}")
        if scales is not None:
            np.testing.assert_array_equal(got.qweights[key][1], scales, err_msg=f"{where} {key} scales")


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


KERAS = os.path.join(DATA, "keras")
KERAS_CASES = [c for path in sorted(glob.glob(os.path.join(KERAS, "manifest_*.json"))) for c in json.load(open(path))]
# The Keras fixtures that are chains (by name without the generation prefix and the file kind) ...
KERAS_CHAINS = {"seed_mnist_simplernn", "seed_imdb_embedding_simplernn", "seed_char_lstm", "seed_stacked_lstm",
                "seed_bidirectional", "seed_deep_bidirectional", "seed_masked_middle", "gru_reset_after_True",
                "gru_reset_after_False", "use_bias_false", "weights_only", "nested_sequential", "keras1_sequential",
                "keras1_bidirectional_gpu", "keras2_cudnn"}
# ... and what the refusal of each of the others names: the layer (as Keras names it) or the model's inputs
KERAS_REFUSED = {
    "seed_encoder_decoder": r"layer 'repeat_vector' \(RepeatVector\)",
    "seed_stateful_lstm": r"layer 'lstm_9' \(LSTM\)", "stateful_masked": r"layer 'lstm_2' \(LSTM\)",
    "go_backwards": r"layer 'lstm_10' \(LSTM\)", "return_state": r"layer 'gru_7' \(GRU\)",
    "activations": r"layer 'flatten' \(Flatten\)", "bidirectional_modes": r"layer 'bi_sum' \(Bidirectional\)",
    "masking_anywhere": r"layer 'masking' \(Masking\)", "keras2_sequential_chunked": r"layer 'masking_1' \(Masking\)",
    "embedding_mask_pipeline": r"layer '(not_equal_2' \(NotEqual|global_average_pooling1d_1' \(GlobalAverage)",
    "fully_masked_row": r"layer '(not_equal_4' \(NotEqual|global_average_pooling1d_2' \(GlobalAverage)",
    "keras3_opnode_mask": r"layer 'not_equal_3' \(NotEqual\)",
    "tfkeras_tfop_mask": r"layer 'tf.math.not_equal' \(TFOpLambda",
    "conv_pool_1d": r"layer 'conv1d' \(Conv1D\)", "layernorm_two_axes": r"layer 'layer_normalization' \(Layer",
    "conv2d_pools": r"input 'input(_layer)?_\d+' must be \[seq, batch, features\]",
    "functional_mix": r"this model has the inputs \['left', 'right'\]",
    "seq2seq_attention": r"this model has the inputs \['enc', 'dec'\]",
    "initial_state_masked": r"this model has the inputs \['enc', 'dec'\]",
}


def _keras_stem(case):
    return re.sub(r"^(k3|tf2)_|\[.*\]$", "", case["name"])


def _keras_model(case):
    options = {"config": os.path.join(KERAS, case["config"])} if case.get("config") else {}
    return rnnfast.load(os.path.join(KERAS, case["file"]), **options)


def test_every_keras_fixture_is_a_chain_or_refused():
    assert {_keras_stem(c) for c in KERAS_CASES} == KERAS_CHAINS | set(KERAS_REFUSED)


def _keras_rule(layer) -> bool:
    """Whether a Keras recurrent layer gives zeros for masked steps."""
    return layer.return_sequences if isinstance(layer, Bidirectional) else layer.zero_output_for_mask


def assert_keras_chain(p, model, what):
    """The chain p against the Keras model's own layers in model order (nested models flattened): the embedding's
    table and mask_zero, each recurrent layer as rnn.py builds it from the file (a Bidirectional's mirror-image pair
    as one bidirectional layer; go_backwards as the reverse direction), each Dense (in TimeDistributed too) with its
    kernel, bias and activation; a recurrent stage returns a sequence and gives zeros at masked steps as its last
    layer does."""
    graph = model.graph.graph
    assert (p.batch_first, p.name, p.source) == (True, graph.spec.name, model.graph.source), what
    layers = [layer for layer, slots in graph.leaves() if slots]
    parts = [(s, x) for s in p.stages for x in (s.layers if isinstance(s, RecurrentStage) else [s])]
    assert len(parts) == len(layers), (what, [l.name for l in layers])
    for (stage, part), layer in zip(parts, layers):
        where = f"{what} layer {layer.name}"
        if isinstance(layer, Embedding):
            assert (type(part), part.name, part.mask_zero) == (EmbeddingStage, layer.name, layer.mask_zero), where
            np.testing.assert_array_equal(part.table, layer.weights[0], err_msg=where)
        elif isinstance(layer, (KerasRNN, Bidirectional)):
            want = layer.fused if isinstance(layer, Bidirectional) else layer.layer
            if getattr(layer, "go_backwards", False):
                want = dataclasses.replace(want, direction="reverse")
            assert_same_layer(part, want, where)
            if part is stage.layers[-1]:
                assert (stage.return_sequences, stage.mask_zero_output) == (layer.return_sequences,
                                                                            _keras_rule(layer)), where
        else:
            dense = getattr(layer, "inner", layer)  # TimeDistributed(Dense)
            assert isinstance(dense, Dense) and type(part) is DenseStage and part.name == dense.name, where
            assert part.activation == activation_name(dense.config.get("activation"), dense.where), where
            np.testing.assert_array_equal(part.weight, dense.weights[0].T, err_msg=where)
            assert (part.bias is None) == (not dense.use_bias), where
            if dense.use_bias:
                np.testing.assert_array_equal(part.bias, dense.weights[1], err_msg=where)
    masked = any(getattr(l, "mask_zero", False) for l in layers)
    assert p.takes_ids == isinstance(layers[0], Embedding) and p.stages[0].mask_zero == masked if p.takes_ids \
        else not masked, what


@pytest.mark.parametrize("case", KERAS_CASES, ids=[c["name"] + "-" + c["generation"] for c in KERAS_CASES])
def test_keras_chain_read_off_the_graph_is_the_model(case):
    model, stem = _keras_model(case), _keras_stem(case)
    if stem in KERAS_CHAINS:
        assert_keras_chain(model.to_pipeline(), model, case["name"])
        return
    with pytest.raises(rnnfast.FormatError, match="a chain") as e:
        model.to_pipeline()
    assert re.search(KERAS_REFUSED[stem], str(e.value)), str(e.value)
    assert case["file"] in str(e.value)


def test_keras_quantized_chain_reads_back_its_stored_weights():
    (case,) = [c for c in KERAS_CASES if c["name"] == "k3_seed_masked_middle[keras]"]
    model = _keras_model(case)
    for dtype in ("int8", "float16"):
        back = model.quantize(dtype).to_pipeline()
        layers = [l for s in back.stages if isinstance(s, RecurrentStage) for l in s.layers]
        want = {l.name: l.with_weight_dtype(dtype) for l in model.to_pipeline().stages[1].layers}
        assert [l.name for l in layers] == list(want), dtype
        for layer in layers:
            assert_same_layer(layer, want[layer.name], f"{dtype} {layer.name}")
