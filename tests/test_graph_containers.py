"""Whole graphs in .npz and .safetensors (docs/format.md, "Graphs in .npz and .safetensors"): a model of every
source kind (a real ONNX model with a Conv front end, state and If; Keras; PyTorch; a TensorFlow 1 checkpoint)
written by `convert` or the exporters loads back with rnnfast.load and reproduces the source framework's recorded
outputs; damaged files (truncated, a wrong dtype, a missing array, a huge declared shape, bad JSON, a record out of
range) give a FormatError naming the file and the entry or key."""
import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

import rnnfast
from conftest import assert_close
from rnnfast import rnnf_spec as spec
from rnnfast.cli import main as cli_main
from rnnfast.errors import FormatError
from rnnfast.exporters import npz, safetensors

DATA = Path(__file__).parent / "data"
WRITERS = {"npz": npz.to_bytes, "safetensors": safetensors.to_bytes}


def _vad():
    rec = np.load(DATA / "onnx" / "graph" / "vad.npz")
    feeds = {"input": rec["in:input"], "state": rec["in:state"], "sr": rec["in:sr"]}
    return DATA / "onnx" / "graph" / "vad.ts.onnx", {}, feeds, [rec["out:output"], rec["out:stateN"]]


def _keras():
    rec = np.load(DATA / "keras" / "k3_conv_pool_1d.npz")
    return DATA / "keras" / "k3_conv_pool_1d.keras", {}, rec["x0"], [rec["y0"], rec["y1"]]


def _torch():
    rec = np.load(DATA / "torch" / "emb_lstm_fc.npz")
    zeros = np.zeros(rec["h_n"].shape, np.float32)  # PyTorch's default initial state; the graph takes it as input
    return (DATA / "torch" / "emb_lstm_fc.pt", json.loads(str(rec["load_options"])),
            {"input": rec["input"], "h0": zeros, "c0": zeros}, [rec["output"], rec["h_n"], rec["c_n"]])


def _tf1():
    rec = np.load(DATA / "tf1" / "lstm2_dense" / "expected.npz")
    return DATA / "tf1" / "lstm2_dense" / "model.ckpt", {}, rec["x"], [rec["output"]]


SOURCES = {"onnx-vad": _vad, "keras-conv": _keras, "torch-emb-lstm": _torch, "tf1-lstm2": _tf1}


@pytest.mark.filterwarnings("ignore::rnnfast.AssumptionWarning")
@pytest.mark.parametrize("fmt", sorted(WRITERS))
@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_every_source_kind_round_trips_to_the_frameworks_outputs(kind, fmt, tmp_path):
    path, options, feeds, want = SOURCES[kind]()
    source = rnnfast.load(str(path), **options)
    out = tmp_path / f"m.{fmt}"
    out.write_bytes(WRITERS[fmt](source))
    back = rnnfast.load(out)
    assert (back.input_names, back.output_names) == (source.input_names, source.output_names)
    got = back.run(feeds)
    for name, g, w in zip(back.output_names, got, want):
        assert_close(g, w, what=f"{kind} {name} from .{fmt} vs the framework")
    for g, s in zip(got, source.run(feeds)):
        np.testing.assert_array_equal(g, s)  # the same C graph, from the file
    assert f".{fmt} graph" in back.describe()


