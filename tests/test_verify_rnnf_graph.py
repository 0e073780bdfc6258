"""`rnnfast verify` on a .rnnf 2 file, which holds only the C executor's description: the float64 reference really
computes its recurrent layers (graph/watched.py hands each recurrent node back to Python), and `--layers` names
each one. What verify promises is that rnnfast's float32 result follows the float64 reference on the model the file
holds: a file whose weights were altered after conversion so that float32 cannot follow fails by layer name.
A model that computes no recurrent layer gets no "reference" row comparing rnnfast with itself.
"""
import json

import numpy as np
import pytest

import rnnfast
from rnnfast import reference
from rnnfast.exporters.rnnf_graph import save_rnnf_graph
from rnnfast.graph.compile import OP
from test_cli import DATA, assert_usage_error, cli


def _rnnf2(tmp_path, source, name="m.rnnf", **options):
    path = tmp_path / name
    save_rnnf_graph(rnnfast.load(DATA / source, **options), path)
    return path


def _recurrent_layers(model) -> list:
    return [d["layer"] for node in model.graph.compiled.desc["nodes"] if node[0] == OP["RECURRENT"] for d in node[6]]


@pytest.mark.parametrize("source", ["keras/k3_seed_stacked_lstm.keras", "keras/k3_masking_anywhere.keras",
                                    "keras/k3_bidirectional_modes.keras", "onnx/bigru_batch_first.ts.onnx",
                                    "onnx/lstm_if.ts.onnx", "onnx/lstm_quant.int8.onnx"])
def test_watched_graph_computes_what_the_executor_does(tmp_path, source):
    """The description verify runs (each recurrent node a host node running one engine call per layer) gives the
    C executor's outputs bit for bit: stacks, masks, batch-major Y, If branches, int8 weights."""
    from rnnfast.cli.inputs import random_inputs

    model = rnnfast.load(_rnnf2(tmp_path, source))
    compiled = model.graph.compiled
    watched = compiled.watched()
    assert watched is not compiled and watched is compiled.watched()
    assert OP["RECURRENT"] not in [n[0] for n in watched.desc["nodes"]]
    flags = set()
    for seed in (1, 2):
        feeds = random_inputs(model, 9, 3, seed)
        flags.add(bool(feeds.get("flag", seed == 2)))
        arrays = [feeds.get(i.name) for i in model.inputs]
        for got, want in zip(watched.run(arrays), compiled.run(arrays)):
            np.testing.assert_array_equal(got, want)
    assert flags == {False, True}  # lstm_if: both branches ran


