"""export-c of whole graphs (rnnfast/exporters/c_graph.py): the whole-model fixtures of tests/data/onnx/graph
(tools/make_graph_fixtures.py) exported as C, compiled with gcc's strict warnings, run by a C driver on inputs this
test writes, and compared with onnxruntime on the same inputs; chunk by chunk, `<prefix>_step` (the state kept in
the C state struct) against onnxruntime's run with each state output fed back. The runtime is built twice: with
the AVX2 kernel table (when this CPU has it) and portable (the scalar reference kernels). Every link wraps the
allocators, so a malloc anywhere in the exported code would not link; no object may hold a writable global."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import rnnfast
from c_graph_driver import compile_runtime, link_driver, link_test, read_output, write_inputs
from conftest import assert_close, package_env
from rnnfast.errors import FormatError
from rnnfast.exporters.c_graph import export_c_graph

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

DATA = Path(__file__).parent / "data" / "onnx" / "graph"
AVX2 = ("-mavx2", "-mfma", "-mf16c")
AVX512 = AVX2 + ("-mavx512f", "-mavx512vl", "-mavx512dq", "-mavx512bw")


def ort_run(path, feeds):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def export(tmp, name, exporter, dims, prefix=None):
    path = DATA / f"{name}.{exporter}.onnx"
    out = tmp / f"{name}_{exporter}_{'_'.join(str(v) for v in dims.values())}"
    return path, out, export_c_graph(rnnfast.load(str(path)), out, prefix=prefix or name, dims=dims, where=path.name)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    """Runtime objects per ISA flag set, compiled once (every export ships the same runtime sources)."""
    tmp = tmp_path_factory.mktemp("runtime")
    _, _, e = export(tmp, "stream_gru", "ts", {"batch": 1, "frames": 1})
    supported = rnnfast._core.isa_supported()
    isas = ([AVX512] if "avx512" in supported else []) + ([AVX2] if "avx2" in supported else []) + [()]
    return {isa: compile_runtime(e, tmp, isa) for isa in isas}


def run_c(exe, workdir, *args):
    r = subprocess.run([str(exe), str(workdir), *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("exporter", ["ts", "dynamo"])
def test_vad_run_and_step_match_onnxruntime(tmp_path, runtime, exporter):
    """The VAD (If on the sample rate around STFT conv, conv encoder, LSTM, conv head; state in and out) at 16 kHz,
    batch 1, chunk 512: one run, then 8 chunks stepped with the state inside the C struct."""
    path, out, e = export(tmp_path, "vad", exporter, {"batch": 1, "chunk": 512})
    assert e.states == {"state": "stateN"}
    rng = np.random.default_rng(5)
    feeds = {"input": rng.standard_normal((1, 512)).astype(np.float32) * 0.3,
             "state": rng.standard_normal((2, 1, 64)).astype(np.float32) * 0.5, "sr": np.array(16000, np.int64)}
    want = ort_run(path, feeds)
    chunks = rng.standard_normal((8, 1, 512)).astype(np.float32) * 0.3
    for c in range(8):
        write_inputs(out, {"input": chunks[c], "sr": np.array(16000, np.int64)}, chunk=c)
    write_inputs(out, feeds)
    for isa, objs in runtime.items():
        exe = link_driver(e, "vad", out, objs, isa)
        run_c(exe, out, "run")
        for name, (shape, dtype) in e.outputs.items():
            assert_close(read_output(out, name, shape, dtype), want[name], what=f"{name} {isa or 'portable'}")
        run_c(exe, out, "step", 8)
        state = np.zeros((2, 1, 64), np.float32)
        for c in range(8):
            step = ort_run(path, {"input": chunks[c], "state": state, "sr": np.array(16000, np.int64)})
            assert_close(read_output(out, "output", (1, 1), np.float32, chunk=c), step["output"],
                         what=f"step {c} {isa or 'portable'}")
            state = step["stateN"]
        assert_close(read_output(out, "final_state", (2, 1, 64), np.float32), state, what="state after 8 steps")


def test_vad_8khz_branch_and_batch(tmp_path, runtime):
    """The other branch of the If (8 kHz, chunk 256) at batch 3: both branches are planned at init."""
    path, out, e = export(tmp_path, "vad", "ts", {"batch": 3, "chunk": 256})
    rng = np.random.default_rng(6)
    feeds = {"input": rng.standard_normal((3, 256)).astype(np.float32) * 0.3,
             "state": rng.standard_normal((2, 3, 64)).astype(np.float32) * 0.5, "sr": np.array(8000, np.int64)}
    want = ort_run(path, feeds)
    write_inputs(out, feeds)
    isa = next(iter(runtime))
    exe = link_driver(e, "vad", out, runtime[isa], isa)
    run_c(exe, out, "run")
    for name, (shape, dtype) in e.outputs.items():
        assert_close(read_output(out, name, shape, dtype), want[name], what=name)


@pytest.mark.parametrize("name,exporter,dims", [("denoiser", "dynamo", {"batch": 2, "frames": 50}),
                                                 ("crnn", "dynamo", {"batch": 2, "4*steps": 64}),
                                                 ("stream_gru", "ts", {"batch": 2, "frames": 4})])
def test_other_models_match_onnxruntime(tmp_path, runtime, name, exporter, dims):
    path, out, e = export(tmp_path, name, exporter, dims)
    rng = np.random.default_rng(7)
    feeds = {n: rng.standard_normal(shape).astype(dtype) for n, (shape, dtype) in e.inputs.items()}
    want = ort_run(path, feeds)
    write_inputs(out, feeds)
    isa = next(iter(runtime))
    exe = link_driver(e, name, out, runtime[isa], isa)
    run_c(exe, out, "run")
    for n, (shape, dtype) in e.outputs.items():
        assert_close(read_output(out, n, shape, dtype), want[n], what=f"{name} {n}")


def test_no_allocator_and_no_writable_global(runtime):
    """No object of the runtime references an allocator (RNNF_NO_HEAP), and none has a writable global: every
    symbol in .data or .bss would be one (.data.rel.ro is the const tables' pointers, read-only after load)."""
    objs = [str(o) for objs in runtime.values() for o in objs]
    undefined = subprocess.run(["nm", "-u", *objs], capture_output=True, text=True, check=True).stdout.split()
    assert not {"malloc", "calloc", "realloc", "free", "posix_memalign", "aligned_alloc"} & set(undefined)
    table = subprocess.run(["objdump", "-t", *objs], capture_output=True, text=True, check=True).stdout
    writable = []
    for line in table.splitlines():
        m = re.search(r"\sO\s+(\S+)\t", line)
        section = m.group(1) if m else ""
        if section in ("*COM*", ".data", ".bss") or (section.startswith((".data.", ".bss."))
                                                      and not section.startswith(".data.rel.ro")):
            writable.append(line)
    assert not writable, writable
    assert ".data.rel.ro" in table or ".rodata" in table, "objdump lists no data sections at all"


@pytest.mark.parametrize("flags,table,register,entry,kernels", [
    (AVX2, "avx2", "ymm", "gemm_packed_avx2", ("gemm_packed_avx2", "conv_micro_r")),
    (AVX512, "avx512", "zmm", "gemm_packed_avx512", ("rows_r", "conv_rows", "conv_pool_rows"))], ids=["avx2", "avx512"])
def test_gemm_accumulators_stay_in_registers_at_O2(runtime, flags, table, register, entry, kernels):
    """The exported runtime is built with -O2, where gcc left the GEMM microkernels' accumulator arrays in memory
    unless their loops carry RNNF_UNROLL (kernels.h): the crnn's and the denoiser's exported C ran 2.2-3x slower
    than the library built with -O3. In the AVX2 object, the packed GEMM and the implicit-GEMM microkernel must not
    move a ymm register to or from the stack (the accumulators of a 6 x 16 block need 12 of the 16); in the AVX-512
    object, the functions holding its register blocks (up to 24 accumulators of the 32 zmm) no zmm register."""
    if flags not in runtime:
        pytest.skip(f"this CPU has no {table} table")
    obj = next(o for o in runtime[flags] if Path(o).stem == f"rnnf_kernels_{table}")
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(obj)], capture_output=True, text=True,
                          check=True).stdout
    bodies = dict(re.findall(r"<(\w+)>:\n(.*?)(?=\n\n|\Z)", text, re.S))
    assert entry in bodies and any(k in bodies for k in kernels), sorted(bodies)
    # the microkernel's own function when gcc keeps one (a caller inlining it also stores partial panels' tiles)
    for name in [k for k in kernels if k in bodies]:
        spills = re.findall(rf"vmov\w+\s+(?:%{register}\d+,\s*-?\w*\(%r[sb]p\)|-?\w*\(%r[sb]p\),\s*%{register}\d+)",
                            bodies[name])
        assert not spills, f"{name}: {len(spills)} {register} moves to or from the stack, e.g. {spills[:3]}"


