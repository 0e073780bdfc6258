"""PyTorch files against torch's own outputs (fixtures from tools/make_torch_fixtures.py; torch is not needed)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import rnnfast
from conftest import assert_close
from rnnfast import FormatError

DATA = os.path.join(os.path.dirname(__file__), "data", "torch")
CASES = sorted(f[:-4] for f in os.listdir(DATA) if f.endswith(".npz"))


def model_file(name):
    (path,) = [os.path.join(DATA, f) for f in os.listdir(DATA) if f.startswith(name + ".") and not f.endswith(".npz")]
    return path


def fixture(name):
    with np.load(os.path.join(DATA, name + ".npz"), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    load_options = json.loads(str(arrays.pop("load_options")))
    run_options = json.loads(str(arrays.pop("run_options")))
    return arrays, load_options, run_options


def test_fixtures_present():
    assert len(CASES) >= 25
    assert sum(os.path.getsize(os.path.join(DATA, f)) for f in os.listdir(DATA)) < 2 * 1024 * 1024


@pytest.mark.parametrize("name", CASES)
def test_matches_torch(name):
    arrays, load_options, run_options = fixture(name)
    model = rnnfast.load(model_file(name), **load_options)
    feeds = {k: arrays[k] for k in ("input", "h0", "c0") if k in arrays}
    outputs = model.run(feeds, **run_options)
    assert model.output_names[: len(outputs)] == ["output", "h_n", "c_n"][: len(outputs)]
    for out_name, actual in zip(model.output_names, outputs):
        assert actual.dtype == np.float32
        assert_close(actual, arrays[out_name])
    assert model.describe()


def test_bytes_and_file_objects_load_too():
    arrays, _, _ = fixture("lstm")
    path = model_file("lstm")
    with open(path, "rb") as f:
        from_stream = rnnfast.load(f).run({"input": arrays["input"], "h0": arrays["h0"], "c0": arrays["c0"]})
    from_bytes = rnnfast.load(open(path, "rb").read()).run([arrays["input"], arrays["h0"], arrays["c0"]])
    for a, b in zip(from_stream, from_bytes):
        np.testing.assert_array_equal(a, b)


def test_unbatched_input_with_embedding():
    arrays, opts, _ = fixture("emb_lstm_fc")
    model = rnnfast.load(model_file("emb_lstm_fc"), **opts)
    out, h, c = model.run(arrays["input"][1])
    assert out.shape == arrays["output"][1].shape and h.shape == (1, 8)
    assert_close(out, arrays["output"][1])
    assert_close(h, arrays["h_n"][:, 1])
    assert_close(c, arrays["c_n"][:, 1])


def test_stack_inputs_and_outputs_follow_torch():
    model = rnnfast.load(model_file("lstm_proj_2layer_bidir"))
    assert model.input_names == ["input", "h0", "c0"]
    assert model.output_names == ["output", "h_n", "c_n"]
    shapes = {t.name: t.shape for t in model.inputs + model.outputs}
    assert shapes["h0"] == [4, "batch", 5] and shapes["c0"] == [4, "batch", 12]
    assert shapes["output"] == ["seq_len", "batch", 10]
    gru = rnnfast.load(model_file("gru_whole_module"))
    assert gru.output_names == ["output", "h_n"]
    assert [t.shape for t in gru.inputs][0] == ["batch", "seq_len", 3]


def test_stored_batch_first_wins_and_contradiction_is_refused():
    with pytest.raises(ValueError, match="batch_first"):
        rnnfast.load(model_file("gru_whole_module"), batch_first=False)
    with pytest.raises(ValueError, match="nonlinearity"):
        rnnfast.load(model_file("rnn_relu_torchscript"), nonlinearity="tanh")


def test_several_modules_need_a_choice():
    with pytest.raises(FormatError, match=r"several recurrent modules \['decoder\.', 'encoder\.'\].*rnn="):
        rnnfast.load(model_file("two_modules"))


def test_unused_keys_are_named():
    with pytest.raises(FormatError) as e:
        rnnfast.load(model_file("two_modules"), rnn="decoder")
    assert "encoder.weight_ih_l0" in str(e.value) and "encoder.bias_hh_l0" in str(e.value)


def test_unused_embedding_and_head_are_named_with_a_hint():
    with pytest.raises(FormatError) as e:
        rnnfast.load(model_file("emb_lstm_fc"), batch_first=True)
    msg = str(e.value)
    assert "emb.weight" in msg and "fc.weight" in msg and "fc.bias" in msg
    assert "head='fc'" in msg and "embedding='emb'" in msg


def test_whole_module_with_user_class_needs_permission():
    with pytest.raises(FormatError, match=r"refused global '__main__\.Net'.*allow_classes"):
        rnnfast.load(model_file("emb_lstm_fc_whole_module"))


def test_bad_options():
    with pytest.raises(TypeError, match="unknown option"):
        rnnfast.load(model_file("lstm"), hidden=3)
    with pytest.raises(FormatError, match="no recurrent module 'rnn.'"):
        rnnfast.load(model_file("lstm"), rnn="rnn")
    with pytest.raises(FormatError, match="no tensor fc.weight"):
        rnnfast.load(model_file("lstm"), head="fc")
    with pytest.raises(ValueError, match="nonlinearity applies to nn.RNN only"):
        rnnfast.load(model_file("lstm"), nonlinearity="relu")


def test_bad_run_inputs():
    model = rnnfast.load(model_file("lstm"))
    with pytest.raises(ValueError, match="input must be"):
        model.run(np.zeros((4, 2, 3), np.float32))
    with pytest.raises(ValueError, match="h0 must have shape"):
        model.run({"input": np.zeros((4, 2, 5), np.float32), "h0": np.zeros((1, 3, 8), np.float32)})
    emb = rnnfast.load(model_file("emb_lstm_fc"), embedding="emb", rnn="lstm", head="fc", batch_first=True)
    with pytest.raises(ValueError, match="token ids"):
        emb.run(np.array([[0, 25]]))


@pytest.mark.parametrize("name, settings", [
    ("traced_lstm_bidir_batch_first", "batch_first=True"), ("traced_rnn_relu_batch_first", "batch_first=True"),
    ("traced_gru", "batch_first=False")])
def test_traced_files_state_their_settings(name, settings):
    """torch.jit.trace keeps no module constants; the settings are read from the traced forward's ATen call, so
    nothing is assumed (test_matches_torch checks the outputs against torch's)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = rnnfast.load(model_file(name))
    assert [str(w.message) for w in caught if issubclass(w.category, rnnfast.AssumptionWarning)] == []
    assert settings in model.describe()
    if "relu" in name:
        assert "Relu" in model.describe()
