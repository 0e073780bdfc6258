"""Error measures and the independent runtimes (onnxruntime, onnx.reference) that verify and bench compare with."""
from __future__ import annotations

import os
import tempfile

import numpy as np

from .common import ONNX_DTYPES

# convert's check of a written file against the source: absolute within [-1, 1], relative to the output beyond
CHECK_TOLERANCE = 1e-4

DEFAULT_TOLERANCE = 1e-4
TOLERANCE_HELP = ("an output passes when its max abs error <= TOL * max(1, max |expected|), i.e. TOL is an "
                  "absolute bound for outputs within [-1, 1] and relative to the output's largest magnitude beyond")


def errors(actual, expected) -> dict:
    """max_abs: largest |a - e|; max_rel: max_abs over the largest |e| (the error relative to the output's
    scale, which stays meaningful where single elements of e are near zero)."""
    a = np.asarray(actual, np.float64)
    e = np.asarray(expected, np.float64)
    if a.shape != e.shape:
        return {"shape": list(a.shape), "expected_shape": list(e.shape), "max_abs": float("inf"),
                "max_rel": float("inf"), "scale": 0.0}
    if not a.size:
        return {"max_abs": 0.0, "max_rel": 0.0, "scale": 0.0}
    diff = np.abs(a - e)
    diff[np.isnan(a) & np.isnan(e)] = 0.0  # NaN where both give NaN is agreement
    max_abs = float("inf") if np.isnan(diff).any() else float(diff.max())
    finite = np.abs(e[np.isfinite(e)])
    scale = float(finite.max()) if finite.size else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    return {"max_abs": max_abs, "max_rel": max_rel, "scale": scale}


def within(err: dict, tol: float) -> bool:
    return err["max_abs"] <= tol * max(1.0, err["scale"])


def onnx_bytes(model, path: str):
    """(ONNX model bytes, how they were obtained) for the file itself or the model's ONNX export, or
    (None, why not)."""
    from .common import detect_format

    if detect_format(path) == "onnx":
        with open(path, "rb") as f:
            return f.read(), "the file"
    try:
        from ..exporters.onnx import export_onnx
    except ImportError:
        return None, "this build of rnnfast has no ONNX exporter"
    fd, tmp = tempfile.mkstemp(suffix=".onnx")
    os.close(fd)
    try:
        export_onnx(model, tmp)
        with open(tmp, "rb") as f:
            return f.read(), "its ONNX export"
    except ValueError as e:  # FormatError: the model has no ONNX form
        return None, f"no ONNX export: {' '.join(str(e).split())}"
    finally:
        os.unlink(tmp)


def feeds_for(input_names, feeds: dict) -> dict:
    """The feeds under the ONNX model's input names: same names where they match, else in input order."""
    if all(n in feeds for n in input_names):
        return {n: feeds[n] for n in input_names}
    values = list(feeds.values())
    return {n: v for n, v in zip(input_names, values)}


def paired_outputs(names, outs, onnx_names, onnx_outs):
    """(name, rnnfast output, ONNX output) for every output both have: by name when every name is found, else
    in order (an export names its one output `output`, the source model may call it anything)."""
    by_name = dict(zip(onnx_names, onnx_outs))
    positional = not all(n in by_name for n in names)
    for i, (name, got) in enumerate(zip(names, outs)):
        want = onnx_outs[i] if positional and i < len(onnx_outs) else by_name.get(name)
        if want is not None:
            yield name, got, want




