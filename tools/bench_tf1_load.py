"""Time rnnfast.load on TensorFlow 1.x checkpoints of growing size: a 2-layer BasicLSTMCell stack (input 64, hidden
64..1024, no optimizer slots), written by the tests' TensorBundle writer (tests/tf_bundle_writer.py) so no
TensorFlow is needed. Prints size, median load time of a few loads and MB/s; the time is mostly the CRC-32C of the
tensor bytes (rnnfast/importers/tf/crc32c.py).

    python tools/bench_tf1_load.py [hidden ...]
"""
from __future__ import annotations

import glob
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import rnnfast  # noqa: E402
from tf_bundle_writer import write_checkpoint  # noqa: E402


def checkpoint(folder, hidden, inputs=64):
    rng = np.random.default_rng(0)
    tensors = {}
    for k, rows in enumerate((inputs + hidden, 2 * hidden)):
        scope = f"rnn/multi_rnn_cell/cell_{k}/basic_lstm_cell"
        tensors[f"{scope}/kernel"] = rng.uniform(-0.1, 0.1, (rows, 4 * hidden)).astype(np.float32)
        tensors[f"{scope}/bias"] = np.zeros(4 * hidden, np.float32)
    prefix = os.path.join(folder, f"h{hidden}", "model.ckpt")
    os.makedirs(os.path.dirname(prefix))
    write_checkpoint(prefix, tensors)
    return prefix


def main(sizes):
    with tempfile.TemporaryDirectory() as folder:
        for hidden in sizes:
            prefix = checkpoint(folder, hidden)
            size = sum(os.path.getsize(f) for f in glob.glob(prefix + ".*"))
            rnnfast.load(prefix)
            times = []
            for _ in range(3):
                t = time.perf_counter()
                rnnfast.load(prefix)
                times.append(time.perf_counter() - t)
            median = float(np.median(times))
            rate = size / 1e6 / median
            print(f"hidden {hidden:5d}: {size / 1e6:7.2f} MB, load {median * 1e3:8.1f} ms ({rate:.0f} MB/s)")
    print(f"(load average now: {', '.join(f'{x:.1f}' for x in os.getloadavg())})")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [64, 256, 512, 1024])
