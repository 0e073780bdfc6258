"""Keras models lowered to the graph IR (importers/keras/lower.py) and run by the C executor: the model holds the
state of stateful layers as the graph's state loops, checks token ids, and a model with a layer the IR cannot
express keeps the numpy layer path, which `rnnfast inspect` names. Outputs against Keras: test_keras_fixtures.py."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from conftest import assert_close, package_env

import rnnfast

DATA = os.path.join(os.path.dirname(__file__), "data", "keras")


def _load(name):
    with np.load(os.path.join(DATA, name + ".npz")) as z:
        arrays = {k: z[k] for k in z}
    return rnnfast.load(os.path.join(DATA, name + ".keras")), arrays


def test_stateful_state_is_a_state_loop_the_model_holds():
    model, d = _load("k3_stateful_masked")
    graph = model.graph.compiled.graph
    assert len(graph.state_loops) == 3  # LSTM h, c and GRU h
    assert all(i in graph.inputs and o in graph.outputs for o, i in graph.state_loops)
    assert len(model.input_names) == 1 and len(model.output_names) == 1  # the states stay inside
    for k in range(3):
        if k == 2:
            model.reset_states()
        assert_close(model.run(d[f"c{k}_x0"])[0], d[f"c{k}_y0"], what=f"chunk {k}")
    first = model.run(d["c0_x0"])[0]
    assert np.abs(first - model.run(d["c0_x0"])[0]).max() > 1e-4  # the second call continues the first's state
    with pytest.raises(ValueError, match="holds state for batch 2, got batch 3; call reset_states"):
        model.run(np.zeros((3, 5, 3), np.float32))
    model.reset_states()
    assert model.run(np.zeros((3, 5, 3), np.float32))[0].shape == (3, 2)


def test_token_ids_are_checked_against_the_vocabulary():
    model, d = _load("k3_seed_masked_middle")
    assert model.graph.compiled is not None
    ids = d["x0"].copy()
    for bad in (-1, 30):
        ids[0, 0] = bad
        with pytest.raises(ValueError, match=r"embedding.*token ids must lie in \[0, 30\)"):
            model.run(ids)


def test_masks_change_the_compiled_result():
    """The same tokens without the padding zeros give another result: the C graph applies Keras' mask."""
    model, d = _load("k3_embedding_mask_pipeline")
    ids = d["x0"]
    unmasked = np.where(ids == 0, 1, ids)
    got, other = model.run(ids), model.run(unmasked)
    assert_close(got[3], d["y3"], what="GRU under the Embedding mask")
    assert np.abs(got[3] - other[3]).max() > 1e-3


def _cli(*args):
    # from a folder without an rnnfast/ source tree, which `-c` would import before the installed package
    return subprocess.run([sys.executable, "-c", "from rnnfast.cli import main; main()", *map(str, args)],
                          capture_output=True, text=True, cwd=tempfile.gettempdir(), env=package_env())


def _layernorm_middle_axis(tmp_path) -> str:
    """The two-axes LayerNormalization fixture normalizing axis 1 alone (steps, not the trailing features): a form
    the graph lowering refuses, so the model keeps the numpy layer path."""
    import h5py

    path = tmp_path / "layernorm_middle_axis.h5"
    shutil.copy(os.path.join(DATA, "tf2_layernorm_two_axes.h5"), path)
    with h5py.File(path, "r+") as f:
        cfg = json.loads(f.attrs["model_config"])
        next(l for l in cfg["config"]["layers"] if l["class_name"] == "LayerNormalization")["config"]["axis"] = [1]
        f.attrs["model_config"] = json.dumps(cfg)
        group = f["model_weights/layer_normalization/layer_normalization"]
        for key in ("gamma:0", "beta:0"):
            value = group[key][:, 0]
            del group[key]
            group[key] = value
    return str(path)


def test_layernorm_over_trailing_axes_runs_in_c():
    """Keras axis=[1, 2]: the trailing axes flattened into one, normalized, reshaped back (Keras's recorded output)."""
    model, d = _load("k3_layernorm_two_axes")
    assert model.graph.compiled is not None, model.graph.unfit_reason
    assert_close(model.run(d["x0"])[0], d["y0"], what="LayerNormalization over axes [1, 2]")


def test_inspect_names_the_layer_that_keeps_the_layer_path(tmp_path):
    r = _cli("inspect", _layernorm_middle_axis(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["executor"] == "layer by layer"
    assert "layer 'layer_normalization' (LayerNormalization)" in info["why"]
    r = _cli("inspect", os.path.join(DATA, "k3_conv2d_pools.keras"), "--json")
    info = json.loads(r.stdout)
    assert info["executor"] == "C graph" and info["ops"]["CONV"] == 2 and info["ops"]["AVGPOOL"] == 1


def test_describe_says_what_runs_the_model(tmp_path):
    model = rnnfast.load(_layernorm_middle_axis(tmp_path))
    assert "runs layer by layer in numpy" in model.describe() and "LayerNormalization over axes" in model.describe()
    model, _ = _load("k3_seed_bidirectional")
    assert "runs in the C graph executor" in model.describe()


def test_stream_with_a_head_runs_each_step_in_one_graph_call():
    model, d = _load("k3_seed_char_lstm")  # LSTM -> Dense(softmax): the head is in the step's graph
    x = d["x0"]
    stream = model.stream(batch=x.shape[0])
    assert type(stream) is rnnfast.Stream and not stream.direct and stream.pairs_from == "layers"
    ys = stream.feed(x.transpose(1, 0, 2))
    assert_close(ys[-1], d["y0"], what="last step vs Keras predict")
    saved = stream.state
    assert sorted(saved) == ["layer0.c", "layer0.h"] and saved["layer0.h"].shape == (1, 3, 16)
    stream.reset(rows=[1])
    after = stream.state
    assert not after["layer0.h"][:, 1].any() and np.array_equal(after["layer0.h"][:, 0], saved["layer0.h"][:, 0])
    stream.state = saved
    assert_close(stream.step(x[:, 0]), model.stream(batch=3).feed(np.concatenate(
        [x.transpose(1, 0, 2), x[None, :, 0]]))[-1], what="a restored state continues")
    with pytest.raises(ValueError, match=r"\[batch, input\] = \(3, 20\)"):
        stream.step(np.zeros((3, 19), np.float32))
