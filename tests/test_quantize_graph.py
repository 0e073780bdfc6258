"""Model.quantize on models the graph executor runs: the recurrent stacks' weights are stored as int8 / float16 in
the graph itself, so the model keeps every input and output (a PyTorch model its h0/c0 and h_n/c_n, an ONNX graph
its state loop), and computes what the float64 reference computes with the weights the stored values stand for."""
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_close

import rnnfast
from rnnfast import reference
from rnnfast.graph.build import LayerSpec

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("dtype", ["int8", "float16"])
@pytest.mark.parametrize("fixture", ["lstm_proj_2layer_bidir", "gru_2layer"])
def test_a_quantized_torch_model_keeps_its_states(fixture, dtype):
    model = rnnfast.load(DATA / "torch" / f"{fixture}.pt")
    q = model.quantize(dtype)
    assert q.input_names == model.input_names and q.output_names == model.output_names
    layers = q.graph.layers
    assert {l.weight_dtype for l in layers} == {dtype}
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 2, layers[0].input_size)).astype(np.float32)
    n, first = len(layers) * layers[0].n_dirs, layers[0]
    h0 = rng.standard_normal((n, 2, first.output_size)).astype(np.float32)
    feeds = {"input": x, "h0": h0}
    if first.cell == "lstm":
        feeds["c0"] = rng.standard_normal((n, 2, first.hidden_size)).astype(np.float32)
    got = q.run(feeds)
    seq, hs, cs = x.astype(np.float64), [], []
    for k, layer in enumerate(layers):
        rows = slice(k * layer.n_dirs, (k + 1) * layer.n_dirs)
        y, y_h, y_c = reference.run_layer(layer, seq, initial_h=h0[rows],
                                          initial_c=feeds["c0"][rows] if "c0" in feeds else None)
        seq = y.transpose(0, 2, 1, 3).reshape(6, 2, -1)
        hs.append(y_h)
        cs.append(y_c)
    assert_close(got[0], seq, what="output")
    assert_close(got[1], np.concatenate(hs), what="h_n")
    if first.cell == "lstm":
        assert_close(got[2], np.concatenate(cs), what="c_n")
    # and near the float32 model: what the stored weights cost
    assert_close(got[0], model.run(feeds)[0], half=dtype == "float16", int8=dtype == "int8")


def test_a_quantized_onnx_graph_keeps_its_state_loop_and_streams():
    """stream_gru (a GRU whose state is an input and an output) quantized: the graph's inputs, outputs and state
    pairing stay; its stacks hold int8 weights; outputs stay within the int8 bound of the float model; a stream of
    the quantized model steps as its run computes, to the bit."""
    path = DATA / "onnx" / "graph" / "stream_gru.ts.onnx"
    model = rnnfast.load(path)
    q = model.quantize("int8")
    assert q.input_names == model.input_names and q.output_names == model.output_names
    stacks = [n for n in q.graph.compiled.graph.nodes if n.op == "Recurrent"]
    assert stacks and all(l.spec.layer.weight_dtype == "int8" for n in stacks for l in n.payload)
    assert not any(isinstance(l.spec, LayerSpec) for n in model.graph.compiled.graph.nodes if n.op == "Recurrent"
                   for l in n.payload)  # the float model is left as it was
    record = np.load(str(path).replace(".ts.onnx", ".npz"))
    feeds = {name: record[f"in:{name}"] for name in model.input_names}
    for a, e in zip(q.run(feeds), model.run(feeds)):
        assert_close(a, e, int8=True)
    stream = q.stream(batch=feeds["conv_cache"].shape[0])
    assert stream.pairs == {"conv_cache": "conv_cache_out", "h": "h_out"}
    stream.state = {"conv_cache": feeds["conv_cache"], "h": feeds["h"]}
    assert np.array_equal(stream.step(feeds["x"]), q.run(feeds)[0])


@pytest.mark.parametrize("dtype", ["int8", "float16"])
@pytest.mark.parametrize("name", ["k3_functional_mix", "k3_bidirectional_modes", "k3_seed_masked_middle"])
def test_a_quantized_keras_model_runs_what_the_reference_runs_with_its_weights(name, dtype):
    """Keras models (Functional with two inputs and three outputs, Bidirectional merge modes, a masked Embedding)
    quantize through their C graph (CompiledGraph.quantized): the executor's run equals the float64 reference run
    through the model's own layers with the weights the stored values stand for (cli/trace.py swaps every
    recurrent computation for rnnfast.reference), and stays within the int8 / half bound of the float model."""
    from rnnfast.cli.trace import recording

    model = rnnfast.load(DATA / "keras" / f"{name}.keras")
    assert model.graph.compiled is not None
    q = model.quantize(dtype)
    assert q.input_names == model.input_names and q.output_names == model.output_names
    stacks = [n for n in q.graph.compiled.graph.nodes if n.op == "Recurrent"]
    assert stacks and all(l.spec.layer.weight_dtype == dtype for n in stacks for l in n.payload)
    rec = np.load(DATA / "keras" / f"{name}.npz")
    feeds = {n: rec[f"x{i}"] for i, n in enumerate(model.input_names)}
    got = q.run(feeds)
    with recording(use_reference=True) as calls:
        want = q.run(feeds)
    assert calls and all(l.weight_dtype == dtype for c in calls for l in c.layers)
    float_out = model.run(feeds)
    for n, g, w, f in zip(q.output_names, got, want, float_out):
        assert_close(g, w, what=f"{name} {n}: C vs the float64 reference of the stored weights")
        assert_close(g, f, int8=dtype == "int8", half=dtype == "float16", what=f"{name} {n} vs float32")
    assert any(np.abs(g - f).max() > 0 for g, f in zip(got, float_out)), "were the weights quantized at all?"


def test_a_model_the_executor_does_not_run_whole_is_refused_by_name():
    """No second path through a chain: a model run layer by layer is refused, saying why."""
    from rnnfast.errors import FormatError

    model = rnnfast.load(DATA / "keras" / "k3_seed_stacked_lstm.keras")
    model.graph.use_layer_path()
    with pytest.raises(FormatError, match="cannot quantize: .*the layer path was asked for"):
        model.quantize("int8")


def test_convert_to_rnnf_1_quantizes_through_the_model(tmp_path):
    """--rnnf-version 1 --quantize: the chain of Model.quantize's graph (the same stored weights), written as .rnnf 1;
    reloaded, its layers are int8 and it computes what the quantized model computes."""
    from rnnfast.cli import main as cli_main

    source = DATA / "keras" / "k3_seed_stacked_lstm.keras"
    out = tmp_path / "q1.rnnf"
    assert cli_main(["convert", str(source), str(out), "--rnnf-version", "1", "--quantize", "int8"]) == 0
    written = rnnfast.load(out)
    layers = [l for s in written.to_pipeline().stages if hasattr(s, "layers") for l in s.layers]
    assert layers and {l.weight_dtype for l in layers} == {"int8"}
    x = np.load(DATA / "keras" / "k3_seed_stacked_lstm.npz")["x0"]
    want = rnnfast.load(source).quantize("int8").run(x)[0]
    assert written.to_pipeline().batch_first  # a Keras chain keeps Keras' [batch, steps, features]
    assert_close(written.run(x)[0], want, what=".rnnf 1 vs Model.quantize")
