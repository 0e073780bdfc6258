"""What a file does not store is never silently assumed: each assumed value is named in an AssumptionWarning
(file, layer, option, value, why), passing the option silences it, and strict=True / --strict refuses the file.
The values assumed are the frameworks' defaults; the fixtures' recorded outputs (other tests) show they are right for
those files, here we check that the user is told."""
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import rnnfast
from conftest import package_env
from rnnfast import AssumptionWarning, FormatError

DATA = Path(__file__).resolve().parent / "data"


def assumptions(path, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rnnfast.load(path, **options)
    return [str(w.message) for w in caught if issubclass(w.category, AssumptionWarning)]


@pytest.mark.parametrize("path, options, named", [
    ("torch/gru_2layer.pt", {}, ["batch_first=False"]),
    ("torch/rnn_tanh_3layer_bidir.pt", {"batch_first": False}, ["nonlinearity='tanh'"]),
    ("keras/keras1_sequential.h5", {}, ["layer 'gru_1'", "reset_after=False"]),
    ("tf1/lstm2_dense/model.ckpt", {}, ["forget_bias=1.0", "time_major=False"]),
])
def test_each_assumption_is_named(path, options, named):
    found = assumptions(DATA / path, **options)
    assert found, f"{path}: nothing was named"
    text = " | ".join(found)
    assert str(DATA / path).split("/model.ckpt")[0] in text
    for piece in named:
        assert piece in text, text
    with pytest.raises(FormatError, match="strict=True") as refused:
        rnnfast.load(DATA / path, strict=True, **options)
    for piece in named:
        assert piece in str(refused.value)


@pytest.mark.parametrize("path, options", [
    ("torch/gru_2layer.pt", {"batch_first": False}),
    ("torch/rnn_tanh_3layer_bidir.pt", {"batch_first": False, "nonlinearity": "tanh"}),
    ("onnx/bilstm_head.ts.onnx", {}),
])
def test_saying_it_silences_it_and_strict_loads(path, options):
    assert assumptions(DATA / path, **options) == []
    rnnfast.load(DATA / path, strict=True, **options)


def test_strict_must_be_a_boolean():
    with pytest.raises(ValueError, match="strict must be True or False"):
        rnnfast.load(DATA / "torch/gru_2layer.pt", strict="yes")


def test_cli_prints_one_line_per_assumption_and_strict_refuses(tmp_path):
    path = DATA / "torch/gru_2layer.pt"
    run = subprocess.run([sys.executable, "-m", "rnnfast", "inspect", str(path)], capture_output=True, text=True,
                         env=package_env(), cwd=tmp_path, timeout=120)
    assert run.returncode == 0
    lines = [line for line in run.stderr.splitlines() if line.startswith("rnnfast: warning:")]
    assert len(lines) == 1 and "batch_first=False" in lines[0] and "Traceback" not in run.stderr, run.stderr
    run = subprocess.run([sys.executable, "-m", "rnnfast", "inspect", "--strict", str(path)], capture_output=True,
                         text=True, env=package_env(), cwd=tmp_path, timeout=120)
    assert run.returncode == 2 and "strict=True" in run.stderr and "batch_first=False" in run.stderr, run.stderr
