"""A chain of recurrent nodes (what exporters write for a stacked LSTM/GRU/RNN) runs as one stack node of the C graph
executor (rnnfast/graph/stack.py): one engine call, the glue between layers gone. It must give exactly what the
node-by-node path gives (bitwise: the same engine layers), stay within float32 tolerance of the float64 reference and
of onnxruntime, leave every other graph in more nodes with the same results, and name what is wrong with a bad feed."""
import os

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import rnnfast
from conftest import assert_close, random_layer
from onnx_builders import chain_model
from rnnfast import reference
from rnnfast.graph.compile import OP_NAMES

DATA = os.path.join(os.path.dirname(__file__), "data", "onnx")
I, H, T = 5, 8, 6


def make_layers(rng, cell, direction, n_layers, lbr=False):
    D = 2 if direction == "bidirectional" else 1
    return [random_layer(rng, cell, direction, I if k == 0 else D * H, H, linear_before_reset=lbr and cell == "gru")
            for k in range(n_layers)]


def state_feeds(rng, layers, batch):
    feeds = {}
    for k, layer in enumerate(layers):
        feeds[f"h{k}"] = rng.standard_normal((layer.n_dirs, batch, H)).astype(np.float32)
        if layer.cell == "lstm":
            feeds[f"c{k}"] = rng.standard_normal((layer.n_dirs, batch, H)).astype(np.float32)
    return feeds


def reference_outputs(layers, feeds, last="merged", states=False):
    """The graph's outputs in float64: the sequence in the last node's output form, then every final state."""
    x, finals = feeds["X"], []
    for k, layer in enumerate(layers):
        y, h, c = reference.run_layer(layer, x, initial_h=feeds.get(f"h{k}"), initial_c=feeds.get(f"c{k}"))
        finals += [h] + ([c] if layer.cell == "lstm" else [])
        Tn, D, B, P = y.shape
        x = y.transpose(0, 2, 1, 3).reshape(Tn, B, D * P)
    seq = {"raw": y, "transposed": y.transpose(0, 2, 1, 3), "merged": x}[last]
    return [seq] + (finals if states else [])


def general(model_bytes, **options):
    """The same model without the C executor: the node-by-node path, the one to be equal to."""
    model = rnnfast.load(model_bytes, **options)
    model.graph.compiled = None
    return model


def one_engine_call(sess) -> bool:
    """The compiled graph is one recurrent stack node (graph/stack.py) and, at most, the copies that gather per-layer
    state inputs into its [L*D, B, H] and hand per-layer state outputs out of it: no copy of a sequence."""
    compiled = sess._model.graph.compiled
    if compiled is None:
        return False
    ops = [OP_NAMES[n[0]] for n in compiled.desc["nodes"]]
    return ops.count("RECURRENT") == 1 and set(ops) <= {"RECURRENT", "CONCAT", "SLICE"}


def check_chain(model_bytes, feeds, want, chain=True):
    sess = rnnfast.InferenceSession(model_bytes)
    assert one_engine_call(sess) == chain
    got = sess.run(None, feeds)
    node_by_node = general(model_bytes).run(feeds)
    onnxruntime = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"]).run(None, feeds)
    assert len(got) == len(node_by_node) == len(want) == len(onnxruntime)
    for i, (g, n, w, o) in enumerate(zip(got, node_by_node, want, onnxruntime)):
        assert g.dtype == np.float32 and g.shape == n.shape
        assert np.array_equal(g, n), f"output {i}: the chain differs from the node-by-node path"
        assert_close(g, w, what=f"output {i} vs the float64 reference")
        assert_close(g, o, what=f"output {i} vs onnxruntime")
    return got


@pytest.mark.parametrize("batch", (1, 3))
@pytest.mark.parametrize("states", (False, True))
@pytest.mark.parametrize("direction", ("forward", "reverse", "bidirectional"))
@pytest.mark.parametrize("n_layers", (1, 2, 3))
@pytest.mark.parametrize("cell", ("rnn", "gru", "lstm"))
def test_chain_equals_node_by_node_reference_and_onnxruntime(rng, cell, n_layers, direction, states, batch):
    layers = make_layers(rng, cell, direction, n_layers, lbr=batch == 3)
    glue = "squeeze" if direction != "bidirectional" and n_layers != 2 else "reshape"
    model = chain_model(layers, states=states, glue=glue)
    feeds = {"X": rng.standard_normal((T, batch, I)).astype(np.float32)}
    if states:
        feeds |= state_feeds(rng, layers, batch)
    check_chain(model, feeds, reference_outputs(layers, feeds, states=states))