@pytest.mark.parametrize("quant", ["int8", "fp16"])
def test_quantized_vad_agrees_with_model_quantize_and_its_rnnf(tmp_path, runtime, quant):
    """One quantization rule (rnnfast/quantize.py) for the whole graph too: Model.quantize (the LSTMs inside the
    If branches included), its .rnnf 2 file and the export of the quantized model store the same weights and run
    the same kernels, so they agree within float32 tolerance; against onnxruntime's float model the probability
    moves by less than the int8 / half bound."""
    from rnnfast.exporters.rnnf_graph import graph_to_bytes

    path = DATA / "vad.ts.onnx"
    model = rnnfast.load(str(path)).quantize(quant)
    rng = np.random.default_rng(8)
    feeds = {"input": rng.standard_normal((1, 512)).astype(np.float32) * 0.3,
             "state": rng.standard_normal((2, 1, 64)).astype(np.float32) * 0.5, "sr": np.array(16000, np.int64)}
    engine = dict(zip(model.output_names, model.run(feeds)))
    from_file = rnnfast.load(graph_to_bytes(model.graph.compiled, "vad")).run(feeds)
    for n, got in zip(model.output_names, from_file):
        np.testing.assert_array_equal(got, engine[n])
    e = export_c_graph(model, tmp_path, prefix="vad", dims={"batch": 1, "chunk": 512}, where=f"vad {quant}")
    assert ("static const int8_t" if quant == "int8" else "static const uint16_t") in e.source.read_text()
    write_inputs(tmp_path, feeds)
    isa = next(iter(runtime))
    run_c(link_driver(e, "vad", tmp_path, runtime[isa], isa), tmp_path, "run")
    for n, (shape, dtype) in e.outputs.items():
        assert_close(read_output(tmp_path, n, shape, dtype), engine[n], what=f"{quant} {n}: C vs Model.quantize")
    want = ort_run(path, feeds)["output"]
    assert_close(engine["output"], want, int8=quant == "int8", half=quant == "fp16", what=f"{quant} vs float")
    assert np.abs(engine["output"] - want).max() > 0, "quantizing changed nothing: were the LSTMs quantized?"


