""".rnnf 2 graphs in the standalone C library (no Python): ONNX fixtures (tools/make_graph_fixtures.py) go through
`rnnfast convert`, tests/c/test_rnnf_graph.c loads the files, runs and streams them, and its outputs are compared
with onnxruntime's on the same inputs. Damaged files get the same verdict, naming the same record, from the C and
the Python reader; the library and program are built with AddressSanitizer and UBSan when gcc has them."""
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from c_build import link, needs_gcc_and_make, sanitized_build
from conftest import assert_close

import rnnfast
from rnnfast import rnnf_spec as spec
from rnnfast.cli import main as cli_main
from rnnfast.errors import FormatError
from rnnfast.importers.rnnf import load_rnnf, load_rnnf_model
from rnnfast.reference import run_layer

pytestmark = needs_gcc_and_make
ort = pytest.importorskip("onnxruntime")
GRAPH = Path(__file__).parent / "data" / "onnx" / "graph"
TORCH = Path(__file__).parent / "data" / "torch"
WRAPS = "-Wl," + ",".join(f"--wrap={f}" for f in ("malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc"))
RNNF_OK, RNNF_ERR_FORMAT, RNNF_ERR_UNSUPPORTED = 0, 4, 6  # include/rnnfast/rnnf.h


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    build, flags = sanitized_build(tmp_path_factory)
    return link(build, "test_rnnf_graph.c", *flags, WRAPS)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """model name -> the .rnnf 2 file `rnnfast convert` wrote for it (after its own reload check passed); "crnn.ts
    int8" and "denoiser.dynamo fp16": with every weight the rule takes quantized (--quantize-scope all)."""
    out, files = tmp_path_factory.mktemp("converted"), {}
    for name in ("vad.ts", "denoiser.dynamo", "crnn.ts", "stream_gru.dynamo"):
        files[name] = out / f"{name}.rnnf"
        assert cli_main(["convert", str(GRAPH / f"{name}.onnx"), str(files[name])]) == 0, name
    for name, dtype in (("crnn.ts", "int8"), ("denoiser.dynamo", "fp16")):
        files[f"{name} {dtype}"] = out / f"{name}.{dtype}.rnnf"
        assert cli_main(["convert", str(GRAPH / f"{name}.onnx"), str(files[f"{name} {dtype}"]), "--quantize", dtype,
                         "--quantize-scope", "all"]) == 0, name
    for name in ("lstm", "lstm_no_state"):  # PyTorch's h0 and c0: inputs that default to zeros
        files[name] = out / f"{name}.rnnf"
        assert cli_main(["convert", str(TORCH / f"{name}.pt"), str(files[name])]) == 0, name
    return files


def _run(exe, *args):
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True,
                          env={"ASAN_OPTIONS": "detect_leaks=1", "OMP_NUM_THREADS": "2"})


def write_tensor(path, arr):
    arr = np.asarray(arr, order="C")  # a scalar stays rank 0
    path.write_bytes(struct.pack(f"<q{arr.ndim}q", arr.ndim, *arr.shape) + arr.tobytes())


def read_tensor(path, dtype=np.float32):
    raw = path.read_bytes()
    rank = struct.unpack_from("<q", raw)[0]
    dims = struct.unpack_from(f"<{rank}q", raw, 8)
    return np.frombuffer(raw, dtype, offset=8 + 8 * rank).reshape(dims)


