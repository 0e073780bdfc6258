"""Model.to_pipeline for every source: run_chain of the pipeline equals the model's own run on the same input
(PyTorch and Keras fixtures, ONNX graphs with exporter glue from tests/onnx_builders.py); what does not fit is
refused by name."""
import glob
import json
import os

import numpy as np
import pytest
from conftest import assert_close, random_layer
from pipeline_builders import run_chain
from onnx_builders import stack_model

import rnnfast
from rnnfast.errors import FormatError
from rnnfast.pipeline import RecurrentStage

DATA = os.path.join(os.path.dirname(__file__), "data")
TORCH = sorted(os.path.basename(f)[:-4] for f in glob.glob(os.path.join(DATA, "torch", "*.npz")))
KERAS_CASES = [c for path in sorted(glob.glob(os.path.join(DATA, "keras", "manifest_*.json")))
               for c in json.load(open(path))]


def keras_case(case):
    """(model, first input) of a Keras fixture case (tests/test_keras_fixtures.py has the manifest format)."""
    folder = os.path.join(DATA, "keras")
    options = {"config": os.path.join(folder, case["config"])} if case.get("config") else {}
    z = np.load(os.path.join(folder, case["npz"]))
    return rnnfast.load(os.path.join(folder, case["file"]), **options), z["x0"] if "x0" in z else z["c0_x0"]


def torch_case(name):
    (path,) = [f for f in glob.glob(os.path.join(DATA, "torch", name + ".*")) if not f.endswith(".npz")]
    z = np.load(os.path.join(DATA, "torch", name + ".npz"))
    return rnnfast.load(path, **json.loads(str(z["load_options"]))), z["input"]


@pytest.mark.parametrize("name", TORCH)
def test_torch_fixtures(name):
    model, x = torch_case(name)
    p = model.to_pipeline()
    if x.ndim == (1 if p.takes_ids else 2):  # unbatched: a pipeline always has a batch axis
        x = x[:, None] if not p.batch_first else x[None]
    assert_close(run_chain(p, x), model.run(x)[0], what=name)


@pytest.mark.parametrize("case", KERAS_CASES, ids=[c["name"] + "-" + c["generation"] for c in KERAS_CASES])
def test_keras_fixtures(case):
    """Every Keras fixture either fits a pipeline that computes what the model computes, or is refused by name."""
    model, x = keras_case(case)
    try:
        p = model.to_pipeline()
    except FormatError as e:
        assert "a chain" in str(e) and case["file"] in str(e)
        return
    assert p.batch_first
    got = run_chain(p, x.astype(np.int64) if p.takes_ids else x)
    assert_close(got, model.run(x)[0], what=case["name"])


def test_most_keras_tutorial_models_fit():
    fit = []
    for case in KERAS_CASES:
        try:
            keras_case(case)[0].to_pipeline()
            fit.append(case["name"])
        except FormatError:
            pass
    assert len(fit) >= 30, fit
    assert {"k3_seed_char_lstm[keras]", "keras2_cudnn", "tf2_seed_masked_middle[h5]"} <= set(fit)


def test_keras_stacks_merge_and_masks_carry():
    p = rnnfast.load(os.path.join(DATA, "keras", "k3_seed_deep_bidirectional.keras")).to_pipeline()
    assert [type(s).__name__ for s in p.stages] == ["RecurrentStage", "DenseStage"]
    assert [l.direction for l in p.stages[0].layers] == ["bidirectional"] * 3
    assert not p.stages[0].return_sequences
    p = rnnfast.load(os.path.join(DATA, "keras", "k3_seed_masked_middle.keras")).to_pipeline()
    assert p.takes_ids and p.stages[0].mask_zero


