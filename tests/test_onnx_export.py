"""export_onnx of chains: onnxruntime runs every exported file and agrees with rnnfast's run of the source (random
pipelines of every cell and option), and rnnfast.load of the exported file gives the same; what ONNX cannot express
is refused by name. Whole models from every format: tests/test_onnx_export_models.py."""
import io
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import assert_close, random_layer
from pipeline_builders import PIPELINE_CASES, random_input, random_pipeline, run_chain

import rnnfast
from rnnfast.errors import FormatError
from rnnfast.exporters.onnx import export_onnx
from rnnfast.layers import Activation
from rnnfast.pipeline import EmbeddingStage, Pipeline, RecurrentStage

DATA = os.path.join(os.path.dirname(__file__), "data")


def onnxruntime_run(data, x, name="input"):
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {name: x})[0]


def exported(source, **options):
    buf = io.BytesIO()
    proto = export_onnx(source, buf, **options)
    onnx.checker.check_model(proto, full_check=True)
    assert buf.getvalue() == proto.SerializeToString()
    return buf.getvalue()


def suffix_padded(rng, p, seq_len=7, batch=3):
    """Ids whose padding (0) is all at the end of each row, one row unpadded."""
    ids = rng.integers(1, p.stages[0].table.shape[0], (seq_len, batch))
    for b, n in enumerate([seq_len - 3, seq_len, 2][:batch]):
        ids[n:, b] = 0
    return ids.T.copy() if p.batch_first else ids


@pytest.mark.parametrize("case", sorted(PIPELINE_CASES))
def test_random_pipelines_agree_with_onnxruntime(rng, case):
    p = random_pipeline(rng, **PIPELINE_CASES[case])
    x = suffix_padded(rng, p) if p.takes_ids else random_input(rng, p)
    masked = any(isinstance(s, EmbeddingStage) and s.mask_zero for s in p.stages)
    data = exported(p, assume_suffix_padding=masked)
    expected = run_chain(p, x)
    assert_close(onnxruntime_run(data, x), expected, what=f"{case} onnxruntime")
    assert_close(rnnfast.load(data).run(x)[0], expected, what=f"{case} rnnfast.load")


@pytest.mark.parametrize("opset", [13, 21])
def test_opsets(rng, opset):
    p = random_pipeline(rng, **PIPELINE_CASES["embed-mask-bi-zero-out"])
    x = suffix_padded(rng, p)
    data = exported(p, opset=opset, assume_suffix_padding=True)
    assert onnx.load_from_string(data).opset_import[0].version == opset
    assert_close(onnxruntime_run(data, x), run_chain(p, x))


def test_keras_mask_anywhere_exports_exactly_and_the_suffix_promise_writes_operators():
    """By default a mask becomes Scans applying it step by step: onnxruntime then gives what Keras recorded on ids
    masked in the middle of rows. With assume_suffix_padding the RNN / GRU / LSTM operators are written instead."""
    path = os.path.join(DATA, "keras", "k3_seed_masked_middle.keras")
    model = rnnfast.load(path)
    z = np.load(os.path.join(DATA, "keras", "k3_seed_masked_middle.npz"))
    assert (z["x0"] == 0).any() and not (z["x0"][:, -1] == 0).all()  # masked steps, not only at the rows' ends
    data = exported(model)
    ops = {n.op_type for n in onnx.load_from_string(data).graph.node}
    assert "Scan" in ops and not ops & {"LSTM", "GRU", "RNN"}
    assert_close(onnxruntime_run(data, z["x0"].astype(np.int64), model.input_names[0]), z["y0"], what="Keras")
    data = exported(model, assume_suffix_padding=True)
    assert {"LSTM", "GRU", "RNN"} & {n.op_type for n in onnx.load_from_string(data).graph.node}
    rng = np.random.default_rng(5)
    x = suffix_padded(rng, model.to_pipeline(), seq_len=model.inputs[0].shape[1], batch=3)
    assert_close(onnxruntime_run(data, x, model.input_names[0]), model.run(x)[0])


