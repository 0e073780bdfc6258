"""Real exporter output (tests/data/onnx, written by tools/make_onnx_fixtures.py with torch's TorchScript and dynamo
exporters): rnnfast equals onnxruntime on the same file and torch's own recorded outputs, at the export shapes
(case0) and at another batch and, where the exporter kept it dynamic, another sequence length (case1...)."""
import glob
import os

import numpy as np
import onnxruntime as ort
import pytest

import rnnfast
from conftest import assert_close

DATA = os.path.join(os.path.dirname(__file__), "data", "onnx")
FLOAT_MODELS = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(DATA, "*.onnx"))
                      if not os.path.basename(p).startswith("lstm_quant."))


def cases(stem):
    """[(feeds, torch outputs)] from the .npz beside the model, in case order."""
    with np.load(os.path.join(DATA, stem + ".npz")) as z:
        arrays = {k: z[k] for k in z.files}
    out = []
    for i in range(len({k.split(".")[0] for k in arrays})):
        take = lambda kind: {k.split(".", 2)[2]: v for k, v in arrays.items() if k.startswith(f"case{i}.{kind}.")}
        out.append((take("in"), take("out")))
    return out


def test_every_model_has_both_exporters_and_the_quantized_variants():
    """Guards the fixture set itself: dropping a model or an exporter must fail here, not go unnoticed."""
    names = {stem.split(".")[0] for stem in FLOAT_MODELS}
    assert names == {"emb_lstm_linear", "bigru_batch_first", "rnn_relu_stacked", "conv_gru", "gru_upsample",
                     "lstm_states", "bilstm_head", "lstm_if"}
    for name in names:
        assert {f"{name}.ts", f"{name}.dynamo"} <= set(FLOAT_MODELS)
    assert os.path.exists(os.path.join(DATA, "lstm_quant.int8.onnx"))
    for variant in ("int8_per_channel", "int8_reduce_range"):
        assert os.path.exists(os.path.join(DATA, f"lstm_quant.{variant}.onnx"))


@pytest.mark.parametrize("stem", FLOAT_MODELS)
def test_matches_onnxruntime_and_torch(stem):
    path = os.path.join(DATA, stem + ".onnx")
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    model = rnnfast.InferenceSession(path)
    loaded = rnnfast.load(path)
    names = [o.name for o in sess.get_outputs()]
    all_cases = cases(stem)
    assert len({tuple(f[next(iter(f))].shape) for f, _ in all_cases}) > 1, "the dynamic axes must be exercised"
    for i, (feeds, torch_out) in enumerate(all_cases):
        want = sess.run(None, feeds)
        got = model.run(None, feeds)
        assert len(got) == len(want) == len(torch_out)
        for g, l in zip(got, loaded.run(feeds)):  # load().run is the same engine behind another calling convention
            assert np.array_equal(g, l)
        for name, g, w in zip(names, got, want):
            assert_close(g, w, what=f"{stem} case{i} {name} vs onnxruntime")
            assert_close(g, torch_out[name], what=f"{stem} case{i} {name} vs torch")


def test_if_model_takes_both_branches():
    """The If fixtures' cases alternate the flag; the branches' outputs differ, so a wrong pick cannot pass."""
    for stem in ("lstm_if.ts", "lstm_if.dynamo"):
        flags = [bool(f["flag"]) for f, _ in cases(stem)]
        assert True in flags and False in flags