@pytest.mark.parametrize("name, why", [
    ("go_backwards", r"layer 'lstm_10' \(LSTM\), node [^ ]+ \(Slice\) does not fit a chain[^:]*: it reverses the "
                     r"steps.*go_backwards with return_sequences"),
    ("seed_stateful_lstm", r"layer 'lstm_9' \(LSTM\).*: it keeps its state between calls"),
    ("seed_encoder_decoder", r"layer 'repeat_vector' \(RepeatVector\)"),
    ("bidirectional_modes", r"layer 'bi_sum' \(Bidirectional\).*merge_mode other than 'concat'"),
    ("functional_mix", r"a chain has one input; this model has the inputs \['left', 'right'\]"),
    ("return_state", r"layer 'gru_7' \(GRU\).*: it is not on the way from the input to output 'lstm_12:0'"),
])
def test_keras_models_that_do_not_fit_are_refused_by_name(name, why):
    model = rnnfast.load(os.path.join(DATA, "keras", f"k3_{name}.keras"))
    with pytest.raises(FormatError, match=why):
        model.to_pipeline()


ONNX_CASES = [
    dict(cells=("lstm",), dirs=("forward",)),
    dict(cells=("gru", "gru"), dirs=("bidirectional", "forward"), batch_first=True),
    dict(cells=("rnn", "lstm", "gru"), dirs=("reverse", "bidirectional", "forward"), embed=True, head=True),
    dict(cells=("lstm", "lstm"), dirs=("bidirectional", "bidirectional"), final=True, head=True, batch_first=True),
    dict(cells=("gru",), dirs=("forward",), final=True, embed=True, lbr=True),
]


@pytest.mark.parametrize("case", ONNX_CASES, ids=lambda c: "-".join(c["cells"]) + "".join(
    f"-{k}" for k in c if k not in ("cells", "dirs")))
def test_onnx_graphs_with_exporter_glue(rng, case):
    layers, size = [], 5
    for cell, direction in zip(case["cells"], case["dirs"]):
        layers.append(random_layer(rng, cell, direction, input_size=size, hidden_size=4, peepholes=cell == "lstm",
                                   linear_before_reset=cell == "gru" and case.get("lbr", False)))
        size = layers[-1].n_dirs * 4
    table = rng.standard_normal((9, 5)).astype(np.float32) if case.get("embed") else None
    head = (rng.standard_normal((3, size)), rng.standard_normal(3)) if case.get("head") else None
    bf = case.get("batch_first", False)
    model = rnnfast.load(stack_model(layers, bf, table, head, case.get("final", False)))
    p = model.to_pipeline()
    assert p.batch_first == bf and sum(isinstance(s, RecurrentStage) for s in p.stages) == 1
    shape = (3, 6) if bf else (6, 3)
    x = rng.integers(0, 9, shape) if table is not None else rng.standard_normal(shape + (5,)).astype(np.float32)
    assert_close(run_chain(p, x), model.run(x)[0], what=str(case))


def test_onnx_graphs_that_do_not_fit_are_refused(rng):
    from onnx_builders import recurrent_model

    layer = random_layer(rng, "gru", "forward", input_size=3, hidden_size=4)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    b = np.concatenate([layer.b_ih, layer.b_hh], 1)
    data, _ = recurrent_model("gru", {"hidden_size": 4}, [x, layer.w_ih, layer.w_hh, b], 2)
    with pytest.raises(FormatError, match=r"output 'Y' does not fit a chain[^:]*: it is a recurrent node's Y, axes "
                                          r"\['T', 'D', 'B', 'P'\]; a chain returns the sequence with the directions "
                                          r"merged"):
        rnnfast.load(data).to_pipeline()
    data, _ = recurrent_model("gru", {"hidden_size": 4}, [x, layer.w_ih, layer.w_hh, b, np.array([5, 3], np.int32)],
                              2, constant=("W", "R", "B", "sequence_lens"))
    with pytest.raises(FormatError, match="sequence_lens depends on the data"):
        rnnfast.load(data).to_pipeline()


