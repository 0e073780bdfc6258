"""Every model fixture of tests/data through every path rnnfast offers, against what the source framework recorded:
the table of docs/fixtures.md (issue 20, "Measured").

    python bench/fixture_table.py [--out docs/fixtures.md] [--only torch/lstm,keras/] [--calls 200] [--rounds 3]

Per fixture (ONNX, Keras, PyTorch, TF 1.x; the recorded inputs and outputs are the ones the fixture tests use):
  - run: rnnfast.load(...).run on the recorded inputs, max |diff| to the recorded outputs (ONNX: also to
    onnxruntime's run of the file);
  - .rnnf 2 -> C library: `rnnfast convert` to .rnnf 2, then tests/c/test_rnnf_graph.c (the C library alone, built
    from src_c with -O2) loads and runs it on the same inputs: max |diff| to the recorded outputs;
  - export-c: rnnfast.exporters.c_graph for the recorded shapes, gcc -std=c99 -O2 -mavx2 -mfma -mf16c with the
    strict flags, the driver of tests/c_graph_driver.py runs it: max |diff|, the bytes of the generated .c and of
    its object (size: text + data; the runtime's objects are the same for every model and counted once), and the
    median time of one <prefix>_run beside onnxruntime's run of the same inputs (the ONNX file itself, else the
    standard-op ONNX `rnnfast convert` writes), 1 thread each, in interleaved rounds.
Where a path refuses, the cell says so and the refusal is quoted under the table. Inputs a C path needs that the
fixture does not record are only PyTorch's optional h0/c0 and a stateful Keras layer's states (zeros: torch's
default, and the recorded call is the first after reset_states) and the run options (sequence lengths) as the inputs
of the same names."""
from __future__ import annotations

import argparse
import contextlib
import datetime
import glob
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
DATA = ROOT / "tests" / "data"
ISA = ("-mavx2", "-mfma", "-mf16c")


class Fixture:
    def __init__(self, key, fmt, path, feeds, expected, load_options=None, run_options=None, onnx=None):
        self.key, self.fmt, self.path = key, fmt, str(path)
        self.feeds, self.expected = feeds, expected  # feeds: list (by position) or dict; expected: list or dict
        self.load_options, self.run_options = load_options or {}, run_options or {}
        self.onnx = onnx  # the fixture's own ONNX file, for onnxruntime


def _onnx_fixtures():
    out = []
    for path in sorted(glob.glob(str(DATA / "onnx" / "*.onnx"))):
        stem = os.path.basename(path)[:-5]
        z = np.load(os.path.join(os.path.dirname(path), stem + ".npz"))
        take = lambda kind: {k.split(".", 2)[2]: z[k] for k in z.files if k.startswith(f"case0.{kind}.")}
        out.append(Fixture(f"onnx/{stem}", "onnx", path, take("in"), take("out"), onnx=path))
    for path in sorted(glob.glob(str(DATA / "onnx" / "graph" / "*.onnx"))):
        stem = os.path.basename(path)[:-5]
        z = np.load(DATA / "onnx" / "graph" / (stem.split(".")[0] + ".npz"))
        take = lambda kind: {k[len(kind) + 1:]: z[k] for k in z.files if k.startswith(kind + ":")}
        out.append(Fixture(f"onnx/graph/{stem}", "onnx", path, take("in"), take("out"), onnx=path))
    return out


def _keras_fixtures():
    out = []
    for manifest in sorted(glob.glob(str(DATA / "keras" / "manifest_*.json"))):
        for case in json.load(open(manifest)):
            z = np.load(DATA / "keras" / case["npz"])
            prefix = "c0_" if case.get("chunks") else ""
            arrays = lambda letter: [z[f"{prefix}{letter}{i}"] for i in range(100) if f"{prefix}{letter}{i}" in z]
            options = {"config": str(DATA / "keras" / case["config"])} if case.get("config") else {}
            out.append(Fixture(f"keras/{case['name']}-{case['generation']}", "keras", DATA / "keras" / case["file"],
                               arrays("x"), arrays("y"), options))
    return out