def test_convert_writes_and_checks_both_containers(tmp_path, capsys):
    src = DATA / "onnx" / "graph" / "vad.ts.onnx"
    for fmt in ("npz", "safetensors"):
        assert cli_main(["convert", str(src), str(tmp_path / f"v.{fmt}")]) == 0
        out = capsys.readouterr().out
        assert f"({fmt}," in out and "check ok" in out and "2 output(s) compared" in out, out
    with np.load(tmp_path / "v.npz") as z:  # a plain numpy reader sees named arrays and the JSON, no pickle needed
        assert "b16k.stft.conv.weight" in z.files
        doc = json.loads(z[spec.NPZ_STRUCTURE].item())
    assert doc["format"] == "rnnfast-graph" and doc["version"] == [2, 0] and len(doc["graphs"]) == 3  # + If branches
    assert cli_main(["convert", str(src), str(tmp_path / "q.safetensors"), "--quantize", "int8"]) == 0
    assert "quantization (int8)" in capsys.readouterr().out
    assert (tmp_path / "q.safetensors").stat().st_size < 0.9 * (tmp_path / "v.safetensors").stat().st_size
    assert rnnfast.load(tmp_path / "q.safetensors").stream(batch=1).pairs == {"state": "stateN"}
    for fmt, name in (("npz", "rnnfast graph in a numpy .npz"), ("safetensors", "rnnfast graph in a safetensors file")):
        assert cli_main(["inspect", str(tmp_path / f"v.{fmt}"), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["format_name"] == name


# ---- damaged files ----

@pytest.fixture(scope="module")
def keras_model():
    return rnnfast.load(DATA / "keras" / "k3_conv_pool_1d.keras")


def _npz_members(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: z.read(n) for n in z.namelist()}


def _npz(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, raw in members.items():
            z.writestr(n, raw)
    return buf.getvalue()


def _npy(arr) -> bytes:
    f = io.BytesIO()
    np.lib.format.write_array(f, arr)
    return f.getvalue()


def _first_weight(entries):
    """The first array of a split file, an npz member or a safetensors tensor: not the structure."""
    return next(n for n in entries if n not in (f"{spec.NPZ_STRUCTURE}.npy", "__metadata__"))


def _split_safetensors(data: bytes):
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n]), data[8 + n:]


def _join_safetensors(header, body) -> bytes:
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + body


def _with_structure(fmt, data, edit) -> bytes:
    """The file with its structure JSON (as a dict) changed by edit(doc)."""
    if fmt == "npz":
        members = _npz_members(data)
        doc = json.loads(np.load(io.BytesIO(members[f"{spec.NPZ_STRUCTURE}.npy"])).item())
        edit(doc)
        members[f"{spec.NPZ_STRUCTURE}.npy"] = _npy(np.array(json.dumps(doc)))
        return _npz(members)
    header, body = _split_safetensors(data)
    doc = json.loads(header["__metadata__"][spec.SAFETENSORS_STRUCTURE])
    edit(doc)
    header["__metadata__"][spec.SAFETENSORS_STRUCTURE] = json.dumps(doc)
    return _join_safetensors(header, body)


def _load_refused(data, name, *patterns):
    with pytest.raises(FormatError) as e:
        rnnfast.load(_Named(data, name))
    text = str(e.value)
    assert name in text, text
    for p in patterns:
        assert p in text, text
    return text


class _Named(io.BytesIO):
    def __init__(self, data, name):
        super().__init__(data)
        self.name = name


STRUCTURE = {"npz": f"entry '{spec.NPZ_STRUCTURE}'",
             "safetensors": f"entry '__metadata__.{spec.SAFETENSORS_STRUCTURE}'"}


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_bad_json_and_records_are_named(keras_model, fmt):
    data = WRITERS[fmt](keras_model)
    name = f"bad.{fmt}"

    def set_key(key, value):
        return lambda doc: doc.__setitem__(key, value)

    _load_refused(_with_structure(fmt, data, set_key("format", "other")), name, STRUCTURE[fmt], "'format'")
    _load_refused(_with_structure(fmt, data, set_key("version", [3, 0])), name, "'version'")
    _load_refused(_with_structure(fmt, data, lambda d: d.pop("nodes")), name, "lacks key(s) ['nodes']")
    _load_refused(_with_structure(fmt, data, lambda d: d["nodes"][0].__setitem__(0, 2 ** 40)), name,
                  "key 'nodes': record 0 has a field out of range")
    _load_refused(_with_structure(fmt, data, lambda d: d["nodes"][0].__setitem__(0, "1")), name,
                  "key 'nodes': record 0 field 0")
    _load_refused(_with_structure(fmt, data, lambda d: d["tensors"][0].pop()), name, "key 'tensors': record 0")
    _load_refused(_with_structure(fmt, data, lambda d: d["floats"].append("x")), name, "key 'floats'")
    _load_refused(_with_structure(fmt, data, lambda d: d["ints"].append(2 ** 63)), name, "key 'ints'")
    # A record that packs but points outside its table: the .rnnf 2 reader's verdict, under the entry's name
    _load_refused(_with_structure(fmt, data, lambda d: d["nodes"][0].__setitem__(0, 999)), name, STRUCTURE[fmt],
                  "node 0 (graph 0): op 999 is unknown")
    if fmt == "npz":
        members = _npz_members(data)
        members[f"{spec.NPZ_STRUCTURE}.npy"] = _npy(np.array("{not json"))
        _load_refused(_npz(members), name, STRUCTURE[fmt], "not JSON")
        members[f"{spec.NPZ_STRUCTURE}.npy"] = _npy(np.zeros(3))
        _load_refused(_npz(members), name, STRUCTURE[fmt], "0-d unicode")
    else:
        header, body = _split_safetensors(data)
        header["__metadata__"][spec.SAFETENSORS_STRUCTURE] = "{not json"
        _load_refused(_join_safetensors(header, body), name, STRUCTURE[fmt], "not JSON")


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_missing_extra_and_mistyped_arrays_are_named(keras_model, fmt):
    data = WRITERS[fmt](keras_model)
    name = f"bad.{fmt}"
    if fmt == "npz":
        members = _npz_members(data)
        weight = _first_weight(members)
        arr = np.load(io.BytesIO(members[weight]))
        missing = {k: v for k, v in members.items() if k != weight}
        _load_refused(_npz(missing), name, f"array {weight[:-4]!r}", "is missing")
        _load_refused(_npz({**members, "extra.npy": _npy(np.zeros(2, np.float32))}), name, "['extra']",
                      "not blobs")
        _load_refused(_npz({**members, weight: _npy(arr.astype(np.float64))}), name, f"array {weight[:-4]!r}",
                      "float64")
        _load_refused(_npz({**members, weight: _npy(arr.reshape(-1)[:-1].copy())}), name,
                      f"array {weight[:-4]!r}")
        _load_refused(_npz({**members, weight: _npy(np.array([object()], dtype=object))}), name,
                      f"{weight}: dtype", "only arrays of numbers")
    else:
        header, body = _split_safetensors(data)
        weight = _first_weight(header)
        _load_refused(_join_safetensors({k: v for k, v in header.items() if k != weight}, body), name,
                      f"array {weight!r}", "is missing")
        changed = dict(header)
        changed[weight] = {**header[weight], "dtype": "I8",
                           "shape": [4 * int(np.prod(header[weight]["shape"]))]}
        _load_refused(_join_safetensors(changed, body), name, f"array {weight!r}", "int8")


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_a_huge_declared_shape_is_refused_before_allocating(keras_model, fmt):
    data = WRITERS[fmt](keras_model)
    name = f"huge.{fmt}"
    if fmt == "npz":
        members = _npz_members(data)
        weight = _first_weight(members)
        raw = members[weight]
        head = np.lib.format.header_data_from_array_1_0(np.load(io.BytesIO(raw)))
        head["shape"] = (1 << 40, 1 << 20)
        f = io.BytesIO()
        np.lib.format.write_array_header_1_0(f, head)
        members[weight] = f.getvalue() + raw[len(f.getvalue()):]
        _load_refused(_npz(members), name, f"{weight}: shape", "the member holds")
    else:
        header, body = _split_safetensors(data)
        weight = _first_weight(header)
        header[weight]["shape"] = [1 << 40, 1 << 20]
        _load_refused(_join_safetensors(header, body), name, f"tensor {weight!r}")


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_truncations_and_overwrites_raise_only_named_format_errors(keras_model, fmt):
    from test_damaged_every_format import variants

    data = WRITERS[fmt](keras_model)
    x = np.load(DATA / "keras" / "k3_conv_pool_1d.npz")["x0"]
    name = f"damaged.{fmt}"
    refused = 0
    for label, bad in variants(data):
        try:
            rnnfast.load(_Named(bad, name)).run(x)
        except FormatError as e:
            assert name in str(e), f"{label}: {e}"
            refused += 1
        except ValueError:
            refused += 1
    assert refused >= 8  # every truncation at least


def test_a_plain_state_dict_safetensors_is_still_read_as_pytorch(tmp_path):
    """Without the structure entry a .safetensors file is PyTorch names, as before."""
    header = {"weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    with pytest.raises(FormatError) as e:
        rnnfast.load(_Named(_join_safetensors(header, struct.pack("<2f", 1, 2)), "plain.safetensors"))
    assert "plain.safetensors" in str(e.value) and "rnnfast-graph" not in str(e.value)