@pytest.mark.parametrize("last", ("raw", "transposed", "merged"))
@pytest.mark.parametrize("direction", ("forward", "bidirectional"))
def test_last_output_in_each_form_exporters_leave_it(rng, direction, last):
    layers = make_layers(rng, "lstm", direction, 2)
    feeds = {"X": rng.standard_normal((T, 2, I)).astype(np.float32)} | state_feeds(rng, layers, 2)
    check_chain(chain_model(layers, states=True, last=last), feeds,
                reference_outputs(layers, feeds, last=last, states=True))


@pytest.mark.parametrize("glue", ("squeeze", "reshape"))
def test_opset_11_squeeze_attribute_and_identity_glue(rng, glue):
    layers = make_layers(rng, "gru", "forward", 2)
    model = chain_model(layers, states=True, glue=glue, opset=11, identity=True)
    feeds = {"X": rng.standard_normal((T, 2, I)).astype(np.float32)} | state_feeds(rng, layers, 2)
    check_chain(model, feeds, reference_outputs(layers, feeds, states=True))


def test_two_threads_equal_one_to_the_bit(rng):
    layers = make_layers(rng, "gru", "bidirectional", 2, lbr=True)
    model = chain_model(layers, states=True)
    feeds = {"X": rng.standard_normal((T, 4, I)).astype(np.float32)} | state_feeds(rng, layers, 4)
    one = rnnfast.InferenceSession(model, n_threads=1).run(None, feeds)
    two = rnnfast.InferenceSession(model, n_threads=2).run(None, feeds)
    for a, b in zip(one, two):
        assert np.array_equal(a, b)


# lstm_states.dynamo reshapes Y to the traced length, [7, -1, 16]: its output is a copy beside the one stack node.
TAKE_CHAIN = {"lstm_states.ts", "rnn_relu_stacked.ts"}


def fixture_cases(stem):
    with np.load(os.path.join(DATA, stem + ".npz")) as z:
        arrays = {k: z[k] for k in z.files}
    for case in sorted({k.split(".")[0] for k in arrays}):
        feeds = {k.split(".", 2)[2]: v for k, v in arrays.items() if k.startswith(f"{case}.in.")}
        yield case, feeds, [v for k, v in arrays.items() if k.startswith(f"{case}.out.")]


def test_torch_exported_fixtures_take_the_chain_where_they_are_one():
    """The exporters' files that are a chain are one stack node: lstm_states.ts (states fed) and rnn_relu_stacked.ts
    (zero states from X's shape, h_n a Concat of the layers'). The others transpose batch-first, unroll the loop, fix
    the traced length or add heads around it. Either way the outputs are the node-by-node path's (to the bit where
    both run only the engine's layers), and onnxruntime's and torch's."""
    taken = set()
    for path in sorted(os.listdir(DATA)):
        if not path.endswith(".onnx"):
            continue
        stem = path[:-5]
        sess = rnnfast.InferenceSession(os.path.join(DATA, path))
        if one_engine_call(sess):
            taken.add(stem)
        node_by_node = general(os.path.join(DATA, path))
        for case, feeds, torch_out in fixture_cases(stem):
            got = sess.run(None, feeds)
            for g, n in zip(got, node_by_node.run(feeds)):
                if stem in TAKE_CHAIN:
                    assert np.array_equal(g, n), f"{stem} {case}"
                else:  # numpy's convolutions and products round otherwise than the C kernels
                    assert_close(g, n, what=f"{stem} {case} vs the node-by-node path")
            if stem in TAKE_CHAIN:
                want = ort.InferenceSession(os.path.join(DATA, path), providers=["CPUExecutionProvider"]).run(None,
                                                                                                                feeds)
                assert len(got) == len(want) == len(torch_out)
                for g, o, w in zip(got, want, torch_out):
                    assert g.dtype == np.float32
                    assert_close(g, o, what=f"{stem} {case} vs onnxruntime")
                    assert_close(g, w, what=f"{stem} {case} vs torch")
    assert taken == TAKE_CHAIN


