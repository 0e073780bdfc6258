"""Damaged ONNX files through rnnfast's own reader (rnnfast/importers/onnx/wire.py): truncations, changed bytes, huge
declared lengths and sizes, deep nesting and bad varints give FormatError naming the file and what is wrong (or, for
damage the format cannot see, a model that loads and runs or refuses its feeds with ValueError), never another
exception, a crash, a hang or a huge allocation."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import rnnfast
from conftest import package_env
from wire_encoders import ld, varint

FIXTURE = os.path.join(os.path.dirname(__file__), "data", "onnx", "graph", "stream_gru.ts.onnx")

# Run in a fresh interpreter: a crash or a hang fails the test instead of the session; the peak RSS is its own.
FUZZ = r"""
import json, resource, sys, time
import numpy as np, rnnfast
from rnnfast.importers.onnx.protos import read_model

path, npz = sys.argv[1:3]
data = open(path, "rb").read()
z = np.load(npz)
feeds = {k[3:]: z[k] for k in z.files if k.startswith("in:")}
# Bytes outside the tensors' payloads: where damage reaches the structure rather than a weight's value.
payload = np.zeros(len(data), bool)
for t in read_model(data, path).graph.initializer:
    raw = bytes(t.raw_data)
    if len(raw) >= 16:
        at = data.find(raw)
        payload[at:at + len(raw)] = True
structure = np.flatnonzero(~payload)
rng = np.random.default_rng(14)
cases = [data[:n] for n in structure[::2]] + [data[:n] for n in rng.integers(0, len(data), 40)]
for k in range(450):
    d = bytearray(data)
    where = structure if k % 4 else np.arange(len(data))
    for pos in rng.choice(where, rng.integers(1, 4)):
        d[pos] = rng.integers(0, 256) if k % 3 else d[pos] ^ (1 << int(rng.integers(0, 8)))
    cases.append(bytes(d))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
others, slowest, outcomes = [], 0.0, {"loaded": 0, "refused": 0}
for k, d in enumerate(cases):
    t = time.perf_counter()
    try:
        rnnfast.load(d).run(feeds)
        outcomes["loaded"] += 1
    except ValueError as e:  # FormatError is one
        outcomes["refused"] += 1
        if not isinstance(e, rnnfast.FormatError) and type(e) is not ValueError:  # e.g. UnicodeDecodeError
            others.append(f"case {k}: {type(e).__name__}: {e}"[:300])
    except BaseException as e:
        others.append(f"case {k}: {type(e).__name__}: {e}"[:300])
    slowest = max(slowest, time.perf_counter() - t)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
