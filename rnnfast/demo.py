"""`rnnfast demo`: build small recurrent ONNX models, run them with rnnfast, and show that the results agree
with the float64 reference and (when installed) onnxruntime, and how long each took."""
from __future__ import annotations

import time

import numpy as np

CASES = [  # name, op, direction, extra attributes, input_size, hidden_size, seq_len, batch
    ("lstm", "LSTM", "forward", {}, 64, 128, 100, 1),
    ("gru", "GRU", "forward", {"linear_before_reset": 1}, 64, 128, 100, 1),
    ("rnn", "RNN", "forward", {}, 64, 128, 100, 1),
    ("bilstm", "LSTM", "bidirectional", {}, 64, 128, 100, 1),
    ("lstm-batch", "LSTM", "forward", {}, 64, 128, 50, 16),
]
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def make_weights(op, direction, input_size, hidden, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    D, G = (2 if direction == "bidirectional" else 1), GATES[op]
    scale = 1.0 / np.sqrt(hidden)
    return {
        "W": rng.uniform(-scale, scale, (D, G * hidden, input_size)).astype(np.float32),
        "R": rng.uniform(-scale, scale, (D, G * hidden, hidden)).astype(np.float32),
        "B": rng.uniform(-scale, scale, (D, 2 * G * hidden)).astype(np.float32),
    }


def make_layer(op, direction, attrs, hidden, inits):
    """The same weights as the ONNX model, as the canonical layer the float64 reference runs."""
    from .importers._gates import split_onnx_bias
    from .layers import RecurrentLayer

    cell = op.lower()
    b_ih, b_hh = split_onnx_bias(cell, inits["B"], hidden)
    return RecurrentLayer(cell, direction, hidden, inits["W"].shape[2], inits["W"], inits["R"], b_ih, b_hh,
                          linear_before_reset=bool(attrs.get("linear_before_reset", 0)))


def make_onnx(op, direction, attrs, hidden, inits) -> bytes:
    """A single-node ONNX model with the given weights as initializers (X is the only graph input)."""
    from onnx import TensorProto, helper, numpy_helper

    input_size = inits["W"].shape[2]
    outputs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    node = helper.make_node(op, ["X", "W", "R", "B"], outputs, hidden_size=hidden, direction=direction, **attrs)
    graph = helper.make_graph(
        [node], f"demo_{op.lower()}",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["seq", "batch", input_size])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    return model.SerializeToString()


def _median_time(fn, repeat=20):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run_demo(out=print) -> int:
    """Returns the process exit code: 0 when every case agrees within the float32 tolerance."""
    import rnnfast
    from rnnfast import reference

    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
        out("onnxruntime is not installed: comparing with the float64 reference only "
            "(pip install onnxruntime to add it)")
    rnnfast.show_config()
    out("")
    header = f"{'model':<11} {'shape (T,B,I,H)':<18} {'max |rnnfast-float64|':>22} {'max |rnnfast-ort|':>18} " \
             f"{'rnnfast':>10} {'ort':>10} {'speed-up':>9}"
    out(header)
    out("-" * len(header))
    ok = True
    for name, op, direction, attrs, I, H, T, B in CASES:
        inits = make_weights(op, direction, I, H)
        data = make_onnx(op, direction, attrs, H, inits)
        x = np.random.default_rng(1).standard_normal((T, B, I)).astype(np.float32)
        layer = make_layer(op, direction, attrs, H, inits)
        model = rnnfast.load(data)
        ours = model.run(x)
        ref = reference.run_layer(layer, x)
        err_ref = max(float(np.abs(a - r).max()) for a, r in zip(ours, ref))
        # The same tolerance as the test suite: float32 rtol 1e-5 on top of an absolute 1e-6 floor, scaled up
        # for 100-step sequences where float32 rounding accumulates.
        ok &= err_ref <= 1e-4
        t_ours = _median_time(lambda: model.run(x))
        if ort is not None:
            sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
            theirs = sess.run(None, {"X": x})
            err_ort = max(float(np.abs(a - t).max()) for a, t in zip(ours, theirs))
            ok &= err_ort <= 1e-4
            t_ort = _median_time(lambda: sess.run(None, {"X": x}))
            ort_cols = f"{err_ort:>18.2e} {t_ort * 1e3:>8.3f}ms {t_ort / t_ours:>8.2f}x"
        else:
            ort_cols = f"{'-':>18} {'-':>10} {'-':>9}"
        out(f"{name:<11} {str((T, B, I, H)):<18} {err_ref:>22.2e} {ort_cols[:19]} {t_ours * 1e3:>8.3f}ms{ort_cols[19:]}")
    out("")
    out("all results agree" if ok else "DISAGREEMENT: see the table above")
    return 0 if ok else 1
