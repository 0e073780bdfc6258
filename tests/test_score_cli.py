"""`rnnfast score` in this process (no Dask): one row per file in input order, equal to the model run on the same
batch; bad files named in the error column while the others are scored; .parquet refused with the way out when
pyarrow is missing; wav decoding against the samples written. (On a cluster: tests/test_dask.py.)"""
import os
import sys
import wave

import numpy as np
import pytest

import rnnfast
from rnnfast.cli import main
from rnnfast.seqfiles import FileError, read_sequence

DATA = os.path.join(os.path.dirname(__file__), "data")
TORCH = os.path.join(DATA, "torch", "lstm_packed.pt")


def _wav(path, ints, width=2, channels=1, rate=16000):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(ints.tobytes())


def test_wav_samples_decode_to_full_scale_floats(tmp_path):
    ints = np.array([0, 1, -1, 32767, -32768, 1000], "<i2")
    _wav(tmp_path / "a.wav", ints)
    np.testing.assert_array_equal(read_sequence(tmp_path / "a.wav"), ints / np.float32(32768))
    _wav(tmp_path / "st.wav", np.arange(8, dtype="<i2"), channels=2)
    assert read_sequence(tmp_path / "st.wav").shape == (4, 2)
    raw = np.array([[0, 0, 0x80], [0xff, 0xff, 0x7f], [1, 0, 0]], np.uint8)  # 24-bit: -2^23, 2^23-1, 1
    _wav(tmp_path / "w24.wav", raw.reshape(-1), width=3)
    np.testing.assert_allclose(read_sequence(tmp_path / "w24.wav"), [-1.0, (2 ** 23 - 1) / 2 ** 23, 2 ** -23],
                               rtol=1e-7)
    with pytest.raises(FileError, match="b.wav.*8000 Hz, expected 16000"):
        _wav(tmp_path / "b.wav", ints, rate=8000)
        read_sequence(tmp_path / "b.wav", sample_rate=16000)


def test_score_here_matches_the_model_and_names_bad_files(tmp_path, capsys):
    model = rnnfast.load(TORCH)
    rng = np.random.default_rng(5)
    seqs = [rng.standard_normal((n, 3)).astype(np.float32) for n in (4, 9, 4, 2)]
    paths = []
    for i, s in enumerate(seqs):
        paths.append(str(tmp_path / f"s{i}.npz"))
        np.savez(paths[-1], input=s)
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really")
    np.savez(tmp_path / "wide.npz", input=np.zeros((3, 7), np.float32))  # 7 features, the model takes 3
    paths[1:1] = [str(tmp_path / "junk.npz"), str(tmp_path / "wide.npz")]
    out = tmp_path / "r.npz"
    assert main(["score", TORCH, *paths, "--out", str(out), "--output", "h_n", "--no-progress"]) == 0
    assert "scored 4 of 6 files" in capsys.readouterr().out
    r = np.load(out)
    assert list(r["path"]) == paths
    assert r["error"][1].startswith(paths[1] + ": not a file numpy can read")
    assert r["error"][2].startswith(paths[2] + ": ") and "3" in r["error"][2]
    good = [0, 3, 4, 5]
    assert not any(r["error"][good])
    for i, s in zip(good, seqs):  # h_n of each sequence alone, from the model itself unpadded
        np.testing.assert_array_equal(r["score"][i], model.run(s[:, None, :])[1][:, 0])
    assert np.isnan(r["score"][1]).all()


def test_parquet_without_pyarrow_suggests_npz(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    code = main(["score", TORCH, str(tmp_path / "x.npz"), "--out", str(tmp_path / "r.parquet")])
    assert code == 2
    err = capsys.readouterr().err
    assert "needs pyarrow" in err and "r.npz" in err


def test_parquet_rows(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed")
    np.savez(tmp_path / "a.npz", input=np.ones((5, 3), np.float32))
    out = tmp_path / "r.parquet"
    assert main(["score", TORCH, str(tmp_path / "a.npz"), str(tmp_path / "none.npz"), "--out", str(out),
                 "--no-progress"]) == 0
    table = pq.read_table(out).to_pydict()
    assert table["path"] == [str(tmp_path / "a.npz"), str(tmp_path / "none.npz")]
    assert table["error"][0] is None and "none.npz" in table["error"][1]
    assert table["shape"][0] == [5, 10] and len(table["score"][0]) == 50 and table["score"][1] is None
