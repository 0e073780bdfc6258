"""`rnnfast verify --against torch|keras|onnxruntime|reference`: the source framework as the oracle.

The framework runs in another interpreter (--python or RNNFAST_ORACLE_PYTHON): /work/venv-torch and /work/venv-tf on
the development machine; the tests that need one skip when it is absent. The refusals (not installed, not this
file's framework, a bad interpreter path) run everywhere. Each framework test has a case that passes and one where a
wrong reading of the file is caught by the framework only: the float64 reference and onnxruntime run rnnfast's own
reading, so they agree with it.
"""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import package_env

DATA = Path(__file__).resolve().parent / "data"
TORCH_PYTHON = Path("/work/venv-torch/bin/python")
KERAS_PYTHON = Path("/work/venv-tf/bin/python")


def _imports(python: Path, modules: str) -> bool:
    """Whether that interpreter exists and imports the modules the oracle tests read their fixtures with (a venv
    made for another purpose may lack one, e.g. safetensors beside torch)."""
    if not python.exists():
        return False
    return subprocess.run([str(python), "-c", f"import {modules}"], capture_output=True).returncode == 0


needs_torch = pytest.mark.skipif(not _imports(TORCH_PYTHON, "torch, safetensors"),
                                 reason=f"needs torch and safetensors in {TORCH_PYTHON}")
needs_keras = pytest.mark.skipif(not _imports(KERAS_PYTHON, "keras, h5py"),
                                 reason=f"needs keras and h5py in {KERAS_PYTHON}")
# Runs the command with the Keras LSTM gate order read as Keras 1's (i, c, f, o): an importer bug planted on purpose.
# The same for PyTorch's GRU gates read as (z, r, h) instead of (r, z, h).
WRONG_TORCH_GATES = ("import sys; from rnnfast.importers import _gates; "
                     "_gates.TORCH_ORDER['gru'] = ('z', 'r', 'h'); "
                     "from rnnfast.cli import main; sys.exit(main(sys.argv[1:]))")
WRONG_KERAS_GATES = ("import sys; from rnnfast.importers import _gates; "
                     "_gates.KERAS_ORDER['lstm'] = ('i', 'c', 'f', 'o'); "
                     "from rnnfast.cli import main; sys.exit(main(sys.argv[1:]))")