def test_verify_rnnf2_compares_with_the_float64_reference(tmp_path):
    path = _rnnf2(tmp_path, "torch/gru_2layer.pt", batch_first=False)
    r = cli("verify", path, "--json", "--layers", "--seed", 3, "--seq-len", 9, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    info = json.loads(r.stdout)
    got = {c["output"]: c for c in info["comparisons"] if c["against"] == "float64 reference"}
    assert set(got) == {"output", "h_n"}
    # The reference computed here from the file's layers: the printed errors are the float32-vs-float64 ones.
    from rnnfast.cli.inputs import random_inputs

    model = rnnfast.load(path)
    feeds = random_inputs(model, 9, 2, 3)
    y, h_n = model.run(feeds)
    x, hs = feeds["input"].astype(np.float64), []
    for k, layer in enumerate(_recurrent_layers(model)):
        ry, ry_h, _ = reference.run_layer(layer, x, initial_h=feeds["h0"][k:k + 1])
        x = ry[:, 0]
        hs.append(ry_h)
    for name, a, e in (("output", y, x), ("h_n", h_n, np.concatenate(hs))):
        want = np.abs(a.astype(np.float64) - e.astype(np.float32)).max()
        assert got[name]["max_abs"] == pytest.approx(want, rel=1e-9, abs=1e-15)
        assert 0 < got[name]["max_abs"] < 1e-5 and got[name]["ok"]
    rows = {(l["layer"], l["output"]): l for l in info["layers"]}
    assert set(rows) == {(n, o) for n in ("l0", "l1") for o in ("y", "y_h")}
    assert all(0 < l["max_abs"] < 1e-5 and l["ok"] for l in rows.values())

    # inspect lists the file's layers, with the shapes of the run it watched
    r = cli("inspect", path, "--json", "--seq-len", 4, "--batch", 3, cwd=tmp_path)
    layers = json.loads(r.stdout)["layers"]
    assert [(l["name"], l["kind"], l["example_shapes"]["y"]) for l in layers] == [
        ("l0", "GRU", [4, 1, 3, 7]), ("l1", "GRU", [4, 1, 3, 7])]


def test_verify_rnnf2_names_the_if_branch_layer_it_ran(tmp_path):
    path = _rnnf2(tmp_path, "onnx/lstm_if.ts.onnx")
    for flag, branch in (("1", "then"), ("0", "else")):
        r = cli("verify", path, "--value", f"flag={flag}", "--layers", "--json", "--against", "reference",
                cwd=tmp_path)
        info = json.loads(r.stdout)
        assert r.returncode == 0 and info["ok"], r.stdout + r.stderr
        assert {l["layer"] for l in info["layers"]} == {f"{branch}//lstm/LSTM"}
        assert all(0 < c["max_abs"] < 1e-5 for c in info["comparisons"] + info["layers"])


def test_verify_rnnf2_fails_by_layer_when_float32_cannot_follow_the_file(tmp_path):
    """The LSTM's recurrent weights are replaced in the converted file by ones of gain 10: the recurrence turns
    chaotic and rounding differences grow until float32 and float64 disagree completely. The reference reads the
    same altered file; what verify checks, and reports by layer, is that the engine's float32 cannot follow it."""
    path = _rnnf2(tmp_path, "onnx/bilstm_head.ts.onnx")
    r = cli("verify", path, "--seq-len", 120, "--batch", 1, "--layers", "--against", "reference", cwd=tmp_path)
    assert r.returncode == 0 and "result: PASS" in r.stdout, r.stdout + r.stderr  # the file as converted
    data = path.read_bytes()
    (layer,) = _recurrent_layers(rnnfast.load(path))
    old = layer.w_hh.astype(np.float32).tobytes()
    assert data.count(old) == 1
    H = layer.w_hh.shape[-1]
    new = (np.random.default_rng(0).standard_normal(layer.w_hh.shape) * 10 / np.sqrt(H)).astype(np.float32)
    altered = tmp_path / "altered.rnnf"
    altered.write_bytes(data.replace(old, new.tobytes()))

    r = cli("verify", altered, "--seq-len", 120, "--batch", 1, "--layers", "--against", "reference", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    rows = [l.split() for l in r.stdout.splitlines() if l.startswith(("float64 reference", "layer "))]
    assert [row[:4] for row in rows if row[0] == "layer"] == [
        ["layer", "/lstm/LSTM", "(lstm)", o] for o in ("y", "y_h", "y_c")]
    assert all(row[-2:] == ["OVER", "TOLERANCE"] and float(row[-4]) > 0.1 for row in rows if row[0] == "layer")
    assert [row[-2:] for row in rows if row[0] == "float64"] == [["OVER", "TOLERANCE"]]
    assert "result: FAIL" in r.stdout
    # The same altered file over a few steps, before rounding has grown: within tolerance, and not by being equal.
    r = cli("verify", altered, "--seq-len", 5, "--batch", 1, "--json", "--layers", "--against", "reference",
            cwd=tmp_path)
    info = json.loads(r.stdout)
    assert r.returncode == 0 and info["ok"] and all(0 < c["max_abs"] < 1e-5 for c in info["comparisons"])


def test_verify_says_when_no_recurrent_layer_ran(tmp_path):
    """torch.onnx's dynamo export unrolls this RNN into MatMuls: the reference has nothing to compute, so no row
    compares rnnfast with itself under its name; asking for it or for --layers is an error."""
    path = DATA / "onnx" / "rnn_relu_stacked.dynamo.onnx"
    r = cli("verify", path, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "oracle reference: not run: the run of" in r.stdout and "computed no recurrent layer" in r.stdout
    assert not [l for l in r.stdout.splitlines() if l.startswith("float64 reference")]
    assert [l.split()[0] for l in r.stdout.splitlines() if l.startswith("onnxruntime")] == ["onnxruntime"] * 2
    for extra in (["--against", "reference"], ["--layers"]):
        r = cli("verify", path, *extra, cwd=tmp_path)
        assert_usage_error(r, path)
        assert "computed no recurrent layer" in r.stderr and extra[-1] in r.stderr