def _glue_model(rng, extra_nodes, out, h0=None):
    """x -> GRU (one direction) -> Squeeze -> extra_nodes; returns model bytes with output `out`."""
    from onnx import TensorProto, helper, numpy_helper

    layer = random_layer(rng, "gru", "forward", input_size=3, hidden_size=4)
    inits = [numpy_helper.from_array(a, n) for n, a in [
        ("W", layer.w_ih), ("R", layer.w_hh), ("B", np.concatenate([layer.b_ih, layer.b_hh], 1)),
        ("axis1", np.array([1], np.int64))]]
    ins = ["X", "W", "R", "B"]
    if h0 is not None:
        inits.append(numpy_helper.from_array(h0, "h0"))
        ins += ["", "h0"]
    nodes = [helper.make_node("GRU", ins, ["Y"], hidden_size=4), helper.make_node("Squeeze", ["Y", "axis1"], ["S"])]
    graph = helper.make_graph(nodes + extra_nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                                                      ["T", "B", 3])],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]).SerializeToString()


def test_onnx_glue_that_does_not_fit_is_refused_by_node(rng):
    from onnx import helper

    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    plain = rnnfast.load(_glue_model(rng, [], "S"))
    assert_close(run_chain(plain.to_pipeline(), x), plain.run(x)[0])
    with pytest.raises(FormatError, match=r"node r \(Relu\) does not fit a chain[^:]*: an activation fits a chain "
                                          r"only right after a dense layer"):
        rnnfast.load(_glue_model(rng, [helper.make_node("Relu", ["S"], ["out"], name="r")], "out")).to_pipeline()
    with pytest.raises(FormatError, match="initial_h is not zero"):
        rnnfast.load(_glue_model(rng, [], "S", h0=np.ones((1, 2, 4), np.float32))).to_pipeline()
    with pytest.raises(FormatError, match=r"\(Neg\) does not fit a chain[^:]*: between its layers a chain has only "
                                          r"views .*Transpose, Cast.*dense layers .*Relu, Tanh, Sigmoid, Softmax\) "
                                          r"after them, and Neg is none of these; to keep it, write the whole graph: "
                                          r"\.rnnf 2 \(convert's default\), or export-c with --graph or --dim"):
        rnnfast.load(_glue_model(rng, [helper.make_node("Neg", ["S"], ["out"])], "out")).to_pipeline()


def test_onnx_layout_1_node_is_batch_first(rng):
    """X [B, T, I] straight into a layout-1 bidirectional LSTM, Y [B, T, D, P] reshaped to [B, T, D*P]."""
    from onnx import TensorProto, helper, numpy_helper

    layer = random_layer(rng, "lstm", "bidirectional", input_size=3, hidden_size=4, peepholes=True)
    inits = [numpy_helper.from_array(a, n) for n, a in [
        ("W", layer.w_ih), ("R", layer.w_hh), ("B", np.concatenate([layer.b_ih, layer.b_hh], 1)),
        ("P", layer.peepholes), ("shape", np.array([0, 0, -1], np.int64))]]
    nodes = [helper.make_node("LSTM", ["X", "W", "R", "B", "", "", "", "P"], ["Y", "Y_h"], hidden_size=4,
                              direction="bidirectional", layout=1),
             helper.make_node("Cast", ["Y"], ["Yf"], to=TensorProto.FLOAT),
             helper.make_node("Reshape", ["Yf", "shape"], ["out"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["B", "T", 3])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)], inits)
    model = rnnfast.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]).SerializeToString())
    p = model.to_pipeline()
    assert p.batch_first
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    assert_close(run_chain(p, x), model.run(x)[0])


def _sequential_config(name, layers):
    """A Keras Sequential config from (class, config) pairs; ("Sequential", [pairs]) nests a model."""
    return {"class_name": "Sequential", "config": {"name": name, "layers": [
        _sequential_config(f"{name}_{i}", c) if cls == "Sequential" else {"class_name": cls,
                                                                          "config": dict(c, name=f"{name}_l{i}")}
        for i, (cls, c) in enumerate(layers)]}}