print(json.dumps(dict(n=len(cases), others=others, slowest=slowest, peak_kib=peak, **outcomes)))
"""


def test_truncated_and_changed_files_give_only_documented_errors(tmp_path):
    npz = os.path.join(os.path.dirname(FIXTURE), "stream_gru.npz")
    out = subprocess.run([sys.executable, "-c", FUZZ, FIXTURE, npz], env=package_env(), cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["others"] == []
    assert got["refused"] > got["n"] // 2 and got["loaded"] > 0, got
    # No bound on time here (a busy machine made a case that imports onnx.reference take 5.5 s): a hang fails by the
    # subprocess's timeout, and got["slowest"] shows in the message of any failure.
    assert got["peak_kib"] < 100 * 1024, got  # the intact file needs ~5 MB


OPSET = ld(8, varint(2 << 3) + varint(17))  # opset_import { version: 17 }


def _refused(data, *fragments):
    with pytest.raises(rnnfast.FormatError) as e:
        rnnfast.load(bytes(data))
    msg = str(e.value)
    assert msg.startswith("<bytes>: "), msg
    for f in fragments:
        assert f in msg, msg
    return msg


def _graph_field(data):
    """(start of ModelProto.graph's length varint, end of it, the length) in a file onnx wrote."""
    pos = 0
    while True:
        key = data[pos]
        pos += 1
        n, start = 0, pos
        shift = 0
        while True:
            b = data[pos]
            pos += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        if key & 7 != 2:
            continue  # a varint field (ir_version, model_version): n was its value
        if key >> 3 == 7:
            return start, pos, n
        pos += n


@pytest.mark.parametrize("length", [1 << 20, 1 << 40, (1 << 64) - 1])
def test_huge_declared_lengths_are_refused_before_reading(length):
    data = open(FIXTURE, "rb").read()
    start, end, _ = _graph_field(data)
    _refused(data[:start] + varint(length) + data[end:], "not a readable ONNX model", "ModelProto.graph",
             "runs past the end")
    node = ld(4, b"Relu") + varint(1 << 3 | 2) + varint(length) + b"x"
    _refused(OPSET + ld(7, ld(1, node)), "NodeProto.input", "runs past the end")


def test_declared_tensor_sizes_that_the_bytes_do_not_hold_are_refused_by_name():
    for dims, match in [([1 << 40, 1 << 40], "16 bytes of data; 1208925819614629174706176 float32 values"),
                        ([-1, 4], "negative dimension"), ([1] * 40, "more than 32"), ([5], "16 bytes of data")]:
        t = numpy_helper.from_array(np.ones(4, np.float32), "w")
        t.ClearField("dims")
        t.dims.extend(dims)
        graph = helper.make_graph([helper.make_node("Relu", ["w"], ["y"])], "g", [],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [t])
        data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
        _refused(data, "initializer 'w'", "cannot decode the tensor", match)


def _relu(out: bytes) -> bytes:
    """A graph of Relu(x) -> out."""
    return ld(1, ld(4, b"Relu") + ld(1, b"x") + ld(2, out)) + ld(12, ld(1, out))


def _nested_if(depth):
    """If(c) whose then_branch is an If(c) ... `depth` graphs deep, each else_branch Relu(x); the result Relu(x)."""
    graph = _relu(b"y0")
    for k in range(1, depth + 1):
        attrs = [ld(1, key) + varint(20 << 3) + varint(5) + ld(6, g)
                 for key, g in ((b"then_branch", graph), (b"else_branch", _relu(b"e%d" % k)))]
        out = b"y%d" % k
        graph = ld(1, ld(4, b"If") + ld(1, b"c") + ld(2, out) + b"".join(ld(5, a) for a in attrs)) + ld(12, ld(1, out))
    x = ld(1, b"x") + ld(2, ld(1, varint(1 << 3) + varint(1) + ld(2, ld(1, varint(1 << 3) + varint(3)))))
    c = ld(1, b"c") + ld(2, ld(1, varint(1 << 3) + varint(9) + ld(2, b"")))
    return OPSET + ld(7, graph + ld(11, x) + ld(11, c))


def test_deep_nesting_is_refused_without_recursion_error():
    _refused(_nested_if(40), "nested more than 100 deep")
    _refused(_nested_if(2000), "nested more than 100 deep")
    tensor_type = ld(1, varint(1 << 3) + varint(1))
    for _ in range(300):
        tensor_type = ld(4, ld(1, tensor_type))  # a sequence of a sequence of ...
    _refused(OPSET + ld(7, ld(11, ld(1, b"x") + ld(2, tensor_type))), "nested more than 100 deep")


def test_nesting_within_the_limit_loads_and_runs():
    """30 levels of If (91 nested messages, under protobuf's limit of 100 that onnx.load has too) load and run, in C
    or node by node, without a RecursionError."""
    model = rnnfast.load(_nested_if(30))
    x = np.array([-1.0, 0.5, 2.0], np.float32)
    for c in (True, False):
        np.testing.assert_array_equal(model.run({"x": x, "c": np.array(c)})[0], np.maximum(x, 0))


def test_duplicated_messages_within_duplicated_messages_cannot_multiply_the_file():
    """A singular message field given twice is merged (copied); duplicates nested in duplicates would copy the file
    once per level: refused once the merged bytes exceed the file's."""
    weights = ld(5, ld(8, b"w") + varint(2 << 3) + varint(1) + ld(9, b"\0" * 40000))  # a 40 kB initializer
    attr = ld(1, b"then_branch") + varint(20 << 3) + varint(5) + ld(6, weights) + ld(6, ld(2, b"again"))
    data = OPSET + ld(7, ld(1, ld(4, b"If") + ld(5, attr))) + ld(7, ld(2, b"merged"))
    _refused(data, "AttributeProto.g", "merge to more bytes than the file holds")


@pytest.mark.parametrize("data, fragments", [
    (b"\x08" + b"\xff" * 11, ("a varint longer than 10 bytes",)),
    (b"\x08" + b"\xff" * 9 + b"\x7f", ("overflows 64 bits",)),
    (OPSET + b"\x08\xff", ("ends inside a varint",)),
    (OPSET + b"\x88", ("ends inside a varint",)),
    (OPSET + b"\x0b\x0c", ("a group (wire type 3)",)),
    (OPSET + b"\x0f", ("wire type 7 does not exist",)),
    (OPSET + b"\x02\x00", ("field number 0",)),
    (OPSET + ld(7, ld(1, ld(4, b"Re\xffu"))), ("NodeProto.op_type", "not valid UTF-8")),
    (OPSET + ld(7, ld(5, ld(4, b"\x01\x02\x03"))), ("TensorProto.float_data", "not a multiple of 4")),
    (OPSET + ld(7, ld(5, ld(7, b"\x80\x80"))), ("TensorProto.int64_data", "end inside a varint")),
    (OPSET + ld(7, ld(5, ld(7, b"\x80" * 12 + b"\x01"))), ("TensorProto.int64_data", "longer than 10 bytes")),
    (OPSET + ld(7, ld(1, ld(5, varint(2 << 3 | 5) + b"\x00\x00"))), ("AttributeProto.f", "truncated 4-byte")),
    (OPSET, ("the ONNX graph has no nodes",)),
])
def test_malformed_encodings_are_named(data, fragments):
    _refused(data, *fragments)


def test_a_damaged_file_on_disk_is_named_by_its_path(tmp_path):
    path = tmp_path / "damaged.onnx"
    path.write_bytes(b"\x08" + b"\xff" * 11)
    with pytest.raises(rnnfast.FormatError, match=f"^{re.escape(str(path))}: not a readable ONNX model"):
        rnnfast.load(path)
