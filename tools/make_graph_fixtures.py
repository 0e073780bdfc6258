"""Write whole-graph ONNX fixtures with real PyTorch: tests/data/onnx/graph/<model>.{ts,dynamo}.onnx + <model>.npz.

Run with a separate environment that has torch (never the package's own, and never imported by the tests):
    python3 -m venv /work/venv-torch
    /work/venv-torch/bin/pip install torch==2.13.0 onnx onnxscript onnxruntime numpy
    /work/venv-torch/bin/python tools/make_graph_fixtures.py

Four small models, written here and random-initialised with a fixed seed (no published weights), float32:
  vad         a voice-activity detector: inputs `input` [batch, chunk] audio, `state` [2, batch, 64] (LSTM h and c
              stacked), `sr` int64 scalar; outputs `output` [batch, 1] speech probability, `stateN` [2, batch, 64].
              An If on Equal(sr, 16000) picks one of two full branches (16 kHz: n_fft 256, hop 128; 8 kHz: n_fft
              128, hop 64), each: reflect Pad -> Conv1d with a fixed real/imag DFT basis -> magnitude by
              Slice/Mul/Add/Sqrt -> 4 x (Conv1d + ReLU), strides 1,2,2,1 -> one LSTM node (hidden 64, initial h/c
              from `state`) -> ReLU -> Conv1d(64, 1, 1) -> Sigmoid -> mean over time.
  denoiser    `input` [batch, frames, 64], `h0` [2, batch, 96] -> Linear(64->96) -> GRU(96, 96, 2 layers) ->
              Linear(96->64) -> Sigmoid -> `mask` [batch, frames, 64], `hn` [2, batch, 96].
  stream_gru  `x` [batch, 40, frames], `conv_cache` [batch, 40, 2], `h` [1, batch, 48] -> Concat(cache, x) on time
              -> Conv1d(40, 48, 3) -> ReLU -> time-major -> LayerNorm(48) -> GRU(48, 48) -> Linear(48->1) ->
              Sigmoid -> `prob` [batch, frames, 1]; `conv_cache_out` = the last 2 frames of the concatenation,
              `h_out` [1, batch, 48].
  crnn        `input` [batch, 1, 40, frames] -> 2 x (Conv2d 3x3 + BatchNorm2d with random running stats + ReLU +
              MaxPool2d(2)) -> [batch, frames/4, 32*10] -> bidirectional GRU(320, 48) -> Linear(96->10) ->
              `logits` [batch, frames/4, 10].

Exporters: `.ts.onnx` is torch.onnx.export(dynamo=False, opset 17); `.dynamo.onnx` is torch.onnx.export(dynamo=True,
opset 20, as tools/make_onnx_fixtures.py). Both use the same graph input/output names; batch is a dynamic axis
everywhere, and so is time (vad: chunk; denoiser, stream_gru, crnn: frames). The vad's If is made so:
  ts      the TorchScript exporter drops a traced Python `if`, so each branch is torch.jit.trace'd and a
          torch.jit.script'ed dispatcher calls one of them on `bool(sr == 16000)`; the exporter turns the scripted
          `if` into Equal -> If with the traced branches as its subgraphs (one LSTM node in each).
  dynamo  torch.cond(sr == 16000, branch16k, branch8k, (input, state)); the exporter writes it as Equal -> If.
Both exporters export all four models; nothing is skipped. What the dynamo exporter needed (torch 2.13):
  - its dims are declared with min=2 (vad's chunk with min=256): with min=1 torch.export meets `!= 1` guards in the
    exporter's RNN decomposition, and the exporter's automatic retry then silently fixes the frames axis to the
    example's length. Batch 1 and 1-frame inputs still run (the streams and probes below check it).
  - the export runs inside torch.export._patches' while-loop LSTM/GRU decompositions (see Model.export): without
    them the exporter writes the example's time length into the RNN output's shape and into a Reshape, and the
    graph fails at any other length.
Left as the exporters wrote them: both fold crnn's BatchNorm into the Conv (no BatchNormalization node); the ts vad
computes its LSTM weights inside the If branches (Slice/Concat/Unsqueeze of the torch weights, no constant
folding in subgraphs); vad.dynamo.onnx keeps two unused all-zero initializers (the bias-free DFT Conv's), which
onnxruntime warns about and drops; the dynamo crnn names its time axes `4*steps` and `s42`.

<model>.npz (one per model, shared by both exports) holds:
  in:<graph input>, out:<graph output>   a record: inputs and torch's outputs (eval mode, torch.inference_mode())
  stream_in:<input>     [8, ...]  the per-chunk (non-state) inputs of 8 consecutive chunks (vad: `input` and `sr`)
  stream_init:<state>   the initial states (zeros) of the stream
  stream_out:<output>   [8, ...]  every output of each chunk, torch run chunk by chunk with each state output fed
                        back as the next chunk's state input (vad: stateN -> state; denoiser: hn -> h0;
                        stream_gru: conv_cache_out -> conv_cache, h_out -> h). crnn has no stream record.
The vad npz has a 16 kHz record (batch 1, chunk 512) under these keys and an 8 kHz one (chunk 256) under the same
keys prefixed `sr8k/`. Records: denoiser batch 2 x 50 frames, stream of batch 1 x 5 frames a chunk; stream_gru
batch 2 x 4 frames, stream of batch 1 x 4 frames; crnn batch 2 x 64 frames.

Before anything is written, every exported file is run with onnxruntime on every record and stream (states fed
back chunk by chunk) and on one more shape with another batch and time length, and must match torch within 1e-4;
each file must stay under 2 MiB. Files are written byte-for-byte reproducibly (fixed seeds, one torch thread, npz
entries with a fixed timestamp). The op types of each written graph (If branches included) are printed at the end.
"""
from __future__ import annotations