def _set_random_weights(rng, graph, width):
    """Weights drawn at random in the shapes the layers ask for, nested models included; returns the width out."""
    from rnnfast.importers.keras.graph import ModelLayer

    gru = lambda c: [(width, 3 * c["units"]), (c["units"], 3 * c["units"]), (2, 3 * c["units"])]
    shapes = {"Embedding": lambda c: [(c["input_dim"], c["output_dim"])],
              "Dense": lambda c: [(width, c["units"]), (c["units"],)], "GRU": gru,
              "Bidirectional": lambda c: 2 * gru(c["layer"]["config"])}  # of a GRU
    for ls, obj in graph.order:
        if isinstance(obj, ModelLayer):
            width = _set_random_weights(rng, obj.graph, width)
        elif ls.cls in shapes:
            obj.set_weights([rng.uniform(-0.5, 0.5, s).astype(np.float32) for s in shapes[ls.cls](ls.config)])
            width = ls.config.get("units", ls.config.get("output_dim")) or 2 * ls.config["layer"]["config"]["units"]
    return width


def _keras_sequential(rng, layers):
    """A Keras 3 Sequential model built in memory, wrapped as rnnfast.load would wrap it."""
    from rnnfast.importers.keras.config import parse_model
    from rnnfast.importers.keras.graph import KerasGraph, KerasModelGraph
    from rnnfast.importers.keras.layers import Context

    ctx = Context("memory.h5", "3.5.0", 3)
    graph = KerasGraph(parse_model(_sequential_config("s", layers), 3, "memory.h5"), ctx)
    _set_random_weights(rng, graph, layers[0][1]["batch_input_shape"][-1])
    return rnnfast.Model(KerasModelGraph(graph, ctx, "memory.h5", "h5"), source="memory.h5")


def test_keras_nested_chains_are_their_layers(rng):
    model = _keras_sequential(rng, [
        ("Embedding", {"input_dim": 7, "output_dim": 3, "mask_zero": True, "batch_input_shape": [None, 6]}),
        ("Sequential", [("GRU", {"units": 4, "return_sequences": True, "reset_after": True,
                                 "batch_input_shape": [None, 6, 3]}),
                        ("GRU", {"units": 3, "return_sequences": True, "reset_after": True})]),
        ("Dense", {"units": 2, "activation": "tanh"})])
    p = model.to_pipeline()
    assert [type(s).__name__ for s in p.stages] == ["EmbeddingStage", "RecurrentStage", "DenseStage"]
    assert len(p.stages[1].layers) == 2
    ids = rng.integers(0, 7, (3, 6))
    ids[1, 4:] = 0
    assert_close(run_chain(p, ids), model.run(ids)[0])


def test_keras_nested_model_under_a_mask_runs_in_c(rng):
    """The mask reaching a nested model's layers follows the Keras generation of the file, as the layer path's."""
    model = _keras_sequential(rng, [
        ("Embedding", {"input_dim": 7, "output_dim": 3, "mask_zero": True, "batch_input_shape": [None, 6]}),
        ("Sequential", [("GRU", {"units": 4, "return_sequences": True, "reset_after": True,
                                 "batch_input_shape": [None, 6, 3]})])])
    ids = rng.integers(0, 7, (3, 6))
    ids[1, 4:] = ids[2, 1] = 0
    layers = model.run(ids)[0]
    model.graph.compile()
    assert model.graph.compiled is not None, model.graph.unfit_reason
    assert_close(model.run(ids)[0], layers)


def test_keras_activation_layers_fold_into_a_linear_dense(rng):
    model = _keras_sequential(rng, [
        ("Embedding", {"input_dim": 7, "output_dim": 3, "mask_zero": True, "batch_input_shape": [None, 6]}),
        ("GRU", {"units": 4, "return_sequences": True, "reset_after": True}),
        ("Dropout", {"rate": 0.5}),
        ("Dense", {"units": 2, "activation": "linear"}),
        ("Activation", {"activation": "softmax"})])
    p = model.to_pipeline()
    assert [type(s).__name__ for s in p.stages] == ["EmbeddingStage", "RecurrentStage", "DenseStage"]
    assert p.stages[-1].activation == "softmax"
    ids = rng.integers(0, 7, (3, 6))
    assert_close(run_chain(p, ids), model.run(ids)[0])


