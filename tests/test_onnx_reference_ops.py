"""Standard operators rnnfast has no kernel of its own for run through onnx.reference's implementation, so a model
with a TopK or a Sin after its LSTM still loads and runs: as an island the C graph executor stops at and the binding
runs (the rest of the graph stays in C), or node by node; checked against onnxruntime at two sequence lengths (the
island's output shapes are planned per input shape); an unknown operator is still refused by name. Profiling times
runs in a state of its own, whatever other threads run meanwhile."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import rnnfast
from conftest import assert_close

H, I = 8, 5


def lstm_then(op_nodes, out_name, out_type=TensorProto.FLOAT, extra_inits=()):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(np.float32), n)
             for n, s in (("W", (1, 4 * H, I)), ("R", (1, 4 * H, H)), ("B", (1, 8 * H)))]
    inits += [numpy_helper.from_array(np.array([1], np.int64), "axis1")] + list(extra_inits)
    nodes = [helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y"], hidden_size=H, name="lstm"),
             helper.make_node("Squeeze", ["Y", "axis1"], ["ys"], name="squeeze")] + op_nodes
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", I])],
                              [helper.make_tensor_value_info(out_name, out_type, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.mark.parametrize("case", ["sin", "topk", "hardmax", "round"])
def test_operators_without_a_kernel_run_through_onnx_reference(case):
    k = numpy_helper.from_array(np.array([3], np.int64), "k")
    nodes, out, extra, out_type = {
        "sin": ([helper.make_node("Sin", ["ys"], ["out"], name="sin")], "out", (), TensorProto.FLOAT),
        "topk": ([helper.make_node("TopK", ["ys", "k"], ["out", "idx"], axis=-1, name="topk")], "out", (k,),
                 TensorProto.FLOAT),
        "hardmax": ([helper.make_node("Hardmax", ["ys"], ["out"], axis=-1, name="hm")], "out", (),
                    TensorProto.FLOAT),
        "round": ([helper.make_node("Mul", ["ys", "ys"], ["sq"], name="sq"),
                   helper.make_node("Round", ["sq"], ["out"], name="round")], "out", (), TensorProto.FLOAT),
    }[case]
    data = lstm_then(nodes, out, out_type, extra)
    model = rnnfast.load(data)
    assert model.graph.compiled is not None, model.graph.unfit_reason
    islands = model.graph.compiled.desc["hosts"]
    assert len(islands) == 1 and nodes[-1].name in islands[0].where
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((6, 2, I)).astype(np.float32) * 3
    for steps in (6, 3):
        (got,) = model.run({"X": x[:steps]})
        (want,) = sess.run(None, {"X": x[:steps]})
        assert got.shape == want.shape
        assert_close(got, want, what=case)


def test_inspect_and_bench_name_the_nodes_outside_c(tmp_path):
    from rnnfast.cli.common import executor_info, executor_line

    data = lstm_then([helper.make_node("Sin", ["ys"], ["out"], name="sin")], "out")
    info = executor_info(rnnfast.load(data))
    assert info["executor"] == "C graph" and len(info["outside_c"]) == 1 and "node sin (Sin)" in info["outside_c"][0]
    assert "outside C, through onnx.reference" in executor_line(info)
    compiled = rnnfast.load(data).graph.compiled
    x = np.random.default_rng(1).standard_normal((6, 2, I)).astype(np.float32)
    ops = [op for _, op, seconds in compiled.profile([x], n_runs=3)]
    assert "HOST" in ops and "RECURRENT" in ops


def test_profile_while_another_thread_is_inside_a_run(monkeypatch):
    """profile() times runs in a state of its own, so a run another thread holds open (stopped here in the island)
    does not make it fail, and that run still gives its outputs."""
    import threading

    from rnnfast.graph import islands
    from rnnfast.graph.compile import OP_NAMES

    compiled = rnnfast.load(lstm_then([helper.make_node("Sin", ["ys"], ["out"], name="sin")], "out")).graph.compiled
    x = np.random.default_rng(1).standard_normal((6, 2, I)).astype(np.float32)
    want = compiled.run([x])
    inside, release, results = threading.Event(), threading.Event(), []
    host_call = islands.HostFunction.__call__

    def held(self, args):
        if threading.current_thread() is other:
            inside.set()
            release.wait(60)
        return host_call(self, args)

    monkeypatch.setattr(islands.HostFunction, "__call__", held)
    other = threading.Thread(target=lambda: results.append(compiled.run([x])))
    other.start()
    try:
        assert inside.wait(60)
        per_node = compiled.profile([x], n_runs=3)
    finally:
        release.set()
        other.join(60)
    assert [op for _, op, _ in per_node] == [OP_NAMES[node[0]] for node in compiled.desc["nodes"]]
    assert all(seconds >= 0 for _, _, seconds in per_node) and sum(seconds for _, _, seconds in per_node) > 0
    np.testing.assert_array_equal(results[0][0], want[0])


def test_an_unknown_operator_is_still_refused_by_name():
    data = lstm_then([helper.make_node("Gru2000", ["ys"], ["out"], name="mystery")], "out")
    with pytest.raises(rnnfast.FormatError, match="node mystery.*'Gru2000'"):
        rnnfast.load(data)
