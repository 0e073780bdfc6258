"""TensorFlow 1.x checkpoints (tests/data/tf1, written by tools/make_tf1_fixtures.py with real TensorFlow) load
without TensorFlow and reproduce TensorFlow's recorded outputs and final states: BasicLSTMCell MultiRNNCell + dense
head (with Adam slots and global_step to ignore), GRUCell, BasicRNNCell (tanh and relu), LSTMCell with peepholes and
num_proj, bidirectional_dynamic_rnn and dynamic_rnn with sequence_length (one with an embedding), layer-wise stacked
bidirectional GRUs with two dense heads (relu, linear), a non-default forget_bias."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import rnnfast
from conftest import assert_close

DATA = Path(__file__).parent / "data" / "tf1"
FIXTURES = sorted(p.name for p in DATA.iterdir() if (p / "expected.npz").exists())


def _expected(name):
    e = np.load(DATA / name / "expected.npz")
    return e, json.loads(str(e["load_options"])), json.loads(str(e["run_options"]))


def test_all_fixtures_present():
    assert set(FIXTURES) >= {"lstm2_dense", "gru", "basic_rnn", "lstm_peephole_proj", "bidirectional",
                             "embedding_seqlen", "forget_half", "basic_rnn_relu", "stack_bidirectional", "state_head"}


@pytest.mark.parametrize("name", FIXTURES)
def test_matches_tensorflow(name):
    e, load_options, run_options = _expected(name)
    model = rnnfast.load(str(DATA / name / "model.ckpt"), **load_options)
    outs = dict(zip(model.output_names, model.run(e["x"], **run_options)))
    compared = [k for k in ("output", "state_h", "state_c") if k in e.files]
    assert set(compared) <= set(outs)
    for k in compared:
        assert_close(outs[k], e[k], what=f"{name} {k}")


def test_forget_bias_is_an_assumption_that_matters():
    e, _, _ = _expected("forget_half")
    model = rnnfast.load(str(DATA / "forget_half" / "model.ckpt"))  # TF's default 1.0, not the 0.5 it was built with
    assert "forget_bias = 1.0" in model.describe()
    assert np.abs(model.run(e["x"])[0] - e["output"]).max() > 1e-3


def test_head_on_state_is_not_the_last_output_with_lengths():
    """dense(states[-1].h): with sequence_length the final state is the last valid step's, while outputs past a
    row's length are zeros; the default (heads on every output) is named as an assumption."""
    e, load_options, run_options = _expected("state_head")
    assert load_options == {"head_on": "state"}
    model = rnnfast.load(str(DATA / "state_head" / "model.ckpt"))
    assert "head_on = 'outputs'" in model.describe()
    every_step = model.run(e["x"], **run_options)[0]
    assert every_step.shape == (3, 6, 4)
    assert_close(every_step[0, -1], e["output"][0], what="full-length row: last output = final state")
    assert np.abs(every_step[1, -1] - e["output"][1]).max() > 1e-3  # row of length 3: the head on zeros
    with pytest.raises(ValueError, match="head_on 'last'"):
        rnnfast.load(str(DATA / "state_head" / "model.ckpt"), head_on="last")


def test_paths_that_name_a_checkpoint(tmp_path):
    e, _, _ = _expected("gru")
    folder = tmp_path / "ckpt"
    shutil.copytree(DATA / "gru", folder)
    (folder / "checkpoint").write_text('model_checkpoint_path: "model.ckpt"\nall_model_checkpoint_paths: '
                                       '"model.ckpt"\n')
    for path in ("model.ckpt", "model.ckpt.index", "model.ckpt.data-00000-of-00001", ""):
        model = rnnfast.load(str(folder / path) if path else str(folder))
        assert_close(model.run(e["x"])[0], e["output"], what=path or "folder")
    # A state file written where the checkpoint used to be (absolute path): the prefix beside it is used.
    (folder / "checkpoint").write_text('model_checkpoint_path: "/elsewhere/run1/model.ckpt"\n')
    assert_close(rnnfast.load(str(folder)).run(e["x"])[0], e["output"], what="moved folder")
    (folder / "checkpoint").write_text('all_model_checkpoint_paths: "model.ckpt"\n')
    with pytest.raises(rnnfast.FormatError, match="no model_checkpoint_path line"):
        rnnfast.load(str(folder))


def test_index_bytes_alone_are_refused():
    data = (DATA / "gru" / "model.ckpt.index").read_bytes()
    with pytest.raises(rnnfast.FormatError, match="TensorFlow checkpoint index; load the checkpoint by its path"):
        rnnfast.load(data)


def test_stream_matches_run():
    e, _, _ = _expected("lstm2_dense")
    model = rnnfast.load(str(DATA / "lstm2_dense" / "model.ckpt"))
    stream = model.stream(batch=3)
    steps = np.stack([stream.step(e["x"][:, t]) for t in range(e["x"].shape[1])], axis=1)
    assert_close(steps, e["output"], what="stream")


def test_embedding_stream_and_pipeline():
    e, _, _ = _expected("embedding_seqlen")
    model = rnnfast.load(str(DATA / "embedding_seqlen" / "model.ckpt"))
    assert model.inputs[0].type == "tensor(int64)"
    assert model.output_names == ["output"]  # GRU layers of 7 and 5 units: no stacked state output
    full = model.run(e["x"])[0]
    pipe = model.to_pipeline()
    from pipeline_builders import run_chain

    assert_close(run_chain(pipe, e["x"]), full, what="pipeline")
    # The rows TensorFlow ran to their full length agree without sequence_length too.
    assert_close(full[0, :5], e["output"][0, :5], what="row 0")


