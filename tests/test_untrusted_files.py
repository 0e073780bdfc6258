"""Files built to attack the loader: they must be refused with a FormatError naming the file and what is wrong,
without a crash, without reading memory that is not theirs, and (the bombs) within 200 MB of peak RSS, measured in a
fresh process under a 2 GB address-space limit so a regression fails instead of swapping the machine (peak RSS from
/proc/self/status VmHWM where there is one)."""
import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import hostile
from conftest import package_env
import rnnfast
from rnnfast.errors import DeclaredSizeError, FormatError
from rnnfast.importers.torch.files import read_torch_weights


@pytest.mark.parametrize("stride", [-1, -100_000_000, 100_000_000])
def test_build_cannot_rewrite_a_checked_tensor_record(stride):
    data = hostile.torch_zip(hostile.tensor_pickle(build_stride=(stride,)))
    with pytest.raises(FormatError, match=r"evil\.pt: a/data\.pkl: the pickle's BUILD opcode rewrites a LazyTensor"):
        read_torch_weights(data, "evil.pt")
    with pytest.raises(FormatError, match="BUILD"):
        rnnfast.load(data)


@pytest.mark.parametrize("opcode, tail", [("SETITEM(S)", b"h\x02" + hostile.text("k") + hostile.int32(1) + b"s0"),
                                          ("APPEND(S)", b"h\x02" + hostile.int32(1) + b"a0"),
                                          ("APPEND(S)", b"h\x02(" + hostile.int32(1) + hostile.int32(2) + b"e0"),
                                          ("ADDITEMS", b"h\x02(" + hostile.int32(1) + b"\x900")])
def test_container_opcodes_on_a_tensor_record_are_refused_by_name(opcode, tail):
    pkl = hostile.tensor_pickle()
    # memoize the tensor (BINPUT 2 just before SETITEM), then aim the opcode at it
    pkl = pkl[:-2] + b"q\x02s" + tail + b"."
    with pytest.raises(FormatError, match=rf"{opcode.replace('(', '[(]').replace(')', '[)]')} opcode rewrites a "
                                          rf"LazyTensor"):
        read_torch_weights(hostile.torch_zip(pkl), "evil.pt")


def test_a_record_changed_behind_the_unpickler_is_checked_again():
    from rnnfast.importers._pickle import LazyTensor, StorageRef, StorageType

    ref = StorageRef("0", StorageType("FloatStorage", np.float32), 4)
    t = LazyTensor(ref, 0, (4,), (1,))
    object.__setattr__(t, "stride", (-1,))
    with pytest.raises(FormatError, match=r"stride \(-1,\)"):
        t.materialize(lambda r: np.zeros(4, np.float32), "x.pt: tensor 'w'")


def test_a_zero_stride_tensor_stays_a_view():
    data = hostile.torch_zip(hostile.tensor_pickle(size=(20000, 20000), stride=(0, 0), numel=1), b"\0\0\x80\x3f")
    w = read_torch_weights(data, "expand.pt").tensors["w"]
    assert w.shape == (20000, 20000) and w.strides == (0, 0) and w.dtype == np.float32 and w[123, 456] == 1.0


def test_memo_indices_are_bounded_before_the_unpickler_runs():
    with pytest.raises(FormatError, match=r"memo\.pt: legacy magic number: LONG_BINPUT stores memo entry 2147483647"):
        read_torch_weights(hostile.legacy_memo_bomb(), "memo.pt")


RUNNER = textwrap.dedent("""
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    import rnnfast
    path = sys.argv[1]
    try:
        rnnfast.load(path)
        out = {"error": None}
    except Exception as e:
        out = {"error": type(e).__name__, "mro": [c.__name__ for c in type(e).__mro__], "message": str(e)[:400]}
    # VmHWM is this process image's own peak: ru_maxrss also keeps the peak of the pytest process it was spawned from
    try:
        hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
        out["peak_mb"] = int(hwm) / 1024
    except (OSError, IndexError):
        out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))
""")

BOMBS = {
    "memo.pt": (hostile.legacy_memo_bomb, "LONG_BINPUT stores memo entry 2147483647"),
    "length.pt": (hostile.legacy_length_bomb, "not a readable pickle"),
    "expand.pt": (lambda: hostile.torch_zip(hostile.tensor_pickle(size=(40000, 40000), stride=(0, 0), numel=1),
                                            b"\0" * 4), r"tensor 'w' of size \[40000, 40000\] declares 6400000000"),
    "zipbomb.pt": (hostile.torch_zip_bomb, r"record 'a/data/0' declares 3221225472 bytes and stores \d+ bytes"),
    "zipbomb.keras": (hostile.keras_zip_bomb, "record 'model.weights.h5' declares 3221225472 bytes"),
    "unwritten.h5": (lambda: hostile.h5_with_dataset((30000, 30000), written=False),
                     r"lstm_cell/kernel of shape \[30000, 30000\] declares 3600000000 bytes and stores none"),
    "zeros.h5": (lambda: hostile.h5_with_dataset((4096, 4096), written=True),
                 r"lstm_cell/kernel of shape \[4096, 4096\] declares 67108864 bytes and stores \d+ bytes"),
    "shared.safetensors": (hostile.safetensors_shared_bytes, r"tensors 't\d+' and 't\d+' share bytes"),
    "nested.safetensors": (hostile.safetensors_nested, "nests too deeply"),
}


@pytest.fixture(scope="module")
def bomb_results(tmp_path_factory):
    """Each bomb loaded in a fresh process (peak RSS is per process), two at a time."""
    folder = tmp_path_factory.mktemp("bombs")
    procs = {}
    for name, (make, _) in BOMBS.items():
        path = folder / name
        path.write_bytes(make())
        procs[name] = (path.stat().st_size, subprocess.Popen([sys.executable, "-c", RUNNER, str(path)],
                                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                             text=True, cwd=folder, env=package_env()))
    results = {}
    for name, (size, proc) in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        results[name] = dict(json.loads(out.strip().splitlines()[-1]), size=size)
    return results


@pytest.mark.parametrize("name", list(BOMBS))
def test_a_bomb_is_refused_by_name_within_200_mb(bomb_results, name):
    r = bomb_results[name]
    assert r["error"] is not None and "FormatError" in r["mro"], r
    assert name in r["message"] and re.search(BOMBS[name][1], r["message"]), r["message"]
    assert r["peak_mb"] <= 200, f"{name} ({r['size']} bytes): peak RSS {r['peak_mb']:.0f} MB"
    if "declares" in BOMBS[name][1] or "inflate" in BOMBS[name][1] or "memo" in BOMBS[name][1]:
        assert "DeclaredSizeError" in r["mro"]


def test_the_budget_is_an_option_too():
    data = hostile.torch_zip(hostile.tensor_pickle(size=(1000, 1000), stride=(0, 0), numel=1), b"\0" * 4)
    with pytest.raises(DeclaredSizeError, match=r"tensor 'w' of size \[1000, 1000\] declares 4000000 bytes, more "
                                                r"than the memory budget \(1048576 bytes"):
        rnnfast.load(data, max_memory="1M")
    with pytest.raises(ValueError, match="max_memory='lots'"):
        rnnfast.load(data, max_memory="lots")