def _torch_fixtures():
    out = []
    for npz in sorted(glob.glob(str(DATA / "torch" / "*.npz"))):
        stem = os.path.basename(npz)[:-4]
        (path,) = [p for p in glob.glob(str(DATA / "torch" / (stem + ".*"))) if not p.endswith(".npz")]
        z = np.load(npz)
        feeds = {k: z[k] for k in ("input", "h0", "c0") if k in z.files}
        expected = {k: z[k] for k in ("output", "h_n", "c_n") if k in z.files}
        out.append(Fixture(f"torch/{stem}", "torch", path, feeds, expected, json.loads(str(z["load_options"])),
                           json.loads(str(z["run_options"]))))
    return out


def _tf1_fixtures():
    out = []
    for d in sorted(p for p in (DATA / "tf1").iterdir() if (p / "expected.npz").exists()):
        z = np.load(d / "expected.npz")
        expected = {k: z[k] for k in ("output", "state_h", "state_c") if k in z.files}
        out.append(Fixture(f"tf1/{d.name}", "tf1", d / "model.ckpt", [z["x"]], expected,
                           json.loads(str(z["load_options"])), json.loads(str(z["run_options"]))))
    return out


def fixtures():
    return _onnx_fixtures() + _keras_fixtures() + _torch_fixtures() + _tf1_fixtures()


def _quiet_cli(argv):
    """rnnfast's command line in-process: (exit code, stdout + stderr)."""
    from rnnfast.cli import main as cli_main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            code = cli_main(argv)
        except SystemExit as e:
            code = e.code
        except Exception as e:  # noqa: BLE001 - a crash is a row of the table, with its text
            code, _ = 99, buf.write(f"{type(e).__name__}: {e}")
    return code, buf.getvalue().strip()


def _cli_options(fx):
    opts = []
    for k, v in fx.load_options.items():
        if k == "config":
            opts += ["--config", v]
        else:
            opts += ["--option", f"{k}={json.dumps(v)}"]
    return opts


def _max_diff(got: dict, want, names) -> float:
    """Max |diff| over the recorded outputs, matched by name (or position); a shape that differs only by unit
    axes (an unbatched record against a batched C run) is compared in the record's shape."""
    want = dict(zip(names, want)) if isinstance(want, list) else want
    worst = 0.0
    for name, w in want.items():
        if name not in got:
            raise KeyError(f"no output {name!r} (outputs: {list(got)})")
        g = np.asarray(got[name], np.float64)
        w = np.asarray(w, np.float64)
        if g.shape != w.shape and g.size == w.size:
            g = g.reshape(w.shape)
        if g.shape != w.shape:
            raise ValueError(f"output {name!r} has shape {list(g.shape)}, recorded {list(w.shape)}")
        worst = max(worst, float(np.max(np.abs(g - w))) if w.size else 0.0)
    return worst


def _feeds_for(fx, names, dtypes, ranks, batch_first=False, state_shape=None):
    """The fixture's inputs for a C path whose inputs are `names` (dtypes, ranks): the recorded feeds by name or
    position, the run options as inputs of the same name, PyTorch's missing h0/c0 as zeros, an unbatched torch
    record given its batch axis, a stateful Keras layer's state input ("layer:state_h") as zeros (the recorded
    call is the first after reset_states), shaped by state_shape(name, feeds)."""
    if isinstance(fx.feeds, list):
        given = dict(zip([n for n in names if ":state_" not in n], fx.feeds))
    else:
        given = dict(fx.feeds)
    given.update({k: np.asarray(v) for k, v in fx.run_options.items()})
    out = {}
    for name, dt, rank in zip(names, dtypes, ranks):
        if name in given:
            v = np.asarray(given[name])
            if fx.fmt == "torch" and v.ndim == rank - 1:
                v = np.expand_dims(v, 0 if name == "input" and batch_first else 1)
            out[name] = np.require(v.astype(dt), requirements="C")  # (ascontiguousarray makes a scalar 1-d)
        elif fx.fmt == "torch" and name in ("h0", "c0") and name.replace("0", "_n") in fx.expected:
            final = fx.expected[name.replace("0", "_n")]  # the initial state has the final state's shape
            out[name] = np.zeros(final.shape if final.ndim == rank else (final.shape[0], 1) + final.shape[1:], dt)
        elif fx.fmt == "keras" and ":state_" in name and state_shape is not None:
            out[name] = None
        else:
            raise KeyError(f"the fixture records no value for input {name!r}")
    for name in [n for n, v in out.items() if v is None]:
        out[name] = np.zeros(state_shape(name, out), np.float32)
    unused = [k for k in fx.run_options if k not in names]
    if unused:
        raise KeyError(f"the graph has no input for the run option(s) {unused} the fixture's run passes "
                       f"(its inputs: {list(names)})")
    return out


