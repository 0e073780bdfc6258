"""Bad input to a compiled graph gets a clear error naming what is wrong, never a crash or a silent wrong answer:
sizes that do not fit at run time (the node and both shapes), feeds of the wrong dtype or rank (the input), input
shapes that would need more memory than the limit (refused before allocating), damaged descriptions (by name)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import rnnfast
from conftest import package_env
from rnnfast import _core


def matmul_model():
    """y = a @ b with a [batch, k] and b [k2, 3]: k and k2 are different names the run must find equal."""
    nodes = [helper.make_node("MatMul", ["a", "b"], ["y"], name="mm")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", "k"]),
                                           helper.make_tensor_value_info("b", TensorProto.FLOAT, ["k2", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_sizes_that_do_not_fit_name_the_node_and_both_shapes():
    m = rnnfast.load(matmul_model())
    assert m.graph.compiled is not None, m.graph.unfit_reason
    ok = m.run({"a": np.ones((2, 4), np.float32), "b": np.ones((4, 3), np.float32)})
    assert np.array_equal(ok[0], np.full((2, 3), 4, np.float32))
    with pytest.raises(ValueError, match=r"node mm \(MatMul\): sizes 5 and 4 must be equal \(inputs \[2, 5\], "
                                         r"\[4, 3\]\)"):
        m.run({"a": np.ones((2, 5), np.float32), "b": np.ones((4, 3), np.float32)})
    # a refused call leaves the model usable, with its old plan
    assert np.array_equal(m.run({"a": np.ones((2, 4), np.float32), "b": np.ones((4, 3), np.float32)})[0], ok[0])


def test_an_input_that_changes_shape_alone_is_checked_on_every_call():
    """x [T, B, 4] defines B; s [B, 4] only uses it. After a run has planned B = 2, an s of another batch with the
    same x must be refused (the plan's sizes would read past s), not only when a symbol changes."""
    nodes = [helper.make_node("Add", ["x", "s"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", "B", 4]),
                                           helper.make_tensor_value_info("s", TensorProto.FLOAT, ["B", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    compiled = rnnfast.load(model.SerializeToString()).graph.compiled
    x = np.ones((3, 2, 4), np.float32)
    assert np.array_equal(compiled.run([x, np.ones((2, 4), np.float32)])[0], np.full((3, 2, 4), 2, np.float32))
    for bad in (np.ones((1, 4), np.float32), np.ones((5, 4), np.float32)):
        with pytest.raises(ValueError, match=r"input 's' has size \d on axis 0, expected 2"):
            compiled.run([x, bad])


def test_feeds_of_the_wrong_dtype_or_rank_name_the_input():
    m = rnnfast.load(matmul_model())
    with pytest.raises(ValueError, match="input 'a' has dtype int32"):
        m.run({"a": np.ones((2, 4), np.int32), "b": np.ones((4, 3), np.float32)})
    with pytest.raises(ValueError, match="input 'b' has 3 dimensions"):
        m.run({"a": np.ones((2, 4), np.float32), "b": np.ones((4, 3, 1), np.float32)})
    with pytest.raises(ValueError, match="input 'b' has size 4 on axis 1, expected 3"):
        m.run({"a": np.ones((2, 4), np.float32), "b": np.ones((4, 4), np.float32)})


def test_shapes_over_the_memory_limit_are_refused_before_allocating(tmp_path):
    """An Expand to a size the feed decides, under RNNFAST_MAX_MEMORY=1M: MemoryError naming the tensor and the limit,
    in a fresh process (the limit is read when a graph is made)."""
    shape = numpy_helper.from_array(np.array([1], np.int64), "one")
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Concat", ["s", "s"], ["s2"], axis=0, name="cat"),
             helper.make_node("Expand", ["x", "s2"], ["y"], name="expand")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "square.onnx"
    path.write_bytes(model.SerializeToString())
    script = (f"import numpy as np, rnnfast\nm = rnnfast.load({str(path)!r})\n"
              "assert m.graph.compiled is not None, m.graph.unfit_reason\n"
              "assert m.run(np.ones(100, np.float32))[0].shape == (100, 100)\n"
              "try:\n    m.run(np.ones(100000, np.float32))\nexcept MemoryError as e:\n    print('refused:', e)\n")
    out = subprocess.run([sys.executable, "-c", script], env=package_env(RNNFAST_MAX_MEMORY="1M"), cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "refused:" in out.stdout and "over the memory limit of 1048576 bytes" in out.stdout, out.stdout


def test_damaged_descriptions_are_refused_by_name():
    """The C loader checks every id, count and program of a description (what .rnnf 2 files will carry)."""
    good = {"tensors": [(0, 1, 0, None, -1, "x"), (0, 1, 0, None, -1, "y")],
            "nodes": [(1, "relu", [0], [1], [1], [0.0, 0.0], None)], "inputs": [0], "outputs": [1],
            "syms": [(0, 0)], "dim_start": [0, 1], "prog": [1, 0], "checks": [], "subgraphs": []}
    g = _core.CGraph(good, "good")
    assert np.array_equal(g.run([np.array([-1.0, 2.0], np.float32)])[0], [0.0, 2.0])
    bad = {
        "tensor id": dict(good, nodes=[(1, "relu", [0], [7], [1], [0.0, 0.0], None)]),
        "op code": dict(good, nodes=[(99, "relu", [0], [1], [1], [0.0, 0.0], None)]),
        "program": dict(good, prog=[1, 3]),  # a symbol that does not exist
        "stack": dict(good, prog=[2, 0]),    # an add with nothing on the stack
        "read before made": dict(good, tensors=good["tensors"] + [(0, 1, 0, None, -1, "z")],
                                 nodes=[(1, "relu", [2], [1], [1], [0.0, 0.0], None)]),
        "attributes": dict(good, nodes=[(1, "relu", [0], [1], [], [], None)]),
    }
    for what, desc in bad.items():
        with pytest.raises((_core.GraphError, ValueError)) as e:
            _core.CGraph(desc, "damaged")
        assert "damaged" in str(e.value), what


def _bomb(op):
    """A file of ~150 bytes whose constant would be 6.4 GB: ConstantOfShape or Expand to [40000, 40000]."""
    inits = [numpy_helper.from_array(np.array([40000, 40000], np.int64), "shape")]
    x_type = TensorProto.FLOAT
    if op == "Tile":
        inits.append(numpy_helper.from_array(np.ones((1, 1), np.float32), "one"))
        first = helper.make_node("Tile", ["one", "shape"], ["big"], name="big")
    elif op == "Range":
        inits = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in (("s", 0), ("l", 4 << 30), ("d", 1))]
        first = helper.make_node("Range", ["s", "l", "d"], ["big"], name="big")
        x_type = TensorProto.INT64
    elif op == "ConstantOfShape":
        first = helper.make_node("ConstantOfShape", ["shape"], ["big"], name="big",
                                 value=numpy_helper.from_array(np.array([1.0], np.float32)))
    else:
        inits.append(numpy_helper.from_array(np.array([1.0], np.float32), "one"))
        first = helper.make_node("Expand", ["one", "shape"], ["big"], name="big")
    nodes = [first, helper.make_node("Add", ["x", "big"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", x_type, [1])],
                              [helper.make_tensor_value_info("y", x_type, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


# Tile and Range run outside the C set (islands through onnx.reference): the C executor's plan refuses them, the
# node-by-node path sizes them before onnx.reference runs them.
@pytest.mark.parametrize("op", ["ConstantOfShape", "Expand", "Tile", "Range"])
def test_a_tiny_file_declaring_a_huge_constant_allocates_nothing_big(tmp_path, op):
    """Neither the load (which folds small constants) nor a run on either path allocates the 6.4 GB: the run is
    refused with MemoryLimitError (a ValueError) naming the node. In a fresh process under a 2 GB address-space
    limit, so a regression fails here instead of exhausting the machine."""
    path = tmp_path / "bomb.onnx"
    path.write_bytes(_bomb(op))
    assert path.stat().st_size < 200
    script = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        "import numpy as np, rnnfast\n"
        "from rnnfast.errors import MemoryLimitError\n"
        f"m = rnnfast.load({str(path)!r})\n"
        "assert m.graph.compiled is not None, m.graph.unfit_reason\n"
        f"x = np.ones(1, np.{'int64' if op == 'Range' else 'float32'})\n"
        "for path in ('c', 'node-by-node'):\n"
        "    if path != 'c':\n"
        "        m.graph.compiled = None\n"
        "    try:\n"
        "        m.run({'x': x})\n"
        "    except MemoryLimitError as e:\n"
        "        assert isinstance(e, ValueError)\n"
        "        print(path, 'refused:', e)\n"
        "print('peak MiB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)\n")
    out = subprocess.run([sys.executable, "-c", script], env=package_env(), cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "c refused:" in out.stdout and "tensor big would need" in out.stdout, out.stdout
    assert f"node-by-node refused: {path}: node big ({op})" in out.stdout, out.stdout
    assert int(out.stdout.split("peak MiB")[1]) < 500, out.stdout
