"""rnnfast's own ONNX reader (rnnfast/importers/onnx/wire.py, protos.py, tensors.py, schemas.py) against the onnx
package: the same messages from every committed .onnx file, the same arrays bit for bit, the protobuf encodings
onnx's writer does not produce (packed and unpacked repeated fields, merged messages, oneofs, unknown fields), the
typed tensor fields, external data beside the model, and the recurrent schemas against onnx.defs."""
import glob
import os
import struct

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T, defs, helper, numpy_helper

import rnnfast
from rnnfast.graph.infer import RULES
from rnnfast.importers.onnx import protos
from rnnfast.importers.onnx.graph import OPS
from rnnfast.importers.onnx.protos import read_model
from rnnfast.importers.onnx.schemas import FIRST_OPSET, RECURRENT_VERSIONS, recurrent_schema
from rnnfast.importers.onnx.tensors import to_array
from rnnfast.importers.onnx.wire import parse
from wire_encoders import ld, tag, varint  # encodings onnx's writer does not produce

DATA = os.path.join(os.path.dirname(__file__), "data")
FILES = sorted(glob.glob(os.path.join(DATA, "**", "*.onnx"), recursive=True))


def same(ours, theirs, path="model"):
    """Every field rnnfast reads equal in both, recursively; every tensor decodes to the same bits."""
    for f in type(ours).FIELDS.values():
        a, b, where = getattr(ours, f.name), getattr(theirs, f.name), f"{path}.{f.name}"
        if not f.repeated:
            assert ours.HasField(f.name) == theirs.HasField(f.name), where
        if f.kind == "message":
            if f.repeated:
                assert len(a) == len(b), where
                for k, (x, y) in enumerate(zip(a, b)):
                    same(x, y, f"{where}[{k}]")
            elif ours.HasField(f.name):
                same(a, b, where)
        elif f.repeated and f.kind in ("float", "double", "int64", "int32", "uint64"):
            dtype = {"float": np.float32, "double": np.float64, "int64": np.int64, "int32": np.int32,
                     "uint64": np.uint64}[f.kind]
            assert np.asarray(a, dtype).tobytes() == np.asarray(list(b), dtype).tobytes(), where
        elif f.kind == "float":
            assert struct.pack("<f", a) == struct.pack("<f", b), where
        elif f.kind == "view":
            assert bytes(a) == b, where
        else:
            assert a == b, where
    if isinstance(ours, protos.TensorProto):
        x, y = to_array(ours, path), numpy_helper.to_array(theirs)
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), path


@pytest.mark.parametrize("path", FILES, ids=[os.path.relpath(f, DATA) for f in FILES])
def test_every_committed_model_reads_as_onnx_reads_it(path):
    data = open(path, "rb").read()
    same(read_model(data, path), onnx.load_from_string(data))


def test_encodings_onnx_does_not_write():
    """Packed dims and ints, a graph given twice (merged), a oneof given twice (the last wins), unknown fields of
    every wire type, an enum value outside the enum (unset, as proto2 reads it), negative int32 and int64."""
    dim = tag(1, 0) + varint(3) + ld(2, b"batch")  # dim_value then dim_param: the param wins
    shape = ld(2, ld(1, dim) + ld(1, tag(1, 0) + varint(7)))
    vi = ld(1, b"x") + ld(2, ld(1, tag(1, 0) + varint(1) + shape))
    attr = (ld(1, b"perm") + tag(20, 0) + varint(7) + ld(8, varint(1) + varint(0) + varint(-1))
            + tag(8, 0) + varint(5) + tag(99, 5) + b"\0\0\0\0" + tag(98, 1) + b"\0" * 8 + tag(97, 0) + varint(1 << 60))
    bad_enum = ld(1, b"odd") + tag(20, 0) + varint(42) + tag(3, 0) + varint(-5)
    node = ld(1, b"x") + ld(2, b"y") + ld(4, b"Transpose") + ld(5, attr) + ld(5, bad_enum)
    tensor = (ld(1, varint(2) + varint(2)) + tag(2, 0) + varint(6) + ld(8, b"w")
              + ld(5, b"".join(varint(v) for v in (-1, 2, -(1 << 31), (1 << 31) - 1))))
    graph1 = ld(1, node) + ld(2, b"first") + ld(11, vi)
    graph2 = ld(2, b"second") + ld(5, tensor) + ld(12, vi)
    data = tag(1, 0) + varint(8) + ld(7, graph1) + ld(8, ld(1, b"") + tag(2, 0) + varint(17)) + ld(7, graph2)
    ours, theirs = read_model(data, "crafted"), onnx.load_from_string(data)
    same(ours, theirs)
    g = ours.graph
    assert g.name == "second" and len(g.node) == 1 and len(g.input) == 1 and len(g.output) == 1
    d = g.input[0].type.tensor_type.shape.dim
    assert d[0].dim_param == "batch" and not d[0].HasField("dim_value") and d[1].dim_value == 7
    a, odd = g.node[0].attribute
    assert a.ints == [1, 0, -1, 5] and odd.type == 0 and not odd.HasField("type") and odd.i == -5
    assert to_array(g.initializer[0], "w").tolist() == [[-1, 2], [-(1 << 31), (1 << 31) - 1]]