import collections
import io
import math
import os
import shutil
import sys
import tempfile
import warnings
import zipfile

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn
from torch.export._patches import register_gru_while_loop_decomposition, register_lstm_while_loop_decomposition
from torch.nn import functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "onnx", "graph")
OPSET_TS, OPSET_DYNAMO = 17, 20
N_CHUNKS = 8
ATOL = 1e-4
MAX_BYTES = 2 * 1024 * 1024


# ---------------------------------------------------------------------------------------------------- the models


class Stft(nn.Module):
    """Magnitude STFT as a Conv1d with a fixed Hann-windowed real/imag DFT basis, centred by reflect padding."""

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        self.pad, self.bins = n_fft // 2, n_fft // 2 + 1
        self.conv = nn.Conv1d(1, 2 * self.bins, n_fft, stride=hop, bias=False)
        k = torch.arange(self.bins, dtype=torch.float64)[:, None]
        n = torch.arange(n_fft, dtype=torch.float64)[None, :]
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        angle = 2 * math.pi * k * n / n_fft
        basis = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window], 0)
        with torch.no_grad():
            self.conv.weight.copy_(basis[:, None, :].float())
        self.conv.weight.requires_grad_(False)

    def forward(self, x):  # [batch, samples] -> [batch, bins, frames]
        spec = self.conv(F.pad(x.unsqueeze(1), (self.pad, self.pad), mode="reflect"))
        re, im = spec[:, : self.bins], spec[:, self.bins:]
        return torch.sqrt(re * re + im * im)