def cli(*args, cwd, env=None, prefix=("-m", "rnnfast")):
    return subprocess.run([sys.executable, *prefix, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=package_env(**(env or {})), timeout=600)


def assert_usage_error(result, *parts):
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("rnnfast: warning:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for part in parts:
        assert part in lines[0], lines[0]


def rows(info, oracle):
    return {c["output"]: c for c in info["comparisons"] if c["against"] == oracle}


@needs_torch
def test_torch_oracle_on_a_traced_file_and_a_checkpoint(tmp_path):
    """A traced file is run by its own forward (an independent check); a checkpoint's state_dict is loaded by torch
    into modules built from rnnfast's reading, which the report says."""
    r = cli("verify", DATA / "torch" / "traced_lstm_bidir_batch_first.pt", "--against", "torch", "--against",
            "reference", "--python", TORCH_PYTHON, "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert [o["oracle"] for o in info["oracles"]] == ["torch", "reference"]
    torch = info["oracles"][0]
    assert torch["independent"] and "torch.jit.load" in torch["how"] and str(TORCH_PYTHON) in torch["how"]
    assert set(rows(info, "torch")) == {"output", "h_n", "c_n"} and info["ok"]
    assert all(c["max_abs"] < 1e-5 for c in rows(info, "torch").values())
    assert info["inputs"]["input"]["shape"] == [2, 8, 3]  # batch first, as the traced call says

    r = cli("verify", DATA / "torch" / "lstm_checkpoint.pth", "-O", "batch_first=false", "--against", "torch",
            "--json", cwd=tmp_path, env={"RNNFAST_ORACLE_PYTHON": str(TORCH_PYTHON)})
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    (torch,) = info["oracles"]
    assert not torch["independent"] and "built from rnnfast's reading of the settings" in torch["how"]
    assert "LSTM(4, 6, num_layers=2)" in torch["how"] and set(rows(info, "torch")) == {"output", "h_n", "c_n"}
    assert info["ok"]


@needs_torch
def test_torch_oracle_runs_the_real_cell(tmp_path):
    """A cell's weights (nn.LSTMCell / GRUCell state_dicts): torch runs the cell itself, one step or (cell_loop) at
    every step of a sequence; a planted GRU gate-order bug is caught by torch, not by the reference."""
    cells = DATA / "torch" / "cells"
    r = cli("verify", cells / "lstm_cell.pt", "--against", "torch", "--python", TORCH_PYTHON, "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert "into LSTMCell(5, 8)" in info["oracles"][0]["how"] and set(info["inputs"]) == {"input", "h0", "c0"}
    assert set(rows(info, "torch")) == {"h1", "c1"} and info["ok"]
    r = cli("verify", cells / "gru_cell.safetensors", "-O", "cell_loop=true", "-O", "batch_first=true", "--against",
            "torch", "--python", TORCH_PYTHON, "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert "GRUCell(4, 10), applied to every step in a loop (batch_first=True)" in info["oracles"][0]["how"]
    assert set(rows(info, "torch")) == {"output", "h_n"} and info["ok"]
    r = cli("verify", cells / "gru_cell.pt", "--against", "torch,reference", "--python", TORCH_PYTHON, "--json",
            cwd=tmp_path, prefix=("-c", WRONG_TORCH_GATES))
    assert r.returncode == 1, r.stdout + r.stderr
    info = json.loads(r.stdout)
    assert not rows(info, "torch")["h1"]["ok"] and rows(info, "float64 reference")["h1"]["ok"]


@needs_torch
def test_torch_oracle_catches_a_wrong_option(tmp_path):
    """The scripted Net ends with a Linear head; told to ignore it, rnnfast returns the LSTM's output. The reference
    agrees with rnnfast's reading; torch runs the file's own forward and the output's shape gives it away."""
    r = cli("verify", DATA / "torch" / "emb_lstm_fc_torchscript.pt", "-O", "embedding=emb", "-O", 'ignore=["fc."]',
            "--against", "torch,reference", "--python", TORCH_PYTHON, cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    torch_out = next(line for line in lines if line.startswith("torch ") and " output " in line)
    assert "OVER TOLERANCE (shape [2, 8, 8], expected [2, 8, 5])" in torch_out
    assert any(line.startswith("float64 reference") and " output " in line and line.endswith(" ok") for line in lines)
    assert "note: torch reads only input; compared with rnnfast run on input alone" in r.stdout
    assert "result: FAIL" in r.stdout


@needs_keras
def test_keras_oracle_passes_then_catches_a_wrong_gate_order(tmp_path):
    path = DATA / "keras" / "k3_seed_char_lstm.keras"
    r = cli("verify", path, "--against", "keras", "--python", KERAS_PYTHON, "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    (keras,) = info["oracles"]
    assert keras["independent"] and "keras.saving.load_model" in keras["how"] and info["ok"]
    assert all(c["max_abs"] < 1e-5 for c in rows(info, "keras").values())

    r = cli("verify", path, "--against", "keras,onnxruntime,reference", "--python", KERAS_PYTHON, "--json",
            cwd=tmp_path, prefix=("-c", WRONG_KERAS_GATES))
    assert r.returncode == 1, r.stderr
    info = json.loads(r.stdout)
    assert not info["ok"] and not any(c["ok"] for c in rows(info, "keras").values())
    others = [c for c in info["comparisons"] if c["against"] != "keras"]
    assert others and all(c["ok"] for c in others)  # rnnfast's own reading agrees with itself


def test_framework_not_installed_names_what_to_install(tmp_path):
    if importlib.util.find_spec("keras") is not None:
        pytest.skip("keras is installed in this interpreter")
    r = cli("verify", DATA / "keras" / "k3_go_backwards.keras", "--against", "keras", "--python", sys.executable,
            cwd=tmp_path)
    assert_usage_error(r, "--against keras: keras is not installed for", sys.executable, "pip install keras",
                       "--python PATH (or RNNFAST_ORACLE_PYTHON)")


def test_oracle_refusals(tmp_path):
    torch_file = DATA / "torch" / "gru_2layer.pt"
    r = cli("verify", torch_file, "--against", "keras", cwd=tmp_path)
    assert_usage_error(r, "--against keras:", "gru_2layer.pt is a torch-zip file, which keras does not load",
                       "this file's framework is torch (--against torch)")
    onnx_file = next((DATA / "onnx").glob("*.onnx"))
    r = cli("verify", onnx_file, "--against", "reference,torch", cwd=tmp_path)
    assert_usage_error(r, "--against torch:", "is a onnx file, which torch does not load")
    r = cli("verify", torch_file, "--against", "torch", "--python", tmp_path / "no-python", cwd=tmp_path)
    assert_usage_error(r, f"--python {tmp_path / 'no-python'}: not an executable file")
    r = cli("verify", torch_file, "--against", "torch", cwd=tmp_path,
            env={"RNNFAST_ORACLE_PYTHON": str(tmp_path / "none")})
    assert_usage_error(r, f"RNNFAST_ORACLE_PYTHON {tmp_path / 'none'}: not an executable file")
    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\necho broken interpreter >&2\nexit 9\n")
    os.chmod(fake, 0o755)
    r = cli("verify", torch_file, "--against", "torch", "--python", fake, cwd=tmp_path)
    assert_usage_error(r, f"--against torch: {fake} does not run: broken interpreter")


def test_default_oracles_are_reference_and_onnxruntime(tmp_path):
    r = cli("verify", DATA / "torch" / "gru_2layer.pt", "-O", "batch_first=false", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert [o["oracle"] for o in info["oracles"]] == ["reference", "onnxruntime"]
    assert {c["against"] for c in info["comparisons"]} >= {"float64 reference"}


@needs_torch
def test_torch_oracle_names_an_unimportable_pickled_class(tmp_path):
    """torch.save(model) of a class defined in a script's __main__: rnnfast reads it as data, torch cannot rebuild
    it; the error says why instead of a traceback from the other interpreter."""
    r = cli("verify", DATA / "torch" / "emb_lstm_fc_whole_module.pt", "-O", "embedding=emb", "-O", "rnn=lstm", "-O",
            "head=fc", "-O", 'allow_classes=["__main__.Net"]', "--against", "torch", "--python", TORCH_PYTHON,
            cwd=tmp_path)
    assert_usage_error(r, "emb_lstm_fc_whole_module.pt: --against torch: torch could not load or run it",
                       "its class must be importable by", "Can't get attribute 'Net'")