def test_typed_tensor_fields_decode_as_onnx_decodes_them():
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((2, 3)).astype(np.float32), rng.standard_normal(4),
              rng.integers(-100, 100, (3, 2)).astype(np.int8), rng.integers(0, 255, 5).astype(np.uint8),
              rng.integers(-3000, 3000, 5).astype(np.int16), rng.integers(0, 60000, 5).astype(np.uint16),
              rng.integers(-(1 << 31), 1 << 31, 5).astype(np.int32), rng.integers(-(1 << 62), 1 << 62, 5),
              rng.integers(0, 1 << 32, 5).astype(np.uint32), np.array([0, (1 << 64) - 1], np.uint64),
              rng.standard_normal(3).astype(np.float16), np.array([True, False, True]),
              (rng.standard_normal(3) + 1j * rng.standard_normal(3)).astype(np.complex64),
              rng.standard_normal(2) + 1j * rng.standard_normal(2), np.zeros((0, 3), np.float32),
              np.array(2.5, np.float32)]
    for raw in (False, True):
        for k, arr in enumerate(arrays):
            t = helper.make_tensor(f"t{k}", helper.np_dtype_to_tensor_dtype(arr.dtype), arr.shape,
                                   arr.tobytes() if raw else arr.reshape(-1).tolist(), raw=raw)
            data = t.SerializeToString()
            ours = parse(protos.TensorProto, data)
            same(ours, T.FromString(data), f"t{k}")
            assert to_array(ours, "t").tobytes() == arr.tobytes()


def test_element_types_without_a_numpy_dtype_go_through_onnx():
    strings = helper.make_tensor("s", T.STRING, [2], [b"ab", "\u00e9".encode()])
    bf16 = helper.make_tensor("b", T.BFLOAT16, [3], [1.0, -2.5, 3.0])
    for t in (strings, bf16):
        data = t.SerializeToString()
        x, y = to_array(parse(protos.TensorProto, data), "t"), numpy_helper.to_array(t)
        assert x.dtype == y.dtype and x.tolist() == y.tolist()


def test_sequence_optional_and_map_types_are_recognised():
    seq = helper.make_tensor_sequence_value_info("s", T.FLOAT, [2, "n"])
    opt = helper.make_value_info("o", helper.make_optional_type_proto(helper.make_tensor_type_proto(T.INT64, [3])))
    mp = helper.make_value_info("m", helper.make_map_type_proto(T.STRING, helper.make_tensor_type_proto(T.FLOAT, [])))
    for vi in (seq, opt, mp):
        data = vi.SerializeToString()
        ours = parse(protos.ValueInfoProto, data)
        same(ours, onnx.ValueInfoProto.FromString(data), vi.name)
        assert not ours.type.HasField("tensor_type")
    s = parse(protos.ValueInfoProto, seq.SerializeToString()).type.sequence_type.elem_type.tensor_type
    assert s.elem_type == T.FLOAT and [d.dim_value or d.dim_param for d in s.shape.dim] == [2, "n"]


def test_every_attribute_type_reads_as_onnx_reads_it():
    sub = helper.make_graph([helper.make_node("Identity", ["a"], ["b"])], "sub", [], [])
    node = helper.make_node("Op", ["x"], ["y"], domain="custom", f=1.5, i=-3, s=b"\xffraw", t=numpy_helper.from_array(
        np.arange(4, dtype=np.float32)), g=sub, floats=[0.5, -1.0], ints=[1, -2], strings=[b"a", b"b"],
        tensors=[numpy_helper.from_array(np.ones(2, np.int64))], graphs=[sub, sub],
        tp=helper.make_tensor_type_proto(T.FLOAT, [1]))
    data = node.SerializeToString()
    ours = parse(protos.NodeProto, data)
    same(ours, onnx.NodeProto.FromString(data), "node")
    for a, b in zip(ours.attribute, onnx.NodeProto.FromString(data).attribute):
        x, y = protos.attribute_value(a, "node"), helper.get_attribute_value(b)
        if a.type in (a.FLOAT, a.INT, a.STRING, a.FLOATS, a.INTS, a.STRINGS):
            assert x == y, a.name
        else:
            assert type(x).__name__ == type(y).__name__ or isinstance(x, list), a.name
    assert bytes(ours._raw) == data  # what to_onnx hands to onnx
    assert protos.to_onnx(ours) == onnx.NodeProto.FromString(data)


def test_a_reference_attribute_outside_a_function_is_refused_by_name():
    a = helper.make_attribute_ref("alpha", onnx.AttributeProto.FLOAT)
    with pytest.raises(rnnfast.FormatError, match="attribute 'alpha' refers to the function attribute"):
        protos.attribute_value(parse(protos.AttributeProto, a.SerializeToString()), "n")


