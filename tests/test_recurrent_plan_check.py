"""A recurrent node's initial states and sequence lengths are checked against its X when the run is planned, before
any node computes them: a 40 KB ONNX file whose ConstantOfShape makes initial_h [16777217, 1, 48] filled 3.2 GB
(28 s) before the LSTM refused it; now the plan refuses it with the node's name and both shapes."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import package_env
from onnx import TensorProto, helper, numpy_helper

import rnnfast

H, I = 48, 4

RUNNER = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    import rnnfast
    model = rnnfast.load(sys.argv[1])
    try:
        model.run({"X": np.zeros((3, 1, 4), np.float32)})
        out = {"error": None}
    except Exception as e:
        out = {"error": type(e).__name__, "mro": [c.__name__ for c in type(e).__mro__], "message": str(e)[:400]}
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
    out["peak_mb"] = int(hwm) / 1024
    print(json.dumps(out))
""")


def lstm_with_made_state(state_shape, lens_shape=None):
    """An LSTM whose initial_h comes from ConstantOfShape(state_shape) (left to run time: too big to fold), and
    optionally sequence_lens from ConstantOfShape(lens_shape)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.array(state_shape, np.int64), "h0_shape"),
             numpy_helper.from_array(rng.standard_normal((1, 4 * H, I)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal((1, 4 * H, H)).astype(np.float32), "R")]
    nodes = [helper.make_node("ConstantOfShape", ["h0_shape"], ["h0"])]
    lens = ""
    if lens_shape is not None:
        inits.append(numpy_helper.from_array(np.array(lens_shape, np.int64), "lens_shape"))
        one = helper.make_tensor("one", TensorProto.INT32, [1], [1])
        nodes.append(helper.make_node("ConstantOfShape", ["lens_shape"], ["lens"], value=one))
        lens = "lens"
    nodes.append(helper.make_node("LSTM", ["X", "W", "R", "", lens, "h0"], ["Y"], hidden_size=H, name="lstm_bomb"))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", 1, I])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    return m.SerializeToString()


def test_an_initial_state_that_cannot_fit_is_refused_before_it_is_filled(tmp_path):
    path = tmp_path / "state_bomb.onnx"
    path.write_bytes(lstm_with_made_state([16777217, 1, H]))
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(path)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env=package_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["error"] is not None and "ValueError" in r["mro"], r
    assert ("lstm_bomb" in r["message"] and "initial_h is [16777217, 1, 48], must be float [1, 1, 48]" in r["message"]
            and "for X [3, 1, 4]" in r["message"]), r["message"]
    assert r["peak_mb"] <= 200, f"peak RSS {r['peak_mb']:.0f} MB"


def test_sequence_lens_of_another_batch_is_refused_at_plan():
    model = rnnfast.load(lstm_with_made_state([1, 1, H], lens_shape=[3]))
    with pytest.raises(ValueError, match=r"lstm_bomb.*sequence_lens is \[3\], must be int32 \[1\] \(batch\) for X "
                                         r"\[2, 1, 4\]"):
        model.run({"X": np.zeros((2, 1, I), np.float32)})


def test_a_state_that_fits_runs():
    y = rnnfast.load(lstm_with_made_state([1, 1, H])).run({"X": np.zeros((2, 1, I), np.float32)})
    y = y[0] if isinstance(y, (list, tuple)) else next(iter(y.values())) if isinstance(y, dict) else y
    assert np.asarray(y).shape == (2, 1, 1, H) and np.all(np.asarray(y) == 0)