def _state_shape(graph):
    """state_shape(name, feeds) for _feeds_for: the input's shape with the sizes the other feeds fix."""
    from rnnfast.graph.dims import Dim

    def shape(name, feeds):
        dims = _dims(graph, {k: v for k, v in feeds.items() if v is not None})
        return [d.evaluate(dims) if isinstance(d, Dim) else d for d in graph.values[name].shape]
    return shape


def _dims(graph, feeds):
    """{symbol: size} from the feeds' shapes, for the graph inputs' plain symbolic axes."""
    from rnnfast.graph.dims import Dim

    dims = {}
    for name, v in feeds.items():
        for axis, d in enumerate(graph.values[name].shape):
            if isinstance(d, Dim) and len(d.symbols()) == 1:
                (sym,) = d.symbols()
                if d.evaluate({sym: v.shape[axis]}) == v.shape[axis]:
                    dims[sym] = v.shape[axis]
    return dims


def _write_tensor(path, arr):
    import struct

    arr = np.asarray(arr, order="C")
    Path(path).write_bytes(struct.pack(f"<q{arr.ndim}q", arr.ndim, *arr.shape) + arr.tobytes())


def _read_tensor(path):
    import struct

    raw = Path(path).read_bytes()
    rank = struct.unpack_from("<q", raw)[0]
    dims = struct.unpack_from(f"<{rank}q", raw, 8)
    return np.frombuffer(raw, np.float32, offset=8 + 8 * rank).reshape(dims)


def _short(text, n=160):
    line = " ".join(str(text).split())
    return line if len(line) <= n else line[:n - 1] + "…"


class Tools:
    """The C library program and the export-c runtime objects, built once."""

    def __init__(self, work: Path):
        self.work = work
        build = work / "lib"
        shutil.copytree(ROOT / "src_c", build / "src_c", ignore=shutil.ignore_patterns("build", "*.a", "*.so"))
        shutil.copytree(ROOT / "include", build / "include")
        subprocess.run(["make", "-s", "-j2", "-C", str(build / "src_c"), "librnnfast.a", "CFLAGS=-O2"], check=True,
                       capture_output=True)
        self.program = build / "test_rnnf_graph"
        wraps = "-Wl," + ",".join(f"--wrap={f}" for f in ("malloc", "calloc", "realloc", "posix_memalign",
                                                          "aligned_alloc"))  # the program counts allocations
        subprocess.run(["gcc", "-std=c99", "-O2", f"-I{build / 'include'}", str(ROOT / "tests" / "c" /
                        "test_rnnf_graph.c"), str(build / "src_c" / "librnnfast.a"), wraps, "-fopenmp", "-lm", "-o",
                        str(self.program)], check=True, capture_output=True)
        self.runtime_objs = None
        self.runtime_bytes = None


def _size(objs):
    out = subprocess.run(["size", *map(str, objs)], capture_output=True, text=True, check=True).stdout.splitlines()
    return sum(int(line.split()[0]) + int(line.split()[1]) for line in out[1:])


def run_column(fx, row):
    import rnnfast

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = rnnfast.load(fx.path, **fx.load_options)
        got = model.run(fx.feeds, **fx.run_options)
    row["run"] = _max_diff(dict(zip(model.output_names, got)), fx.expected, model.output_names)
    if fx.onnx:
        import onnxruntime as ort

        sess = ort.InferenceSession(fx.onnx, providers=["CPUExecutionProvider"])
        want = sess.run(None, {k: v for k, v in fx.feeds.items()})
        row["run_ort"] = _max_diff(dict(zip(model.output_names, got)), want, [o.name for o in sess.get_outputs()])
    return model


