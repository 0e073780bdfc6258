"""The `rnnfast` command, run as users run it: `python -m rnnfast ...` in a subprocess.

Each subprocess costs about half a second, so each test runs few commands and checks much of their output.
Numbers printed by the command are parsed and compared with what the model gives in this process.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnfast
from conftest import assert_close
from onnx_builders import recurrent_model
from rnnfast.importers import _gates

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
EMB_LSTM_FC = ["-O", "embedding=emb", "-O", "rnn=lstm", "-O", "head=fc", "-O", "batch_first=true"]


def cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "rnnfast", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def assert_usage_error(result, name):
    """Exit code 2, one line on stderr naming the file, no traceback."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(name) in lines[0] and "Traceback" not in result.stderr, result.stderr


@pytest.fixture(scope="module")
def onnx_gru(tmp_path_factory):
    """A bidirectional GRU with no attributes beyond hidden_size/direction: ONNX defaults fill the rest."""
    rng = np.random.default_rng(7)
    H, I = 5, 3
    W = rng.uniform(-0.5, 0.5, (2, 3 * H, I)).astype(np.float32)
    R = rng.uniform(-0.5, 0.5, (2, 3 * H, H)).astype(np.float32)
    B = rng.uniform(-0.5, 0.5, (2, 6 * H)).astype(np.float32)
    X = rng.standard_normal((6, 2, I)).astype(np.float32)
    data, _ = recurrent_model("gru", dict(direction="bidirectional", hidden_size=H), [X, W, R, B], 2)
    path = tmp_path_factory.mktemp("cli") / "gru.onnx"
    path.write_bytes(data)
    return path


def test_inspect_json_torch_pipeline(tmp_path):
    path = DATA / "torch" / "emb_lstm_fc.pt"
    r = cli("inspect", path, *EMB_LSTM_FC, "--json", "--seq-len", 4, "--batch", 3, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    model = rnnfast.load(path, embedding="emb", rnn="lstm", head="fc", batch_first=True)
    g = model.graph
    assert info["format"] == "torch-zip" and info["framework"] == "torch"
    assert [i["name"] for i in info["inputs"]] == ["input", "h0", "c0"]
    assert info["inputs"][0]["type"] == "tensor(int64)" and info["inputs"][0]["shape"] == ["batch", "seq_len"]
    assert [(l["name"], l["kind"]) for l in info["layers"]] == [("emb", "Embedding"), ("lstm.l0", "LSTM"),
                                                               ("fc", "Linear")]
    lstm = g.layers[0]
    expected = {"emb": g.embedding.weight.size, "fc": g.head.weight.size + g.head.bias.size,
                "lstm.l0": lstm.w_ih.size + lstm.w_hh.size + lstm.b_ih.size + lstm.b_hh.size}
    assert {l["name"]: l["parameters"] for l in info["layers"]} == expected
    assert info["parameters"] == sum(expected.values())
    gates = info["layers"][1]["gates"]
    assert gates["source"] == list(_gates.TORCH_ORDER["lstm"]) and gates["canonical"] == list(
        _gates.CANONICAL_ORDER["lstm"])
    assert gates["permutation"] == _gates.permutation(_gates.TORCH_ORDER, "lstm")
    assert info["layers"][1]["hidden_size"] == lstm.hidden_size and info["layers"][1]["input_size"] == 6
    # The example run: batch-first token ids [3, 4] in, output [3, 4, features] out; the LSTM saw [4, 3, 6].
    ex = info["example"]
    assert ex["inputs"]["input"] == [3, 4]
    outs = model.run({"input": np.zeros((3, 4), np.int64)})
    assert ex["outputs"] == {o.name: list(v.shape) for o, v in zip(model.outputs, outs)}
    assert info["layers"][1]["example_shapes"]["x"] == [4, 3, 6]
    assert info["description"] == model.describe()
    assert info["defaults"] == []  # every option was given on the command line


def test_inspect_text_defaults_keras_onnx(tmp_path, onnx_gru):
    r = cli("inspect", DATA / "torch" / "rnn_tanh_3layer_bidir.pt", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "<top>.nonlinearity = 'tanh' (not stored in the file; PyTorch's default)" in r.stdout
    assert "<top>.batch_first = False" in r.stdout
    assert r.stdout.count("  RNN  ") == 3 and "bidirectional, input 12, hidden 6" in r.stdout

    r = cli("inspect", onnx_gru, "--json", cwd=tmp_path)
    info = json.loads(r.stdout)
    defaults = {d["option"]: d["value"] for d in info["defaults"]}
    assert defaults == {"layout": 0, "activations": "Sigmoid,Tanh", "linear_before_reset": 0}
    (gru,) = info["layers"]
    assert gru["weights"] == {"W": [2, 15, 3], "R": [2, 15, 5], "B": [2, 30]} and gru["parameters"] == 90 + 150 + 60
    assert gru["gates"]["source"] == gru["gates"]["canonical"] == list(_gates.CANONICAL_ORDER["gru"])

    r = cli("inspect", DATA / "keras" / "k3_weights_only.weights.h5", "--config",
            DATA / "keras" / "k3_weights_only.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "gates (keras -> canonical): i,f,c,o -> i,o,f,c" in r.stdout
    assert "bidirectional_8  GRU  216 parameters" in r.stdout and "linear_before_reset=1" in r.stdout
    assert "out: dense_13 [2, 2]" in r.stdout


def test_run_matches_torch_outputs(tmp_path):
    ref = np.load(DATA / "torch" / "emb_lstm_fc.npz")
    np.savez(tmp_path / "x.npz", x0=ref["input"])
    r = cli("run", DATA / "torch" / "emb_lstm_fc.pt", *EMB_LSTM_FC, "--input", "x.npz", "--output", "y.npz",
            "--threads", 1, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "outputs: output float32 [2, 7, 5], h_n float32 [1, 2, 8], c_n float32 [1, 2, 8]" in r.stdout
    with np.load(tmp_path / "y.npz") as y:
        assert sorted(y.keys()) == ["c_n", "h_n", "output"]
        for name in ("output", "h_n", "c_n"):
            assert_close(y[name], ref[name], what=name)

    # Keras, two named inputs, written with the model's own input names.
    path = DATA / "keras" / "k3_seq2seq_attention.keras"
    ref = np.load(DATA / "keras" / "k3_seq2seq_attention.npz")
    np.savez(tmp_path / "x2.npz", enc=ref["x0"], dec=ref["x1"])
    r = cli("run", path, "-i", "x2.npz", "-o", "y2.npz", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "y2.npz") as y:
        assert_close(y["time_distributed_1"], ref["y0"], what="keras y0")


def test_bad_files_and_usage(tmp_path, onnx_gru):
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07garbage that is not protobuf")
    (tmp_path / "notes.txt").write_text("hello")
    assert_usage_error(cli("inspect", "junk.onnx", cwd=tmp_path), "junk.onnx")
    assert_usage_error(cli("inspect", "missing.pt", cwd=tmp_path), "missing.pt")
    assert_usage_error(cli("run", onnx_gru, "-i", "notes.txt", "-o", "y.npz", cwd=tmp_path), "notes.txt")
    np.save(tmp_path / "wrong.npy", np.zeros((4, 2, 9), np.float32))
    assert_usage_error(cli("run", onnx_gru, "-i", "wrong.npy", "-o", "y.npz", cwd=tmp_path), onnx_gru)
    assert_usage_error(cli("inspect", DATA / "torch" / "two_modules.pt", cwd=tmp_path), "two_modules.pt")
