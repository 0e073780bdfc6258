"""rnnfast.dask and `rnnfast score --scheduler` on a dask.distributed LocalCluster of 2 worker processes (one cluster
for the module): results identical to a plain loop over the same batches, variable-length sequences batched with
padding where the model takes sequence_lens, a bad file reported by name without stopping the others, the model
built once per worker, and a worker killed mid-job losing no result."""
import os
import signal
import time
import wave

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install "
                                                        "\"rnnfast[dask]\")")
pytest.importorskip("pandas", reason="dask.dataframe needs pandas (pip install \"rnnfast[dask]\")")
import dask  # noqa: E402
import dask.array as da  # noqa: E402
import dask.bag as db  # noqa: E402
import dask.dataframe as dd  # noqa: E402
import pandas as pd  # noqa: E402

import rnnfast  # noqa: E402
from rnnfast import dask as rdask  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "data")
VAD = os.path.join(DATA, "onnx", "graph", "vad.ts.onnx")
VAD_FEEDS = {"state": "zeros", "sr": np.int64(16000)}


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def vad():
    return rnnfast.load(VAD)


def _vad_loop(model, chunks):
    """The plain loop: one model.run per batch, zero state, 16 kHz."""
    return np.concatenate([model.run({"input": c, "state": np.zeros((2, len(c), 64), np.float32),
                                      "sr": np.int64(16000)})[0] for c in chunks])


def _builds(client) -> dict:
    return client.run(lambda: __import__("rnnfast.portable").portable.builds)


def test_importing_rnnfast_does_not_import_dask():
    import subprocess
    import sys

    from conftest import package_env

    code = "import sys, rnnfast; rnnfast.load; print('dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=package_env(),
                         cwd=os.path.dirname(__file__), check=True)
    assert out.stdout.strip() == "False"


def test_array_matches_a_plain_loop_and_builds_once_per_worker(client, vad):
    x = np.random.default_rng(0).standard_normal((300, 512)).astype(np.float32) * 0.1
    before = _builds(client)
    y = rdask.score_array(vad, da.from_array(x, chunks=(50, -1)), feeds=VAD_FEEDS).compute()
    assert y.shape == (300, 1)
    np.testing.assert_array_equal(y, _vad_loop(vad, np.split(x, 6)))
    rdask.score_array(vad, da.from_array(x[:100], chunks=(25, -1)), feeds=VAD_FEEDS).compute()
    after = _builds(client)
    assert all(after[w] - before[w] <= 1 for w in after), (before, after)  # 10 tasks, at most one build a worker
    threads = client.run(lambda: sorted({m.origin.options["n_threads"]
                                         for m, _ in __import__("rnnfast.dask").dask._here.values()}))
    assert set(map(tuple, threads.values())) == {(1,)}  # each worker has 1 core (thread), its model 1 thread


def test_bag_and_dataframe_pad_with_sequence_lens(client):
    model = rnnfast.load(os.path.join(DATA, "torch", "lstm_packed.pt"))
    rng = np.random.default_rng(1)
    seqs = [rng.standard_normal((int(n), 3)).astype(np.float32) for n in rng.integers(1, 30, 40)]
    expected = [model.run(s[:, None, :])[0][:, 0] for s in seqs]  # each sequence alone, unpadded
    got = rdask.score_bag(model, db.from_sequence(seqs, npartitions=3), batch_size=8).compute()
    assert len(got) == len(seqs)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)
    with dask.config.set({"dataframe.convert-string": False}):
        frame = dd.from_pandas(pd.DataFrame({"seq": pd.Series(seqs, dtype=object)}), npartitions=2)
    result = rdask.score_dataframe(model, frame, "seq").compute()
    assert list(result.index) == list(range(len(seqs))) and result["error"].isna().all()
    for g, e in zip(result["score"], expected):
        np.testing.assert_array_equal(g, e)


def test_dataframe_of_strings_is_refused_with_the_fix():
    frame = dd.from_pandas(pd.DataFrame({"seq": ["a", "b"]}), npartitions=1)
    with pytest.raises(ValueError, match="convert-string"):
        rdask.score_dataframe(rnnfast.load(VAD), frame, "seq", feeds=VAD_FEEDS)


