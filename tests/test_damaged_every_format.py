"""Damaged variants of one file of every format (truncated, bytes overwritten, zip headers bent the ways zipfile
reacts to with NotImplementedError, RuntimeError or zlib.error, an ONNX attribute of the wrong kind): loading and
running them lets out nothing but FormatError / ValueError and their subclasses, and a FormatError names the file."""
import io
import struct
import zipfile

import numpy as np
import pytest

import hostile
from fuzz.targets import _run_small
import rnnfast
from rnnfast.errors import FormatError

SEEDS = {
    "x.onnx": hostile.DATA / "onnx" / "lstm_states.ts.onnx",
    "x.h5": hostile.DATA / "keras" / "k3_go_backwards.h5",
    "x.keras": hostile.DATA / "keras" / "k3_go_backwards.keras",
    "x.pt": hostile.DATA / "torch" / "lstm.pt",
    "legacy.pt": hostile.DATA / "torch" / "gru_legacy.pt",
    "x.safetensors": hostile.DATA / "torch" / "gru_bidir_2layer.safetensors",
}


class Named(io.BytesIO):
    def __init__(self, data, name):
        super().__init__(data)
        self.name = name


def variants(data: bytes):
    n = len(data)
    for cut in (1, 8, 16, 64, n // 4, n // 2, n - 100, n - 1):
        if 0 < cut < n:
            yield f"truncated at {cut}", data[:cut]
    for pos in (0, 4, 9, 17, 33, n // 3, n // 2, 2 * n // 3, n - 30, n - 9):
        for fill in (b"\xff" * 4, b"\x00" * 4, b"\x7f\xff\xff\xff"):
            if 0 <= pos < n - 4:
                yield f"{fill.hex()} at {pos}", data[:pos] + fill + data[pos + 4:]


def check(data, name):
    try:
        _run_small(rnnfast.load(Named(data, name)))
    except FormatError as e:
        assert name in str(e), e
    except ValueError:
        pass


@pytest.mark.parametrize("name", list(SEEDS))
def test_damaged_variants_raise_only_documented_errors(name):
    if not SEEDS[name].exists():
        pytest.skip(f"no fixture {SEEDS[name].name}")
    for label, data in variants(SEEDS[name].read_bytes()):
        try:
            check(data, name)
        except AssertionError:
            raise
        except Exception as e:  # noqa: BLE001 - the test is about which classes get out
            pytest.fail(f"{name}, {label}: {type(e).__name__}: {e}")


def _bent_zip(path, how):
    """The file with the zip headers (local and central) of the member the loader reads first bent `how`."""
    data = bytearray(path.read_bytes())
    z = zipfile.ZipFile(io.BytesIO(bytes(data)))
    info = next(i for i in z.infolist() if i.filename.endswith(("data.pkl", "config.json")))
    cd = data.find(b"PK\x01\x02")
    while data[cd + 46:cd + 46 + len(info.filename)] != info.filename.encode():
        cd = data.find(b"PK\x01\x02", cd + 4)
    if how == "version":  # "version needed to extract" beyond what zipfile reads: NotImplementedError
        for off in (info.header_offset + 4, cd + 6):
            data[off:off + 2] = struct.pack("<H", 99)
    elif how == "encrypted":  # the encrypted flag: RuntimeError (password required)
        for off in (info.header_offset + 6, cd + 8):
            data[off] |= 1
    elif how == "method":  # an unknown compression method: NotImplementedError
        for off in (info.header_offset + 8, cd + 10):
            data[off:off + 2] = struct.pack("<H", 77)
    return bytes(data)


@pytest.mark.parametrize("how", ["version", "encrypted", "method"])
@pytest.mark.parametrize("name", ["x.pt", "x.keras"])
def test_zip_headers_zipfile_cannot_read(name, how):
    with pytest.raises(FormatError, match=rf"{name.replace('.', '[.]')}: "):
        rnnfast.load(Named(_bent_zip(SEEDS[name], how), name))


def test_corrupt_deflate_data_is_a_format_error():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a/data.pkl", hostile.tensor_pickle())
        z.writestr("a/data/0", b"\0" * 4096)
    data = bytearray(buf.getvalue())
    start = data.find(b"a/data/0") + len("a/data/0")
    data[start + 2:start + 10] = b"\xff" * 8  # zlib.error: invalid block type / distance
    with pytest.raises(FormatError, match=r"bad\.pt: "):
        rnnfast.load(Named(bytes(data), "bad.pt"))


def test_an_onnx_attribute_of_the_wrong_kind_is_a_format_error():
    from onnx import TensorProto, helper, numpy_helper

    lstm = helper.make_node("LSTM", ["x", "w", "r"], ["y"], hidden_size=2.5)
    inits = [numpy_helper.from_array(np.zeros((1, 8, 3), np.float32), "w"),
             numpy_helper.from_array(np.zeros((1, 8, 2), np.float32), "r")]
    g = helper.make_graph([lstm], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 1, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 1, 1, 2])], inits)
    data = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)]).SerializeToString()
    with pytest.raises(ValueError, match=r"wrong_kind\.onnx"):
        _run_small(rnnfast.load(Named(data, "wrong_kind.onnx")))
