"""model.describe() on Keras files of each generation shows the meanings the file's Keras version decides: the
hard_sigmoid definition, GRU reset_after, and every default applied for an option the config leaves out. Files
with those options removed still give what model.predict gave (the defaults are the version's own)."""
import json
import os
import shutil

import h5py
import numpy as np
import pytest
from conftest import assert_close

import rnnfast

DATA = os.path.join(os.path.dirname(__file__), "data", "keras")


def _describe(name):
    return rnnfast.load(os.path.join(DATA, name)).describe()


@pytest.mark.parametrize("name,definition", [
    ("k3_activations.keras", "clip(x/6 + 0.5, 0, 1) (Keras 3 definition)"),
    ("k3_activations.h5", "clip(x/6 + 0.5, 0, 1) (Keras 3 definition)"),
    ("tf2_activations.h5", "clip(0.2*x + 0.5, 0, 1) (Keras 1/2, tf.keras definition)"),
    ("keras1_sequential.h5", "clip(0.2*x + 0.5, 0, 1) (Keras 1/2, tf.keras definition)"),
])
def test_hard_sigmoid_definition(name, definition):
    text = _describe(name)
    assert f"hard_sigmoid means {definition}" in text, text
    major = "3" if name.startswith("k3") else "1" if name.startswith("keras1") else "2"
    line = [l for l in text.splitlines() if l.strip().startswith(("lstm_hard ", "lstm_1 "))][0]
    assert "recurrent_activation=hard_sigmoid" in line and f"Keras {major})" in line, line


@pytest.mark.parametrize("name,flags", [
    ("k3_gru_reset_after_True.keras", ["reset_after=True"]),
    ("k3_gru_reset_after_False.h5", ["reset_after=False"]),
    ("tf2_gru_reset_after_True.h5", ["reset_after=True"]),
    ("tf2_gru_reset_after_False.h5", ["reset_after=False"]),
    ("keras2_cudnn.h5", ["(cuDNN weights)", "recurrent_activation=sigmoid reset_after=True"]),
])
def test_gru_reset_after_shown(name, flags):
    text = _describe(name)
    for flag in flags:
        assert flag in text, text
    assert "default applied" not in text, text


def test_keras1_and_keras2_files_without_reset_after():
    for name, major in (("keras1_sequential.h5", 1), ("keras2_sequential_chunked.h5", 2)):
        text = _describe(name)
        assert f"default applied: gru_1.reset_after = False (not in the config; Keras {major}'s default)" in text, \
            text


def _drop_options(tmp_path, name, drops):
    """A copy of fixture `name` whose model_config lacks the options `drops` = {layer: [option, ...]}."""
    path = tmp_path / name
    shutil.copy(os.path.join(DATA, name), path)
    with h5py.File(path, "r+") as f:
        cfg = json.loads(f.attrs["model_config"])
        layers = cfg["config"]["layers"] if isinstance(cfg["config"], dict) else cfg["config"]
        for layer in layers:
            for option in drops.get(layer["config"]["name"], []):
                del layer["config"][option]
        f.attrs["model_config"] = json.dumps(cfg)
    return str(path)


DROPS = [
    # fixture, {layer: options to drop}, lines describe() must show
    ("k3_gru_reset_after_True.h5", {"gru_3": ["recurrent_activation", "reset_after"]},
     ["default applied: gru_3.recurrent_activation = 'sigmoid' (not in the config; Keras 3's default)",
      "default applied: gru_3.reset_after = True (not in the config; Keras 3's default)"]),
    ("tf2_gru_reset_after_False.h5", {"gru_4": ["reset_after"]},
     ["default applied: gru_4.reset_after = False (not in the config; Keras 2's default)"]),
    ("keras2_sequential_chunked.h5", {"lstm_1": ["recurrent_activation"], "gru_1": ["recurrent_activation"]},
     ["default applied: lstm_1.recurrent_activation = 'hard_sigmoid' (not in the config; Keras 2's default)",
      "default applied: gru_1.recurrent_activation = 'hard_sigmoid' (not in the config; Keras 2's default)"]),
    ("keras1_sequential.h5", {"lstm_1": ["inner_activation"], "gru_1": ["inner_activation"]},
     ["default applied: lstm_1.recurrent_activation = 'hard_sigmoid' (not in the config; Keras 1's default)",
      "default applied: gru_1.recurrent_activation = 'hard_sigmoid' (not in the config; Keras 1's default)"]),
]


@pytest.mark.parametrize("name,drops,lines", DROPS, ids=[d[0] for d in DROPS])
def test_defaults_applied_are_shown_and_right(tmp_path, name, drops, lines):
    model = rnnfast.load(_drop_options(tmp_path, name, drops))
    text = model.describe()
    for line in lines:
        assert line in text, text
    npz = np.load(os.path.join(DATA, name.rsplit(".", 1)[0] + ".npz"))
    got = model.run(npz["x0"])
    assert_close(got[0], npz["y0"], what=f"{name} with {drops} left to the defaults")