def test_a_reshape_that_fixes_the_length_runs_only_lengths_it_divides(rng):
    """lstm_states.dynamo reshapes Y to [7, -1, 16], the traced length: the C executor takes the graph with the
    Reshape's size checked at run time, and a length it does not divide fails naming the Reshape, as the node-by-node
    path fails."""
    path = os.path.join(DATA, "lstm_states.dynamo.onnx")
    sess, node_by_node = rnnfast.InferenceSession(path), general(path)
    ops = [OP_NAMES[n[0]] for n in sess._model.graph.compiled.desc["nodes"]]
    assert ops.count("RECURRENT") == 1, ops
    feeds = {"x": rng.standard_normal((5, 2, 5)).astype(np.float32),
             "h0": rng.standard_normal((1, 2, 16)).astype(np.float32),
             "c0": rng.standard_normal((1, 2, 16)).astype(np.float32)}
    with pytest.raises(ValueError) as fast:
        sess.run(None, feeds)
    with pytest.raises(ValueError) as slow:
        node_by_node.run(feeds)
    assert "node_Reshape_69 (Reshape)" in str(fast.value) and "Reshape" in str(slow.value)


def _edited(stem, edit):
    import onnx

    proto = onnx.load(os.path.join(DATA, stem + ".onnx"))
    edit(proto.graph)
    return proto.SerializeToString()


def _node(graph, op_type):
    return next(n for n in graph.node if n.op_type == op_type)


def _set_constant_of_shape_value(graph):
    attr = next(a for a in _node(graph, "ConstantOfShape").attribute if a.name == "value")
    attr.t.CopyFrom(numpy_helper.from_array(np.array([0.5], np.float32)))


def _slice_two_layers_of_zeros(graph):
    """The first layer's state sliced [0:2] of the [3, batch, 16] zeros: zeros of the wrong shape."""
    first = next(n for n in graph.node if n.op_type == "Slice")
    ends = next(n for n in graph.node if n.op_type == "Constant" and n.output[0] == first.input[2])
    ends.attribute[0].t.CopyFrom(numpy_helper.from_array(np.array([2], np.int64)))


def _transpose_time_and_batch(graph):
    _node(graph, "Transpose").attribute[0].ints[:] = [2, 0, 1, 3]


def _expand_a_zero(graph):
    """Zeros as the dynamo exporter makes them: Expand of a float 0 over the shape, not ConstantOfShape."""
    node = _node(graph, "ConstantOfShape")
    graph.initializer.append(numpy_helper.from_array(np.array(0.0, np.float32), "zero"))
    node.op_type = "Expand"
    node.input[:] = ["zero", node.input[0]]
    del node.attribute[:]


def test_zero_states_expanded_from_the_input_shape_take_the_chain():
    model = _edited("rnn_relu_stacked.ts", _expand_a_zero)
    sess = rnnfast.InferenceSession(model)
    assert one_engine_call(sess)
    ref = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    for case, feeds, torch_out in fixture_cases("rnn_relu_stacked.ts"):
        got = sess.run(None, feeds)
        for g, n, o, w in zip(got, general(model).run(feeds), ref.run(None, feeds), torch_out):
            assert np.array_equal(g, n)
            assert_close(g, o, what=f"{case} vs onnxruntime")
            assert_close(g, w, what=f"{case} vs torch")


@pytest.mark.parametrize("stem, edit", [("rnn_relu_stacked.ts", _set_constant_of_shape_value),
                                        ("rnn_relu_stacked.ts", _slice_two_layers_of_zeros),
                                        ("lstm_states.dynamo", _transpose_time_and_batch)])
def test_edited_torch_exports_that_are_not_a_chain_keep_the_general_path(stem, edit):
    """A computed initial state that is not zero, zeros of a shape the node does not take, a Transpose with
    another perm: no chain, and the results (or the error) are still onnxruntime's."""
    model = _edited(stem, edit)
    sess = rnnfast.InferenceSession(model)
    assert not one_engine_call(sess)
    ref = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    for case, feeds, _ in fixture_cases(stem):
        if edit is _slice_two_layers_of_zeros:
            with pytest.raises(Exception):
                ref.run(None, feeds)
            with pytest.raises(ValueError, match="initial_h"):
                sess.run(None, feeds)
            continue
        want = ref.run(None, feeds)
        got = sess.run(None, feeds)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_close(g, w, what=f"{stem} {case}")


