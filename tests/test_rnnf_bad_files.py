"""Damaged .rnnf files: every kind of damage gives rnnfast.FormatError naming the file and the record/field,
never another exception or a crash; files that still parse after a random byte flip load and run."""
import struct

import numpy as np
import pytest
from pipeline_builders import random_input, random_pipeline, run_chain

import rnnfast
from rnnfast import rnnf_spec as spec
from rnnfast.errors import FormatError
from rnnfast.exporters.rnnf import to_bytes
from rnnfast.importers.rnnf import load_rnnf

NAME = "bad.rnnf"


@pytest.fixture
def small(rng):
    """Embedding -> bidirectional LSTM with projection and peepholes -> Dense: every record kind, small."""
    p = random_pipeline(rng, "lstm", "bidirectional", embedding="mask_zero", proj_size=2, peepholes=True,
                        clip=1.0, custom_acts=True)
    return p, bytearray(to_bytes(p))


def _offsets(data):
    h = spec.HEADER.unpack_from(data, 0)
    stages_at = h[6]
    layers_at = stages_at + spec.STAGE.size * h[7]
    blobs_at = layers_at + spec.LAYER_SIZE * h[8]
    return stages_at, layers_at, blobs_at, h[9]


def _refused(data, *fragments):
    with pytest.raises(FormatError) as e:
        load_rnnf(bytes(data), NAME)
    msg = str(e.value)
    assert msg.startswith(NAME + ": "), msg
    for f in fragments:
        assert f in msg, msg
    return msg


def _patch(data, fmt, at, *values):
    out = bytearray(data)
    struct.pack_into(fmt, out, at, *values)
    return out


def test_header_damage_is_named(small):
    _, data = small
    _refused(b"ONNX" + data[4:], "header", "not a .rnnf file")
    _refused(_patch(data, "<H", 4, 3), "format version 3.0")
    _refused(_patch(data, "<H", 4, 2), "format version 2 holds a whole graph")
    _refused(_patch(data, "<H", 6, 2), "format version 1.2")
    _refused(_patch(data, "<I", 8, 72), "header_size 72")
    _refused(_patch(data, "<I", 12, 2), "flags 0x2")
    _refused(data + b"\0", "file_size", "padded")
    _refused(_patch(data, "<Q", 56, 1), "reserved")
    _refused(_patch(data, "<Q", 24, 60), "table_offset 60")
    _refused(_patch(data, "<Q", 24, 1 << 62), "table_offset")
    _refused(_patch(data, "<I", 32, 0), "n_stages is 0")
    _refused(_patch(data, "<I", 36, 0xFFFFFFFF), "past the end")
    _refused(_patch(data, "<I", 44, 1 << 30), "past the end")
    _refused(data[:10], "shorter than the 64-byte header")


def test_every_truncation_is_refused(small):
    _, data = small
    for n in range(len(data)):
        with pytest.raises(FormatError):
            load_rnnf(bytes(data[:n]), NAME)


def test_blob_damage_is_named(small):
    _, data = small
    _, _, blobs_at, n_blobs = _offsets(data)
    first = blobs_at
    offset, nbytes = struct.unpack_from("<QQ", data, first)
    second_offset = struct.unpack_from("<Q", data, first + spec.BLOB.size)[0]
    _refused(_patch(data, "<Q", first, len(data) + 64), "blob 0", "inside the")
    _refused(_patch(data, "<Q", first, (1 << 64) - 64), "blob 0")
    _refused(_patch(data, "<Q", first, offset + 4), "blob 0", "aligned")
    _refused(_patch(data, "<Q", first, 0), "blob 0", "after the tables")
    _refused(_patch(data, "<Q", first + spec.BLOB.size, offset), "overlaps blob")
    assert second_offset > offset
    _refused(_patch(data, "<Q", first + 8, nbytes + 4), "blob 0", "nbytes")
    _refused(_patch(data, "<I", first + 16, 2), "blob 0", "dtype float16 needs format 1.1")
    _refused(_patch(data, "<I", first + 16, 3), "blob 0", "dtype int8 needs format 1.1")
    _refused(_patch(data, "<I", first + 16, 9), "blob 0", "unknown dtype code 9")
    _refused(_patch(data, "<I", first + 20, 5), "blob 0", "ndim 5")
    _refused(_patch(data, "<I", first + 36, 7), "blob 0", "dims")
    _refused(_patch(data, "<I", first + 40, 0), "blob 0", "scale_blob")


