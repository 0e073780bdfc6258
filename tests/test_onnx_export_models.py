"""export_onnx of whole models: every fixture rnnfast runs (ONNX graphs with Conv / STFT front ends, states in and
out, an If on a graph input; Keras; PyTorch; TF1; .rnnf 1 and 2) written as ONNX, run by onnxruntime, and compared with
the source framework's recorded outputs (onnxruntime-free references: torch, Keras, TF, made by tools/ scripts),
every output by name; inputs and outputs keep their names; `outputs=` keeps only the named ones."""
import glob
import io
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import assert_close

import rnnfast
from rnnfast.errors import FormatError
from rnnfast.exporters.onnx import export_onnx

DATA = os.path.join(os.path.dirname(__file__), "data")
GRAPHS = ["vad", "denoiser", "stream_gru", "crnn"]
CASE_ONNX = sorted(os.path.basename(f)[:-5] for f in glob.glob(os.path.join(DATA, "onnx", "*.onnx")))
TORCH = sorted(os.path.basename(f)[:-4] for f in glob.glob(os.path.join(DATA, "torch", "*.npz")))
TF1 = sorted(os.path.basename(os.path.dirname(f)) for f in glob.glob(os.path.join(DATA, "tf1", "*", "expected.npz")))
# one file per Keras model (the .h5 twins of the .keras files hold the same model)
KERAS = [c for path in sorted(glob.glob(os.path.join(DATA, "keras", "manifest_*.json"))) for c in json.load(open(path))
         if not c["name"].endswith("[h5]") and "file" in c]


def written(model, **options):
    buf = io.BytesIO()
    proto = export_onnx(model, buf, **options)
    onnx.checker.check_model(proto, full_check=True)
    return ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])


def written_inputs(session) -> list:
    """The written model's inputs: onnxruntime's, then the ones backed by an initializer (rnnfast's optional ones)."""
    return list(session.get_inputs()) + list(session.get_overridable_initializers())


def run_written(session, feeds: dict) -> dict:
    types = {i.name: i.type for i in written_inputs(session)}
    cast = {"tensor(int64)": np.int64, "tensor(float)": np.float32, "tensor(bool)": np.bool_, "tensor(int32)": np.int32}
    feeds = {k: np.asarray(v).astype(cast.get(types[k], np.asarray(v).dtype)) for k, v in feeds.items()}
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def check_names(session, model, outputs=None):
    assert [i.name for i in written_inputs(session)] == model.input_names
    assert [i.name for i in session.get_overridable_initializers()] == [i.name for i in model.inputs if i.optional]
    assert [o.name for o in session.get_outputs()] == (outputs or model.output_names)


@pytest.mark.parametrize("export", ["ts", "dynamo"])
@pytest.mark.parametrize("name", GRAPHS)
def test_graph_fixtures_agree_with_torch(name, export):
    """The whole-graph fixtures against torch's own outputs; the vad through both branches of its If on `sr`."""
    model = rnnfast.load(os.path.join(DATA, "onnx", "graph", f"{name}.{export}.onnx"))
    session = written(model)
    check_names(session, model)
    z = np.load(os.path.join(DATA, "onnx", "graph", f"{name}.npz"))
    for prefix in ("", "sr8k/") if name == "vad" else ("",):
        feeds = {k[len(prefix) + 3:]: z[k] for k in z.files if k.startswith(prefix + "in:")}
        got = run_written(session, feeds)
        for k in z.files:
            if k.startswith(prefix + "out:"):
                assert_close(got[k[len(prefix) + 4:]], z[k], what=f"{name}.{export} {k}")


@pytest.mark.parametrize("name", CASE_ONNX)
def test_onnx_fixtures_agree_with_torch(name):
    model = rnnfast.load(os.path.join(DATA, "onnx", name + ".onnx"))
    session = written(model)
    check_names(session, model)
    z = np.load(os.path.join(DATA, "onnx", name + ".npz"))
    for case in sorted({k.split(".")[0] for k in z.files})[:2]:
        feeds = {k.split(".", 2)[2]: z[k] for k in z.files if k.startswith(case + ".in.")}
        got = run_written(session, feeds)
        for k in z.files:
            if k.startswith(case + ".out."):  # a quantized LSTM's int8 weights, written dequantized: int8 tolerance
                assert_close(got[k.split(".", 2)[2]], z[k], what=f"{name} {k}", int8="quant" in name)


def _torch(name):
    (path,) = [f for f in glob.glob(os.path.join(DATA, "torch", name + ".*")) if not f.endswith(".npz")]
    z = dict(np.load(os.path.join(DATA, "torch", name + ".npz")))
    return rnnfast.load(path, **json.loads(str(z.pop("load_options")))), z, json.loads(str(z.pop("run_options")))