class VadBranch(nn.Module):
    """The whole detector for one sample rate: STFT -> conv encoder -> LSTM -> conv decoder -> mean over time."""

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        self.stft = Stft(n_fft, hop)
        chans = [n_fft // 2 + 1, 64, 64, 64, 64]
        self.encoder = nn.Sequential(*[m for i, s in enumerate((1, 2, 2, 1))
                                       for m in (nn.Conv1d(chans[i], chans[i + 1], 3, stride=s, padding=1), nn.ReLU())])
        self.lstm = nn.LSTM(64, 64, batch_first=True)
        self.head = nn.Conv1d(64, 1, 1)
        with torch.no_grad():  # He init and a wide head: activations of order 1 and probabilities far from 0.5
            for conv in self.encoder[::2]:
                nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            self.head.weight.normal_(0.0, 1.0)

    def forward(self, x, state):
        feats = self.encoder(self.stft(x)).transpose(1, 2)  # [batch, frames, 64]
        y, (h, c) = self.lstm(feats, (state[0:1], state[1:2]))
        prob = torch.sigmoid(self.head(torch.relu(y).transpose(1, 2)))  # [batch, 1, frames]
        return prob.mean(dim=2), torch.cat([h, c], 0)


class Vad(nn.Module):
    """The dynamo exporter's form: torch.cond on sr. `eager` is the same dispatch in Python, which torch runs."""

    def __init__(self):
        super().__init__()
        self.b16k, self.b8k = VadBranch(256, 128), VadBranch(128, 64)

    def forward(self, input, state, sr):
        return torch.cond(sr == 16000, lambda x, s: self.b16k(x, s), lambda x, s: self.b8k(x, s), (input, state))

    def eager(self, input, state, sr):
        return self.b16k(input, state) if int(sr) == 16000 else self.b8k(input, state)


class VadDispatch(nn.Module):
    """The TorchScript exporter's form: scripted around the two traced branches, so its `if` becomes an If node."""

    def __init__(self, b16k, b8k):
        super().__init__()
        self.b16k, self.b8k = b16k, b8k

    def forward(self, input, state, sr):
        if bool(sr == 16000):
            out, state_n = self.b16k(input, state)
        else:
            out, state_n = self.b8k(input, state)
        return out, state_n


class Denoiser(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp, self.gru, self.out = nn.Linear(64, 96), nn.GRU(96, 96, num_layers=2, batch_first=True), nn.Linear(96, 64)

    def forward(self, input, h0):
        y, hn = self.gru(self.inp(input), h0)
        return torch.sigmoid(self.out(y)), hn


class StreamGru(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.norm = nn.Conv1d(40, 48, 3), nn.LayerNorm(48)
        self.gru, self.fc = nn.GRU(48, 48), nn.Linear(48, 1)

    def forward(self, x, conv_cache, h):
        full = torch.cat([conv_cache, x], 2)  # [batch, 40, 2 + frames]
        y = torch.relu(self.conv(full)).permute(2, 0, 1)  # [frames, batch, 48]
        y, h_out = self.gru(self.norm(y), h)
        prob = torch.sigmoid(self.fc(y)).transpose(0, 1)  # [batch, frames, 1]
        return prob, full[:, :, -2:], h_out


class Crnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.gru, self.fc = nn.GRU(320, 48, batch_first=True, bidirectional=True), nn.Linear(96, 10)
        with torch.no_grad():  # non-trivial BatchNorm, so that it is not the identity
            for bn in (self.bn1, self.bn2):
                n = bn.num_features
                bn.running_mean.copy_(torch.randn(n) * 0.3)
                bn.running_var.copy_(torch.rand(n) * 1.5 + 0.25)
                bn.weight.copy_(torch.rand(n) + 0.5)
                bn.bias.copy_(torch.randn(n) * 0.2)

    def forward(self, input):
        x = F.max_pool2d(torch.relu(self.bn1(self.conv1(input))), 2)
        x = F.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)  # [batch, 32, 10, frames/4]
        y, _ = self.gru(x.permute(0, 3, 1, 2).flatten(2))  # [batch, frames/4, 320]
        return self.fc(y)


# ---------------------------------------------------------------------------------------------------- the data


def audio(gen, batch, samples, sr):
    """Tone bursts over low noise: something an STFT front end responds to, unlike white noise alone."""
    t = torch.arange(samples, dtype=torch.float64) / sr
    out = []
    for _ in range(batch):
        sig = 0.02 * torch.randn(samples, generator=gen, dtype=torch.float64)
        for _ in range(3):
            f0 = 150 + 2500 * torch.rand((), generator=gen, dtype=torch.float64)
            start = int(torch.randint(0, samples, (), generator=gen))
            length = int(torch.randint(samples // 8, samples // 2 + 1, (), generator=gen))
            env = torch.zeros(samples, dtype=torch.float64)
            env[start:start + length] = torch.hann_window(length, dtype=torch.float64)[: samples - start]
            sig += 0.3 * env * torch.sin(2 * math.pi * f0 * t)
        out.append(sig)
    return torch.stack(out).float()


def randn(gen, *shape, scale=1.0):
    return torch.randn(*shape, generator=gen) * scale


class Model:
    """One fixture: how to build, feed, run (torch) and export it."""

    name: str
    inputs: list[str]
    outputs: list[str]
    states: dict[str, str] = {}  # state output -> the state input it feeds back into
    prefixes = ("",)  # the npz key prefix of each record
    ts_axes: dict[str, dict[int, str]]

    def __init__(self):
        torch.manual_seed(0)
        self.module = self.build().eval()
        self.gen = torch.Generator().manual_seed(1)

    def run(self, feeds: dict) -> dict:
        with torch.inference_mode():
            outs = self.module(*[feeds[n] for n in self.inputs])
        outs = outs if isinstance(outs, tuple) else (outs,)
        return {n: o.clone() for n, o in zip(self.outputs, outs)}

    def export(self, path: str, dynamo: bool):
        feeds = self.example()
        args = tuple(feeds[n] for n in self.inputs)
        if dynamo:
            # The exporter captures nn.LSTM/nn.GRU with torch.export's while-loop decompositions when shapes are
            # dynamic, but its later run_decompositions step recomputes the RNN node's shape with the unrolled
            # default decomposition: the time axis of the RNN output becomes the example's length, and the
            # optimizer bakes it into a Reshape (the graph then fails at any other length). Keeping the same
            # while-loop decompositions registered for the whole export keeps the axis symbolic.
            with register_lstm_while_loop_decomposition(), register_gru_while_loop_decomposition():
                torch.onnx.export(self.module, args, path, dynamo=True, input_names=self.inputs,
                                  output_names=self.outputs, dynamic_shapes=self.dynamo_shapes(),
                                  opset_version=OPSET_DYNAMO, external_data=False)
        else:
            torch.onnx.export(self.module, args, path, dynamo=False, input_names=self.inputs,
                              output_names=self.outputs, dynamic_axes=self.ts_axes, opset_version=OPSET_TS)

    def dynamo_shapes(self):
        dims = {}
        out = []
        for n in self.inputs:
            axes = self.ts_axes.get(n, {})
            out.append({a: dims.setdefault(d, self.dim(d)) for a, d in axes.items()} or None)
        return tuple(out)

    def dim(self, name):
        # min=2: with min=1 torch.export meets guards `batch != 1` / `frames != 1` (the exporter's while-loop
        # decomposition of GRU/LSTM) and the exporter's retry with the suggested fixes then specializes the
        # frames axis to the example's length. Size 1 still runs: the streams and probes check it.
        return torch.export.Dim(name, min=2, max=1024)

    def stream(self, prefix, chunk_feeds: list[dict], init: dict) -> dict:
        """Torch chunk by chunk, each state output fed back; the npz arrays of the stream record."""
        arrays = {f"{prefix}stream_init:{k}": v for k, v in init.items()}
        per_chunk = [n for n in self.inputs if n not in init]
        for n in per_chunk:
            arrays[f"{prefix}stream_in:{n}"] = torch.stack([c[n] for c in chunk_feeds])
        state, outs = dict(init), collections.defaultdict(list)
        for c in chunk_feeds:
            res = self.run({**c, **state})
            for k, v in res.items():
                outs[k].append(v)
            state = {self.states[k]: v for k, v in res.items() if k in self.states}
        arrays.update({f"{prefix}stream_out:{k}": torch.stack(v) for k, v in outs.items()})
        return arrays

    def record(self, prefix, feeds):
        return {**{f"{prefix}in:{k}": v for k, v in feeds.items()},
                **{f"{prefix}out:{k}": v for k, v in self.run(feeds).items()}}


class VadModel(Model):
    name, inputs, outputs = "vad", ["input", "state", "sr"], ["output", "stateN"]
    states = {"stateN": "state"}
    prefixes = ("", "sr8k/")
    ts_axes = {"input": {0: "batch", 1: "chunk"}, "state": {1: "batch"},
               "output": {0: "batch"}, "stateN": {1: "batch"}}
    CHUNK = {16000: 512, 8000: 256}

    def build(self):
        return Vad()

    def run(self, feeds):
        with torch.inference_mode():
            out, state_n = self.module.eager(feeds["input"], feeds["state"], feeds["sr"])
        return {"output": out.clone(), "stateN": state_n.clone()}

    def feeds(self, batch, sr, chunk=None):
        return {"input": audio(self.gen, batch, chunk or self.CHUNK[sr], sr),
                "state": randn(self.gen, 2, batch, 64, scale=0.5), "sr": torch.tensor(sr, dtype=torch.int64)}

    def example(self):
        return self.feeds(2, 16000)

    def dim(self, name):
        return torch.export.Dim(name, min=2, max=64) if name == "batch" else torch.export.Dim(name, min=256, max=4096)

    def export(self, path, dynamo):
        if dynamo:
            return super().export(path, dynamo)
        ex = {sr: self.feeds(2, sr) for sr in (16000, 8000)}
        traced = [torch.jit.trace(b, (ex[sr]["input"], ex[sr]["state"]))
                  for b, sr in ((self.module.b16k, 16000), (self.module.b8k, 8000))]
        scripted = torch.jit.script(VadDispatch(*traced))
        feeds = ex[16000]
        torch.onnx.export(scripted, tuple(feeds[n] for n in self.inputs), path, dynamo=False,
                          input_names=self.inputs, output_names=self.outputs, dynamic_axes=self.ts_axes,
                          opset_version=OPSET_TS)

    def records(self):
        arrays = {}
        for sr, prefix in ((16000, ""), (8000, "sr8k/")):
            arrays.update(self.record(prefix, self.feeds(1, sr)))
            signal = audio(self.gen, 1, N_CHUNKS * self.CHUNK[sr], sr)
            chunks = [{"input": c, "sr": torch.tensor(sr, dtype=torch.int64)}
                      for c in signal.split(self.CHUNK[sr], dim=1)]
            arrays.update(self.stream(prefix, chunks, {"state": torch.zeros(2, 1, 64)}))
        return arrays

    def probes(self):
        return [self.feeds(3, 16000, 1024), self.feeds(2, 8000, 512)]


class DenoiserModel(Model):
    name, inputs, outputs = "denoiser", ["input", "h0"], ["mask", "hn"]
    states = {"hn": "h0"}
    ts_axes = {"input": {0: "batch", 1: "frames"}, "h0": {1: "batch"}, "mask": {0: "batch", 1: "frames"},
               "hn": {1: "batch"}}

    def build(self):
        return Denoiser()

    def feeds(self, batch, frames):
        return {"input": randn(self.gen, batch, frames, 64), "h0": randn(self.gen, 2, batch, 96, scale=0.5)}

    def example(self):
        return self.feeds(2, 50)

    def records(self):
        chunks = [{"input": randn(self.gen, 1, 5, 64)} for _ in range(N_CHUNKS)]
        return {**self.record("", self.feeds(2, 50)), **self.stream("", chunks, {"h0": torch.zeros(2, 1, 96)})}

    def probes(self):
        return [self.feeds(3, 7), self.feeds(1, 1)]


class StreamGruModel(Model):
    name, inputs, outputs = "stream_gru", ["x", "conv_cache", "h"], ["prob", "conv_cache_out", "h_out"]
    states = {"conv_cache_out": "conv_cache", "h_out": "h"}
    ts_axes = {"x": {0: "batch", 2: "frames"}, "conv_cache": {0: "batch"}, "h": {1: "batch"},
               "prob": {0: "batch", 1: "frames"}, "conv_cache_out": {0: "batch"}, "h_out": {1: "batch"}}

    def build(self):
        return StreamGru()

    def feeds(self, batch, frames):
        return {"x": randn(self.gen, batch, 40, frames), "conv_cache": randn(self.gen, batch, 40, 2),
                "h": randn(self.gen, 1, batch, 48, scale=0.5)}

    def example(self):
        return self.feeds(2, 4)

    def records(self):
        chunks = [{"x": randn(self.gen, 1, 40, 4)} for _ in range(N_CHUNKS)]
        init = {"conv_cache": torch.zeros(1, 40, 2), "h": torch.zeros(1, 1, 48)}
        return {**self.record("", self.feeds(2, 4)), **self.stream("", chunks, init)}

    def probes(self):
        return [self.feeds(3, 9), self.feeds(1, 1)]


class CrnnModel(Model):
    name, inputs, outputs = "crnn", ["input"], ["logits"]
    ts_axes = {"input": {0: "batch", 3: "frames"}, "logits": {0: "batch", 1: "steps"}}

    def build(self):
        return Crnn()

    def feeds(self, batch, frames):
        return {"input": randn(self.gen, batch, 1, 40, frames)}

    def example(self):
        return self.feeds(2, 64)

    def dynamo_shapes(self):  # MaxPool2d(2) twice: frames a multiple of 4
        return ({0: torch.export.Dim("batch", min=2, max=64), 3: 4 * torch.export.Dim("steps", min=2, max=256)},)

    def records(self):
        return self.record("", self.feeds(2, 64))

    def probes(self):
        return [self.feeds(3, 36), self.feeds(1, 100)]


MODELS = [VadModel, DenoiserModel, StreamGruModel, CrnnModel]


# ---------------------------------------------------------------------------------------------------- checks, files


def np_arrays(arrays: dict) -> dict:
    return {k: v.numpy() if torch.is_tensor(v) else np.asarray(v) for k, v in arrays.items()}


def compare(path, what, got: dict, want: dict):
    for k, w in want.items():
        g = got[k]
        if g.shape != w.shape or g.dtype != w.dtype:
            raise SystemExit(f"FAIL {path} {what} {k}: onnxruntime {g.dtype}{g.shape}, torch {w.dtype}{w.shape}")
        diff = float(np.max(np.abs(g.astype(np.float64) - w))) if w.size else 0.0
        if not diff <= ATOL:
            raise SystemExit(f"FAIL {path} {what} {k}: max abs diff {diff:.3g} > {ATOL}")


def check_file(path, model: Model, arrays: dict, probes: list[dict]):
    """onnxruntime on every record, every stream (states fed back) and the probe shapes, against torch."""
    size = os.path.getsize(path)
    if size >= MAX_BYTES:
        raise SystemExit(f"FAIL {path}: {size} bytes, the limit is {MAX_BYTES}")
    onnx.checker.check_model(onnx.load(path), full_check=True)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names_in = [i.name for i in sess.get_inputs()]
    names_out = [o.name for o in sess.get_outputs()]
    if names_in != model.inputs or names_out != model.outputs:
        raise SystemExit(f"FAIL {path}: graph inputs {names_in} outputs {names_out}")
    run = lambda feeds: dict(zip(names_out, sess.run(None, feeds)))
    for p in model.prefixes:
        compare(path, f"{p}record", run({n: arrays[f"{p}in:{n}"] for n in model.inputs}),
                {n: arrays[f"{p}out:{n}"] for n in model.outputs})
        if f"{p}stream_out:{model.outputs[0]}" not in arrays:
            continue
        state = {n: arrays[f"{p}stream_init:{n}"] for n in model.states.values()}
        for i in range(N_CHUNKS):
            feeds = {n: np.asarray(arrays[f"{p}stream_in:{n}"][i]) for n in model.inputs if n not in state}
            got = run({**feeds, **state})
            compare(path, f"{p}stream chunk {i}", got, {n: arrays[f"{p}stream_out:{n}"][i] for n in model.outputs})
            state = {model.states[k]: v for k, v in got.items() if k in model.states}
    for i, feeds in enumerate(probes):
        want = np_arrays(model.run(feeds))
        compare(path, f"probe {i} {[tuple(v.shape) for v in feeds.values()]}", run(np_arrays(feeds)), want)


def write_npz(path, arrays: dict):
    """np.savez_compressed, but with a fixed entry timestamp so that a rerun writes the same bytes."""
    with zipfile.ZipFile(path, "w") as zf:
        for k in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[k]), allow_pickle=False)  # keeps 0-d arrays 0-d
            info = zipfile.ZipInfo(k + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def op_counts(graph, counts=None):
    counts = collections.Counter() if counts is None else counts
    for node in graph.node:
        counts[node.op_type] += 1
        for attr in node.attribute:
            for g in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                op_counts(g, counts)
    return counts


def describe(path):
    m = onnx.load(path)
    dims = lambda vi: [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]
    typ = lambda vi: onnx.TensorProto.DataType.Name(vi.type.tensor_type.elem_type).lower()
    io_ = "; ".join(f"{vi.name} {typ(vi)}{dims(vi)}" for vi in m.graph.input) + " -> " + \
        "; ".join(f"{vi.name} {typ(vi)}{dims(vi)}" for vi in m.graph.output)
    ops = ", ".join(f"{k} {v}" for k, v in sorted(op_counts(m.graph).items()))
    return f"{os.path.basename(path)} ({os.path.getsize(path)} B, opset {m.opset_import[0].version})\n  {io_}\n  {ops}"


def main():
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    made = []
    with tempfile.TemporaryDirectory() as tmp:
        for cls in MODELS:
            model = cls()
            arrays = np_arrays(model.records())
            probes = model.probes()
            npz = os.path.join(tmp, model.name + ".npz")
            write_npz(npz, arrays)
            with np.load(npz) as saved:  # check the files as written
                arrays = {k: saved[k] for k in saved.files}
            made.append(npz)
            for exporter in ("ts", "dynamo"):
                path = os.path.join(tmp, f"{model.name}.{exporter}.onnx")
                model.export(path, exporter == "dynamo")
                check_file(path, model, arrays, probes)
                made.append(path)
                print("checked", os.path.basename(path), file=sys.stderr)
            if os.path.getsize(npz) >= MAX_BYTES:
                raise SystemExit(f"FAIL {npz}: {os.path.getsize(npz)} bytes")
        os.makedirs(OUT, exist_ok=True)
        for p in made:
            shutil.copyfile(p, os.path.join(OUT, os.path.basename(p)))
    for p in made:
        target = os.path.join(OUT, os.path.basename(p))
        print(describe(target) if p.endswith(".onnx") else f"{os.path.basename(p)} ({os.path.getsize(target)} B)")


if __name__ == "__main__":
    main()