def _masked_ids(rng):
    ids = rng.integers(1, 7, (3, 6))
    ids[0, 2] = ids[1, 4:] = ids[2, :2] = 0  # masked steps in the middle, at the end, at the start
    return ids


def test_keras_go_backwards_without_sequences_is_a_reverse_layer(rng):
    model = _keras_sequential(rng, [
        ("Embedding", {"input_dim": 7, "output_dim": 3, "mask_zero": True, "batch_input_shape": [None, 6]}),
        ("GRU", {"units": 4, "return_sequences": True, "reset_after": True}),
        ("GRU", {"units": 3, "go_backwards": True, "reset_after": True}),
        ("Dense", {"units": 2, "activation": "sigmoid"})])
    p = model.to_pipeline()
    assert [type(s).__name__ for s in p.stages] == ["EmbeddingStage", "RecurrentStage", "DenseStage"]
    assert [l.direction for l in p.stages[1].layers] == ["forward", "reverse"]
    ids = _masked_ids(rng)
    assert_close(run_chain(p, ids), model.run(ids)[0])


BIDIRECTIONAL_GRU = ("Bidirectional", {"layer": {"class_name": "GRU", "config": {
    "units": 4, "return_sequences": True, "reset_after": True}}, "merge_mode": "concat"})


@pytest.mark.parametrize("order, zero_output", [("bidirectional first", False), ("bidirectional first", True),
                                                ("bidirectional last", False)])
def test_keras_stage_gives_its_last_layers_output_for_masked_steps(rng, order, zero_output):
    """Keras' Bidirectional gives zeros at masked steps, a GRU (by default) its last output: in one stage the last
    layer's rule is the stage's (the next layer skips masked steps, so no layer reads the one before at them)."""
    gru = ("GRU", {"units": 3, "return_sequences": True, "reset_after": True, "zero_output_for_mask": zero_output})
    layers = [BIDIRECTIONAL_GRU, gru] if order == "bidirectional first" else [gru, BIDIRECTIONAL_GRU]
    model = _keras_sequential(rng, [
        ("Embedding", {"input_dim": 7, "output_dim": 3, "mask_zero": True, "batch_input_shape": [None, 6]})] + layers)
    p = model.to_pipeline()
    assert [type(s).__name__ for s in p.stages] == ["EmbeddingStage", "RecurrentStage"]
    assert p.stages[1].mask_zero_output == (zero_output if order == "bidirectional first" else True)
    ids = _masked_ids(rng)
    assert_close(run_chain(p, ids), model.run(ids)[0])


@pytest.mark.parametrize("layers, why", [
    ([("Dense", {"units": 2, "activation": "elu"})],
     r"layer 's_l2' \(Dense\).*: the Elu after it \(folded into it\) is not an activation of a dense stage"),
    ([("Activation", {"activation": "relu"})],
     r"layer 's_l2' \(Activation\).*: an activation fits a chain only right after a dense layer"),
    ([("Dense", {"units": 2, "activation": "relu"}), ("Activation", {"activation": "tanh"})],
     r"layer 's_l3' \(Activation\).*: an activation fits a chain only right after a dense layer"),
    ([("GRU", {"units": 2, "reset_after": True, "zero_output_for_mask": True})],
     r"layer 's_l2' \(GRU\).*: it takes some of the steps.*zero_output_for_mask"),
])
def test_keras_layers_that_do_not_fit(rng, layers, why):
    head = [("Embedding", {"input_dim": 7, "output_dim": 3, "mask_zero": True, "batch_input_shape": [None, 6]}),
            ("GRU", {"units": 4, "return_sequences": True, "reset_after": True})]
    with pytest.raises(FormatError, match=why):
        _keras_sequential(rng, head + layers).to_pipeline()