@pytest.mark.parametrize("name", TORCH)
def test_torch_fixtures_agree_with_torch(name):
    model, z, run_options = _torch(name)
    session = written(model)
    check_names(session, model)
    if run_options:  # sequence_lens is a run option of rnnfast's, not an input of the model
        return
    if z["input"].ndim == len(model.inputs[0].shape) - 1:  # unbatched: the written graph takes a batch of 1
        axis = 0 if model.graph.batch_first else 1
        z = {k: np.expand_dims(v, axis if k in ("input", "output") else 1) for k, v in z.items()}
    batch = z["input"].shape[0 if model.graph.batch_first else 1]
    feeds = {}
    for info in model.inputs:  # torch starts from zeros where the fixture gives no state
        feeds[info.name] = z[info.name] if info.name in z else np.zeros(
            [batch if d == "batch" else d for d in info.shape], np.float32)
    got = run_written(session, feeds)
    for out in model.output_names:
        if out in z:
            assert_close(got[out], z[out], what=f"{name} {out}")


@pytest.mark.parametrize("name", TF1)
def test_tf1_fixtures_agree_with_tensorflow(name):
    z = np.load(os.path.join(DATA, "tf1", name, "expected.npz"))
    model = rnnfast.load(os.path.join(DATA, "tf1", name, "model.ckpt"), **json.loads(str(z["load_options"])))
    session = written(model)
    check_names(session, model)
    if json.loads(str(z["run_options"])):  # sequence_lens is a run option of rnnfast's, not an input of the model
        return
    got = run_written(session, {model.input_names[0]: z["x"]})
    compared = [k for k in ("output", "state_h", "state_c") if k in z.files]
    assert compared and set(compared) <= set(got)
    for k in compared:
        assert_close(got[k], z[k], what=f"{name} {k}")


def _masked(model) -> bool:
    return any(n.op == "Recurrent" and len(n.inputs) > 4 and n.inputs[4] for n in model.graph.compiled.graph.nodes)


@pytest.mark.parametrize("case", KERAS, ids=[c["name"] + "-" + c["generation"] for c in KERAS])
def test_keras_fixtures_agree_with_keras(case):
    folder = os.path.join(DATA, "keras")
    options = {"config": os.path.join(folder, case["config"])} if case.get("config") else {}
    model = rnnfast.load(os.path.join(folder, case["file"]), **options)
    z = np.load(os.path.join(folder, case["npz"]))
    if model.graph.compiled is None:
        with pytest.raises(FormatError, match="cannot be written as ONNX"):
            export_onnx(model)
        return
    if len(model.graph.compiled.graph.inputs) != len(model.input_names):
        _stateful_chunks_agree_with_keras(model, z, case["name"], case.get("reset_before", []))
        return
    feeds = {n: z[f"x{k}"] if f"x{k}" in z else z[f"c0_x{k}"] for k, n in enumerate(model.input_names)}
    want = {n: z[f"y{k}"] if f"y{k}" in z else z[f"c0_y{k}"] for k, n in enumerate(model.output_names)}
    session = written(model)  # masks and Keras-only activations as Scans: Keras' own outputs, padding anywhere
    check_names(session, model)
    got = run_written(session, feeds)
    for out in model.output_names:
        assert_close(got[out], want[out], what=f"{case['name']} {out}")
    if _masked(model):
        session = written(model, assume_suffix_padding=True)
        # the promise holds for input without padding; the reference is rnnfast's run of the source there
        feeds = {k: np.where(v == 0, 1, v) for k, v in feeds.items()}
        want = dict(zip(model.output_names, model.run(feeds)))
        got = run_written(session, feeds)
        for out in model.output_names:
            assert_close(got[out], want[out], what=f"{case['name']} {out} (suffix padding assumed)")


def _stateful_chunks_agree_with_keras(model, z, name, reset_before):
    """A stateful model's ONNX form takes and gives its layers' states: fed back chunk after chunk from zeros (and
    zeros again where the recording reset the states), it gives what Keras' stateful predict recorded."""
    compiled = model.graph.compiled
    session = written(model)
    assert [i.name for i in session.get_inputs()] == compiled.input_names
    assert [o.name for o in session.get_outputs()] == compiled.output_names
    states = [n for n in compiled.input_names if n not in model.input_names]
    assert states and len(model.input_names) == 1
    zeros = {i.name: np.zeros([d if isinstance(d, int) else z["c0_x0"].shape[0] for d in i.shape], np.float32)
             for i in session.get_inputs() if i.name in states}
    feeds = zeros
    nexts = [n for n in compiled.output_names if n not in model.output_names]
    for c in range(len([k for k in z.files if k.endswith("_x0")])):
        feeds = zeros if c in reset_before else feeds
        got = run_written(session, {model.input_names[0]: z[f"c{c}_x0"], **feeds})
        assert_close(got[model.output_names[0]], z[f"c{c}_y0"], what=f"{name} chunk {c}")
        feeds = dict(zip(states, (got[n] for n in nexts)))