@pytest.mark.parametrize("act", ["Selu", "Swish", "Gelu", "Exp"])
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_keras_only_activations_export_as_scan(rng, act, cell):
    """Activations the ONNX recurrent operators lack: the layer becomes a Scan whose output onnxruntime computes as
    the float64 reference does."""
    from rnnfast.reference import run_layer

    n_acts = {"rnn": 1, "gru": 2, "lstm": 3}[cell]
    acts = tuple(Activation("Sigmoid" if k == 0 and n_acts > 1 else act) for k in range(n_acts))
    layer = random_layer(rng, cell, "bidirectional", input_size=3, hidden_size=4, activations=(acts, acts),
                         linear_before_reset=cell == "gru")
    if act == "Exp":  # exp(h) fed back through R grows without bound unless the recurrent weights are small
        layer.w_hh *= np.float32(0.1)
    data = exported(Pipeline([RecurrentStage([layer])]))
    assert "Scan" in {n.op_type for n in onnx.load_from_string(data).graph.node}
    # small inputs: an RNN whose recurrent activation is exp grows without bound on larger ones
    x = (0.5 * rng.standard_normal((6, 2, 3))).astype(np.float32)
    y = run_layer(layer, x)[0]  # [T, D, B, P]
    assert np.abs(y).max() < 100
    assert_close(onnxruntime_run(data, x), y.transpose(0, 2, 1, 3).reshape(6, 2, -1), what=f"{cell} {act}")


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("zero_output", [False, True])
def test_masks_anywhere_in_the_scan_match_the_reference(rng, cell, zero_output):
    """Masked steps at the start, in the middle and at the end of rows, a fully masked row, both directions and two
    layers: the Scan keeps the state over a masked step and repeats the last output (zeros before any, or zeros
    with mask_zero_output), as the float64 reference does."""
    from rnnfast.reference import run_layer

    extra = dict(linear_before_reset=cell == "gru", peepholes=cell == "lstm")
    layers = [random_layer(rng, cell, "bidirectional", input_size=4, hidden_size=3, **extra),
              random_layer(rng, cell, "forward", input_size=6, hidden_size=3, **extra)]
    table = rng.standard_normal((9, 4)).astype(np.float32)
    p = Pipeline([EmbeddingStage(table, mask_zero=True), RecurrentStage(layers, mask_zero_output=zero_output)])
    ids = rng.integers(1, 9, (7, 4))
    ids[0, 0] = ids[3, 0] = ids[6, 1] = 0
    ids[2:5, 2] = 0
    ids[:, 3] = 0
    data = exported(p)
    ops = {n.op_type for n in onnx.load_from_string(data).graph.node}
    assert "Scan" in ops and not ops & {"LSTM", "GRU", "RNN"}
    mask = ids != 0
    x = table[ids].astype(np.float64)
    for layer in layers:
        y = run_layer(layer, x, mask=mask, mask_zero_output=zero_output)[0]
        x = y.transpose(0, 2, 1, 3).reshape(7, 4, -1)
    assert_close(onnxruntime_run(data, ids), x, what=f"{cell} zero_output={zero_output}")


def test_bad_opset_and_unconvertible_models(rng):
    p = Pipeline([RecurrentStage([random_layer(rng, "rnn", input_size=3)])])
    with pytest.raises(ValueError, match="opset 11"):
        export_onnx(p, opset=11)


def test_written_to_a_path(rng, tmp_path):
    p = random_pipeline(rng, **PIPELINE_CASES["gru"])
    x = random_input(rng, p)
    export_onnx(p, tmp_path / "m.onnx")
    assert_close(rnnfast.load(str(tmp_path / "m.onnx")).run(x)[0], run_chain(p, x))


@pytest.mark.parametrize("acts", [("HardSigmoid", "Softplus", "Softsign"), ("Sigmoid", "Elu", "ScaledTanh"),
                                  ("Sigmoid", "LeakyRelu", "Affine"), ("Sigmoid", "ThresholdedRelu", "Relu")])
