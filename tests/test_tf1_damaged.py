"""Damaged or unusual TensorFlow checkpoints are refused with a FormatError naming the file, the tensor and the
field (never a crash, a huge allocation or a silent wrong answer): truncated or corrupted index tables, tensor bytes
failing their crc32c, offsets and sizes past the shard, unmatched variable scopes, options TF1 cells have that the
engine does not reproduce. Checkpoints TensorFlow would not write come from tests/tf_bundle_writer.py."""
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

import rnnfast
from rnnfast.errors import MemoryLimitError
from rnnfast.importers.tf import crc32c
from tf_bundle_writer import block, table, write_checkpoint

DATA = Path(__file__).parent / "data" / "tf1"
rng = np.random.default_rng(7)
LSTM = {"rnn/basic_lstm_cell/kernel": rng.standard_normal((5, 8)).astype(np.float32),
        "rnn/basic_lstm_cell/bias": rng.standard_normal(8).astype(np.float32)}


@pytest.fixture
def gru(tmp_path):
    shutil.copytree(DATA / "gru", tmp_path / "gru")
    return tmp_path / "gru" / "model.ckpt"


def _index(prefix):
    return Path(f"{prefix}.index")


def _data(prefix):
    return Path(f"{prefix}.data-00000-of-00001")


def test_crc32c_known_values():
    assert crc32c.value(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c.value(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4 test vectors
    assert crc32c.value(b"\xff" * 32) == 0x62A8AB43
    assert crc32c.value(bytes(range(32))) == 0x46DD794E
    big = np.random.default_rng(1).integers(0, 256, 70001, dtype=np.uint8).tobytes()
    assert crc32c.value(big) == crc32c._raw(np.frombuffer(big, np.uint8), 0xFFFFFFFF) ^ 0xFFFFFFFF
    assert crc32c.unmask(crc32c.mask(0xDEADBEEF)) == 0xDEADBEEF


def test_writer_makes_a_loadable_checkpoint(tmp_path):
    write_checkpoint(tmp_path / "m", LSTM)
    model = rnnfast.load(str(tmp_path / "m"))
    assert model.run(np.zeros((2, 3, 3), np.float32))[0].shape == (2, 3, 2)


def test_tensors_in_several_shards(tmp_path):
    from rnnfast.importers.tf.bundle import Bundle

    write_checkpoint(tmp_path / "m", LSTM, num_shards=3)
    bundle = Bundle(str(tmp_path / "m"))
    assert sorted(e.shard_id for e in bundle.entries.values()) == [0, 1]
    for name, arr in LSTM.items():
        np.testing.assert_array_equal(bundle.read(name), arr)
    (tmp_path / "m.data-00001-of-00003").unlink()
    with pytest.raises(rnnfast.FormatError, match=r"m\.data-00001-of-00003: data shard 1 of the checkpoint"):
        rnnfast.load(str(tmp_path / "m"))


@pytest.mark.parametrize("keep", [0, 10, 47, -1, -9, -48, -60, 0.5])
def test_truncated_index(gru, keep):
    raw = _index(gru).read_bytes()
    n = int(len(raw) * keep) if isinstance(keep, float) else (keep if keep >= 0 else len(raw) + keep)
    _index(gru).write_bytes(raw[:n])
    with pytest.raises(rnnfast.FormatError, match=r"model\.ckpt\.index"):
        rnnfast.load(str(gru))


def test_corrupted_index_block(gru):
    raw = bytearray(_index(gru).read_bytes())
    raw[20] ^= 0x40  # inside the first data block
    _index(gru).write_bytes(bytes(raw))
    with pytest.raises(rnnfast.FormatError, match=r"model\.ckpt\.index: data block 0: .* fails its crc32c check"):
        rnnfast.load(str(gru))


def test_tensor_bytes_fail_crc(gru):
    raw = bytearray(_data(gru).read_bytes())
    raw[-3] ^= 0x01  # the last tensor written: rnn/gru_cell/gates/kernel
    _data(gru).write_bytes(bytes(raw))
    with pytest.raises(rnnfast.FormatError, match=r"data-00000-of-00001: tensor 'rnn/gru_cell/gates/kernel': the "
                                                  r"bytes fail the index's crc32c check"):
        rnnfast.load(str(gru))


def test_truncated_and_missing_shard(gru):
    raw = _data(gru).read_bytes()
    _data(gru).write_bytes(raw[:-10])
    with pytest.raises(rnnfast.FormatError, match=r"tensor 'rnn/gru_cell/gates/kernel': fields offset \d+ \+ size "
                                                  r"\d+ run past the end of the shard"):
        rnnfast.load(str(gru))
    _data(gru).unlink()
    with pytest.raises(rnnfast.FormatError, match="data shard 0 of the checkpoint .* cannot be read"):
        rnnfast.load(str(gru))


@pytest.mark.parametrize("field, value, message", [
    ("offset", 10 ** 6, "fields offset 1000000 .* run past the end of the shard"),
    ("offset", -8, "field offset is negative"),
    ("size", 12, "field size is 12 bytes; float32 of shape \\[5, 8\\] takes 160"),
    ("shard_id", 3, "field shard_id is 3, the header declares 1"),
    ("dtype", 7, "field dtype is string, which rnnfast does not read"),
    ("dtype", 99, "field dtype is 99, not a TensorFlow DataType"),
    ("shape", (1 << 40, 1 << 30), "size is 160 bytes; float32 of shape"),
    ("sliced", True, "partitioned variable"),
])
def test_bad_entry_fields(tmp_path, field, value, message):
    write_checkpoint(tmp_path / "m", LSTM, overrides={"rnn/basic_lstm_cell/kernel": {field: value}})
    with pytest.raises(rnnfast.FormatError, match=r"tensor 'rnn/basic_lstm_cell/kernel'.*" + message):
        rnnfast.load(str(tmp_path / "m"))


def test_declared_size_checked_against_the_memory_limit(tmp_path, monkeypatch):
    write_checkpoint(tmp_path / "m", LSTM)
    monkeypatch.setenv("RNNFAST_MAX_MEMORY", "100")
    with pytest.raises(MemoryLimitError, match="rnn/basic_lstm_cell/kernel"):
        rnnfast.load(str(tmp_path / "m"))


def test_snappy_block_refused(tmp_path):
    entries = [(b"", b"\x08\x01")]
    raw = bytearray(table(entries))
    data = block(entries, compression=1)
    raw[:len(data)] = data  # the first (only) data block, now marked Snappy with a matching checksum
    (tmp_path / "m.index").write_bytes(bytes(raw))
    with pytest.raises(rnnfast.FormatError, match="data block 0: .* Snappy-compressed"):
        rnnfast.load(str(tmp_path / "m"))


def test_bad_magic_and_header(tmp_path):
    raw = bytearray(table([(b"", b"\x08\x01")]))
    raw[-1] ^= 0xFF
    (tmp_path / "m.index").write_bytes(bytes(raw))
    with pytest.raises(rnnfast.FormatError, match="footer magic"):
        rnnfast.load(str(tmp_path / "m"))
    write_checkpoint(tmp_path / "b", LSTM, header=b"\x08\x01\x10\x01")
    with pytest.raises(rnnfast.FormatError, match="endianness is 1"):
        rnnfast.load(str(tmp_path / "b"))
    write_checkpoint(tmp_path / "z", LSTM, header=b"\x08\x00")
    with pytest.raises(rnnfast.FormatError, match="num_shards is 0"):
        rnnfast.load(str(tmp_path / "z"))
    (tmp_path / "n.index").write_bytes(table([(b"a", b"")]))
    with pytest.raises(rnnfast.FormatError, match="no header entry"):
        rnnfast.load(str(tmp_path / "n"))


def test_index_block_handle_out_of_range(tmp_path):
    raw = bytearray(table([(b"", b"\x08\x01")]))
    foot = len(raw) - 48
    struct.pack_into("<B", raw, foot + 2, 0x7F)  # the index handle's offset, now past the data
    (tmp_path / "m.index").write_bytes(bytes(raw))
    with pytest.raises(rnnfast.FormatError, match="index block: block at offset .* runs past"):
        rnnfast.load(str(tmp_path / "m"))


def test_unmatched_scope_lists_the_variables(tmp_path):
    write_checkpoint(tmp_path / "m", {"encoder/weights": np.zeros((3, 4), np.float32),
                                      "global_step": np.zeros((), np.int64)})
    with pytest.raises(rnnfast.FormatError, match=r"no TF1 rnn_cell variables .* encoder/weights \[3, 4\]$"):
        rnnfast.load(str(tmp_path / "m"))


def test_unused_variables_refused_unless_ignored(tmp_path):
    tensors = dict(LSTM, **{"rnn/basic_lstm_cell/kernel/Adam": LSTM["rnn/basic_lstm_cell/kernel"],
                            "beta1_power": np.zeros((), np.float32), "decoder/w": np.zeros((2, 2), np.float32)})
    write_checkpoint(tmp_path / "m", tensors)
    with pytest.raises(rnnfast.FormatError, match=r"1 variable\(s\) left unused: decoder/w \[2, 2\]"):
        rnnfast.load(str(tmp_path / "m"))
    assert rnnfast.load(str(tmp_path / "m"), ignore=["decoder/"]) is not None


def test_cell_shapes_checked(tmp_path):
    write_checkpoint(tmp_path / "a", {"rnn/basic_lstm_cell/kernel": np.zeros((5, 7), np.float32),
                                      "rnn/basic_lstm_cell/bias": np.zeros(7, np.float32)})
    with pytest.raises(rnnfast.FormatError, match="rnn/basic_lstm_cell/kernel has shape \\[5, 7\\]; its columns"):
        rnnfast.load(str(tmp_path / "a"))
    write_checkpoint(tmp_path / "b", {"rnn/basic_lstm_cell/kernel": LSTM["rnn/basic_lstm_cell/kernel"]})
    with pytest.raises(rnnfast.FormatError, match="no variable rnn/basic_lstm_cell/bias"):
        rnnfast.load(str(tmp_path / "b"))
    write_checkpoint(tmp_path / "c", {"rnn/basic_lstm_cell/kernel": LSTM["rnn/basic_lstm_cell/kernel"].astype(
        np.int32), "rnn/basic_lstm_cell/bias": LSTM["rnn/basic_lstm_cell/bias"]})
    with pytest.raises(rnnfast.FormatError, match="variable rnn/basic_lstm_cell/kernel is int32"):
        rnnfast.load(str(tmp_path / "c"))


def test_keras_cells_under_a_tf1_scope_are_refused(tmp_path):
    write_checkpoint(tmp_path / "k", {"rnn/lstm_cell/kernel": np.zeros((12, 32), np.float32),
                                      "rnn/lstm_cell/recurrent_kernel": np.zeros((8, 32), np.float32),
                                      "rnn/lstm_cell/bias": np.zeros(32, np.float32)})
    with pytest.raises(rnnfast.FormatError, match="rnn/lstm_cell/recurrent_kernel: a tf.keras cell"):
        rnnfast.load(str(tmp_path / "k"))


def test_structures_not_implemented_are_named(tmp_path):
    deep = {f"bidirectional_rnn/{d}/multi_rnn_cell/cell_{k}/basic_lstm_cell/{v}": a
            for d in ("fw", "bw") for k in (0, 1) for v, a in
            (("kernel", np.zeros((5 if k == 0 else 4, 8), np.float32)), ("bias", np.zeros(8, np.float32)))}
    write_checkpoint(tmp_path / "d", deep)
    with pytest.raises(rnnfast.FormatError, match="bidirectional_dynamic_rnn over a MultiRNNCell"):
        rnnfast.load(str(tmp_path / "d"))
    two = dict(LSTM, **{k.replace("rnn/", "encoder/rnn/"): v for k, v in LSTM.items()})
    write_checkpoint(tmp_path / "t", two)
    with pytest.raises(rnnfast.FormatError, match=r"several recurrent stacks \['encoder/rnn', 'rnn'\]"):
        rnnfast.load(str(tmp_path / "t"))
    assert rnnfast.load(str(tmp_path / "t"), rnn="rnn", ignore=["encoder/"]) is not None
    write_checkpoint(tmp_path / "o", dict(LSTM, _CHECKPOINTABLE_OBJECT_GRAPH=np.zeros(1, np.float32)))
    with pytest.raises(rnnfast.FormatError, match="TF2 object-based checkpoint"):
        rnnfast.load(str(tmp_path / "o"))


def test_random_entry_damage_under_valid_checksums(tmp_path):
    """Bytes of the entries and the header changed or dropped at random, the blocks' checksums made to match: each
    load ends in a FormatError / ValueError or a working model, never another exception."""
    from rnnfast.importers.tf import crc32c as crc
    from tf_bundle_writer import entry_bytes

    write_checkpoint(tmp_path / "m", LSTM)
    base, offset = [], 0
    for name in sorted(LSTM):
        raw = LSTM[name].tobytes()
        base.append((name.encode(), entry_bytes(1, LSTM[name].shape, 0, offset, len(raw), crc.mask(crc.value(raw)))))
        offset += len(raw)
    r = np.random.default_rng(3)
    outcomes = {"refused": 0, "loaded": 0}
    for _ in range(150):
        parts = [bytearray(b"\x08\x01")] + [bytearray(v) for _, v in base]
        target = parts[r.integers(0, len(parts))]
        for _ in range(r.integers(1, 3)):
            if r.random() < 0.2 and len(target) > 1:
                del target[r.integers(0, len(target))]
            else:
                target[r.integers(0, len(target))] = r.integers(0, 256)
        (tmp_path / "m.index").write_bytes(table([(b"", bytes(parts[0]))] + [(k, bytes(v)) for (k, _), v in
                                                                             zip(base, parts[1:])]))
        try:
            rnnfast.load(str(tmp_path / "m")).run(np.zeros((1, 2, 3), np.float32))
            outcomes["loaded"] += 1
        except ValueError:  # FormatError and MemoryLimitError are ValueErrors
            outcomes["refused"] += 1
    assert outcomes["refused"] > 100, outcomes
