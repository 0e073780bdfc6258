"""torch as a peer: nn.LSTM / nn.GRU / nn.RNN with the case's weights, called as a torch user calls them.

Imported in-process when torch is importable (pytest bench), or run as a worker process by report.py with another
interpreter (`--torch-python`), because torch is kept out of the package's environment. The worker imports neither
rnnfast nor onnx: it gets the weights as plain arrays already in torch's gate order (spec_of in workloads.py
converts them with rnnfast.importers._gates, the one place that knows gate orders) and talks over stdin/stdout in
length-prefixed pickles:
    ("build", key, spec, n_threads) -> ("ok", None)
    ("call", key, x or None)        -> ("ok", output array)
    ("block", key, seconds)         -> ("ok", [seconds per call])
    ("drop", key) / ("version",)    -> ("ok", None / torch.__version__)
"""
from __future__ import annotations

import os
import pickle
import struct
import sys
import traceback


def build_module(spec: dict):
    import torch

    layers = spec["layers"]
    first = layers[0]
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[first["cell"]]
    kwargs = {"nonlinearity": "tanh"} if first["cell"] == "rnn" else {}
    module = cls(first["input_size"], first["hidden_size"], num_layers=len(layers),
                 bidirectional=first["n_dirs"] == 2, **kwargs)
    with torch.no_grad():
        for k, layer in enumerate(layers):
            for d in range(layer["n_dirs"]):
                suffix = f"_l{k}" + ("_reverse" if d else "")
                for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
                    torch_name = name.replace("w_", "weight_").replace("b_", "bias_") + suffix
                    getattr(module, torch_name).copy_(torch.from_numpy(layer[name][d]))
    return module.eval()


def make_runner(spec: dict, n_threads: int):
    """run(x=None) -> output as numpy, like the other runners: the whole sequence [T, B, D*H], or for the
    stream workload one step [B, D*H] with (h, c) fed back into the next call, as a torch user streams."""
    import torch

    module = build_module(spec)
    x_default = spec["x"]

    def threads():  # torch's thread count is per process: runners at 1 and 2 threads may share one
        if torch.get_num_threads() != n_threads:
            torch.set_num_threads(n_threads)

    if not spec["stream"]:
        def run(x=None):
            threads()
            with torch.inference_mode():
                y, _ = module(torch.from_numpy(x_default if x is None else x))
            return y.numpy()
        return run
    state = [None]  # None: torch's zero initial state

    def step(x=None):
        threads()
        x_t = torch.from_numpy(x_default[0] if x is None else x)[None]
        with torch.inference_mode():
            y, state[0] = module(x_t, state[0])
        return y[0].numpy()
    return step


def _read(stream):
    head = stream.read(4)
    if len(head) < 4:
        return None
    return pickle.loads(stream.read(struct.unpack("<I", head)[0]))


def _write(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=5)
    stream.write(struct.pack("<I", len(data)) + data)
    stream.flush()


def worker() -> None:
    from timing import time_block

    # Frames go to the original stdout; anything torch prints goes to stderr instead of corrupting them.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    runners = {}
    while (msg := _read(sys.stdin.buffer)) is not None:
        try:
            if msg[0] == "build":
                runners[msg[1]] = make_runner(msg[2], msg[3])
                reply = None
            elif msg[0] == "call":
                reply = runners[msg[1]](msg[2])
            elif msg[0] == "block":
                reply = time_block(runners[msg[1]], msg[2])
            elif msg[0] == "version":
                import torch

                reply = str(torch.__version__)  # a str subclass that would unpickle only where torch is
            elif msg[0] == "drop":
                reply = runners.pop(msg[1], None) and None
            else:
                raise ValueError(f"unknown message {msg[0]!r}")
            _write(out, ("ok", reply))
        except Exception:
            _write(out, ("error", traceback.format_exc()))


class Worker:
    """The client side: a torch worker process on another interpreter, one per thread count (torch's thread
    count is per process). remote(key) gives a runner whose block() times in the worker, so pipe traffic is
    never inside a timed call."""

    def __init__(self, python: str, n_threads: int):
        import subprocess

        self.n_threads = n_threads
        self.proc = subprocess.Popen([python, os.path.abspath(__file__)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)

    def ask(self, *msg):
        _write(self.proc.stdin, msg)
        reply = _read(self.proc.stdout)
        if reply is None:
            raise RuntimeError("the torch worker exited")
        if reply[0] == "error":
            raise RuntimeError(f"torch worker:\n{reply[1]}")
        return reply[1]

    def remote(self, key: str, spec: dict):
        self.ask("build", key, spec, self.n_threads)
        return RemoteRunner(self, key)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


class RemoteRunner:
    def __init__(self, worker: Worker, key: str):
        self.worker, self.key = worker, key

    def __call__(self, x=None):
        return self.worker.ask("call", self.key, x)

    def block(self, seconds: float) -> list:
        return self.worker.ask("block", self.key, seconds)

    def close(self) -> None:
        self.worker.ask("drop", self.key)


if __name__ == "__main__":
    worker()