@pytest.mark.parametrize("name", ["vad.ts", "denoiser.dynamo", "crnn.ts", "stream_gru.dynamo"])
def test_c_runs_converted_graphs_like_onnxruntime(program, converted, name, tmp_path):
    record = np.load(GRAPH / f"{name.split('.')[0]}.npz")
    model = rnnfast.load(converted[name])
    feeds = {n: record[f"in:{n}"] for n in model.input_names}
    for k, n in enumerate(model.input_names):
        write_tensor(tmp_path / f"in{k}.bin", feeds[n])
    result = _run(program, "run", converted[name], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "run: 0 failed" in result.stdout
    session = ort.InferenceSession(str(GRAPH / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    want = session.run(None, feeds)
    assert [o.name for o in session.get_outputs()] == model.output_names  # every output, by name
    for k, (n, w) in enumerate(zip(model.output_names, want)):
        assert_close(read_tensor(tmp_path / f"out{k}.bin"), w, what=f"{name} {n}: C vs onnxruntime")
    lines = result.stdout.splitlines()
    assert [l.split()[1] for l in lines if l.startswith("input ")] == model.input_names
    assert [l.split()[1] for l in lines if l.startswith("output ")] == model.output_names
    if name == "vad.ts":
        assert "input state [2, batch, 64] dtype 0 rank 3" in lines and "loop 1 1" in lines
        assert f"source {GRAPH / 'vad.ts.onnx'}" in lines


@pytest.mark.parametrize("name, given", [("lstm", ("h0", "c0")), ("lstm_no_state", ()), ("lstm", ("h0",))])
def test_c_runs_torch_lstms_with_and_without_their_initial_states(program, converted, name, given, tmp_path):
    """h0 and c0 left out of the C call are zeros, as in PyTorch (the recorded torch outputs: tools/); one given
    alone, the other is zeros."""
    record = np.load(TORCH / f"{name}.npz")
    model = rnnfast.load(converted[name])
    assert [(i.name, i.optional) for i in model.inputs] == [("input", False), ("h0", True), ("c0", True)]
    feeds = {"input": record["input"]} | {n: record[n] for n in given}
    if given == ("h0",):  # the float64 reference with c0 zeros (PyTorch takes both or neither)
        layer = rnnfast.load(TORCH / "lstm.pt").graph.layers[0]
        y, h, c = run_layer(layer, record["input"], initial_h=record["h0"], initial_c=np.zeros((1, 3, 8)))
        want = [y[:, 0], h, c]
    else:
        want = [record[n] for n in ("output", "h_n", "c_n")]
    for k, n in enumerate(model.input_names):
        if n in feeds:
            write_tensor(tmp_path / f"in{k}.bin", feeds[n])
    result = _run(program, "run", converted[name], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "run: 0 failed" in result.stdout and "optional h0 zeros" in result.stdout
    for k, (n, w) in enumerate(zip(model.output_names, want)):
        assert_close(read_tensor(tmp_path / f"out{k}.bin"), w, what=f"{name} {n} given {given}: C vs torch")
        assert_close(model.run(feeds)[k], w, what=f"{name} {n} given {given}: .rnnf 2 in Python vs torch")


@pytest.mark.parametrize("name", ["vad.ts", "stream_gru.dynamo"])
def test_c_streams_with_the_state_loop_like_onnxruntime(program, converted, name, tmp_path):
    """Chunk by chunk with the states carried in C, against onnxruntime fed its own state outputs back."""
    record = np.load(GRAPH / f"{name.split('.')[0]}.npz")
    model = rnnfast.load(converted[name])
    pairs = model.graph.compiled.state_pairs
    step_in = [n for n in model.input_names if n not in pairs]
    step_out = [n for n in model.output_names if n not in pairs.values()]
    n_steps = record[f"stream_in:{step_in[0]}"].shape[0]
    for t in range(n_steps):
        for k, n in enumerate(step_in):
            write_tensor(tmp_path / f"step{t}_in{k}.bin", record[f"stream_in:{n}"][t])
    result = _run(program, "stream", converted[name], tmp_path, n_steps)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stream: 0 failed" in result.stdout and "allocations from step 1 on: 0" in result.stdout
    session = ort.InferenceSession(str(GRAPH / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    states = {n: record[f"stream_init:{n}"] for n in pairs}
    for t in range(n_steps):
        feeds = {**states, **{n: np.asarray(record[f"stream_in:{n}"][t]) for n in step_in}}
        outs = dict(zip(model.output_names, session.run(None, feeds)))
        states = {i: outs[o] for i, o in pairs.items()}
        for k, n in enumerate(step_out):
            assert_close(read_tensor(tmp_path / f"step{t}_out{k}.bin"), outs[n], what=f"{name} step {t} {n}")


@pytest.mark.parametrize("name,dtype", [("crnn.ts", "int8"), ("denoiser.dynamo", "fp16")])
def test_c_runs_quantized_graphs_as_the_quantized_model_computes(program, converted, name, dtype, tmp_path):
    """The C library dequantizes the stored MatMul / Conv / recurrent weights at load: its outputs are the quantized
    model's (Model.quantize(dtype, scope="all") of the ONNX file, run in Python) within the float32 tolerance."""
    record = np.load(GRAPH / f"{name.split('.')[0]}.npz")
    quantized = rnnfast.load(GRAPH / f"{name}.onnx").quantize(dtype, scope="all")
    assert quantized.graph.compiled.stored_constants >= 1
    feeds = {n: record[f"in:{n}"] for n in quantized.input_names}
    for k, n in enumerate(quantized.input_names):
        write_tensor(tmp_path / f"in{k}.bin", feeds[n])
    result = _run(program, "run", converted[f"{name} {dtype}"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for k, (n, w) in enumerate(zip(quantized.output_names, quantized.run(feeds))):
        assert_close(read_tensor(tmp_path / f"out{k}.bin"), w, what=f"{name} {dtype} {n}: C vs Python")


def _where(message: str, path) -> str:
    """The record a refusal names: "graph 0", "node 4 (graph 1)", "header", ..."""
    assert message.startswith(f"{path}: "), message
    return message[len(str(path)) + 2:].split(": ")[0]


def _offsets(data: bytes) -> dict:
    h = spec.HEADER2.unpack_from(data, 0)
    counts = dict(zip((n for n, _ in spec.TABLES2), h[7:21]))
    at, out = h[6], {}
    for name, size in spec.TABLES2:
        at = (at + 7) // 8 * 8
        out[name] = at
        at += size * counts[name]
    out["end"] = at
    return out


def _crafted(data: bytes) -> list:
    """(bytes, the record the refusal must name): bad counts, ranges, ids, enums, dims, offsets by hand."""
    at = _offsets(data)

    def patch(fmt, pos, value):
        bad = bytearray(data)
        struct.pack_into(fmt, bad, pos, value)
        return bytes(bad)

    node1, tensor1 = at["n_nodes"] + spec.NODE.size, at["n_tensors"] + spec.TENSOR.size
    n_inputs = struct.unpack_from("<I", data, at["n_graphs"] + 20)[0]
    first_output_io = at["n_io"] + spec.IO.size * n_inputs
    output_named_as_input = bytearray(data)
    output_named_as_input[first_output_io:first_output_io + 8] = data[at["n_io"]:at["n_io"] + 8]
    return [
        (patch("<H", 6, spec.GRAPH_MINOR + 1), "header"),      # a newer minor version
        (patch("<H", 4, 3), "header"),                         # a newer major version
        (patch("<I", 32 + 4, 1 << 30), "header"),              # n_tensors past the file
        (patch("<I", at["n_graphs"], 1), "graph 0"),           # first_tensor off its slot
        (patch("<I", at["n_graphs"] + 60, 5), "graph 0"),      # more subgraphs than graphs
        (patch("<I", 32, spec.MAX_GRAPHS + 1), "header"),      # deeper nesting than the readers recurse
        (patch("<I", node1, 99), "node 1 (graph 0)"),          # unknown op
        (patch("<I", node1, 24), "node 1 (graph 0)"),          # a HOST node
        (patch("<I", node1 + 16, 0), "node 1 (graph 0)"),      # first_in off its slot
        (patch("<I", node1 + 28, 0), "node 1 (graph 0)"),      # no outputs
        (patch("<I", tensor1, 9), "tensor 1 (graph 0)"),       # unknown dtype
        (patch("<I", tensor1 + 4, 9), "tensor 1 (graph 0)"),   # rank 9
        (patch("<I", tensor1 + 12, 1), "tensor 1 (graph 0)"),  # a view of itself
        (patch("<I", at["n_syms"] + 4, 7), "symbol 0 (graph 0)"),  # an axis the input lacks
        (patch("<q", at["n_ints"], 42), "dim 0 (graph 0)"),    # an unknown dim opcode
        (patch("<I", at["n_dims"] + 4, 0), "dim 0 (graph 0)"),  # an empty program
        (patch("<I", at["n_ids"], 1 << 20), "graph 0"),        # input id past the tensors
        (patch("<I", at["n_loops"], 9), "loop 0"),             # a state loop from no input
        (patch("<I", at["n_blobs"] + 16, 12), "blob 0"),       # unknown blob dtype
        (patch("<Q", at["n_blobs"], 65), "blob 0"),            # misaligned blob offset
        (patch("<I", at["n_io"], 1 << 30), "io 0"),            # a name outside the strings
        (bytes(output_named_as_input), f"io {n_inputs}"),    # an output under an input's name
    ]


def _crafted_quantized(data: bytes) -> list:
    """Damaged quantized constants (an int8 MatMul / Conv weight and its scales): (bytes, the record named)."""
    at = _offsets(data)
    n_tensors = spec.HEADER2.unpack_from(data, 0)[8]
    blob_at = lambda b: at["n_blobs"] + spec.BLOB.size * b
    k, blob = next((k, b) for k in range(n_tensors)
                   for b in [struct.unpack_from("<I", data, at["n_tensors"] + spec.TENSOR.size * k + 16)[0]]
                   if b != spec.NONE and struct.unpack_from("<I", data, blob_at(b) + 16)[0] == spec.DTYPE_I8)
    outer, channels, inner = struct.unpack_from("<3I", data, blob_at(blob) + 24)
    scale_blob = struct.unpack_from("<I", data, blob_at(blob) + 40)[0]
    where = f"tensor {k} (graph 0)"

    def patch(fmt, pos, *values):
        bad = bytearray(data)
        struct.pack_into(fmt, bad, pos, *values)
        return bytes(bad)

    scale_data = struct.unpack_from("<Q", data, blob_at(scale_blob))[0]
    return [
        (patch("<H", 6, 0), where),                                              # 2.0: no quantized constants
        (patch("<3I", blob_at(blob) + 24, outer * channels, 1, inner), where),  # one scale for `channels` of them
        (patch("<I4I", blob_at(blob) + 20, 2, outer * channels, inner, 0, 0), where),  # 2 axes, not 3
        (patch("<f", scale_data, float("nan")), where),                         # a scale that is not finite
        (patch("<I", blob_at(blob) + 40, blob), f"blob {blob}"),                # its own scales
        (data[:-64], "header"),                                                 # truncated
    ]


def _crafted_defaults(data: bytes) -> list:
    """Bad input defaults (the tensor record's `default`, format 2.2): one case in a file whose inputs have none,
    seven in one whose inputs have some."""
    at = _offsets(data)

    def patch(fmt, pos, value):
        bad = bytearray(data)
        struct.pack_into(fmt, bad, pos, value)
        return bytes(bad)

    tensors = [spec.TENSOR.unpack_from(data, at["n_tensors"] + spec.TENSOR.size * k)
               for k in range(spec.HEADER2.unpack_from(data, 0)[8])]
    with_default = [k for k, t in enumerate(tensors) if t[5]]
    if not with_default:
        return [(patch("<I", at["n_tensors"] + 20, spec.DEFAULT_ZEROS), "tensor 0 (graph 0)")]  # needs 2.2
    k = with_default[0]
    field = at["n_tensors"] + spec.TENSOR.size * k + 20
    n_inputs = struct.unpack_from("<I", data, at["n_graphs"] + 20)[0]
    first_input = struct.unpack_from("<I", data, at["n_ids"] + 4 * struct.unpack_from("<I", data,
                                                                                        at["n_graphs"] + 16)[0])[0]
    non_input = len(tensors) - 1
    assert n_inputs < len(tensors) and tensors[non_input][5] == 0
    return [
        (patch("<H", 6, 0), f"tensor {k} (graph 0)"),                            # a default in a 2.0 file
        (patch("<H", 6, spec.DEFAULT_MINOR - 1), f"tensor {k} (graph 0)"),       # and in a 2.1 file
        (patch("<I", field, 1 << 30), f"tensor {k} (graph 0)"),                  # a constant past the tensors
        (patch("<I", field, spec.DEFAULT_CONSTANT + k), f"tensor {k} (graph 0)"),  # itself
        (patch("<I", field, spec.DEFAULT_CONSTANT + first_input), f"tensor {k} (graph 0)"),  # not a constant
        (patch("<I", at["n_tensors"] + spec.TENSOR.size * non_input + 20, 1),
         f"tensor {non_input} (graph 0)"),                                       # a default on no input
        (patch("<I", at["n_tensors"] + spec.TENSOR.size * first_input + 20, spec.DEFAULT_ZEROS), "graph"),  # zeros
        # for the input that gives the symbols: the executor refuses it (its sizes must come from other inputs)
    ]


def _damaged(data: bytes, rng, crafted) -> list:
    end = _offsets(data)["end"]
    out = [(data[:n], None) for n in sorted(set(rng.integers(0, len(data), 25).tolist()) | {0, 127, 128})]
    for pos in rng.choice(end, 250, replace=False).tolist() + rng.integers(end, len(data), 20).tolist():
        bad = bytearray(data)
        bad[pos] ^= int(rng.integers(1, 256))
        out.append((bytes(bad), None))
    return out + crafted(data)


CRAFTED = {"stream_gru.dynamo": lambda d: _crafted(d) + _crafted_defaults(d),  # the hand-made cases fit its records
           "crnn.ts int8": lambda d: _crafted_quantized(d) + _crafted_defaults(d),
           "lstm": _crafted_defaults}


@pytest.mark.parametrize("name", list(CRAFTED))  # lstm: inputs with defaults (2.2)
def test_c_and_python_readers_agree_on_damaged_graph_files(program, converted, rng, tmp_path, name):
    data = converted[name].read_bytes()
    cases = _damaged(data, rng, CRAFTED[name])
    files, verdicts = [], []
    for i, (bad, _) in enumerate(cases):
        path = tmp_path / f"bad{i:04d}.rnnf"
        path.write_bytes(bad)
        files.append(path)
        try:
            load_rnnf_model(bad, str(path))  # the reader rnnfast.load picks for .rnnf
            verdicts.append((RNNF_OK, ""))
        except FormatError as e:
            verdicts.append((RNNF_ERR_FORMAT, _where(str(e), path)))
    result = _run(program, "check", *files)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert len(lines) == len(files)
    got = []
    for path, line in zip(files, lines):
        code, _, message = line.partition(" ")
        # the Python reader raises FormatError for a form the executor refuses as unsupported, too
        code = RNNF_ERR_FORMAT if int(code) == RNNF_ERR_UNSUPPORTED else int(code)
        got.append((code, _where(message, path) if code else ""))
    disagree = [(f.name, py, c, line) for f, py, c, line in zip(files, verdicts, got, lines) if py != c]
    assert not disagree, disagree[:5]
    codes = [v for v, _ in verdicts]
    assert codes.count(RNNF_OK) and codes.count(RNNF_ERR_FORMAT) > len(codes) // 2
    for (bad, where), (code, named) in zip(cases, verdicts):
        if where is not None:
            assert code == RNNF_ERR_FORMAT and named == where, (where, named)


def test_versions_are_named_and_v1_loaders_refuse_graphs(converted):
    data = bytearray(converted["vad.ts"].read_bytes())
    with pytest.raises(FormatError, match=r"m.rnnf: header: format version 2 holds a whole graph"):
        load_rnnf(bytes(data), "m.rnnf")
    assert data[6] == 0  # no input defaults: the lowest version that holds the content
    assert converted["lstm"].read_bytes()[4:8] == struct.pack("<HH", 2, 2)  # h0/c0 default to zeros: 2.2
    assert converted["crnn.ts int8"].read_bytes()[4:8] == struct.pack("<HH", 2, 1)  # quantized, no default: 2.1
    struct.pack_into("<H", data, 6, 3)
    with pytest.raises(FormatError, match=r"m.rnnf: header: format version 2\.3 is not readable .*2\.0 to 2\.2"):
        load_rnnf_model(bytes(data), "m.rnnf")
    struct.pack_into("<H", data, 4, 3)
    with pytest.raises(FormatError, match=r"m.rnnf: header: format version 3\.3 is not readable"):
        load_rnnf_model(bytes(data), "m.rnnf")


def test_a_final_state_declared_smaller_than_its_layer_is_refused_by_the_c_library(program):
    """The fuzz-found file of tests/test_rnnf_graph.py in the C library alone: `check` loads it and runs it once on
    small zero inputs; built with ASan where gcc has it, the write past Y_h's buffer aborted the program before the
    executor checked the node's outputs (the refusal's text is checked from Python, through the same executor)."""
    path = Path(__file__).parent / "data" / "rnnf" / "recurrent_y_h_too_small.rnnf"
    result = _run(program, "check", path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith(f"{RNNF_OK} "), result.stdout


def test_runs_while_the_recurrent_layers_are_backed_off_are_not_thread_samples(converted, tmp_path_factory):
    """While the recurrent layers run on one thread after finding the machine busy (src_c/threads.c), a graph run
    follows them and is not timed as the asked thread count (src_c/graph/exec.c): such samples made the choice
    settle on one thread on a quiet machine. tests/c/test_graph_backoff.c forces the back-off through the library."""
    build, flags = sanitized_build(tmp_path_factory)
    exe = link(build, "test_graph_backoff.c", *flags, f"-I{build / 'src_c'}")
    result = subprocess.run([str(exe), str(converted["lstm"]), "100,1,5"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.rstrip().endswith("all ok"), result.stdout + result.stderr
    assert result.stdout.count(" ok\n") >= 2 and "FAILED" not in result.stdout, result.stdout