def c_library_column(fx, tools, work, row):
    import rnnfast

    out = work / "model.rnnf"
    lens = ["--sequence-lens"] if fx.run_options else []  # the run options are sequence lengths
    code, text = _quiet_cli(["convert", fx.path, str(out), "--rnnf-version", "2"] + lens + _cli_options(fx))
    if code != 0 and "give --seq-len and --batch" in text:  # a model that takes only its recorded shape
        shape = next(iter(fx.feeds.values())).shape
        for seq, batch in ((shape[0], shape[1]), (shape[1], shape[0])) if len(shape) >= 2 else ():
            code, text = _quiet_cli(["convert", fx.path, str(out), "--rnnf-version", "2", "--seq-len", str(seq),
                                     "--batch", str(batch)] + lens + _cli_options(fx))
            if code == 0:
                break
    if code != 0:
        row["rnnf_why"] = text.splitlines()[-1] if text else f"exit {code}"
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        written = rnnfast.load(out)
    dtypes = [_np_type(i.type) for i in written.inputs]
    ranks = [len(i.shape) for i in written.inputs]
    try:
        feeds = _feeds_for(fx, written.input_names, dtypes, ranks, fx.load_options.get("batch_first", False),
                           _state_shape(written.graph.compiled.graph))
    except KeyError as e:
        row["rnnf_why"] = f"not run: {e.args[0]}"
        return
    run_dir = work / "c_lib"
    run_dir.mkdir()
    for k, n in enumerate(written.input_names):
        _write_tensor(run_dir / f"in{k}.bin", feeds[n])
    r = subprocess.run([str(tools.program), "run", str(out), str(run_dir)], capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "2"})
    if r.returncode != 0:
        row["rnnf_why"] = "C library: " + (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
        return
    got = {n: _read_tensor(run_dir / f"out{k}.bin") for k, n in enumerate(written.output_names)}
    row["rnnf"] = _max_diff(got, fx.expected, written.output_names)


def _np_type(onnx_type: str):
    return {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
            "tensor(bool)": np.bool_, "tensor(int8)": np.int8}.get(onnx_type, np.float32)


def export_column(fx, model, tools, work, row):
    from c_graph_driver import compile_runtime, link_driver, read_output, write_inputs

    from rnnfast.exporters.c_graph import compiled_graph_of, export_c_graph

    try:
        compiled = compiled_graph_of(model, fx.key, lengths=bool(fx.run_options))
        graph = compiled.graph
        values = [graph.values[n] for n in graph.inputs]
        feeds = _feeds_for(fx, graph.inputs, [v.dtype for v in values], [len(v.shape) for v in values],
                           fx.load_options.get("batch_first", False), _state_shape(graph))
        export = export_c_graph(model, work / "c", prefix="m", dims=_dims(graph, feeds), where=fx.key,
                                lengths=bool(fx.run_options))
    except KeyError as e:
        row["export_why"] = f"not run: {e.args[0]}"
        return None
    except Exception as e:  # noqa: BLE001 - a refusal is a row of the table, with its text
        row["export_why"] = f"{type(e).__name__}: {e}"
        return None
    if tools.runtime_objs is None:
        tools.runtime_objs = compile_runtime(export, tools.work / "runtime", ISA)
        tools.runtime_bytes = _size(tools.runtime_objs)
    try:
        exe = link_driver(export, "m", work / "c", tools.runtime_objs, ISA)
    except AssertionError as e:
        row["export_why"] = f"gcc: {_short(e, 300)}"
        return None
    for name in list(export.inputs) + list(export.outputs):  # the driver's files are named by graph name: a/b.bin
        (work / "c" / name).parent.mkdir(parents=True, exist_ok=True)
    write_inputs(work / "c", feeds)
    r = subprocess.run([str(exe), str(work / "c"), "run"], capture_output=True, text=True)
    if r.returncode != 0:
        row["export_why"] = f"exported run: {r.stderr.strip()}"
        return None
    got = {n: read_output(work / "c", n, shape, dt) for n, (shape, dt) in export.outputs.items()}
    row["export"] = _max_diff(got, fx.expected, list(export.outputs))
    row["c_bytes"] = os.path.getsize(export.source)
    row["o_bytes"] = _size([next((work / "c").glob("m_*.o"))])
    return exe, feeds


def _ort_session(fx, work, row):
    import onnxruntime as ort

    path = fx.onnx
    if path is None:
        path = str(work / "model.onnx")
        code, text = _quiet_cli(["convert", fx.path, path] + _cli_options(fx))
        if code != 0:
            row["ort_why"] = "convert to ONNX: " + (text.splitlines()[-1] if text else f"exit {code}")
            return None
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def _ort_feeds(fx, feeds, work, row):
    sess = _ort_session(fx, work, row)
    if sess is None:
        return None, None
    names = [i.name for i in sess.get_inputs()]
    ort_feeds = {n: feeds[n] for n in names if n in feeds}
    if len(ort_feeds) != len(names) and len(names) == len(feeds):  # convert renamed the inputs: by position
        row["ort_note"] = f"the ONNX file convert wrote names the inputs {names}, the model {list(feeds)}"
        ort_feeds = dict(zip(names, feeds.values()))
    if len(ort_feeds) != len(names):
        row["ort_why"] = f"the ONNX file takes {names}, the export {list(feeds)}"
        return None, None
    try:
        sess.run(None, ort_feeds)
    except Exception as e:  # noqa: BLE001 - the row says why there is no onnxruntime time
        row["ort_why"] = f"onnxruntime: {_short(e, 200)}"
        return None, None
    return sess, ort_feeds


def time_column(fx, exe, feeds, work, row, calls, rounds):
    """The exported run's median (timed inside the C driver) beside onnxruntime's run of the same inputs, in
    interleaved rounds; the exported C alone where onnxruntime has no file to run."""
    sess, ort_feeds = _ort_feeds(fx, feeds, work, row)
    c_ns, o_ns = [], []
    for _ in range(rounds):
        r = subprocess.run([str(exe), str(work / "c"), "timerun", str(calls)], capture_output=True, text=True,
                           check=True)
        c_ns.append(float(r.stdout.strip()))
        if sess is None:
            continue
        times = []
        for _ in range(calls):
            t0 = time.perf_counter_ns()
            sess.run(None, ort_feeds)
            times.append(time.perf_counter_ns() - t0)
        o_ns.append(statistics.median(times))
    row["c_time"] = statistics.median(c_ns) / 1e9
    if o_ns:
        row["ort_time"] = statistics.median(o_ns) / 1e9


def measure(fx, tools, calls, rounds):
    row = {"key": fx.key, "fmt": fx.fmt}
    work = Path(tempfile.mkdtemp(prefix="fx_", dir=tools.work))
    try:
        model = run_column(fx, row)
    except Exception as e:  # noqa: BLE001
        row["run_why"] = f"{type(e).__name__}: {e}"
        return row
    c_library_column(fx, tools, work, row)
    made = export_column(fx, model, tools, work, row)
    if made is not None:
        time_column(fx, *made, work, row, calls, rounds)
    return row


def _num(v):
    return "0" if v == 0 else f"{v:.1e}"


def _time(s):
    return f"{s * 1e6:.1f} µs" if s < 1e-3 else f"{s * 1e3:.2f} ms"


WHAT = {"run_why": "run", "rnnf_why": ".rnnf 2 → C library", "export_why": "export-c",
        "ort_why": "onnxruntime's time"}


def table(rows):
    head = ("| fixture | run: max diff to the source's outputs | .rnnf 2 → C library: max diff | export-c → gcc → "
            "run: max diff | .c bytes | model .o bytes | exported C run | onnxruntime run (1 thread) | ort / C |")
    lines = [head, "|" + "---|" * 9]
    notes = []

    def cell(row, key, why_key, fmt=_num, label="**refused**"):
        if key in row:
            return fmt(row[key])
        if why_key in row:
            why = " ".join(re.sub(r"\S*/fixture_table_\w+/fx_\w+/", "", str(row[why_key])).replace(f"{ROOT}/", "")
                           .split())
            notes.append(f"{len(notes) + 1}. `{row['key']}`, {WHAT[why_key]}: {why}")
            return f"{label} [{len(notes)}]"
        return "–"

    for r in rows:
        run = cell(r, "run", "run_why")
        if "run_ort" in r:
            run += f" (ort {_num(r['run_ort'])})"
        ratio = f"{r['ort_time'] / r['c_time']:.2f}×" if "ort_time" in r else "–"
        if "ort_note" in r:
            notes.append(f"{len(notes) + 1}. `{r['key']}`, onnxruntime's time: {r['ort_note']} (fed by position)")
            ratio += f" [{len(notes)}]"
        lines.append("| " + " | ".join([f"`{r['key']}`", run, cell(r, "rnnf", "rnnf_why"),
                                        cell(r, "export", "export_why"), str(r.get("c_bytes", "–")),
                                        str(r.get("o_bytes", "–")), _time(r["c_time"]) if "c_time" in r else "–",
                                        cell(r, "ort_time", "ort_why", _time, "no ONNX run"), ratio]) + " |")
    return lines, notes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="write the markdown here (docs/fixtures.md)")
    ap.add_argument("--only", help="comma-separated prefixes of fixture keys (torch/lstm, keras/, onnx/graph/vad)")
    ap.add_argument("--calls", type=int, default=200, help="calls per timing round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (C, onnxruntime) per fixture")
    args = ap.parse_args(argv)
    import onnxruntime

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()  # at the start: what was measured
    chosen = [f for f in fixtures() if not args.only or any(f.key.startswith(p) for p in args.only.split(","))]
    rows = []
    with tempfile.TemporaryDirectory(prefix="fixture_table_") as tmp:
        tools = Tools(Path(tmp))
        for fx in chosen:
            rows.append(measure(fx, tools, args.calls, args.rounds))
            print(rows[-1], flush=True)
        runtime_bytes = tools.runtime_bytes
    lines, notes = table(rows)
    refused = sorted({r["key"] for r in rows if any(k.endswith("_why") and k != "ort_why" for k in r)})
    text = "\n".join(lines) + "\n\nRefusals and failures (each is a bug to fix or a limit to lift):\n\n" + \
        ("\n".join(notes) if notes else "none") + "\n"
    print(text)
    if args.out:
        command = " ".join(["python bench/fixture_table.py"] + (sys.argv[1:] if argv is None else list(argv)))
        with open(args.out, "w") as f:
            f.write(f"# Every fixture through every path\n\nMeasured {datetime.date.today()} at commit {commit} "
                    f"with\n\n    {command}\n\n"
                    f"{len(rows)} fixtures of tests/data; onnxruntime {onnxruntime.__version__}; gcc with "
                    f"`{' '.join(ISA)}`. Max diff: the largest absolute difference over every output the source "
                    "framework recorded (ONNX fixtures: torch's outputs, and in brackets onnxruntime's run of the "
                    "file). The runtime's objects an export links (executor, ops, kernels; the same for every "
                    f"model) are {runtime_bytes or 0} bytes of text + data, not counted in the model column. "
                    "**Times are noisy**: the machine has 2 cores shared with other work, so only the ratio of one "
                    f"row means anything; each is the median of {args.rounds} interleaved rounds of {args.calls} "
                    "calls (the exported C timed inside its driver, onnxruntime from Python with 1 intra-op thread "
                    "on the same inputs: the fixture's ONNX file, else the standard-op ONNX `rnnfast convert` "
                    "writes). tests/data holds no .rnnf files: the .rnnf 2 column makes one from each fixture. "
                    "Rows that do not convert or export: "
                    f"{len(refused)} ({', '.join(f'`{k}`' for k in refused) or 'none'}).\n\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