def test_refusals(tmp_path):
    m = rnnfast.load(str(DATA / "vad.ts.onnx"))
    with pytest.raises(ValueError, match="'chunk'"):
        export_c_graph(m, tmp_path, prefix="vad", dims={"batch": 1})
    with pytest.raises(ValueError, match="prefix"):
        export_c_graph(m, tmp_path, prefix="1vad", dims={"batch": 1, "chunk": 512})
    with pytest.raises(ValueError, match="state pair"):
        export_c_graph(m, tmp_path, prefix="vad", dims={"batch": 1, "chunk": 512}, states={"input": "stateN"})


def test_refuses_a_host_node_by_name(tmp_path):
    """An operator outside the C executor (run through onnx.reference in Python) is refused, naming the node."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    axis = helper.make_tensor("axis", TensorProto.INT64, [], [1])
    graph = helper.make_graph([helper.make_node("CumSum", ["x", "axis"], ["c"], name="cum"),
                               helper.make_node("Relu", ["c"], ["y"], name="relu")], "g", [x], [y], [axis])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m = rnnfast.load(model.SerializeToString())
    if getattr(m.graph, "compiled", None) is None:
        pytest.skip("this graph does not compile for the C executor at all")
    with pytest.raises(FormatError, match="cum"):
        export_c_graph(m, tmp_path, prefix="m", dims={"batch": 1})


def test_command_line(tmp_path):
    """`rnnfast export-c FILE --dim NAME=SIZE` exports the whole graph; a size left open is a usage error naming it."""
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "rnnfast", "export-c", str(DATA / "stream_gru.ts.onnx"), *args],
                              capture_output=True, text=True, cwd=tmp_path, env=package_env(), timeout=300)

    r = cli("-o", "out", "--prefix", "sg", "--dim", "batch=1", "--dim", "frames=4")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "sg.c").is_file() and (tmp_path / "out" / "rnnf_runtime" / "rnnf_target.h").is_file()
    assert "conv_cache -> conv_cache_out" in r.stdout and "h -> h_out" in r.stdout
    r = cli("-o", "out2", "--dim", "batch=1")
    assert r.returncode == 2 and "'frames'" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = cli("-o", "out3", "--dim", "batch=0")
    assert r.returncode == 2 and "batch=0" in r.stderr, r.stderr


@pytest.mark.parametrize("name", ["k3_functional_mix", "k3_conv_pool_1d"])
def test_keras_models_match_keras(tmp_path, runtime, name):
    """Keras models lower to the same graph (two inputs and three outputs; Conv1D and pooling): the exported C
    against the outputs Keras recorded (tests/data/keras/<name>.npz: x<i> the inputs, y<j> the outputs in order)."""
    from rnnfast.graph.dims import Dim

    rec = np.load(DATA.parent.parent / "keras" / f"{name}.npz")
    m = rnnfast.load(str(DATA.parent.parent / "keras" / f"{name}.keras"))
    graph = m.graph.compiled.graph
    feeds = {n: rec[f"x{i}"] for i, n in enumerate(graph.inputs)}
    dims = {}
    for n, x in feeds.items():
        for d, size in zip(graph.values[n].shape, x.shape):
            if isinstance(d, Dim) and len(d.symbols()) == 1 and str(d) in d.symbols():
                dims[str(d)] = size
    e = export_c_graph(m, tmp_path, prefix="k", dims=dims, where=name)
    write_inputs(tmp_path, feeds)
    isa = next(iter(runtime))
    run_c(link_driver(e, "k", tmp_path, runtime[isa], isa), tmp_path, "run")
    for j, (n, (shape, dtype)) in enumerate(e.outputs.items()):
        assert_close(read_output(tmp_path, n, shape, dtype), rec[f"y{j}"], what=f"{name} {n}")


def test_sequence_lengths_as_an_input_of_the_exported_code(tmp_path, runtime):
    """PyTorch packed sequences: exported with lengths=True, the C code takes sequence_lens and gives the output
    PyTorch recorded for rows that end early."""
    import json

    source = Path(__file__).parent / "data" / "torch" / "lstm_packed.pt"
    with np.load(source.with_suffix(".npz")) as z:
        x, want, lens = z["input"], z["output"], json.loads(str(z["run_options"]))["sequence_lens"]
    out = tmp_path / "packed"
    dims = {"seq_len": x.shape[0], "batch": x.shape[1]}
    e = export_c_graph(rnnfast.load(str(source)), out, prefix="packed", dims=dims, where=source.name, lengths=True)
    assert list(e.inputs)[-1] == "sequence_lens"
    feeds = {n: np.zeros(shape, dtype) for n, (shape, dtype) in e.inputs.items()}
    feeds["input"], feeds["sequence_lens"] = x, np.asarray(lens, np.int32)
    write_inputs(out, feeds)
    isa = next(iter(runtime))
    run_c(link_driver(e, "packed", out, runtime[isa], isa), out, "run")
    assert_close(read_output(out, "output", *e.outputs["output"]), want, what="packed output")


def test_the_generated_test_program_checks_run_and_step(tmp_path, runtime):
    """`<prefix>_test.c` (as the chain export writes one): its embedded expected outputs are rnnfast's, which match
    onnxruntime on the same inputs; compiled, it passes (run, and one step from the reset state, states included)
    and prints the run's outputs; with one expected value moved it fails, naming the output."""
    from rnnfast.exporters._c_graph_test import test_program
    from rnnfast.exporters.c_graph import _ctype

    path, out, e = export(tmp_path, "stream_gru", "ts", {"batch": 2, "frames": 4})
    assert e.test is not None and e.states, e.test_note
    want = ort_run(path, e.test_feeds)
    for n in e.outputs:
        assert_close(e.expected[n], want[n], what=f"expected {n} vs onnxruntime")
    isa = next(iter(runtime))
    r = subprocess.run([str(link_test(e, out, runtime[isa], isa))], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    printed = np.array(r.stdout.split(), np.float64)
    assert_close(printed, np.concatenate([want[n].reshape(-1) for n in e.outputs]), what="printed outputs")
    moved = dict(e.expected)
    moved["h_out"] = e.expected["h_out"].copy()
    moved["h_out"].flat[3] += 1e-3
    bad = out / "bad_test.c"
    bad.write_text(test_program("stream_gru", e.inputs, e.outputs, e.states, e.c_names, _ctype, e.test_feeds, moved,
                                "moved"))
    r = subprocess.run([str(link_test(e, out, runtime[isa], isa, bad))], capture_output=True, text=True)
    assert r.returncode == 1 and "run: output h_out[3]" in r.stderr and "step (state): output h_out[3]" in r.stderr, \
        r.stderr


@pytest.mark.parametrize("quant", ["int8", "fp16"])
def test_quantized_matmul_weights_export_as_stored_and_match_the_quantized_model(tmp_path, runtime, quant):
    """Model.quantize(scope="all") of the denoiser (GRU stack + MatMul head): the exported source holds the head's
    weight as int8_t (and its column scales) or IEEE halves, no float copy of it, and the compiled C, widening it
    into scratch at each run, computes what the quantized model computes (both kernel tables)."""
    path = DATA / "denoiser.ts.onnx"
    q = rnnfast.load(str(path)).quantize(quant, scope="all")
    e = export_c_graph(q, tmp_path / "q", prefix="den", dims={"batch": 2, "frames": 7}, where=path.name)
    text = e.source.read_text()
    ctype = "int8_t" if quant == "int8" else "uint16_t"
    entry = re.search(r'\{0, 2, \d+, (den_q\d+), -1, "onnx::MatMul_200", (\d), (\S+)\}', text)
    assert entry and entry.group(2) == ("2" if quant == "int8" else "1"), "the head's tensor entry"
    assert re.search(rf"static const {ctype} {entry.group(1)}\[6144\]", text)  # 96 x 64 values as stored
    assert (entry.group(3) == "NULL") == (quant == "fp16")
    assert not re.search(r"static const float \w+\[6144\]", text)  # and no float32 copy of them
    float32 = export_c_graph(rnnfast.load(str(path)), tmp_path / "f", prefix="den", dims={"batch": 2, "frames": 7})
    assert re.search(r"static const float \w+\[6144\]", float32.source.read_text())
    assert e.mem_bytes < float32.mem_bytes  # the state keeps no float32 weights packed at init either
    rng = np.random.default_rng(9)
    feeds = {n: rng.standard_normal(shape).astype(dtype) for n, (shape, dtype) in e.inputs.items()}
    want = dict(zip(q.output_names, q.run(feeds)))
    write_inputs(e.source.parent, feeds)
    for isa, objs in runtime.items():
        exe = link_driver(e, "den", e.source.parent, objs, isa)
        run_c(exe, e.source.parent, "run")
        for n, (shape, dtype) in e.outputs.items():
            assert_close(read_output(e.source.parent, n, shape, dtype), want[n], what=f"{n} {isa or 'portable'}")


def test_a_quantized_conv_weight_is_refused_by_node():
    q = rnnfast.load(str(DATA / "crnn.ts.onnx")).quantize("int8", scope="all")
    with pytest.raises(FormatError, match=r"crnn: node /conv1/Conv \(Conv\) reads the constant 'onnx::Conv_188' "
                                          r"stored as int8: export-c has no kernel that reads a quantized CONV"):
        export_c_graph(q, "/nonexistent/never-written", dims={"batch": 1, "frames": 64}, where="crnn")


@pytest.mark.parametrize("name, given", [("lstm", ("h0", "c0")), ("lstm_no_state", ())])
def test_torch_initial_states_may_be_left_out_of_the_exported_code(tmp_path, runtime, name, given):
    """PyTorch's h0 and c0 default to zeros: NULL in <prefix>_run is zeros, a pointer is the state; both against
    the outputs PyTorch recorded (tools/), with and without the states."""
    source = Path(__file__).parent / "data" / "torch" / f"{name}.pt"
    with np.load(source.with_suffix(".npz")) as z:
        rec = {k: z[k] for k in z.files}
    out = tmp_path / name
    dims = {"seq_len": rec["input"].shape[0], "batch": rec["input"].shape[1]}
    e = export_c_graph(rnnfast.load(str(source), batch_first=False), out, prefix="t", dims=dims, where=source.name)
    assert e.optional == ["h0", "c0"] and "(optional: NULL means zeros)" in e.header.read_text()
    write_inputs(out, {n: rec[n] for n in ("input",) + given})
    isa = next(iter(runtime))
    run_c(link_driver(e, "t", out, runtime[isa], isa), out, "run")
    for n in ("output", "h_n", "c_n"):
        assert_close(read_output(out, n, *e.outputs[n]), rec[n], what=f"{name} {n} (given {given})")


def test_an_initializer_backed_state_is_its_value_when_left_out(tmp_path, runtime):
    """An ONNX input backed by an initializer (onnxruntime's overridable initializer): NULL in <prefix>_run is the
    initializer's value, a pointer overrides it; both against onnxruntime."""
    from onnx_builders import lstm_with_initializer_state

    rng = np.random.default_rng(6)
    h0 = rng.standard_normal((1, 2, 5)).astype(np.float32)
    data = lstm_with_initializer_state(h0)
    x, fed = rng.standard_normal((3, 2, 4)).astype(np.float32), rng.standard_normal((1, 2, 5)).astype(np.float32)
    e = export_c_graph(rnnfast.load(data), tmp_path, prefix="s", dims={"seq": 3, "batch": 2})
    assert e.optional == ["h0"] and "(optional: NULL means its default value)" in e.header.read_text()
    isa = next(iter(runtime))
    exe = link_driver(e, "s", tmp_path, runtime[isa], isa)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    for feeds in ({"X": x}, {"X": x, "h0": fed}):
        for stale in tmp_path.glob("*.bin"):
            stale.unlink()
        write_inputs(tmp_path, feeds)
        run_c(exe, tmp_path, "run")
        for n, want in zip(("Y", "Y_h"), session.run(None, feeds)):
            assert_close(read_output(tmp_path, n, *e.outputs[n]), want, what=f"{n} given {sorted(feeds)}")