def _write_wav(path, samples, rate=16000):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, "<i2").tobytes())


def _audio_files(tmp_path, n):
    rng = np.random.default_rng(2)
    paths, chunks = [], []
    for i in range(n):
        ints = (rng.standard_normal(512) * 2000).astype("<i2")
        if i % 2:
            p = tmp_path / f"chunk{i}.wav"
            _write_wav(p, ints)
        else:
            p = tmp_path / f"chunk{i}.npz"
            np.savez(p, input=ints / 32768.0)
        paths.append(str(p))
        chunks.append((ints / 32768.0).astype(np.float32))
    return paths, chunks


def test_bad_files_are_reported_by_name_and_the_others_scored(client, vad, tmp_path):
    paths, chunks = _audio_files(tmp_path, 10)
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00not a wave")
    _write_wav(tmp_path / "slow.wav", np.zeros(512), rate=8000)
    bad = {3: str(tmp_path / "broken.wav"), 6: str(tmp_path / "missing.npz"), 8: str(tmp_path / "slow.wav")}
    for i, p in sorted(bad.items()):
        paths.insert(i, p)
    frame = rdask.score_files(vad, paths, feeds=VAD_FEEDS, files_per_task=4, sample_rate=16000).compute()
    assert list(frame["path"]) == paths
    for i, p in bad.items():
        assert frame["error"].iloc[i].startswith(p + ": "), frame["error"].iloc[i]
        assert not isinstance(frame["score"].iloc[i], np.ndarray)
    assert "8000 Hz" in frame["error"].iloc[8]
    good = [i for i in range(len(paths)) if i not in bad]
    assert frame["error"].iloc[good].isna().all()
    scores = np.stack([frame["score"].iloc[i] for i in good])
    np.testing.assert_array_equal(scores, _vad_loop(vad, [np.stack(chunks)]))


def test_score_command_on_the_cluster(client, tmp_path, capsys):
    from rnnfast.cli import main

    paths, chunks = _audio_files(tmp_path, 6)
    paths.append(str(tmp_path / "absent.wav"))
    out = tmp_path / "r.npz"
    code = main(["score", VAD, *paths, "--out", str(out), "--scheduler", client.scheduler.address,
                 "--feed", "sr=16000", "--feed", "state=zeros", "--files-per-task", "2", "--no-progress"])
    assert code == 0
    assert "scored 6 of 7 files" in capsys.readouterr().out
    r = np.load(out)
    assert list(r["path"]) == paths
    assert r["error"][-1].startswith(paths[-1]) and not any(r["error"][:-1])
    np.testing.assert_array_equal(r["score"][:-1], _vad_loop(rnnfast.load(VAD), [np.stack(chunks)]))
    assert np.isnan(r["score"][-1]).all()


def test_a_worker_killed_mid_job_loses_no_result(client, vad):
    x = np.random.default_rng(4).standard_normal((2400, 512)).astype(np.float32) * 0.1
    tasks = rdask.score_array(vad, da.from_array(x, chunks=(40, -1)), feeds=VAD_FEEDS).to_delayed().ravel()
    pids = client.run(os.getpid)
    futures = client.compute(list(tasks))
    deadline = time.monotonic() + 20
    victim = None
    while victim is None and time.monotonic() < deadline:
        busy = [w for w, keys in client.processing().items() if keys]
        if any(f.done() for f in futures) and busy:
            victim = busy[0]
        time.sleep(0.01)
    assert victim is not None, "no worker was busy after the first result"
    assert not all(f.done() for f in futures), "the job ended before a worker could be killed"
    os.kill(pids[victim], signal.SIGKILL)
    y = np.concatenate(client.gather(futures))
    np.testing.assert_array_equal(y, _vad_loop(vad, np.split(x, 60)))
    assert victim not in client.scheduler_info()["workers"]  # it did die; Dask ran its tasks elsewhere
