""".rnnf 2 in Python: a graph written by rnnfast.exporters.rnnf_graph loads with rnnfast.load as a Model that runs
through the C executor (checked against onnxruntime), streams along the file's state loops (checked against
torch's chunk-by-chunk record), names its inputs and outputs with symbolic dims, and `convert` writes it by default;
a graph with an operator outside the C set is refused by node and operator."""
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper
from test_onnx_reference_ops import lstm_then

import rnnfast
from conftest import assert_close
from rnnfast.cli import main as cli_main
from rnnfast.exporters.rnnf_graph import graph_to_bytes, save_rnnf_graph
from rnnfast.errors import FormatError

DATA = Path(__file__).parent / "data"
GRAPH = DATA / "onnx" / "graph"


@pytest.fixture(scope="module")
def vad():
    source = rnnfast.load(GRAPH / "vad.ts.onnx")
    return source, rnnfast.load(graph_to_bytes(source.graph.compiled, "vad.ts.onnx"))


def test_v2_file_runs_like_onnxruntime_and_the_source(vad):
    source, model = vad
    record = np.load(GRAPH / "vad.npz")
    feeds = {n: record[f"in:{n}"] for n in model.input_names}
    got = model.run(feeds)
    want = ort.InferenceSession(str(GRAPH / "vad.ts.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds)
    for g, w, n in zip(got, want, model.output_names):
        assert_close(g, w, what=f"vad {n}: .rnnf 2 vs onnxruntime")
    for g, s in zip(got, source.run(feeds)):
        np.testing.assert_array_equal(g, s)  # the same C graph, from the file
    assert model.input_names == ["input", "state", "sr"] and model.output_names == ["output", "stateN"]
    assert [i.shape for i in model.inputs] == [["batch", "chunk"], [2, "batch", 64], []]
    assert [i.type for i in model.inputs] == ["tensor(float)", "tensor(float)", "tensor(int64)"]
    text = model.describe()
    assert "vad.ts.onnx" in text and "IF x1" in text and "state -> stateN" in text


def test_v2_file_streams_along_its_state_loop(vad):
    _, model = vad
    record = np.load(GRAPH / "vad.npz")
    stream = model.stream(batch=1)
    assert stream.pairs == {"state": "stateN"}
    for t in range(record["stream_in:input"].shape[0]):
        prob = stream.step({"input": record["stream_in:input"][t], "sr": record["stream_in:sr"][t]})
        assert_close(prob, record["stream_out:output"][t], what=f"vad stream step {t} vs torch")


def test_convert_writes_v2_by_default_and_v1_when_asked(tmp_path, capsys):
    assert cli_main(["convert", str(GRAPH / "denoiser.dynamo.onnx"), str(tmp_path / "d.rnnf")]) == 0
    out = capsys.readouterr().out
    assert "(rnnf 2," in out and "check ok" in out and "2 output(s) compared" in out
    assert rnnfast.load(tmp_path / "d.rnnf").output_names == ["mask", "hn"]
    assert cli_main(["convert", str(GRAPH / "denoiser.dynamo.onnx"), str(tmp_path / "q.rnnf"), "--quantize",
                     "int8"]) == 0
    assert "quantization (int8)" in capsys.readouterr().out
    assert (tmp_path / "q.rnnf").stat().st_size < 0.6 * (tmp_path / "d.rnnf").stat().st_size
    chain = DATA / "onnx" / "rnn_relu_stacked.ts.onnx"
    assert cli_main(["convert", str(chain), str(tmp_path / "c1.rnnf"), "--rnnf-version", "1"]) == 0
    assert (tmp_path / "c1.rnnf").read_bytes()[4:6] == b"\x01\x00"


def test_an_operator_outside_c_is_refused_by_node_and_op(tmp_path):
    model = rnnfast.load(lstm_then([helper.make_node("Sin", ["ys"], ["out"], name="sin")], "out"))
    with pytest.raises(FormatError, match=r"node sin \(Sin\): this operator has no C kernel"):
        save_rnnf_graph(model, tmp_path / "m.rnnf")
    assert not (tmp_path / "m.rnnf").exists()


def _dims_of_program(prog: list, n_syms: int):
    from rnnfast.importers.rnnf_graph import _dims

    desc = {"sym_names": [f"s{i}" for i in range(n_syms)], "tensors": [(0, 1, 0)],
            "dim_start": [0, len(prog) // 2], "prog": prog}
    return _dims(desc, 0)[0]


def test_a_dimension_program_is_expanded_only_while_it_stays_small():
    from rnnfast.graph.dims import Dim

    SYM, ADD, MUL = 1, 2, 4
    small = [SYM, 0, SYM, 1, ADD, 0, SYM, 2, MUL, 0]  # (s0 + s1) * s2
    assert _dims_of_program(small, 3) == Dim.symbol("s0") * Dim.symbol("s2") + Dim.symbol("s1") * Dim.symbol("s2")
    # a product of 12 sums of distinct symbols has 4096 terms; a crafted file must not make the reader expand it
    blown = [SYM, 0, SYM, 1, ADD, 0]
    for i in range(1, 12):
        blown += [SYM, 2 * i, SYM, 2 * i + 1, ADD, 0, MUL, 0]
    assert _dims_of_program(blown, 24) == Dim.symbol("dim0")
    # products of constants: Python's integers would grow without bound
    huge = [0, 1 << 40] + [0, 1 << 40, MUL, 0] * 3
    assert _dims_of_program(huge, 0) == Dim.symbol("dim0")
    long_sum = [SYM, 0] + [SYM, 0, ADD, 0] * 40
    assert _dims_of_program(long_sum, 1) == Dim.symbol("dim0")


def test_a_stateful_keras_model_converts_with_its_states_as_loops(tmp_path, capsys):
    """The file holds the graph the model runs: its layers' states are inputs and outputs paired as state loops,
    so chunks fed with the previous chunk's states give what Keras's stateful predict recorded."""
    source = DATA / "keras" / "k3_seed_stateful_lstm.keras"
    assert cli_main(["convert", str(source), str(tmp_path / "s.rnnf")]) == 0
    assert "check ok" in capsys.readouterr().out
    model = rnnfast.load(tmp_path / "s.rnnf")
    states = [n for n in model.input_names if ":state_" in n]
    assert len(states) == 3 and len(model.output_names) == 4
    with np.load(DATA / "keras" / "k3_seed_stateful_lstm.npz") as z:
        held = {n: np.zeros(i.shape[:1] + [2] + i.shape[2:], np.float32)
                for n, i in zip(model.input_names, model.inputs) if n in states}
        for chunk in range(3):  # the recording resets before chunk 3
            outs = model.run({model.input_names[0]: z[f"c{chunk}_x0"], **held})
            assert_close(outs[0], z[f"c{chunk}_y0"], what=f"chunk {chunk}")
            held = dict(zip(states, outs[1:]))


def test_convert_check_takes_the_shape_a_model_needs(tmp_path, capsys):
    """An exporter that baked the traced lengths into a Reshape takes only those: the check says how to give them."""
    source = DATA / "onnx" / "lstm_states.dynamo.onnx"
    assert cli_main(["convert", str(source), str(tmp_path / "d.rnnf")]) == 2  # usage: the shapes to give
    assert "give --seq-len and --batch" in capsys.readouterr().err
    assert cli_main(["convert", str(source), str(tmp_path / "d.rnnf"), "--seq-len", "7", "--batch", "1"]) == 0
    assert "check ok" in capsys.readouterr().out


@pytest.mark.parametrize("fixture", ["tf1/bidirectional", "tf1/embedding_seqlen", "tf1/stack_bidirectional",
                                     "tf1/state_head", "torch/lstm_packed"])
def test_sequence_lengths_travel_as_a_graph_input(fixture, tmp_path):
    """TF 1.x sequence_length and PyTorch packed sequences are a run option; written with lengths=True the file
    takes them as an int32 [batch] input and gives what the framework recorded for rows that end early."""
    import json

    if fixture.startswith("tf1/"):
        source, expected = DATA / fixture / "model.ckpt", DATA / fixture / "expected.npz"
    else:
        source, expected = DATA / f"{fixture}.pt", DATA / f"{fixture}.npz"
    with np.load(expected) as z:
        recorded = {k: z[k] for k in z}
    (option, lens), = json.loads(str(recorded["run_options"])).items()
    with pytest.warns(rnnfast.AssumptionWarning) if fixture.startswith("tf1/") else _no_warning():
        model = rnnfast.load(source, **json.loads(str(recorded["load_options"])))
    save_rnnf_graph(model, tmp_path / "m.rnnf", lengths=True)
    written = rnnfast.load(tmp_path / "m.rnnf")
    lens_input = written.input_names[-1]
    assert lens_input == option and written.inputs[-1].type == "tensor(int32)"
    x = recorded["x"] if "x" in recorded else recorded["input"]
    feeds = {written.input_names[0]: x, lens_input: np.asarray(lens, np.int32)}
    for name in written.input_names[1:-1]:  # PyTorch's h0 / c0: zeros, as the recording's
        shape = [d if isinstance(d, int) else x.shape[1] for d in written.inputs[written.input_names.index(name)].shape]
        feeds[name] = np.zeros(shape, np.float32)
    got = dict(zip(written.output_names, written.run(feeds)))
    assert_close(got[written.output_names[0]], recorded["output"], what=f"{fixture} output")
    with pytest.raises(FormatError, match="takes no sequence lengths"):
        save_rnnf_graph(rnnfast.load(DATA / "keras" / "k3_seed_char_lstm.keras"), tmp_path / "k.rnnf", lengths=True)


def _no_warning():
    import contextlib

    return contextlib.nullcontext()


def test_a_final_state_declared_smaller_than_its_layer_is_refused_before_the_run(tmp_path):
    """A crafted file (found by fuzzing) declares a recurrent node's Y_h as [1, batch, 4] for a layer of hidden size
    6: the executor wrote 48 bytes into the 32 of its buffer. The executor must refuse it naming the node's output
    before anything is written (tests/test_c_rnnf_graph.py: the C library alone)."""
    path = DATA / "rnnf" / "recurrent_y_h_too_small.rnnf"
    model = rnnfast.load(path)
    feeds = {i.name: np.zeros([d if isinstance(d, int) else 2 for d in i.shape], np.float32) for i in model.inputs}
    with pytest.raises(ValueError, match=r"Y_h is \[1, 2, 4\], must be float \[1, 2, 6\]"):
        model.run(feeds)
