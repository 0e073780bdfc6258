"""Bad and hostile PyTorch files: each a FormatError naming what is wrong; nothing runs, nothing crashes."""
from __future__ import annotations

import io
import json
import os
import pickle
import struct
import sys
import zipfile

import numpy as np
import pytest

import rnnfast
from rnnfast import FormatError
from rnnfast.importers.torch.files import read_torch_weights

DATA = os.path.join(os.path.dirname(__file__), "data", "torch")


def read(name):
    with open(os.path.join(DATA, name), "rb") as f:
        return f.read()


# -- a tiny pickle assembler, so the tests can write exactly the opcodes a hostile file would -------------------

def _global(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _str(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _int(i):
    return b"J" + struct.pack("<i", i)


def _tuple(*items):
    return b"(" + b"".join(items) + b"t"


def tensor_pickle(tensors):
    """data.pkl of {name: _rebuild_tensor_v2(storage(key, numel), offset, size, stride, False, OrderedDict())}."""
    out = b"\x80\x02}("
    for name, (key, numel, offset, size, stride) in tensors.items():
        pid = _tuple(_str("storage"), _global("torch", "FloatStorage"), _str(key), _str("cpu"), _int(numel))
        args = _tuple(pid + b"Q", _int(offset), _tuple(*map(_int, size)), _tuple(*map(_int, stride)), b"\x89",
                      _global("collections", "OrderedDict") + b")R")
        out += _str(name) + _global("torch._utils", "_rebuild_tensor_v2") + args + b"R"
    return out + b"u."


def torch_zip(data_pkl, records=None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", "little")
        for key, raw in (records or {}).items():
            z.writestr(f"archive/data/{key}", raw)
    return buf.getvalue()


def safetensors_bytes(tensors):
    header, body = {}, b""
    for name, arr in tensors.items():
        raw = np.ascontiguousarray(arr, np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [len(body), len(body) + len(raw)]}
        body += raw
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + body


# -- hostile pickles -----------------------------------------------------------------------------------------

class Exploit:
    """What an attacker pickles: unpickling it with plain pickle would run the command."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("container", ["zip", "legacy", "checkpoint"])
def test_malicious_global_is_refused_and_never_runs(tmp_path, container):
    marker = tmp_path / "pwned"
    payload = Exploit(os.system, f"touch {marker}")
    if container == "zip":
        data = torch_zip(pickle.dumps(payload, protocol=2))
    elif container == "checkpoint":
        data = torch_zip(pickle.dumps({"model_state_dict": {}, "hook": payload}, protocol=2))
    else:
        data = b"".join(pickle.dumps(o, protocol=2) for o in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True},
                                                              payload, []))
    with pytest.raises(FormatError, match=rf"refused global '{os.name == 'nt' and 'nt' or 'posix'}\.system'"):
        rnnfast.load(data)
    assert not marker.exists()


def test_refused_module_is_never_imported():
    assert "antigravity" not in sys.modules
    with pytest.raises(FormatError, match=r"refused global 'antigravity\.fly'.*nothing was imported"):
        read_torch_weights(torch_zip(b"\x80\x02" + _global("antigravity", "fly") + b")R."), "evil.pt")
    assert "antigravity" not in sys.modules


@pytest.mark.parametrize("module,name", [("builtins", "eval"), ("builtins", "exec"), ("subprocess", "Popen"),
                                         ("builtins", "getattr"), ("torch", "load"), ("numpy", "load"),
                                         ("torch.serialization", "load"), ("__builtin__", "open")])
def test_other_dangerous_globals_are_refused(module, name):
    data = torch_zip(b"\x80\x02" + _global(module, name) + _tuple(_str("1")) + b"R.")
    with pytest.raises(FormatError, match=rf"refused global '{module}\.{name}'"):
        read_torch_weights(data, "evil.pt")


def test_allowed_module_class_cannot_be_called_as_a_function():
    # REDUCE calls the class: a stand-in for a torch.nn class may be rebuilt as data (NEWOBJ), never called.
    data = torch_zip(b"\x80\x02" + _global("torch.nn.modules.rnn", "LSTM") + _tuple(_str("x")) + b"R.")
    with pytest.raises(FormatError, match=r"calls torch\.nn\.modules\.rnn\.LSTM\(\.\.\.\) as a function"):
        read_torch_weights(data, "evil.pt")


@pytest.mark.parametrize("pkl,match", [
    (b"\x80\x02" + _global("torch.nn.modules.rnn", "LSTM") + _tuple(_str("x")) + b"R.", r"calls torch\.nn"),
    (tensor_pickle({"w": ("0", 4, 0, (2, 2), (2,))}), r"_rebuild_tensor_v2: bad size \(2, 2\) / stride \(2,\)"),
    (b"\x80\x02" + _global("numpy", "dtype") + _tuple(_int(1)) + b"R.", r"numpy\.dtype stand-in expects a type string"),
])
def test_refusals_raised_inside_the_pickle_name_the_file(pkl, match):
    with pytest.raises(FormatError, match=r"^evil\.pt: archive/data\.pkl: .*" + match):
        read_torch_weights(torch_zip(pkl, {"0": bytes(16)}), "evil.pt")


def test_allow_classes_reads_user_modules_as_data():
    data = torch_zip(b"\x80\x02" + _global("__main__", "Net") + b")\x81}" + _str("training") + b"\x88sb.")
    with pytest.raises(FormatError, match="refused global '__main__.Net'"):
        read_torch_weights(data, "net.pt")
    with pytest.raises(FormatError, match="holds no tensors"):
        read_torch_weights(data, "net.pt", allow_classes=["__main__.Net"])


@pytest.mark.parametrize("target", [_global("torch._utils", "_rebuild_tensor_v2"), _global("numpy", "dtype"),
                                    _global("torch", "FloatStorage"), _global("collections", "OrderedDict"),
                                    _global("torch.nn.modules.rnn", "LSTM") + b")\x81"])
@pytest.mark.parametrize("state", [b"}" + _str("__defaults__") + b")s", b"N}" + _str("rn_class") + _int(1) + b"s\x86"])
def test_pickle_cannot_rewrite_the_stand_ins(target, state):
    # BUILD sets attributes on whatever object is on the stack; none of ours may change.
    with pytest.raises(FormatError):
        read_torch_weights(torch_zip(b"\x80\x02" + target + state + b"b."), "evil.pt")
    assert rnnfast.load(read("lstm.pt")).output_names == ["output", "h_n", "c_n"]


def test_bad_persistent_id():
    data = torch_zip(b"\x80\x02" + _tuple(_str("storage"), _global("collections", "OrderedDict"), _str("0"),
                                          _str("cpu"), _int(1)) + b"Q.")
    with pytest.raises(FormatError, match="not a torch storage type"):
        read_torch_weights(data, "bad.pt")


def test_garbage_pickle():
    with pytest.raises(FormatError, match=r"bad\.pt: archive/data\.pkl: not a readable pickle"):
        read_torch_weights(torch_zip(b"\x80\x02}(X\xff\xff\xff\xff"), "bad.pt")


# -- truncated and inconsistent files -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["lstm.pt", "gru_legacy.pt", "gru_bidir_2layer.safetensors", "lstm_checkpoint.pth",
                                  "rnn_relu_torchscript.pt"])
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.97])
def test_truncated_files(name, keep):
    data = read(name)
    cut = data[: int(len(data) * keep)]
    with pytest.raises(FormatError):
        rnnfast.load(cut)
    with pytest.raises(FormatError):
        read_torch_weights(cut, name)


def test_truncated_legacy_names_the_storage():
    data = read("gru_legacy.pt")
    with pytest.raises(FormatError, match=r"legacy storage '\d+' declares \d+ elements"):
        read_torch_weights(data[:-10], "gru_legacy.pt")


def test_storage_record_shorter_than_declared():
    src = zipfile.ZipFile(io.BytesIO(read("lstm.pt")))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for info in src.infolist():
            raw = src.read(info.filename)
            z.writestr(info.filename, raw[:-8] if info.filename == "lstm/data/0" else raw)
    with pytest.raises(FormatError, match=r"record 'lstm/data/0' has \d+ bytes, but storage '0' declares"):
        rnnfast.load(buf.getvalue())


def test_tensor_runs_past_its_storage():
    data = torch_zip(tensor_pickle({"w": ("0", 6, 2, (2, 3), (3, 1))}), {"0": bytes(24)})
    with pytest.raises(FormatError, match=r"tensor 'w'.*storage '0' holds 6 elements.*needs 8"):
        read_torch_weights(data, "short.pt")


def test_missing_storage_record():
    data = torch_zip(tensor_pickle({"w": ("0", 6, 0, (2, 3), (3, 1))}))
    with pytest.raises(FormatError, match=r"record 'archive/data/0' is missing"):
        read_torch_weights(data, "missing.pt")


def test_views_and_strides_of_one_storage():
    data = torch_zip(tensor_pickle({"a": ("0", 12, 0, (3, 4), (4, 1)), "t": ("0", 12, 0, (4, 3), (1, 4)),
                                    "v": ("0", 12, 1, (3, 2), (4, 1))}),
                     {"0": np.arange(12, dtype="<f4").tobytes()})
    t = read_torch_weights(data, "views.pt").tensors
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(t["a"], base)
    np.testing.assert_array_equal(t["t"], base.T)
    np.testing.assert_array_equal(t["v"], base[:, 1:3])


def test_not_a_zip():
    with pytest.raises(FormatError, match="not a readable zip"):
        read_torch_weights(b"PK\x03\x04 garbage", "x.pt")


# -- safetensors ---------------------------------------------------------------------------------------------

def test_safetensors_leftover_keys_are_named():
    sd = read_torch_weights(read("lstm.pt"), "lstm.pt").tensors
    data = safetensors_bytes({**sd, "extra.scale": np.ones(3)})
    with pytest.raises(FormatError, match=r"1 tensor\(s\) left unused: extra\.scale \(3,\)"):
        rnnfast.load(data)
    assert rnnfast.load(data, ignore=["extra."]).output_names == ["output", "h_n", "c_n"]


@pytest.mark.parametrize("header,match", [
    ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 64]}}, "fall outside"),
    ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}, "needs 12 bytes"),
    ({"w": {"dtype": "C64", "shape": [2], "data_offsets": [0, 16]}}, "dtype 'C64' not supported"),
    ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 16]}}, "non-negative"),
    ({"w": [1, 2]}, "needs dtype, shape and data_offsets"),
])
def test_bad_safetensors_headers(header, match):
    h = json.dumps(header).encode()
    with pytest.raises(FormatError, match=match):
        read_torch_weights(struct.pack("<Q", len(h)) + h + bytes(16), "bad.safetensors")


# -- weights that do not form a recurrent module ------------------------------------------------------------

def base_state():
    return dict(read_torch_weights(read("gru_2layer.pt"), "gru_2layer.pt").tensors)


@pytest.mark.parametrize("edit,match", [
    (lambda sd: sd.pop("weight_ih_l0"), r"weight_ih_l\* has layers \[1\]"),
    (lambda sd: sd.pop("weight_hh_l1"), r"missing \['weight_hh_l1'\]"),
    (lambda sd: sd.pop("bias_hh_l1"), "bias_ih_l1 and bias_hh_l1 must both be present"),
    (lambda sd: sd.update(weight_hh_l0=np.zeros((21, 5), np.float32)), r"rows must be 1, 3 or 4 times"),
    (lambda sd: sd.update(weight_ih_l1=np.zeros((21, 5), np.float32)), "layer 1 reads the previous layer's output"),
    (lambda sd: sd.update(weight_ih_l0=np.zeros((21, 4), np.int64)), "expected a 2-D float tensor"),
    (lambda sd: sd.update(weight_ih_l0_reverse=sd["weight_ih_l0"]), r"missing \['weight_hh_l0_reverse'\]"),
])
def test_inconsistent_recurrent_weights(edit, match):
    sd = base_state()
    edit(sd)
    with pytest.raises(FormatError, match=match):
        rnnfast.load(safetensors_bytes(sd) if all(v.dtype.kind == "f" for v in sd.values()) else _int_safetensors(sd))


def _int_safetensors(sd):
    header, body = {}, b""
    for name, arr in sd.items():
        kind = "I64" if arr.dtype == np.int64 else "F32"
        raw = arr.astype("<i8" if kind == "I64" else "<f4").tobytes()
        header[name] = {"dtype": kind, "shape": list(arr.shape), "data_offsets": [len(body), len(body) + len(raw)]}
        body += raw
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + body


def test_no_recurrent_weights():
    with pytest.raises(FormatError, match=r"no nn\.RNN/LSTM/GRU weights.*fc\.weight"):
        rnnfast.load(safetensors_bytes({"fc.weight": np.ones((2, 3))}))


def test_checkpoint_without_a_clear_state_dict():
    payload = pickle.dumps({"a": {}, "b": 3}, protocol=2)
    with pytest.raises(FormatError, match=r"cannot tell which entry.*state_dict_key"):
        read_torch_weights(torch_zip(payload), "ckpt.pt")
    with pytest.raises(FormatError, match=r"state_dict_key='c' not found"):
        read_torch_weights(torch_zip(payload), "ckpt.pt", state_dict_key="c")


def test_checkpoint_numbers_saved_as_numpy_scalars_are_read():
    from rnnfast.importers._pickle import restricted_loads

    obj, storages = restricted_loads(pickle.dumps({"best": np.float64(0.5), "step": np.int32(3),
                                                   "lr": np.float32(1e-3)}, protocol=2), "ckpt")
    assert obj == {"best": 0.5, "step": 3, "lr": np.float32(1e-3).item()} and storages == {}
    # Plain numpy arrays are read too (a pickled dict of arrays), as checked records; a masked array is not one.
    obj, _ = restricted_loads(pickle.dumps(np.arange(3.0), protocol=2), "ckpt")
    np.testing.assert_array_equal(obj.materialize("ckpt"), np.arange(3, dtype=np.float32))
    with pytest.raises(FormatError, match=r"refused global 'numpy\.ma\.core\._mareconstruct'"):
        restricted_loads(pickle.dumps(np.ma.zeros(2), protocol=2), "ckpt")