def _one_lstm_graph(rng, extra):
    """LSTM -> (something that is not a chain) -> LSTM, with onnxruntime's answer for the feeds."""
    l0, l1 = make_layers(rng, "lstm", "forward", 2)
    nodes = [helper.make_node("LSTM", ["X", "W0", "R0", "B0", "lens" if extra == "lens" else "",
                                       "h0" if extra in ("lens", "computed") else ""], ["Y0"], hidden_size=H),
             helper.make_node("Squeeze", ["Y0", "axis"], ["X1"]),
             helper.make_node("LSTM", ["X1r" if extra == "relu" else "X1", "W1", "R1", "B1"], ["Y1"], hidden_size=H),
             helper.make_node("Squeeze", ["Y1", "axis"], ["out"])]
    inits = [numpy_helper.from_array(np.array([1], np.int64), "axis")]
    for k, l in enumerate((l0, l1)):
        inits += [numpy_helper.from_array(l.w_ih, f"W{k}"), numpy_helper.from_array(l.w_hh, f"R{k}"),
                  numpy_helper.from_array(np.concatenate([l.b_ih, l.b_hh], axis=1), f"B{k}")]
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["seq", "batch", I])]
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)]
    feeds = {"X": rng.standard_normal((T, 3, I)).astype(np.float32)}
    if extra == "relu":
        nodes.insert(2, helper.make_node("Relu", ["X1"], ["X1r"]))
    if extra == "lens":
        inputs += [helper.make_tensor_value_info("lens", TensorProto.INT32, ["batch"]),
                   helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, "batch", H])]
        feeds |= {"lens": np.array([T, 2, 0], np.int32), "h0": rng.standard_normal((1, 3, H)).astype(np.float32)}
    if extra == "computed":
        inits.append(numpy_helper.from_array(np.array(0.5, np.float32), "half"))
        nodes.insert(0, helper.make_node("Mul", ["h_in", "half"], ["h0"]))
        inputs.append(helper.make_tensor_value_info("h_in", TensorProto.FLOAT, [1, "batch", H]))
        feeds["h_in"] = rng.standard_normal((1, 3, H)).astype(np.float32)
    if extra == "inner_output":
        outputs.append(helper.make_tensor_value_info("X1", TensorProto.FLOAT, None))
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model.SerializeToString(), feeds


@pytest.mark.parametrize("extra", ("lens", "relu", "computed", "inner_output"))
def test_graphs_that_are_not_a_chain_keep_the_general_path(rng, extra):
    """sequence_lens fed, an op between the layers, an initial state computed in the graph, an inner layer's
    sequence returned: no chain, and the results are still onnxruntime's."""
    model, feeds = _one_lstm_graph(rng, extra)
    sess = rnnfast.InferenceSession(model)
    assert not one_engine_call(sess)
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feeds)
    got = sess.run(None, feeds)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert_close(g, w, what=extra)


@pytest.fixture
def stacked(rng):
    layers = make_layers(rng, "lstm", "bidirectional", 2)
    feeds = {"X": rng.standard_normal((T, 2, I)).astype(np.float32)} | state_feeds(rng, layers, 2)
    return layers, chain_model(layers, states=True), feeds


def test_unusual_feeds_give_what_the_general_path_gives(stacked):
    """Feeds that are not float32 C-contiguous arrays (float64, a list, a strided view, big-endian, no time steps)
    give what the same values as float32 arrays give, and float32 outputs."""
    layers, model, feeds = stacked
    sess = rnnfast.InferenceSession(model)
    variants = {
        "float64": {k: v.astype(np.float64) for k, v in feeds.items()},
        "list": feeds | {"X": feeds["X"].tolist()},
        "strided": feeds | {"X": np.ascontiguousarray(feeds["X"].transpose(1, 0, 2)).transpose(1, 0, 2)},
        "byte-swapped": feeds | {"X": feeds["X"].astype(">f4")},
        "no steps": feeds | {"X": np.zeros((0, 2, I), np.float32)},
    }
    for name, v in variants.items():
        got = sess.run(None, v)
        want = sess.run(None, {k: np.ascontiguousarray(np.asarray(a, np.float32)) for k, a in v.items()})
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.dtype == np.float32 and g.shape == w.shape and np.array_equal(g, w), name
    ref = reference_outputs(layers, feeds, states=True)
    for g, w in zip(sess.run(None, variants["float64"]), ref):
        assert_close(g, w, what="float64 feeds vs the reference")