def test_record_damage_is_named(small):
    _, data = small
    stages_at, layers_at, blobs_at, n_blobs = _offsets(data)
    _refused(_patch(data, "<I", stages_at, 7), "stage 0", "kind 7")
    _refused(_patch(data, "<I", stages_at + 4, 2), "stage 0 (Embedding)", "flags 0x2")
    _refused(_patch(data, "<I", stages_at + 16, n_blobs), "stage 0 (Embedding)", f"names blob {n_blobs}")
    _refused(_patch(data, "<I", stages_at + 16, 1), "stage 0 (Embedding)", "shape")  # blob 1 is w_ih, 3-D
    _refused(_patch(data, "<I", stages_at + 8, 1 << 31), "stage 0 (Embedding)", "strings table")
    _refused(_patch(data, "<I", stages_at + 32 + 20, 2), "stage 1 (Recurrent)", "layers")
    _refused(_patch(data, "<I", stages_at + 64 + 24, 9), "stage 2 (Dense)", "activation 9")
    _refused(_patch(data, "<I", stages_at + 64 + 20, spec.NONE), "blob", "not used")  # drop the head's bias
    _refused(_patch(data, "<I", layers_at, 5), "layer 0 (stage 1)", "cell 5")
    _refused(_patch(data, "<I", layers_at + 4, 3), "layer 0 (stage 1)", "direction 3")
    _refused(_patch(data, "<I", layers_at + 8, 4), "layer 0 (stage 1)", "w_ih", "expected")
    _refused(_patch(data, "<I", layers_at + 16, 0), "layer 0 (stage 1)", "w_hr")
    _refused(_patch(data, "<I", layers_at + 20, 2), "layer 0 (stage 1)", "linear_before_reset on a lstm")
    _refused(_patch(data, "<d", layers_at + 24, float("nan")), "layer 0 (stage 1)", "clip")
    _refused(_patch(data, "<d", layers_at + 24, -1.0), "layer 0 (stage 1)", "clip -1.0")
    _refused(_patch(data, "<I", layers_at + 44, 1), "layer 0 (stage 1)", "reuses blob 1")
    _refused(_patch(data, "<I", layers_at + 64, 99), "activation [0][0]", "kind 99")
    _refused(_patch(data, "<d", layers_at + 64 + 8, float("inf")), "activation [0][0]", "finite")
    _refused(_patch(data, "<I", layers_at + 64 + 3 * 24 + 4, 1), "activation [1][0]", "reserved")


def test_seeded_byte_flips_give_format_error_or_a_working_model(small):
    p, data = small
    rng = np.random.default_rng(7)
    table_end = _offsets(data)[2] + spec.BLOB.size * _offsets(data)[3]
    ids = random_input(rng, p, seq_len=4, batch=2)
    loaded = 0
    positions = list(range(table_end)) + list(rng.integers(0, len(data), 200))
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= int(rng.integers(1, 256))
        if rng.integers(4) == 0:  # sometimes a second flip elsewhere
            bad[int(rng.integers(len(bad)))] ^= 0xFF
        try:
            q = load_rnnf(bytes(bad), NAME)
        except FormatError as e:
            assert str(e).startswith(NAME + ": ")
            continue
        loaded += 1
        if loaded > 40:  # running every survivor adds time, not coverage
            continue
        y = run_chain(q, np.clip(ids, 0, q.stages[0].table.shape[0] - 1))
        assert y.shape == run_chain(p, ids).shape
    assert 0 < loaded < len(positions)  # names, floats and flags can change harmlessly; most table damage cannot


def test_rnnfast_load_names_the_path(small, tmp_path):
    _, data = small
    path = tmp_path / "x.rnnf"
    path.write_bytes(bytes(data[:-1]))
    with pytest.raises(FormatError, match=r"x\.rnnf: header: file_size"):
        rnnfast.load(path)
