"""The `rnnfast` command, run as users run it: `python -m rnnfast ...` in a subprocess.

Each subprocess costs about half a second, so each test runs few commands and checks much of their output.
Numbers printed by the command are parsed and compared with what the model gives in this process.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnfast
from conftest import assert_close, package_env
from onnx_builders import recurrent_model
from rnnfast.importers import _gates

DATA = Path(__file__).resolve().parent / "data"
EMB_LSTM_FC = ["-O", "embedding=emb", "-O", "rnn=lstm", "-O", "head=fc", "-O", "batch_first=true"]


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "rnnfast", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=package_env(), timeout=300)


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

    # Weights are the float constants: integer shape/axes constants of an exporter's glue are not layers.
    r = cli("inspect", DATA / "onnx" / "conv_gru.dynamo.onnx", "--json", cwd=tmp_path)
    info = json.loads(r.stdout)
    layers = {l["kind"]: l for l in info["layers"]}
    assert list(layers) == ["Conv", "GRU", "Gemm"], layers  # the zero initial state's Expand is analysed away
    assert layers["Conv"]["weights"] == {"conv.weight": [8, 4, 3], "conv.bias": [8]}
    assert layers["Conv"]["parameters"] == 8 * 4 * 3 + 8 and layers["GRU"]["parameters"] == 60 * 8 + 60 * 20 + 120

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
    assert_usage_error(cli("verify", "junk.onnx", cwd=tmp_path), "junk.onnx")
    assert_usage_error(cli("bench", "notes.txt", "--seconds", 0.1, cwd=tmp_path), "notes.txt")
    assert_usage_error(cli("convert", "missing.keras", "out.rnnf", cwd=tmp_path), "missing.keras")
    assert_usage_error(cli("run", onnx_gru, "-i", "wrong.npy", "-o", "y.npz", "--threads", 0, cwd=tmp_path),
                       "--threads")


def _onnx_file(tmp_path_factory, name, cell, attrs, weights, x, n_outputs):
    data, _ = recurrent_model(cell, attrs, [x, *weights], n_outputs)
    path = tmp_path_factory.mktemp("cli") / name
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def onnx_chaotic(tmp_path_factory):
    """An RNN whose recurrence is chaotic (recurrent weights with spectral radius about 3): rounding differences
    of one ulp grow until float32 and float64 disagree completely after ~100 steps. No float32 engine, onnxruntime
    included, can match the float64 reference on it: an honest verify failure."""
    rng = np.random.default_rng(1)
    H, I = 32, 4
    W = (rng.standard_normal((1, H, I)) * 0.1).astype(np.float32)
    R = (rng.standard_normal((1, H, H)) * 3 / np.sqrt(H)).astype(np.float32)
    return _onnx_file(tmp_path_factory, "chaotic.onnx", "rnn", {"hidden_size": H}, [W, R],
                      np.zeros((1, 1, I), np.float32), 2)


@pytest.fixture(scope="module")
def onnx_layout1(tmp_path_factory):
    """LSTM with layout=1 (batch-major), which onnxruntime refuses: verify falls back to onnx.reference."""
    rng = np.random.default_rng(3)
    H, I = 4, 3
    W = rng.uniform(-0.5, 0.5, (1, 4 * H, I)).astype(np.float32)
    R = rng.uniform(-0.5, 0.5, (1, 4 * H, H)).astype(np.float32)
    return _onnx_file(tmp_path_factory, "layout1.onnx", "lstm", {"hidden_size": H, "layout": 1}, [W, R],
                      np.zeros((2, 5, I), np.float32), 3)


def test_verify_onnx_json_numbers_match(tmp_path, onnx_gru, onnx_layout1):
    from rnnfast import reference
    from rnnfast.cli.inputs import random_inputs

    r = cli("verify", onnx_gru, "--json", "--layers", "--seed", 5, "--seq-len", 9, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["ok"] and info["input"] == "random, seed 5" and info["inputs"]["X"]["shape"] == [9, 2, 3]
    got = {(c["against"], c["output"]): c for c in info["comparisons"]}
    assert set(got) == {(a, o) for a in ("float64 reference", "onnxruntime (the file)") for o in ("Y", "Y_h")}
    # The same input and the same comparison, made here: the printed errors are the real ones.
    model = rnnfast.load(onnx_gru)
    feeds = random_inputs(model, 9, 2, 5)
    y, y_h = model.run(feeds)
    ry, ry_h, _ = reference.run_layer(model.graph.steps[0][1].layer, feeds["X"])
    for name, a, e in (("Y", y, ry), ("Y_h", y_h, ry_h)):
        c = got[("float64 reference", name)]
        e = e.astype(np.float32)  # the ONNX graph returns its outputs in the model's dtype
        assert c["max_abs"] == pytest.approx(np.abs(a.astype(np.float64) - e).max(), rel=1e-9, abs=1e-15)
        assert 0 < c["max_abs"] < 1e-5 and c["ok"]
    import onnxruntime as ort

    ort_y = ort.InferenceSession(str(onnx_gru), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert got[("onnxruntime (the file)", "Y")]["max_abs"] == pytest.approx(np.abs(y - ort_y).max(), abs=1e-12)
    assert {(l["layer"], l["output"]) for l in info["layers"]} == {("Y", "y"), ("Y", "y_h")}

    # A torch.onnx export with an If on a scalar bool input: the random flag is a scalar, as declared.
    r = cli("verify", DATA / "onnx" / "lstm_if.ts.onnx", "--json", "--seed", 2, cwd=tmp_path)
    info = json.loads(r.stdout)
    assert r.returncode == 0 and info["ok"] and info["inputs"]["flag"] == {"dtype": "bool", "shape": []}, r.stderr
    assert [c["against"] for c in info["comparisons"]] == ["float64 reference", "onnxruntime (the file)"]

    r = cli("verify", onnx_layout1, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "note: onnxruntime refused the model" in r.stdout and "layout" in r.stdout
    assert len([l for l in r.stdout.splitlines() if l.startswith("onnx.reference (the file)")]) == 3
    assert "result: PASS" in r.stdout and r.stderr == ""


def test_verify_fails_on_a_chaotic_recurrence(tmp_path, onnx_chaotic):
    r = cli("verify", onnx_chaotic, "--seq-len", 120, "--batch", 1, "--layers", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    rows = {tuple(l.split()[:3]): l.split() for l in r.stdout.splitlines() if l.startswith(("float64", "onnxrun"))}
    y_err = float(rows[("float64", "reference", "Y")][3])
    assert y_err > 0.1 and rows[("float64", "reference", "Y")][-2:] == ["OVER", "TOLERANCE"]
    assert "result: FAIL" in r.stdout
    # The same model over a few steps, before rounding has grown: within tolerance.
    r = cli("verify", onnx_chaotic, "--seq-len", 5, "--batch", 1, cwd=tmp_path)
    assert r.returncode == 0 and "result: PASS" in r.stdout, r.stdout + r.stderr


def test_verify_torch_with_input_and_keras_layers(tmp_path):
    ref = np.load(DATA / "torch" / "emb_lstm_fc.npz")
    np.savez(tmp_path / "x.npz", input=ref["input"])
    r = cli("verify", DATA / "torch" / "emb_lstm_fc.pt", *EMB_LSTM_FC, "--input", "x.npz", "--layers", "--progress",
            cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "verify [" in r.stderr and "float64 reference" in r.stderr and "verify [" not in r.stdout
    assert "input (from x.npz): input int64 [2, 7]" in r.stdout
    ref_rows = [l.split() for l in r.stdout.splitlines() if l.startswith("float64 reference")]
    assert [row[2] for row in ref_rows] == ["output", "h_n", "c_n"]
    assert all(0 <= float(row[3]) < 1e-5 and row[-1] == "ok" for row in ref_rows)
    # The export keeps h0 / c0, which the run left out: onnxruntime gets them as PyTorch's default zeros.
    ort_rows = [l.split() for l in r.stdout.splitlines() if l.startswith("onnxruntime (its ONNX export)")]
    assert [row[4] for row in ort_rows] == ["output", "h_n", "c_n"]
    assert all(float(row[5]) < 1e-5 and row[-1] == "ok" for row in ort_rows)
    assert [l.split()[1:4] for l in r.stdout.splitlines() if l.startswith("layer ")] == [
        ["lstm.l0", "(lstm)", "y"], ["lstm.l0", "(lstm)", "y_h"], ["lstm.l0", "(lstm)", "y_c"]]

    r = cli("verify", DATA / "keras" / "k3_weights_only.weights.h5", "--config",
            DATA / "keras" / "k3_weights_only.json", "--layers", "--json", cwd=tmp_path)
    info = json.loads(r.stdout)
    assert r.returncode == 0 and info["ok"], r.stdout + r.stderr
    assert {l["layer"] for l in info["layers"]} == {"bidirectional_8", "lstm_27"}
    assert all(c["max_abs"] < 1e-5 for c in info["comparisons"] + info["layers"])


def test_convert_rnnf_npz_safetensors(tmp_path):
    path = DATA / "keras" / "k3_seed_stacked_lstm.keras"
    r = cli("convert", path, "m.rnnf", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "check ok" in r.stdout and r.stdout.rstrip().endswith("max abs difference 0")
    ref = np.load(DATA / "keras" / "k3_seed_stacked_lstm.npz")
    assert_close(rnnfast.load(tmp_path / "m.rnnf").run(ref["x0"])[0], ref["y0"], what="rnnf vs keras")
    for out, extra in (("w.bin", ["--format", "npz"]), ("w.safetensors", [])):
        r = cli("convert", path, out, *extra, cwd=tmp_path)
        assert r.returncode == 0 and "check ok" in r.stdout, r.stdout + r.stderr
        assert_close(rnnfast.load(tmp_path / out).run(ref["x0"])[0], ref["y0"], what=f"{out} vs keras")
    r = cli("convert", path, "w.bin", cwd=tmp_path)
    assert_usage_error(r, "w.bin")
    # Two inputs: a whole graph (.rnnf 2, the default) holds it; a .rnnf 1 chain cannot
    r = cli("convert", DATA / "keras" / "k3_seq2seq_attention.keras", "m2.rnnf", cwd=tmp_path)
    assert r.returncode == 0 and "(rnnf 2," in r.stdout and "check ok" in r.stdout, r.stdout + r.stderr
    assert rnnfast.load(tmp_path / "m2.rnnf").input_names == rnnfast.load(
        DATA / "keras" / "k3_seq2seq_attention.keras").input_names
    r = cli("convert", DATA / "keras" / "k3_seq2seq_attention.keras", "m3.rnnf", "--rnnf-version", 1, cwd=tmp_path)
    assert_usage_error(r, "k3_seq2seq_attention.keras")
    assert "a chain has one input; this model has the inputs ['enc', 'dec']" in r.stderr
    assert not (tmp_path / "m3.rnnf").exists()


def test_bench_checks_then_times(tmp_path, onnx_gru, onnx_chaotic):
    r = cli("bench", onnx_gru, "--seconds", 0.3, "--seq-len", 20, "--threads", 1, "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["threads"] == 1 and info["onnx"] == "the file" and info["inputs"]["X"]["shape"] == [20, 2, 3]
    assert [c["output"] for c in info["checks"]] == ["Y", "Y_h"] and all(c["ok"] for c in info["checks"])
    assert set(info["median_ms"]) == {"rnnfast", "onnxruntime"} and info["blocks"] >= 1
    assert all(info["min_ms"][k] <= v for k, v in info["median_ms"].items())
    assert info["ratio"] == pytest.approx(info["median_ms"]["onnxruntime"] / info["median_ms"]["rnnfast"])

    # Text output, a PyTorch model against onnxruntime on its export, with the built-in progress bar forced.
    r = cli("bench", DATA / "torch" / "emb_lstm_fc.pt", *EMB_LSTM_FC, "--seconds", 0.3, "--seq-len", 10,
            "--progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "outputs checked against onnxruntime (its ONNX export) before timing: output max abs" in r.stdout
    medians = {l.split()[0]: float(l.split()[1]) for l in r.stdout.splitlines()
               if l.startswith(("rnnfast ", "onnxruntime "))}
    ratio = float(next(l for l in r.stdout.splitlines() if l.startswith("ratio:")).split()[1])
    assert ratio == pytest.approx(medians["onnxruntime"] / medians["rnnfast"], rel=0.01, abs=0.006)  # printed: 2 places
    assert "bench [" in r.stderr and "/0.3 s" in r.stderr

    # Outputs that disagree are not timed.
    r = cli("bench", onnx_chaotic, "--seq-len", 120, "--seconds", 0.3, cwd=tmp_path)
    assert r.returncode == 1 and "OVER TOLERANCE" in r.stdout and "nothing was timed" in r.stdout, r.stdout


def test_bench_times_rnnfast_alone_when_onnxruntime_fails_without_a_message(onnx_gru, monkeypatch, capsys):
    """An onnxruntime error with an empty message (str(e) == '') is reported by its type, not an IndexError."""
    import onnxruntime as ort
    from rnnfast.cli import main

    def refuse(self, *args, **kwargs):
        raise RuntimeError()

    monkeypatch.setattr(ort.InferenceSession, "run", refuse)
    assert main(["bench", str(onnx_gru), "--seconds", "0.05", "--seq-len", "4", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["notes"] == ["rnnfast timed alone: onnxruntime refused to run it: RuntimeError"]
    assert set(info["median_ms"]) == {"rnnfast"}


def test_convert_to_onnx_runs_in_onnxruntime(tmp_path):
    import onnx
    import onnxruntime as ort

    ref = np.load(DATA / "torch" / "emb_lstm_fc.npz")
    r = cli("convert", DATA / "torch" / "emb_lstm_fc.pt", "m.onnx", *EMB_LSTM_FC, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "wrote m.onnx (onnx" in r.stdout and "check ok" in r.stdout
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    # PyTorch's names, every one kept; h0 and c0 optional (initializer-backed: zeros unless fed, as in torch)
    assert [i.name for i in sess.get_inputs()] == ["input"]
    assert [i.name for i in sess.get_overridable_initializers()] == ["h0", "c0"]
    assert [o.name for o in sess.get_outputs()] == ["output", "h_n", "c_n"]
    zeros = np.zeros((1, ref["input"].shape[0], 8), np.float32)  # torch's default initial state, batch first
    for states in ({"h0": zeros, "c0": zeros}, {}):
        out, h_n, c_n = sess.run(None, {"input": ref["input"].astype(np.int64), **states})
        assert_close(out, ref["output"], what=f"onnxruntime on the converted file vs torch, fed {sorted(states)}")
        assert_close(h_n, ref["h_n"], what="h_n")
        assert_close(c_n, ref["c_n"], what="c_n")
    r = cli("convert", DATA / "torch" / "emb_lstm_fc.pt", "h.onnx", *EMB_LSTM_FC, "--outputs", "h_n,c_n",
            cwd=tmp_path)
    assert r.returncode == 0 and "2 output(s) compared" in r.stdout, r.stdout + r.stderr
    assert [o.name for o in onnx.load(str(tmp_path / "h.onnx")).graph.output] == ["h_n", "c_n"]
    r = cli("convert", DATA / "torch" / "emb_lstm_fc.pt", "x.onnx", *EMB_LSTM_FC, "--outputs", "h_n,state",
            cwd=tmp_path)
    assert_usage_error(r, "no output named 'state'")
    assert "['output', 'h_n', 'c_n']" in r.stderr and not (tmp_path / "x.onnx").exists()



def test_convert_reports_a_written_file_onnxruntime_cannot_run_by_name(tmp_path, monkeypatch, capsys):
    """onnxruntime's refusal at run time (its own exception types) of the file convert wrote is the check's verdict,
    naming the file, the input and onnxruntime's reason, never a traceback. The written file here declares its
    input with 3 rows (the exporter is replaced by one that writes it so), and the check feeds 2."""
    from onnx import TensorProto, helper

    import rnnfast.exporters.onnx as exporter
    from rnnfast.cli import main
    from rnnfast.cli.codes import EXIT_MISMATCH

    def relu(rows):
        vi = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [rows, 4])
        graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [vi("x")], [vi("y")])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]).SerializeToString()

    def export_three_rows(model, path, **options):
        Path(path).write_bytes(relu(3))

    source, out = tmp_path / "relu.onnx", tmp_path / "m.onnx"
    source.write_bytes(relu("batch"))
    monkeypatch.setattr(exporter, "export_onnx", export_three_rows)
    assert main(["convert", str(source), str(out), "--batch", "2"]) == EXIT_MISMATCH
    text = capsys.readouterr().out
    assert f"check FAILED: {out} was written, but onnxruntime could not run it on random input x [2, 4]: " in text
    assert "invalid dimensions for input: x" in text and "Expected: 3" in text, text

def test_convert_masked_keras_to_onnx_exactly_or_with_the_promise(tmp_path):
    import onnxruntime as ort

    path = DATA / "keras" / "k3_seed_masked_middle.keras"
    z = np.load(DATA / "keras" / "k3_seed_masked_middle.npz")
    r = cli("convert", path, "m.onnx", cwd=tmp_path)
    assert r.returncode == 0 and "check ok" in r.stdout, r.stdout + r.stderr
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert_close(sess.run(None, {sess.get_inputs()[0].name: z["x0"].astype(np.int64)})[0], z["y0"],
                 what="masked in the middle, against Keras")
    r = cli("convert", path, "m.onnx", "--assume-suffix-padding", "--opset", 15, cwd=tmp_path)
    assert r.returncode == 0 and "check ok" in r.stdout, r.stdout + r.stderr
    model = rnnfast.load(path)
    ids = np.load(DATA / "keras" / "k3_seed_masked_middle.npz")["x0"].astype(np.int64)
    ids = np.where(ids == 0, 1, ids)
    ids[0, -2:] = ids[1, -5:] = 0  # suffix padding only: what the promise covers
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert_close(sess.run(None, {sess.get_inputs()[0].name: ids})[0], model.run(ids)[0], what="masked export")


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_export_c_writes_code_whose_self_test_passes(tmp_path):
    """The generated test program runs the embedded inputs and exits non-zero when the C outputs differ from
    rnnfast's; tests/test_export_c.py holds the generated code to the float64 reference."""
    for extra, prefix in (([], "tagger"), (["--quantize", "int8"], "tagger_q8")):
        r = cli("export-c", DATA / "torch" / "emb_lstm_fc.pt", *EMB_LSTM_FC, "-o", "out", "--prefix", prefix, *extra,
                cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert f"{prefix}.h" in r.stdout and "step function: yes" in r.stdout
        out = tmp_path / "out"
        exe = out / prefix
        subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", str(out / f"{prefix}.c"),
                        str(out / f"{prefix}_test.c"), "-lm", "-o", str(exe)], check=True, capture_output=True)
        done = subprocess.run([str(exe)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    r = cli("export-c", DATA / "torch" / "lstm_bidir_batch_first.pt", "-o", "bi", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "step function: no" in r.stdout
    assert_usage_error(cli("export-c", DATA / "keras" / "k3_seq2seq_attention.keras", "-o", "x", cwd=tmp_path),
                       "k3_seq2seq_attention.keras")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("args, named", [
    (["bench", "--batch", "0"], "--batch"), (["bench", "--seq-len", "-3"], "--seq-len"),
    (["verify", "--tolerance", "-1"], "--tolerance"), (["bench", "--seconds", "-2"], "--seconds"),
    (["inspect", "--batch", "two"], "--batch"), (["verify", "--seed", "-1"], "--seed"),
    (["run", "-i", "x.npy", "-o", "y.npz", "--threads", "0"], "--threads"),
    (["convert", "out.onnx", "--opset", "0"], "--opset"),
])
def test_bad_arguments_are_usage_errors_before_any_work(args, named, capsys, monkeypatch):
    """Refused by the parser (exit 2, one line naming the argument) before the model is even read: a zero batch used
    to reach onnxruntime, which aborted the process."""
    from rnnfast import cli as cli_module

    monkeypatch.setattr("rnnfast.cli.common.load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    argv = args[:1] + [str(DATA / "torch" / "gru_2layer.pt")] + args[1:]
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0] and "expected" in err[0], err


def test_boolean_option_must_be_a_boolean(tmp_path):
    """-O batch_first=maybe used to be read as true."""
    result = cli("verify", DATA / "torch" / "gru_2layer.pt", "-O", "batch_first=maybe", cwd=tmp_path)
    assert_usage_error(result, "gru_2layer.pt")
    assert "batch_first must be true or false, got 'maybe'" in result.stderr
    with pytest.raises(ValueError, match="batch_first must be true or false"):
        rnnfast.load(DATA / "torch" / "gru_2layer.pt", batch_first="yes")
    x = np.random.default_rng(0).standard_normal((2, 3, rnnfast.load(DATA / "torch" / "gru_2layer.pt").inputs[0]
                                                  .shape[-1])).astype(np.float32)
    as_int = rnnfast.load(DATA / "torch" / "gru_2layer.pt", batch_first=1).run(x)
    as_bool = rnnfast.load(DATA / "torch" / "gru_2layer.pt", batch_first=True).run(x)
    np.testing.assert_array_equal(as_int[0], as_bool[0])


def test_convert_stateful_keras_to_onnx_gives_the_states_as_inputs_and_outputs(tmp_path):
    r = cli("convert", DATA / "keras" / "k3_seed_stateful_lstm.keras", "s.onnx", cwd=tmp_path)
    assert r.returncode == 0 and "check ok" in r.stdout, r.stdout + r.stderr
    assert "states are inputs ['lstm_9:state_h', 'lstm_9:state_c', 'gru_2:state_h']" in r.stdout, r.stdout
    assert "4 output(s) compared" in r.stdout, r.stdout