class OnnxRuntime:
    """onnxruntime over ONNX bytes; `error` says why it could not be used (not installed, or refused)."""
    NOT_INSTALLED = "onnxruntime is not installed"

    def __init__(self, data: bytes, n_threads=None):
        self.session, self.error = None, None
        try:
            import onnxruntime as ort
        except ImportError:
            self.error = self.NOT_INSTALLED
            return
        options = ort.SessionOptions()
        if n_threads:
            options.intra_op_num_threads = int(n_threads)
        options.log_severity_level = 4  # its refusals are reported in our own words
        try:
            self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types, one per kind of refusal
            self.error = f"onnxruntime refused the model: {error_line(e)}"
        if self.session is not None:  # an input backed by an initializer is one too (rnnfast's optional inputs)
            ins = overridable_inputs(self.session)
            self.input_names = [i.name for i in ins]
            self.input_types = [i.type for i in ins]
            self.output_names = [o.name for o in self.session.get_outputs()]

    def feeds(self, feeds: dict) -> dict:
        """onnxruntime takes no implicit casts; int32 token ids for an int64 input are the same ids."""
        out = feeds_for(self.input_names, feeds)
        for name, kind in zip(self.input_names, self.input_types):
            want = np.dtype(ONNX_DTYPES[kind]) if kind in ONNX_DTYPES else None
            if want is not None and out[name].dtype != want and out[name].dtype.kind == want.kind:
                out[name] = out[name].astype(want)
        return out

    def run(self, feeds: dict) -> list:
        return self.session.run(None, self.feeds(feeds))


def overridable_inputs(session) -> list:
    """onnxruntime's inputs of a session, then the ones backed by an initializer (which get_inputs leaves out): what
    rnnfast reads as the model's inputs, the latter optional."""
    return list(session.get_inputs()) + list(session.get_overridable_initializers())


def with_zero_states(data: bytes, feeds: dict) -> dict:
    """feeds plus zeros for the ONNX model's float inputs it lacks: an export keeps every input of the source, and
    one the source runs without (PyTorch's h0 / c0) starts from zeros there. Sizes named like a fed input's axes
    take that size."""
    import onnx

    graph = onnx.load_from_string(data).graph
    sizes, missing = {}, []
    for vi in graph.input:
        dims = vi.type.tensor_type.shape.dim
        if vi.name in feeds:
            for d, n in zip(dims, np.shape(feeds[vi.name])):
                if d.dim_param:
                    sizes.setdefault(d.dim_param, n)
        elif vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
            missing.append(vi)
    out = dict(feeds)
    for vi in missing:
        dims = vi.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") or d.dim_param in sizes for d in dims):
            out[vi.name] = np.zeros([d.dim_value if d.HasField("dim_value") else sizes[d.dim_param] for d in dims],
                                    np.float32)
    return out


def run_onnx(data: bytes, feeds: dict, n_threads=None):
    """(outputs, output names, input names, runtime name, note): onnxruntime, or onnx.reference where
    onnxruntime refuses."""
    rt = OnnxRuntime(data, n_threads)
    note = rt.error
    if rt.session is not None:
        try:
            return rt.run(feeds), rt.output_names, rt.input_names, "onnxruntime", None
        except Exception as e:  # refused at run time (e.g. an operator variant it does not implement)
            note = f"onnxruntime refused to run it: {error_line(e)}"
    from onnx.reference import ReferenceEvaluator

    ev = ReferenceEvaluator(data)
    return (ev.run(None, feeds_for(ev.input_names, feeds)), list(ev.output_names), list(ev.input_names),
            "onnx.reference", note)


def error_line(e) -> str:
    """The last line of an exception's message (onnxruntime ends with the reason), at most 300 characters, or
    the exception's type when the message is empty."""
    text = str(e).strip().splitlines()
    return text[-1][:300] if text else type(e).__name__


def check_written(triples) -> tuple:
    """(ok, the largest |diff|) of a written file's outputs against the source's over (name, got, want) triples, at
    CHECK_TOLERANCE; (None, why) when an output's shape differs."""
    worst, ok = 0.0, True
    for name, got, want in triples:
        got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
        if got.shape != want.shape:
            return None, f"output {name!r} has shape {list(got.shape)}, the source's {list(want.shape)}"
        diff = float(np.max(np.abs(got - want))) if got.size else 0.0
        worst = max(worst, diff)
        ok = ok and diff <= CHECK_TOLERANCE * max(1.0, float(np.max(np.abs(want))) if want.size else 0.0)
    return ok, worst