@pytest.mark.parametrize("direction", ["reverse", "bidirectional"])
def test_projection_scan_decomposition(rng, acts, direction):
    """Every activation in the Scan body, with a suffix-padded Keras mask, clip, peepholes and input_forget."""
    alpha = {"ThresholdedRelu": 0.1, "LeakyRelu": 0.3, "Elu": 0.7, "HardSigmoid": 0.25, "Affine": 0.9,
             "ScaledTanh": 1.2}
    act = tuple(Activation(a, alpha.get(a, 0.0), 0.4 if a in ("HardSigmoid", "Affine", "ScaledTanh") else 0.0)
                for a in acts)
    layer = random_layer(rng, "lstm", direction, input_size=4, hidden_size=5, proj_size=3, clip=1.5,
                         peepholes=True, input_forget=direction == "reverse",
                         activations=(act,) * (2 if direction == "bidirectional" else 1))
    p = Pipeline([EmbeddingStage(rng.standard_normal((9, 4)), mask_zero=True), RecurrentStage([layer])])
    x = suffix_padded(rng, p)
    data = exported(p, assume_suffix_padding=True)
    assert "Scan" in {n.op_type for n in onnx.load_from_string(data).graph.node}
    assert_close(onnxruntime_run(data, x), run_chain(p, x), what=str(acts))
    assert_close(rnnfast.load(data).run(x)[0], run_chain(p, x), what=str(acts))


def test_scan_forms_rnnfast_does_not_run_are_refused():
    from onnx import TensorProto, helper

    body = helper.make_graph([helper.make_node("Identity", ["s"], ["o"])], "b",
                             [helper.make_tensor_value_info("s", TensorProto.FLOAT, [2])],
                             [helper.make_tensor_value_info("o", TensorProto.FLOAT, [2])])
    node = helper.make_node("Scan", ["x"], ["y"], body=body, num_scan_inputs=1, scan_input_axes=[1])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    with pytest.raises(FormatError, match="scan_input_axes"):
        rnnfast.load(data)


@pytest.mark.parametrize("case", ["rnn-custom-acts-bi", "gru-lbr-bi", "lstm-peep-forget", "embed-lstm-last",
                                  "lstm-nobias-reverse"])
def test_exported_files_convert_back_to_pipelines(rng, case):
    p = random_pipeline(rng, **PIPELINE_CASES[case], batch_first=case == "gru-lbr-bi")
    x = random_input(rng, p)
    back = rnnfast.load(exported(p)).to_pipeline()
    assert [type(s) for s in back.stages] == [type(s) for s in p.stages] and back.batch_first == p.batch_first
    assert_close(run_chain(back, x), run_chain(p, x))


def test_what_exports_but_has_no_pipeline_form_is_refused_on_the_way_back(rng):
    proj = random_pipeline(rng, **PIPELINE_CASES["lstm-proj-bi"])
    with pytest.raises(FormatError, match=r"\(Scan\) does not fit a chain"):
        rnnfast.load(exported(proj)).to_pipeline()
    masked = random_pipeline(rng, **PIPELINE_CASES["embed-mask-gru"])
    with pytest.raises(FormatError, match="does not fit a chain"):
        rnnfast.load(exported(masked, assume_suffix_padding=True)).to_pipeline()


@pytest.mark.parametrize("case", ["embed-lstm-last", "lstm-proj-bi", "embed-mask-bi-zero-out", "two-stacks-last",
                                  "embed-mask-rnn-last", "rnn-relu-clip-reverse"])
def test_batch_first_variants(rng, case):
    p = random_pipeline(rng, **{**PIPELINE_CASES[case], "batch_first": True})
    x = suffix_padded(rng, p) if p.takes_ids else random_input(rng, p)
    data = exported(p, assume_suffix_padding=getattr(p.stages[0], "mask_zero", False))
    assert_close(onnxruntime_run(data, x), run_chain(p, x), what=case)


@pytest.mark.parametrize("proj_size", [0, 2])
@pytest.mark.parametrize("direction", ["bidirectional", "reverse"])
def test_masked_steps_repeat_the_last_output(rng, proj_size, direction):
    """Keras' masked steps repeat a row's last output (mask_zero_output False): Y_h for forward directions,
    zeros for a reverse one, which meets the suffix padding first."""
    p = random_pipeline(rng, cell="lstm", direction=direction, embedding="mask_zero", n_layers=2,
                        proj_size=proj_size, head=None)
    x = suffix_padded(rng, p)
    data = exported(p, assume_suffix_padding=True)
    expected = run_chain(p, x)
    half = p.stages[1].layers[-1].output_size
    if direction == "bidirectional":  # row 0 ends at step 3 of 7: its forward half repeats step 3's output
        np.testing.assert_array_equal(expected[4:, 0, :half], np.broadcast_to(expected[3, 0, :half], (3, half)))
    else:
        assert not expected[4:, 0].any()
    assert_close(onnxruntime_run(data, x), expected)
    assert_close(rnnfast.load(data).run(x)[0], expected)
