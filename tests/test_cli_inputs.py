"""Input control of run / verify / bench: --inputs FILE, --input NAME=SHAPE[:DTYPE[:LOW..HIGH]], --value NAME=V.

The end-to-end cases run `python -m rnnfast` in a subprocess from a folder outside the checkout; the many bad
arguments are checked in-process (each would cost half a second as a subprocess), through the same `main` the
command runs, and must each end as one line on stderr naming the argument, exit code 2.
"""
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import rnnfast
from conftest import assert_close, package_env

DATA = Path(__file__).resolve().parent / "data"
LSTM = DATA / "torch" / "lstm.pt"  # nn.LSTM(5, 8): inputs input [seq_len, batch, 5], h0 / c0 [1, batch, 8]


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "rnnfast", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=package_env(), timeout=300)


def _onnx(tmp_path, name, nodes, inputs, inits):
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, name, inputs, [out], [numpy_helper.from_array(v, k) for k, v in inits.items()])
    path = tmp_path / f"{name}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.fixture
def state_model(tmp_path):
    """y = reshape(state, [2, 4]): only a middle dim of 1 runs, and its name `k` says nothing about its size."""
    state = helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "k", 4])
    return _onnx(tmp_path, "state", [helper.make_node("Reshape", ["state", "shape"], ["y"])], [state],
                 {"shape": np.array([2, 4], np.int64)})