def test_bad_feeds_raise_what_the_general_path_raises(stacked):
    layers, model, feeds = stacked
    sess, node_by_node = rnnfast.InferenceSession(model), general(model)
    bad = {
        "missing": ({k: v for k, v in feeds.items() if k != "c1"}, "missing input 'c1'"),
        "unknown": (feeds | {"extra": feeds["X"]}, "unknown input name(s) ['extra']"),
        "rank": (feeds | {"X": feeds["X"][0]}, "input 'X' has 2 dimensions"),
        "features": (feeds | {"X": np.zeros((T, 2, I + 1), np.float32)}, f"input 'X' has size {I + 1} on axis 2"),
        "dtype": (feeds | {"X": np.zeros((T, 2, I), np.int32)}, "input 'X' has dtype int32"),
        "state batch": (feeds | {"h1": np.zeros((2, 3, H), np.float32)}, "input 'h1' has size 3 on axis 1"),
        "state dirs": (feeds | {"h0": np.zeros((1, 2, H), np.float32)}, "input 'h0' has size 1 on axis 0"),
    }
    for name, (v, words) in bad.items():
        with pytest.raises(ValueError) as fast:
            sess.run(None, v)
        with pytest.raises(ValueError):
            node_by_node.run(v)
        assert words in str(fast.value), (name, str(fast.value))


def test_a_refused_feed_leaves_the_next_run_unchanged(stacked):
    layers, model, feeds = stacked
    sess = rnnfast.InferenceSession(model)
    before = sess.run(None, feeds)
    with pytest.raises(ValueError):
        sess.run(None, feeds | {"h1": np.zeros((2, 3, H), np.float32)})
    for a, b in zip(before, sess.run(None, feeds)):
        assert np.array_equal(a, b)


def test_no_time_steps_give_the_general_paths_empty_outputs(rng):
    layers = make_layers(rng, "gru", "forward", 2)
    model = chain_model(layers, states=True, glue="squeeze")
    feeds = {"X": np.zeros((0, 2, I), np.float32)} | state_feeds(rng, layers, 2)
    got, want = rnnfast.InferenceSession(model).run(None, feeds), general(model).run(feeds)
    assert [g.shape for g in got] == [w.shape for w in want] == [(0, 2, H), (1, 2, H), (1, 2, H)]
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and np.array_equal(g, w)


@pytest.mark.parametrize("last", ("raw", "transposed", "merged"))
def test_rnnfast_verify_watches_every_node(rng, last):
    """rnnfast verify records or replaces CompiledStack.run (commands/trace.py), which the chain's one C call would
    bypass: while it does, the graph runs node by node, so each layer is seen on its own inputs and the outputs
    are the float64 reference's (each node's in float32, the model's type)."""
    from rnnfast.cli.trace import recording

    layers = make_layers(rng, "lstm", "bidirectional", 2)
    model = chain_model(layers, states=True, last=last)
    feeds = {"X": rng.standard_normal((T, 2, I)).astype(np.float32)} | state_feeds(rng, layers, 2)
    sess = rnnfast.InferenceSession(model)
    assert one_engine_call(sess)
    with recording(use_reference=True) as calls:
        got = sess.run(None, feeds)
    assert [len(c.layers) for c in calls] == [1, 1]
    for g, w in zip(got, reference_outputs(layers, feeds, last=last, states=True)):
        assert g.dtype == np.float32
        assert_close(g, w, what="the reference through the graph")
    with recording() as calls:
        watched = sess.run(None, feeds)
    assert len(calls) == 2
    for a, b in zip(watched, sess.run(None, feeds)):
        assert np.array_equal(a, b)


def test_constant_initial_states_are_taken_as_given(rng):
    """Initial states stored as initializers (some exporters fold them) feed the stack like fed ones."""
    import onnx

    layers = make_layers(rng, "lstm", "forward", 2)
    proto = onnx.load_from_string(chain_model(layers, states=True))
    consts = state_feeds(rng, layers, 2)
    keep = [i for i in proto.graph.input if i.name not in ("h0", "c1")]
    del proto.graph.input[:]
    proto.graph.input.extend(keep)
    proto.graph.initializer.extend([numpy_helper.from_array(consts[n], n) for n in ("h0", "c1")])
    model = proto.SerializeToString()
    feeds = {"X": rng.standard_normal((T, 2, I)).astype(np.float32), "c0": consts["c0"], "h1": consts["h1"]}
    check_chain(model, feeds, reference_outputs(layers, feeds | consts, states=True))
