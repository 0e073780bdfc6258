"""nn.LSTMCell / GRUCell / RNNCell weights in every file kind (.pt, legacy checkpoint .pth, .safetensors, raw .npz,
pickled numpy dict) against torch's recorded outputs (tests/data/torch/cells/, tools/make_torch_fixtures.py cells):
one step, and the cell applied in a loop (cell_loop=True); the rename option; bad and hostile files."""
from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest

import rnnfast
from conftest import assert_close, package_env
from rnnfast import AssumptionWarning, FormatError

DATA = os.path.join(os.path.dirname(__file__), "data", "torch", "cells")
KINDS = ("lstm", "gru", "rnn")
FILES = (".pt", "_checkpoint.pth", ".safetensors", ".weights.npz", ".pkl")


def io_arrays(kind):
    with np.load(os.path.join(DATA, f"{kind}_cell.io.npz"), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads(str(arrays.pop("load_options")))


def path(kind, ext):
    return os.path.join(DATA, f"{kind}_cell{ext}")


def load(file, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AssumptionWarning)
        return rnnfast.load(file, **options)


def weights(kind):
    """The cell's tensors as torch wrote them to the .npz (decoder.cell.* names), read with numpy."""
    with np.load(path(kind, ".weights.npz"), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def npz_bytes(arrays):
    f = io.BytesIO()
    np.savez(f, **arrays)
    return f.getvalue()


@pytest.mark.parametrize("ext", FILES)
@pytest.mark.parametrize("kind", KINDS)
def test_one_step_matches_torch(kind, ext):
    arrays, options = io_arrays(kind)
    model = load(path(kind, ext), **options)
    lstm = kind == "lstm"
    assert model.input_names == ["input", "h0"] + (["c0"] if lstm else [])
    assert model.output_names == ["h1"] + (["c1"] if lstm else [])
    feeds = {"input": arrays["step_input"], "h0": arrays["step_h0"]}
    if lstm:
        feeds["c0"] = arrays["step_c0"]
    outputs = model.run(feeds)
    assert len(outputs) == len(model.output_names)
    for name, actual in zip(model.output_names, outputs):
        assert actual.dtype == np.float32
        assert_close(actual, arrays[f"step_{name}"], what=name)
    assert "one step" in model.describe()


@pytest.mark.parametrize("ext", FILES)
@pytest.mark.parametrize("kind", KINDS)
def test_cell_loop_matches_torch(kind, ext):
    arrays, options = io_arrays(kind)
    model = load(path(kind, ext), cell_loop=True, batch_first=False, **options)
    lstm = kind == "lstm"
    assert model.output_names == ["output", "h_n"] + (["c_n"] if lstm else [])
    feeds = {"input": arrays["loop_input"], "h0": arrays["loop_h0"]}
    if lstm:
        feeds["c0"] = arrays["loop_c0"]
    for name, actual in zip(model.output_names, model.run(feeds)):
        assert_close(actual, arrays[f"loop_{name}"], what=name)


@pytest.mark.parametrize("kind", KINDS)
def test_loop_batch_first_and_unbatched_step(kind):
    arrays, options = io_arrays(kind)
    model = load(path(kind, ".pt"), cell_loop=True, batch_first=True, **options)
    out = model.run({"input": arrays["loop_input"].transpose(1, 0, 2), "h0": arrays["loop_h0"],
                     **({"c0": arrays["loop_c0"]} if kind == "lstm" else {})})
    assert_close(out[0], arrays["loop_output"].transpose(1, 0, 2))
    assert_close(out[1], arrays["loop_h_n"])
    step = load(path(kind, ".pt"), **options)
    feeds = {"input": arrays["step_input"][1], "h0": arrays["step_h0"][1]}
    if kind == "lstm":
        feeds["c0"] = arrays["step_c0"][1]
    for name, actual in zip(step.output_names, step.run(feeds)):
        assert actual.shape == arrays[f"step_{name}"][1].shape
        assert_close(actual, arrays[f"step_{name}"][1], what=name)


@pytest.mark.parametrize("cell_loop", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_stream_steps_through_the_loop(kind, cell_loop):
    arrays, options = io_arrays(kind)
    model = load(path(kind, ".safetensors"), cell_loop=cell_loop, **options)
    x = arrays["loop_input"]
    stream = model.stream(batch=x.shape[1])
    state = {"layer0.h": arrays["loop_h0"]}
    if kind == "lstm":
        state["layer0.c"] = arrays["loop_c0"]
    stream.state = state
    for t in range(x.shape[0]):
        assert_close(stream.step(x[t]), arrays["loop_output"][t], what=f"step {t}")
    assert_close(stream.state["layer0.h"], arrays["loop_h_n"])


def test_one_step_without_state_starts_from_zeros():
    arrays, _ = io_arrays("gru")
    model = load(path("gru", ".pt"))
    zero = np.zeros_like(arrays["step_h0"])
    np.testing.assert_array_equal(model.run({"input": arrays["step_input"]})[0],
                                  model.run({"input": arrays["step_input"], "h0": zero})[0])
    with pytest.raises(ValueError, match=r"h0 must have shape \(3, 10\)"):
        model.run({"input": arrays["step_input"], "h0": zero[:2]})
    with pytest.raises(ValueError, match=r"input of one nn.GRUCell step must be float \[batch, 4\]"):
        model.run({"input": arrays["loop_input"]})


@pytest.mark.parametrize("ext", [".weights.npz", ".pkl"])
def test_layered_pytorch_names_in_npz_and_pickle(ext):
    with np.load(os.path.join(DATA, "gru_layers.io.npz"), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    model = load(os.path.join(DATA, f"gru_layers{ext}"))
    for name, actual in zip(model.output_names, model.run({"input": arrays["input"], "h0": arrays["h0"]})):
        assert_close(actual, arrays[name], what=name)


def test_what_the_file_does_not_store_is_a_named_assumption():
    with pytest.warns(AssumptionWarning, match=r"module 'decoder.cell': assumed nonlinearity='tanh'"):
        rnnfast.load(path("rnn", ".pkl"))
    with pytest.raises(FormatError, match=r"strict=True.*nonlinearity='tanh'"):
        rnnfast.load(path("rnn", ".pkl"), strict=True)
    with pytest.warns(AssumptionWarning, match=r"assumed batch_first=False \(a cell applied in a loop"):
        rnnfast.load(path("gru", ".pt"), cell_loop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AssumptionWarning)
        rnnfast.load(path("lstm", ".pt"))  # one step of an LSTMCell leaves nothing open
        rnnfast.load(path("rnn", ".pt"), nonlinearity="relu")


def test_options_that_do_not_apply_are_refused():
    with pytest.raises(ValueError, match=r"batch_first applies to a cell run over a sequence.*cell_loop=True"):
        rnnfast.load(path("lstm", ".pt"), batch_first=True)
    with pytest.raises(ValueError, match=r"head applies to a cell run over a sequence"):
        rnnfast.load(path("lstm", ".pt"), head="fc")
    with pytest.raises(ValueError, match=r"nonlinearity applies to nn.RNNCell only.*nn.LSTMCell"):
        rnnfast.load(path("lstm", ".pt"), nonlinearity="relu")
    with pytest.raises(ValueError, match=r"option cell_loop must be true or false, got 'yes'"):
        rnnfast.load(path("lstm", ".pt"), cell_loop="yes")
    with pytest.raises(ValueError, match=r"cell_loop applies to the weights of a cell.*rnn\.weight_ih_l0"):
        rnnfast.load(os.path.join(DATA, "gru_layers.pkl"), cell_loop=True)
    with pytest.raises(TypeError, match=r"sequence_lens"):
        load(path("gru", ".pt")).run({"input": np.zeros((2, 4), np.float32)}, sequence_lens=[1, 1])


# ---- rename ----
PROJECT = {"decoder.cell.weight_ih": "dec_w_ih", "decoder.cell.weight_hh": "dec_w_hh",
           "decoder.cell.bias_ih": "dec_b_ih", "decoder.cell.bias_hh": "dec_b_hh"}


def project_file(kind, extra=None):
    """The cell's weights under a project's own names (dec_w_ih ...), as a raw .npz."""
    return npz_bytes({**{PROJECT[k]: v for k, v in weights(kind).items()}, **(extra or {})})


@pytest.mark.parametrize("mapping", [
    {"dec_w_ih": "weight_ih", "dec_w_hh": "weight_hh", "dec_b_ih": "bias_ih", "dec_b_hh": "bias_hh"},
    ["dec_w_ih=cell.weight_ih", "dec_w_hh=cell.weight_hh", "dec_b_ih=cell.bias_ih", "dec_b_hh=cell.bias_hh"],
    {"dec_w_": "weight_", "dec_b_": "bias_"},
])
def test_rename_maps_project_names(mapping):
    arrays, _ = io_arrays("lstm")
    with pytest.raises(FormatError, match=r"no nn.RNN/LSTM/GRU weights.*dec_b_hh.*rename="):
        rnnfast.load(project_file("lstm"))
    model = load(project_file("lstm"), rename=mapping)
    h1, c1 = model.run({"input": arrays["step_input"], "h0": arrays["step_h0"], "c0": arrays["step_c0"]})
    assert_close(h1, arrays["step_h1"])
    assert_close(c1, arrays["step_c1"])


def test_rename_to_layered_names_and_longest_prefix_wins():
    """enc_ -> lstm. as a prefix, with a longer exact entry for one name: a layered LSTM of one layer, as the loop."""
    arrays, _ = io_arrays("lstm")
    w = weights("lstm")
    data = npz_bytes({"enc_weight_ih_l0": w["decoder.cell.weight_ih"], "enc_weight_hh_l0": w["decoder.cell.weight_hh"],
                      "enc_bias_ih_l0": w["decoder.cell.bias_ih"], "enc_b_hh": w["decoder.cell.bias_hh"]})
    model = load(data, rename={"enc_": "lstm.", "enc_b_hh": "lstm.bias_hh_l0"})
    out = model.run({"input": arrays["loop_input"], "h0": arrays["loop_h0"], "c0": arrays["loop_c0"]})
    assert_close(out[0], arrays["loop_output"])


def test_rename_errors_name_the_key():
    mapping = {"dec_w_": "weight_", "dec_b_": "bias_"}
    with pytest.raises(FormatError, match=r"rename \['dec_x_'\] matches no tensor name"):
        rnnfast.load(project_file("gru"), rename={**mapping, "dec_x_": "x"})
    with pytest.raises(FormatError, match=r"two tensors the name 'weight_ih': 'dec_w_ih' and 'weight_ih'|"
                                          r"two tensors the name 'weight_ih': 'weight_ih' and 'dec_w_ih'"):
        rnnfast.load(project_file("gru", {"weight_ih": np.zeros((30, 4), np.float32)}), rename=mapping)
    with pytest.raises(FormatError, match=r"1 tensor\(s\) left unused: weight_extra \(renamed from dec_w_extra\)"):
        rnnfast.load(project_file("gru", {"dec_w_extra": np.zeros(3, np.float32)}), rename=mapping)
    with pytest.raises(ValueError, match=r"rename entry 'dec_w_ih': expected OLD=NEW"):
        rnnfast.load(project_file("gru"), rename=["dec_w_ih"])


# ---- bad files ----
def cell_npz(kind="lstm", **changes):
    w = {k.replace("decoder.cell.", ""): v for k, v in weights(kind).items()}
    for k, v in changes.items():
        if v is None:
            del w[k]
        else:
            w[k] = v
    return npz_bytes(w)


def test_wrong_shaped_cell_weight_names_the_key():
    with pytest.raises(FormatError, match=r"weight_hh has shape \(32, 9\): rows must be 1, 3 or 4 times the hidden "
                                          r"size 9"):
        rnnfast.load(cell_npz(weight_hh=np.zeros((32, 9), np.float32)))
    with pytest.raises(FormatError, match=r"weight_ih has 30 rows, weight_hh has 32"):
        rnnfast.load(cell_npz(weight_ih=np.zeros((30, 5), np.float32)))
    with pytest.raises(FormatError, match=r"bias_ih has shape \(31,\), expected \(32,\)"):
        rnnfast.load(cell_npz(bias_ih=np.zeros(31, np.float32)))
    with pytest.raises(FormatError, match=r"weight_ih is int64 with shape \(32, 5\), expected a 2-D float tensor"):
        rnnfast.load(cell_npz(weight_ih=np.zeros((32, 5), np.int64)))


def test_missing_cell_tensors_are_named():
    with pytest.raises(FormatError, match=r"bias_ih and bias_hh must both be present \(bias=True\) or both absent "
                                          r"\(bias=False\); bias_hh is missing \(cell <top>\)"):
        rnnfast.load(cell_npz(bias_hh=None))
    with pytest.raises(FormatError, match=r"missing \['weight_hh'\] \(cell <top>\)"):
        rnnfast.load(cell_npz(weight_hh=None))


def test_cell_and_layered_keys_together_are_ambiguous():
    w = weights("gru")
    mixed = {k.replace("decoder.cell.", ""): v for k, v in w.items()}
    mixed.update({"weight_ih_l0": w["decoder.cell.weight_ih"], "weight_hh_l0": w["decoder.cell.weight_hh"]})
    with pytest.raises(FormatError, match=r"weight_ih \(a cell.*\) and weight_ih_l0 \(a layered.*under one prefix "
                                          r"'<top>'; expected the keys of one module"):
        rnnfast.load(npz_bytes(mixed))
    apart = {**w, "lstm.weight_ih_l0": w["decoder.cell.weight_ih"], "lstm.weight_hh_l0": w["decoder.cell.weight_hh"]}
    with pytest.raises(FormatError, match=r"several recurrent modules \['decoder.cell.', 'lstm.'\] \(keys "
                                          r"decoder.cell.weight_ih, lstm.weight_ih_l0\); choose one with rnn="):
        rnnfast.load(npz_bytes(apart))
    model = load(npz_bytes(apart), rnn="decoder.cell", ignore=["lstm."])
    assert model.output_names == ["h1"]


def test_damaged_npz_is_refused_by_name():
    good = cell_npz()
    with zipfile.ZipFile(io.BytesIO(good)) as z:
        members = {n: z.read(n) for n in z.namelist()}

    def rezip(**replace):
        f = io.BytesIO()
        with zipfile.ZipFile(f, "w") as z:
            for n, raw in {**members, **replace}.items():
                z.writestr(n, raw)
        return f.getvalue()

    raw = members["weight_hh.npy"]
    with pytest.raises(FormatError, match=r"weight_hh.npy: shape \(32, 8\) of float32 needs 1024 bytes, the member "
                                          r"holds 1020"):
        rnnfast.load(rezip(**{"weight_hh.npy": raw[:-4]}))
    obj = io.BytesIO()
    np.save(obj, np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(FormatError, match=r"bias_ih.npy: dtype '\|O'; only arrays of numbers are read"):
        rnnfast.load(rezip(**{"bias_ih.npy": obj.getvalue()}))
    with pytest.raises(FormatError, match=r"weight_ih.npy: not a .npy array"):
        rnnfast.load(rezip(**{"weight_ih.npy": b"not an array at all"}))


# ---- hostile pickles ----
class _System:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_malicious_pickled_numpy_dict_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    data = pickle.dumps({**weights("gru"), "evil": _System(f"touch {marker}")}, protocol=4)
    with pytest.raises(FormatError, match=r"refused global '(posix|nt)\.system'.*nothing was imported or called"):
        rnnfast.load(data)
    assert not marker.exists()
    # An allowed function handed another class to build: refused before it is used.
    other = (b"\x80\x02cnumpy._core.multiarray\n_reconstruct\nccollections\nOrderedDict\nK\x00\x85C\x01b\x87R"
             b"}(X\x01\x00\x00\x00wq\x00b.")
    with pytest.raises(FormatError, match=r"_reconstruct of .*OrderedDict.*only numpy.ndarray itself is read"):
        rnnfast.load(other)


class Sub(np.ndarray):
    pass


def test_numpy_stand_ins_check_what_they_build():
    sub = np.zeros(3, np.float32).view(Sub)
    with pytest.raises(FormatError, match=r"refused global '.*Sub'"):
        rnnfast.load(pickle.dumps({"weight_ih": sub}, protocol=4))
    with pytest.raises(FormatError, match=r"numpy dtype 'O8': only numbers are read \(an object array"):
        rnnfast.load(pickle.dumps({"weight_ih": np.array([1, None], dtype=object)}, protocol=4))
    # A second BUILD would rewrite an array after it was checked: pickle opcodes `b` (BUILD) after the first.
    data = pickle.dumps({"weight_ih": np.zeros(2, np.float32)}, protocol=2)
    end = data.rindex(b"b")
    twice = data[:end + 1] + data[data.index(b"(K\x01"):end + 1] + data[end + 1:]
    with pytest.raises(FormatError, match=r"BUILD opcode rewrites a NumpyArray record"):
        rnnfast.load(twice)
    short = pickle.dumps({"w": np.zeros(4, np.float32)}, protocol=5).replace(b"\x04\x85", b"\x05\x85")
    with pytest.raises(FormatError, match=r"shape \(5,\) and dtype float32 needs 20 bytes, the pickle holds 16"):
        rnnfast.load(short)
    numpy1 = pickle.dumps({"w": np.zeros(2, np.float32)}, protocol=2).replace(b"numpy._core.multiarray",
                                                                              b"numpy.core.multiarray")
    with pytest.raises(FormatError, match=r"no nn.RNN/LSTM/GRU weights .* among the tensors \['w'\]"):
        rnnfast.load(numpy1)  # numpy 1.x's module names read the same


# ---- the command line ----
def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "rnnfast", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=package_env(), timeout=300)


def test_cli_inspect_run_convert_on_cells(tmp_path):
    r = cli("inspect", path("lstm", ".pkl"), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert [i["name"] for i in info["inputs"]] == ["input", "h0", "c0"]
    assert [o["name"] for o in info["outputs"]] == ["h1", "c1"]

    arrays, _ = io_arrays("gru")
    np.savez(tmp_path / "in.npz", input=arrays["loop_input"], h0=arrays["loop_h0"])
    r = cli("run", path("gru", ".weights.npz"), "-O", "cell_loop=true", "--input", "in.npz", "--output", "out.npz",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "assumed batch_first=False" in r.stderr
    with np.load(tmp_path / "out.npz") as out:
        assert_close(out["output"], arrays["loop_output"])
        assert_close(out["h_n"], arrays["loop_h_n"])

    r = cli("verify", path("lstm", ".pt"), cwd=tmp_path)  # the float64 reference and the whole graph's ONNX export
    assert r.returncode == 0 and "result: PASS" in r.stdout and "onnxruntime (its ONNX export)" in r.stdout, r.stdout

    r = cli("convert", path("rnn", ".pt"), "rnn.rnnf", "-O", "nonlinearity=relu", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    arrays, _ = io_arrays("rnn")
    (h1,) = rnnfast.load(tmp_path / "rnn.rnnf").run({"input": arrays["step_input"], "h0": arrays["step_h0"]})
    assert_close(h1, arrays["step_h1"])


def test_cli_rename(tmp_path):
    (tmp_path / "project.npz").write_bytes(project_file("gru"))
    arrays, _ = io_arrays("gru")
    np.savez(tmp_path / "in.npz", input=arrays["step_input"], h0=arrays["step_h0"])
    r = cli("run", "project.npz", "--rename", "dec_w_=weight_", "--rename", "dec_b_=bias_", "--input", "in.npz",
            "--output", "out.npz", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "out.npz") as out:
        assert_close(out["h1"], arrays["step_h1"])
    r = cli("inspect", "project.npz", "--rename", "dec_w_ih", cwd=tmp_path)
    assert r.returncode == 2 and "--rename 'dec_w_ih': expected OLD=NEW" in r.stderr, r.stderr


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_cli_export_c_of_a_cell_compiles_and_checks_itself(tmp_path):
    r = cli("export-c", path("lstm", ".safetensors"), "-O", "cell_loop=true", "-O", "batch_first=false", "-o", "out",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "step function: yes" in r.stdout
    out = tmp_path / "out"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", str(out / "model.c"),
                    str(out / "model_test.c"), "-lm", "-o", str(out / "t")], check=True, timeout=120)
    result = subprocess.run([str(out / "t")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "ok" in result.stdout + result.stderr, result.stdout + result.stderr
    r = cli("export-c", path("gru", ".pkl"), "-o", "graph", "--dim", "batch=2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "graph" / "model.c").exists()
    r = cli("export-c", path("gru", ".pkl"), "-o", "lens", "--dim", "batch=2", "--sequence-lens", cwd=tmp_path)
    assert r.returncode == 2 and "takes no sequence lengths" in r.stderr, r.stderr
    r = cli("export-c", path("gru", ".pkl"), "-o", "chain", cwd=tmp_path)  # one step is no chain: the whole graph
    assert r.returncode == 2 and "one step of an nn.GRUCell" in r.stdout, r.stdout
    assert "give 'batch' in dims (--dim NAME=SIZE)" in r.stderr, r.stderr
