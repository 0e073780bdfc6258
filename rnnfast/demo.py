"""`rnnfast demo`: the tutorials' trained Keras models (rnnfast/tutorials.py) run by rnnfast, each against the
outputs and the metric Keras recorded, plus one synthetic ONNX LSTM against the float64 reference and
onnxruntime; one table with agreement and timings. Exits 1 when anything disagrees."""
from __future__ import annotations

import numpy as np

from .layers import N_GATES
from .tutorials import MAX_DIFF, Result, fmt_metric, timed

REFERENCE_CASE = ("LSTM", "forward", {}, 64, 128, 100, 1)  # op, direction, attributes, I, H, T, B


def make_weights(op, direction, input_size, hidden, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    D, G = (2 if direction == "bidirectional" else 1), N_GATES[op.lower()]
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


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def _onnx_exporter():
    """rnnfast.exporters.onnx.export_onnx (Model -> onnx.ModelProto), or None where it is not there."""
    try:
        from .exporters.onnx import export_onnx
    except ImportError:
        return None
    return export_onnx


def _ort_seconds(ort, onnx_bytes, x):
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return sess.run(None, {name: x}), timed(lambda: sess.run(None, {name: x}))


def reference_row(ort) -> Result:
    """The engine on a bare ONNX LSTM (100 steps, 64 -> 128) against the float64 reference and onnxruntime."""
    import rnnfast
    from rnnfast import reference

    op, direction, attrs, I, H, T, B = REFERENCE_CASE
    inits = make_weights(op, direction, I, H)
    data = make_onnx(op, direction, attrs, H, inits)
    x = np.random.default_rng(1).standard_normal((T, B, I)).astype(np.float32)
    model = rnnfast.load(data)
    ours = model.run(x)
    ref = reference.run_layer(make_layer(op, direction, attrs, H, inits), x)
    diff = max(float(np.abs(a - r).max()) for a, r in zip(ours, ref))
    row = Result("ONNX LSTM vs float64", "(synthetic).onnx", "-", 0.0, 0.0, diff, timed(lambda: model.run(x), 20))
    if ort is not None:
        theirs, row.ort_seconds = _ort_seconds(ort, data, x)
        row.max_diff = max(diff, max(float(np.abs(a - t).max()) for a, t in zip(ours, theirs)))
    return row


def add_ort_times(rows, ort) -> list:
    """onnxruntime timings on each tutorial model's ONNX export; returns notes on the rows that have none."""
    from . import tutorials
    from .errors import FormatError

    export = _onnx_exporter()
    if ort is None:
        return ["onnxrt: n/a, onnxruntime is not installed (pip install onnxruntime)"]
    if export is None:
        return ["onnxrt: n/a, this build has no ONNX exporter"]
    notes = []
    for row in rows:
        model, d = tutorials.load(row.file.rsplit(".", 1)[0])
        x = d["x"]
        if x.ndim == 4:
            notes.append(f"onnxrt n/a for {row.example}: onnxruntime keeps no state between calls")
            continue
        try:
            # The recorded ids are padded at the end only, so a Keras mask may become ONNX sequence_lens.
            onnx_bytes = export(model, assume_suffix_padding=bool(d.get("suffix_padded", False))).SerializeToString()
        except FormatError as e:
            why = str(e).split(": ", 1)[-1]
            notes.append(f"onnxrt n/a for {row.example}: no ONNX export ({why[:90]}{'...' if len(why) > 90 else ''})")
            continue
        x = x.astype(np.int64) if x.dtype.kind in "iu" else x.astype(np.float32)
        theirs, row.ort_seconds = _ort_seconds(ort, onnx_bytes, x)
        gap = float(np.abs(theirs[0].astype(np.float64) - d["keras_pred"]).max())
        if gap > MAX_DIFF:
            notes.append(f"onnxruntime on the ONNX export of {row.example} differs from Keras by {gap:.1e}")
    return notes


def _ms(seconds):
    return "n/a" if seconds is None else f"{seconds * 1e3:.2f}ms"


def _speedup(row):
    return "n/a" if row.ort_seconds is None or not row.seconds else f"{row.ort_seconds / row.seconds:.2f}x"


def run_demo(out=print) -> int:
    """Returns the process exit code: 0 when every example agrees with Keras (and the ONNX row with float64)."""
    import rnnfast
    from . import tutorials

    rnnfast.show_config()
    out("")
    ort = _onnxruntime()
    rows = tutorials.all_results()
    notes = add_ort_times(rows, ort)
    rows.append(reference_row(ort))
    header = (f"{'example':<22} {'file':<28} {'metric':<18} {'Keras':>8} {'rnnfast':>8} {'max|diff|':>9} "
              f"{'rnnfast':>9} {'onnxrt':>9} {'speedup':>8}")
    out(header)
    out("-" * len(header))
    for r in rows:
        metrics = (f"{fmt_metric(r.keras_metric):>8} {fmt_metric(r.rnnfast_metric):>8}" if r.metric != "-"
                   else f"{'-':>8} {'-':>8}")
        flag = "" if r.ok else "  <-- DISAGREES"
        out(f"{r.example:<22} {r.file:<28} {r.metric:<18} {metrics} {r.max_diff:>9.1e} {_ms(r.seconds):>9} "
            f"{_ms(r.ort_seconds):>9} {_speedup(r):>8}{flag}")
    out("")
    out(f"max|diff|: largest absolute difference to Keras' recorded predictions (the ONNX row: to float64 and "
        f"onnxruntime); tolerance {MAX_DIFF:g}. Times: the whole test set, median; speedup: onnxruntime's time / "
        f"rnnfast's (above 1, rnnfast is faster).")
    for note in notes:
        out(note)
    failed = [r.example for r in rows if not r.ok]
    out("all results agree" if not failed else f"DISAGREEMENT: {', '.join(failed)}")
    return 0 if not failed else 1