@pytest.fixture
def float_ids_model(tmp_path):
    """A float input cast to token ids that index a 10-row table (how exporters often feed an embedding)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq"])
    nodes = [helper.make_node("Cast", ["x"], ["ids"], to=TensorProto.INT64),
             helper.make_node("Gather", ["table", "ids"], ["y"])]
    return _onnx(tmp_path, "float_ids", nodes, [x], {"table": np.arange(30, dtype=np.float32).reshape(10, 3)})


def _usage_error(argv, capsys) -> str:
    """main(argv) must end with exit code 2 and one line on stderr; returns that line."""
    from rnnfast import cli as cli_module

    try:
        code = cli_module.main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_run_with_constants_and_shapes_matches_the_model(tmp_path):
    r = cli("run", LSTM, "-O", "batch_first=false", "--input", "input=3x2x5", "--value", "input=0.5", "--value",
            "h0=-0.25", "--value", "c0=1", "--batch", 2, "-o", "y.npz", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "constant input, h0, c0" in r.stdout and "input float32 [3, 2, 5]" in r.stdout
    model = rnnfast.load(LSTM, batch_first=False)
    want = model.run({"input": np.full((3, 2, 5), 0.5, np.float32), "h0": np.full((1, 2, 8), -0.25, np.float32),
                      "c0": np.ones((1, 2, 8), np.float32)})
    with np.load(tmp_path / "y.npz") as got:
        for name, w in zip(model.output_names, want):
            assert_close(got[name], w, what=name)


def test_verify_inputs_file_and_spec_together(tmp_path):
    """--inputs gives `input`; the spec adds h0, which the file leaves out; c0 stays out (optional)."""
    x = np.random.default_rng(3).standard_normal((4, 2, 5)).astype(np.float32)
    np.savez(tmp_path / "x.npz", input=x)
    r = cli("verify", LSTM, "-O", "batch_first=false", "--inputs", "x.npz", "--input", "h0=1x2x8:float32:-0.5..0.5",
            "--json", "--against", "reference", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["inputs"] == {"input": {"dtype": "float32", "shape": [4, 2, 5]},
                              "h0": {"dtype": "float32", "shape": [1, 2, 8]}}
    assert info["input"] == "from x.npz; random, seed 0"
    assert [o["oracle"] for o in info["oracles"]] == ["reference"] and info["ok"]


def test_ranges_dtypes_and_scalars(capsys):
    from rnnfast.cli import build_parser
    from rnnfast.cli.inputs import input_plan, make_feeds

    model = rnnfast.load(LSTM, batch_first=False)
    args = build_parser().parse_args(["bench", str(LSTM), "--input", "input=6x3x5:float64:2..3", "--input",
                                      "h0=:float32:-1e-3..1e-3", "--input", "c0=1x3x8:int32:-2..2"])
    feeds, source, unsure = make_feeds(input_plan(args), model, seq_len=7, batch=3, seed=1)
    assert feeds["input"].dtype == np.float64 and feeds["input"].shape == (6, 3, 5)
    assert 2 <= feeds["input"].min() and feeds["input"].max() < 3
    assert feeds["h0"].shape == (1, 3, 8) and np.abs(feeds["h0"]).max() <= 1e-3  # declared shape, batch from --batch
    assert feeds["c0"].dtype == np.int32 and set(np.unique(feeds["c0"])) <= {-2, -1, 0, 1, 2}
    assert len(np.unique(feeds["c0"])) > 2 and unsure == [] and source == "random, seed 1"
    args = build_parser().parse_args(["bench", str(LSTM), "--input", "input=scalar", "--value", "h0=3"])
    with pytest.raises(rnnfast.cli.common.CliError, match="input 'input' has 3 dims"):
        make_feeds(input_plan(args), model, seq_len=7, batch=3, seed=1)


def test_float_ids_feeding_a_table_are_drawn_inside_it(float_ids_model, tmp_path):
    from rnnfast.cli.inputs import random_inputs

    x = random_inputs(rnnfast.load(float_ids_model), seq_len=200, batch=2, seed=0)["x"]
    assert x.dtype == np.float32 and x.shape == (2, 200)
    assert np.array_equal(x, np.round(x)) and x.min() >= 0 and x.max() <= 9 and len(np.unique(x)) == 10
    # keras.Input's default dtype is float32: the IMDB fixture with its int32 input declared float32, as most are.
    with zipfile.ZipFile(DATA / "keras" / "k3_seed_imdb_embedding_simplernn.keras") as z:
        files = {n: z.read(n) for n in z.namelist()}
    config = json.loads(files["config.json"])
    text = json.dumps(config)
    assert text.count('"int32"') == 1
    files["config.json"] = text.replace('"int32"', '"float32"').encode()
    with zipfile.ZipFile(tmp_path / "float_ids.keras", "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    vocab = [layer["config"]["input_dim"] for layer in config["config"]["layers"] if layer["class_name"] == "Embedding"]
    (x,) = random_inputs(rnnfast.load(tmp_path / "float_ids.keras"), seq_len=8, batch=64, seed=0).values()
    assert x.dtype == np.float32 and np.array_equal(x, np.round(x)) and x.min() >= 0 and x.max() < vocab[0]
    assert x.max() >= vocab[0] * 0.9  # drawn over the whole vocabulary


def test_unguessable_dims_are_named_with_the_input_that_sets_them(tmp_path, state_model):
    r = cli("verify", state_model, cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "input 'state' has dims [2, k?, 4] (guessed 2x8x4): give --input state=2xNx4" in r.stderr
    r = cli("verify", state_model, "--input", "state=2x1x4", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["inputs"]["state"]["shape"] == [2, 1, 4] and not any("guessed" in n for n in info["notes"])


def test_a_run_on_guessed_dims_says_so(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "chunk"])
    path = _onnx(tmp_path, "relu", [helper.make_node("Relu", ["x"], ["y"])], [x], {})
    r = cli("bench", path, "--seconds", "0.1", "--seq-len", 5, "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["inputs"]["x"]["shape"] == [1, 5]
    assert "dims guessed: input 'x' has dims [batch, chunk?] (guessed 1x5): give --input x=1xN" in info["notes"]


@pytest.mark.parametrize("args, message", [
    (["--input", "input=x3"], "'input=x3' is neither an existing .npz/.npy file nor NAME=SHAPE"),
    (["--input", "input=2x0x5"], "dims must be >= 1, got 2x0x5"),
    (["--input", "input=2x1x5:complex64"], "unknown dtype 'complex64'; expected one of float32"),
    (["--input", "input=2x1x5:float32:3..1"], "expected finite LOW..HIGH with LOW < HIGH, got 3..1"),
    (["--input", "input=2x1x5:float32:1..1"], "expected finite LOW..HIGH with LOW < HIGH, got 1..1"),
    (["--input", "input=2x1x5:bool:0..1"], "a bool input takes no LOW..HIGH range"),
    (["--input", "input=2x1x5:float32:0..inf"], "expected finite LOW..HIGH"),
    (["--value", "h0"], "expected NAME=V (a number, true or false)"),
    (["--value", "h0=abc"], "'abc' is not a number, true or false"),
    (["--value", "h0=nan"], "expected a finite number"),
    (["--against", "tensorflow"], "unknown oracle 'tensorflow'; expected some of reference, onnxruntime"),
    (["--against", "torch,,keras"], "unknown oracle ''"),
])
def test_bad_input_arguments_are_refused_by_the_parser(args, message, capsys, monkeypatch):
    monkeypatch.setattr("rnnfast.cli.common.load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    line = _usage_error(["verify", LSTM, *args], capsys)
    assert message in line and args[0] in line


@pytest.mark.parametrize("args, message", [
    (["--input", "nope=3"], "--input/--value nope: the model has no input 'nope'; its inputs are input, h0, c0"),
    (["--input", "input=4x2"], "--input input=4x2: input 'input' has 3 dims ['seq_len', 'batch', 5], the shape "
                               "given has 2"),
    (["--input", "input=4x2x6"], "dim 2 of input 'input' is 5"),
    (["--input", "h0=1x2x8", "--input", "h0=1x1x8"], "--input h0=... given twice"),
    (["--value", "h0=1", "--value", "h0=2"], "--value h0=... given twice"),
    (["--inputs", "{x}", "--value", "input=1"], "input 'input' is both in"),
    (["--inputs", "{x}", "--input", "{x}"], "inputs from several files"),
    (["--input", "c0=:int64:0.2..0.7"], "no int64 value lies in 0.2..0.7"),
    (["--inputs", "missing.npz"], "missing.npz: cannot read"),
])
def test_bad_inputs_for_the_model_name_what_is_wrong(args, message, tmp_path, capsys):
    np.savez(tmp_path / "x.npz", input=np.zeros((2, 1, 5), np.float32))
    args = [a.replace("{x}", str(tmp_path / "x.npz")) for a in args]
    line = _usage_error(["run", LSTM, "-O", "batch_first=false", "-o", tmp_path / "y.npz", *args], capsys)
    assert message in line
    assert not (tmp_path / "y.npz").exists()


def test_run_without_inputs_says_how_to_give_them(tmp_path, capsys):
    line = _usage_error(["run", LSTM, "-o", tmp_path / "y.npz"], capsys)
    assert "run needs inputs: --inputs X.npz, or --input NAME=SHAPE" in line