@pytest.mark.parametrize("name", ["lstm2_dense", "lstm_peephole_proj", "bidirectional"])
def test_convert_to_rnnf_keeps_the_outputs(name, tmp_path):
    from rnnfast.exporters.rnnf import save_rnnf

    e, load_options, _ = _expected(name)
    model = rnnfast.load(str(DATA / name / "model.ckpt"), **load_options)
    save_rnnf(model.to_pipeline(), tmp_path / "m.rnnf")
    again = rnnfast.load(str(tmp_path / "m.rnnf"))
    assert_close(again.run(e["x"])[0], model.run(e["x"])[0], what=f"{name} via .rnnf")


def test_options_refused_by_name():
    prefix = str(DATA / "lstm_peephole_proj" / "model.ckpt")
    for key in ("cell_clip", "proj_clip"):
        with pytest.raises(rnnfast.FormatError, match=key):
            rnnfast.load(prefix, **{key: 3.0})
    assert rnnfast.load(prefix, cell_clip=None) is not None
    with pytest.raises(TypeError, match="unknown option"):
        rnnfast.load(prefix, batch_first=True)
    with pytest.raises(ValueError, match="activation 'gelu'"):
        rnnfast.load(prefix, activation="gelu")


def test_time_major_option():
    e, _, _ = _expected("gru")
    model = rnnfast.load(str(DATA / "gru" / "model.ckpt"), time_major=True)
    out = model.run(np.ascontiguousarray(e["x"].transpose(1, 0, 2)))[0]
    assert_close(out.transpose(1, 0, 2), e["output"], what="time_major")


def test_cli_inspect_lists_the_cells(tmp_path):
    import subprocess
    import sys

    from conftest import package_env

    r = subprocess.run([sys.executable, "-m", "rnnfast", "inspect", "--json", str(DATA / "lstm2_dense" / "model.ckpt")],
                       capture_output=True, text=True, env=package_env(), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["format"] == "tf-checkpoint"
    names = [l["name"] for l in info["layers"]]
    assert names == ["rnn/multi_rnn_cell/cell_0/basic_lstm_cell", "rnn/multi_rnn_cell/cell_1/basic_lstm_cell",
                     "dense"]
    assert info["layers"][0]["gates"]["framework"] == "tf1"
    assert info["layers"][0]["weights"] == {"kernel": [12, 32], "bias": [32]}
    assert {d["option"] for d in info["defaults"]} >= {"forget_bias", "activation", "time_major"}
    listed = info["description"]
    assert "variables in the checkpoint (21):" in listed
    assert "rnn/multi_rnn_cell/cell_1/basic_lstm_cell/kernel float32 [16, 32] (used)" in listed
    assert "dense/kernel/Adam_1 float32 [8, 3] (ignored: optimizer or step counter)" in listed
    assert "global_step int64 [] (ignored: optimizer or step counter)" in listed


def test_runs_as_one_compiled_graph():
    from rnnfast.cli.common import executor_info

    e, _, _ = _expected("bidirectional")
    model = rnnfast.load(str(DATA / "bidirectional" / "model.ckpt"), n_threads=1)
    info = executor_info(model)
    assert info["executor"] == "C graph" and info["ops"].get("RECURRENT") == 1, info
    lens = e["sequence_length"]
    one = model.run(e["x"][1], sequence_length=lens[1:2])  # unbatched: [time, features]
    assert one[0].shape == e["output"][1].shape and one[1].shape == e["state_h"][:, 1].shape
    assert_close(one[0], e["output"][1], what="unbatched output")
    assert_close(one[1], e["state_h"][:, 1], what="unbatched state_h")
    with pytest.raises(ValueError, match=r"sequence_length must lie in \[0, 6\]"):
        model.run(e["x"], sequence_length=[7, 1, 1])
    with pytest.raises(ValueError, match="input must be numeric"):
        model.run(e["x"][..., :3])


def test_token_ids_checked_before_the_lookup():
    model = rnnfast.load(str(DATA / "embedding_seqlen" / "model.ckpt"))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 11\)"):
        model.run(np.array([[1, 11]]))
    with pytest.raises(ValueError, match="token ids for the embedding 'embedding'"):
        model.run(np.zeros((1, 2, 4), np.float32))


def test_traced_runs_go_layer_by_layer_for_verify():
    """rnnfast verify and inspect replace or watch the engine calls (cli/trace.py): the compiled graph would hide
    them, so a traced run goes layer by layer, and verify's float64 comparison is a real one."""
    from rnnfast.cli.trace import recording

    e, load_options, run_options = _expected("stack_bidirectional")
    model = rnnfast.load(str(DATA / "stack_bidirectional" / "model.ckpt"), **load_options)
    with recording(use_reference=True) as calls:
        ref = model.run(e["x"], **run_options)
    assert [len(c.layers) for c in calls] == [1, 1], "each of the two layers ran through the float64 reference"
    assert_close(ref[0], e["output"], what="float64 reference path")
    assert_close(ref[1], e["state_h"], what="float64 reference path state_h")