def test_rnnf1_files_agree_with_torch(tmp_path):
    from rnnfast.exporters.rnnf import save_rnnf

    model, z, _ = _torch("emb_lstm_fc")  # embedding, LSTM from zero state, Linear head
    save_rnnf(model.to_pipeline(), tmp_path / "m.rnnf")
    back = rnnfast.load(str(tmp_path / "m.rnnf"))
    session = written(back)
    check_names(session, back)
    assert_close(run_written(session, {"input": z["input"]})["output"], z["output"], what=".rnnf 1")


@pytest.mark.parametrize("name", GRAPHS)
def test_rnnf2_graphs_agree_with_torch(name, tmp_path):
    """A .rnnf 2 file holds the C executor's form; lifted back to operators it matches torch, the vad through both
    branches of its If."""
    from rnnfast.exporters.rnnf_graph import save_rnnf_graph

    save_rnnf_graph(rnnfast.load(os.path.join(DATA, "onnx", "graph", f"{name}.ts.onnx")), tmp_path / "m.rnnf")
    model = rnnfast.load(str(tmp_path / "m.rnnf"))
    session = written(model)
    check_names(session, model)
    z = np.load(os.path.join(DATA, "onnx", "graph", f"{name}.npz"))
    for prefix in ("", "sr8k/") if name == "vad" else ("",):
        got = run_written(session, {k[len(prefix) + 3:]: z[k] for k in z.files if k.startswith(prefix + "in:")})
        for k in z.files:
            if k.startswith(prefix + "out:"):
                assert_close(got[k[len(prefix) + 4:]], z[k], what=f"{name} .rnnf 2 {k}")


@pytest.mark.parametrize("name", ["lstm_proj_2layer_bidir", "gru_bidir_2layer", "rnn_relu_2layer"])
def test_rnnf2_chains_agree_with_torch(name, tmp_path):
    from rnnfast.exporters.rnnf_graph import save_rnnf_graph

    source, z, _ = _torch(name)
    save_rnnf_graph(source, tmp_path / "m.rnnf")
    model = rnnfast.load(str(tmp_path / "m.rnnf"))
    session = written(model)
    check_names(session, model)
    got = run_written(session, {n: z[n] for n in model.input_names})
    for out in model.output_names:
        assert_close(got[out], z[out], what=f"{name} .rnnf 2 {out}")


def test_outputs_keeps_only_the_named_ones_and_refuses_unknown_names():
    model = rnnfast.load(os.path.join(DATA, "onnx", "graph", "vad.ts.onnx"))
    session = written(model, outputs=["stateN"])
    check_names(session, model, outputs=["stateN"])
    z = np.load(os.path.join(DATA, "onnx", "graph", "vad.npz"))
    got = run_written(session, {k[3:]: z[k] for k in z.files if k.startswith("in:")})
    assert_close(got["stateN"], z["out:stateN"])
    with pytest.raises(ValueError, match=r"no output named 'probability'.*\['output', 'stateN'\]"):
        export_onnx(model, outputs=["output", "probability"])


@pytest.mark.parametrize("opset", [13, 18, 21])
def test_other_opsets_agree_with_torch(opset):
    """Axes and sizes move from attributes to inputs across opsets (Squeeze 13, Reduce* 18): the crnn (its
    Conv front end, reshapes and stack) and the vad (Pad, ReduceMean, If) through both forms."""
    for name in ("vad", "crnn"):
        model = rnnfast.load(os.path.join(DATA, "onnx", "graph", f"{name}.dynamo.onnx"))
        session = written(model, opset=opset)
        z = np.load(os.path.join(DATA, "onnx", "graph", f"{name}.npz"))
        got = run_written(session, {k[3:]: z[k] for k in z.files if k.startswith("in:")})
        for k in z.files:
            if k.startswith("out:"):
                assert_close(got[k[4:]], z[k], what=f"{name} opset {opset} {k}")


def test_layernorm_needs_opset_17():
    model = rnnfast.load(os.path.join(DATA, "onnx", "graph", "stream_gru.ts.onnx"))
    with pytest.raises(FormatError, match="LayerNormalization is an ONNX operator from opset 17 on"):
        export_onnx(model, opset=16)