def _external_model(tmp_path, location, offset=0, length=None, data=None):
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    (tmp_path / "weights.bin").write_bytes(b"\0" * 8 + w.tobytes() if data is None else data)
    t = numpy_helper.from_array(w, "w")
    t.ClearField("raw_data")
    t.data_location = T.EXTERNAL
    entries = {"location": location, "offset": str(offset)} | ({} if length is None else {"length": str(length)})
    for k, v in entries.items():
        t.external_data.add(key=k, value=v)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", T.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", T.FLOAT, [1, 4])], [t])
    path = tmp_path / "model.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return path, w


def test_external_data_is_read_beside_the_model(tmp_path, monkeypatch):
    path, w = _external_model(tmp_path, "weights.bin", offset=8, length=48)
    monkeypatch.chdir(os.path.dirname(DATA))  # not the model's folder: the file is found beside the model anyway
    x = np.ones((1, 3), np.float32)
    np.testing.assert_array_equal(rnnfast.load(path).run(x)[0], x @ w)
    with open(path, "rb") as f:
        np.testing.assert_array_equal(rnnfast.load(f).run(x)[0], x @ w)
    with pytest.raises(rnnfast.FormatError, match="initializer 'w'.*external file 'weights.bin'.*from its path"):
        rnnfast.load(path.read_bytes())
    np.testing.assert_array_equal(rnnfast.load(path.read_bytes(), folder=str(tmp_path)).run(x)[0], x @ w)


@pytest.mark.parametrize("location, offset, length, match", [
    ("../weights.bin", 8, None, "outside the model's folder"),
    ("/etc/passwd", 0, None, "outside the model's folder"),
    ("missing.bin", 0, None, "cannot read the external data file 'missing.bin'"),
    ("weights.bin", 0, None, "56 bytes of external data.*needs 48"),
    ("weights.bin", 8, 1 << 40, "runs past the end"),
    ("weights.bin", 1 << 40, None, "runs past the end"),
    ("weights.bin", -8, None, "offset '-8' is not a whole number")])
def test_bad_external_data_is_refused_by_name(tmp_path, location, offset, length, match):
    (tmp_path / "inner").mkdir()
    path, _ = _external_model(tmp_path / "inner", location, offset, length)
    (tmp_path / "weights.bin").write_bytes(b"\0" * 56)
    with pytest.raises(rnnfast.FormatError, match=f"model.onnx: initializer 'w'.*{match}"):
        rnnfast.load(path)


@pytest.mark.parametrize("op_type", sorted(RECURRENT_VERSIONS))
def test_recurrent_schemas_match_onnx_defs(op_type):
    versions = sorted(s.since_version for s in defs.get_all_schemas_with_history()
                      if s.name == op_type and s.domain == "")
    assert tuple(versions) == RECURRENT_VERSIONS[op_type]
    assert recurrent_schema(op_type, 0) is None
    for opset in range(1, 30):
        theirs, ours = defs.get_schema(op_type, opset), recurrent_schema(op_type, opset)
        assert ours.attributes == {n: int(a.type) for n, a in theirs.attributes.items()}, opset
        assert (ours.max_input, ours.max_output) == (theirs.max_input, theirs.max_output)


def test_first_opsets_match_onnx_defs():
    assert set(RULES) | set(OPS) <= set(FIRST_OPSET)
    for op, first in FIRST_OPSET.items():
        history = [s for s in defs.get_all_schemas_with_history() if s.name == op and s.domain == ""]
        assert min(s.since_version for s in history) == first, op
        assert not any(s.deprecated for s in history), op


def test_attribute_type_constants_match_onnx():
    for number, name in protos.ATTRIBUTE_TYPE_NAMES.items():
        assert onnx.AttributeProto.AttributeType.Value(name) == number
    assert (protos.TensorProto.DEFAULT, protos.TensorProto.EXTERNAL) == (T.DEFAULT, T.EXTERNAL)


def test_loading_and_running_the_graph_fixtures_does_not_import_onnx(tmp_path):
    """The whole-model fixtures run in the C executor: neither the onnx package nor protobuf is imported (~22 MB of
    RSS), in a fresh interpreter; nor hashlib, whose OpenSSL libcrypto is 3.3 MiB of RSS (only pickling a model
    hashes it)."""
    import json
    import subprocess
    import sys

    from conftest import package_env

    folder = os.path.join(DATA, "onnx", "graph")
    script = f"""
import glob, json, os, sys
import numpy as np, rnnfast
report = {{}}
for path in sorted(glob.glob(os.path.join({folder!r}, "*.onnx"))):
    z = np.load(os.path.join(os.path.dirname(path), os.path.basename(path).split(".")[0] + ".npz"))
    model = rnnfast.load(path)
    model.run({{k[3:]: z[k] for k in z.files if k.startswith("in:")}})
    report[os.path.basename(path)] = [model.graph.compiled is not None,
                                      sorted(m for m in sys.modules if m.split(".")[0] in ("onnx", "google", "hashlib", "_hashlib"))]
print(json.dumps(report))
"""
    out = subprocess.run([sys.executable, "-c", script], env=package_env(), cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(report) == 8
    assert report == {name: [True, []] for name in report}
