"""Write ONNX test fixtures with real PyTorch exporters: tests/data/onnx/<model>.<exporter>.onnx plus an .npz beside.

Run with a separate environment that has torch (never the package's own):
    python3.11 -m venv /work/venv-torch-onnx
    /work/venv-torch-onnx/bin/pip install torch==2.13.0 onnx onnxscript onnxruntime numpy
    /work/venv-torch-onnx/bin/python tools/make_onnx_fixtures.py [model ...]

Every model is exported twice: with the TorchScript exporter (`ts`, dynamo=False) and with the dynamo exporter
(`dynamo`, dynamo=True; it needs onnxscript), both with dynamic batch and sequence axes. The LSTM inside an If is
exported with torch.cond by the dynamo exporter; the TorchScript exporter traces by running the module, and
torch.cond around an LSTM does not run eagerly (dynamo refuses an LSTM inside it), so for `ts` the If node is built
with onnx.helper around the two branches, each exported by the TorchScript exporter (see
`if_around_exported_branches`). The sequence axis stays dynamic where the exporter keeps it so (`seq_is_dynamic`).

`lstm_quant.*` is onnxruntime.quantization.quantize_dynamic of the bidirectional LSTM model restricted to the LSTM
node (-> com.microsoft.DynamicQuantizeLSTM): int8 weights per tensor, per channel, and per channel with reduce_range
(7-bit weights). Its LSTM quantizer writes int8 weights whatever weight_type says, so there is no uint8 variant;
reduce_range is the one onnxruntime's AVX2 kernel computes without int16 saturation (tests/test_onnx_quant.py).

Each .npz holds two cases: `case0` at the export shapes and `case1` at another batch and sequence length, so the
tests exercise the dynamic axes. Keys are `<case>.in.<graph input>` and `<case>.out.<graph output>` (torch's own
outputs of the float model, in the graph's output order). The tests read only these files; they never import
torch. Hidden sizes are 16-32, so each file stays far below 2 MiB.
"""
from __future__ import annotations

import os
import sys
import tempfile
import warnings

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper
from torch import nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "onnx")
SHAPES = ((2, 7), (3, 11))  # (batch, seq_len) of case0 (the export) and case1 (the dynamic axes)


class EmbLstmLinear(nn.Module):
    """A sequence tagger: token ids -> Embedding -> LSTM -> GELU -> Linear at every step (the dynamo exporter
    writes the GELU as opset 20's Gelu, the TorchScript one as Erf arithmetic)."""

    def __init__(self):
        super().__init__()
        self.emb, self.lstm, self.fc = nn.Embedding(30, 12), nn.LSTM(12, 24, batch_first=True), nn.Linear(24, 5)

    def forward(self, ids):
        out, _ = self.lstm(self.emb(ids))
        return self.fc(nn.functional.gelu(out))


class BiGru(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(6, 16, bidirectional=True, batch_first=True)

    def forward(self, x):
        return self.gru(x)


class StackedRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(5, 16, num_layers=3, nonlinearity="relu")

    def forward(self, x):
        return self.rnn(x)


class ConvGru(nn.Module):
    """An audio-style front end: Conv1d over [batch, channels, time] -> ReLU -> GRU -> Linear on the last step."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 8, kernel_size=3, padding=1)
        self.gru = nn.GRU(8, 20, batch_first=True)
        self.fc = nn.Linear(20, 3)

    def forward(self, x):
        y, h = self.gru(torch.relu(self.conv(x)).transpose(1, 2))
        return self.fc(h[-1])


class GruUpsample(nn.Module):
    """A vocoder-style back end: GRU over frames -> ConvTranspose1d doubling the time resolution."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(6, 16, batch_first=True)
        self.up = nn.ConvTranspose1d(16, 4, kernel_size=4, stride=2, padding=1, groups=2)

    def forward(self, x):
        y, _ = self.gru(x)
        return self.up(y.transpose(1, 2))


class LstmStates(nn.Module):
    """Initial states as graph inputs, the final states as outputs: what a streaming caller feeds back."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(5, 16)

    def forward(self, x, h0, c0):
        y, (h, c) = self.lstm(x, (h0, c0))
        return y, h, c


class BiLstmHead(nn.Module):
    """The model that quantize_dynamic turns into DynamicQuantizeLSTM."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(6, 32, bidirectional=True)
        self.fc = nn.Linear(64, 4)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.fc(y)


class LstmIf(nn.Module):
    """Two LSTMs, one chosen per run by a boolean graph input (as models with a mode switch export)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.LSTM(5, 16), nn.LSTM(5, 16)

    def forward(self, x, flag):
        return torch.cond(flag, lambda x: self.a(x)[0], lambda x: self.b(x)[0] * 0.5, (x,))


# name: (module, graph inputs [(name, shape spec with B/T)], graph output names)
MODELS = {
    "emb_lstm_linear": (EmbLstmLinear, [("ids", ("B", "T"))], ["logits"]),
    "bigru_batch_first": (BiGru, [("x", ("B", "T", 6))], ["y", "h_n"]),
    "rnn_relu_stacked": (StackedRelu, [("x", ("T", "B", 5))], ["y", "h_n"]),
    "conv_gru": (ConvGru, [("x", ("B", 4, "T"))], ["logits"]),
    "gru_upsample": (GruUpsample, [("x", ("B", "T", 6))], ["y"]),
    "lstm_states": (LstmStates, [("x", ("T", "B", 5)), ("h0", (1, "B", 16)), ("c0", (1, "B", 16))],
                    ["y", "h_n", "c_n"]),
    "bilstm_head": (BiLstmHead, [("x", ("T", "B", 6))], ["y"]),
}


def make_inputs(spec, batch, seq, gen):
    feeds = {}
    for name, shape in spec:
        dims = [batch if s == "B" else seq if s == "T" else s for s in shape]
        if name == "ids":
            feeds[name] = torch.randint(0, 30, dims, generator=gen)
        else:
            feeds[name] = torch.randn(*dims, generator=gen)
    return feeds


def torch_outputs(module, feeds):
    with torch.no_grad():
        outs = module(*feeds.values())
    outs = outs if isinstance(outs, tuple) else (outs,)
    return [o.numpy() for o in outs]


def export(module, spec, out_names, path, dynamo, batch, seq, gen):
    feeds = make_inputs(spec, batch, seq, gen)
    names = [n for n, _ in spec]
    if dynamo:
        dims = {"B": torch.export.Dim("batch", min=1, max=64), "T": torch.export.Dim("seq", min=1, max=512)}
        dynamic = tuple({i: dims[s] for i, s in enumerate(shape) if s in dims} for _, shape in spec)
        kw = {"dynamic_shapes": dynamic}
    else:
        kw = {"dynamic_axes": {n: {i: {"B": "batch", "T": "seq"}[s] for i, s in enumerate(shape) if s in ("B", "T")}
                               for n, shape in spec}}
    torch.onnx.export(module, tuple(feeds.values()), path, dynamo=dynamo, input_names=names, output_names=out_names,
                      opset_version=20 if dynamo else 17, **({"external_data": False} if dynamo else {}), **kw)
    return feeds


def seq_is_dynamic(path, reference, feeds, axes):
    """Whether the file runs at another sequence length. The dynamo exporter specializes the sequence axis of
    some models to the example's length: it declares a fixed length for the bidirectional LSTM, the RNN(relu)
    that it unrolls step by step and the LSTM under torch.cond, and for lstm_states it declares the axis dynamic
    but bakes the length into a Reshape (that still runs, wrongly, at a multiple of it). onnxruntime against
    torch at another length tells which; those models' case1 keeps the export length and varies only the batch."""
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    longer = {k: torch.cat([v, v.narrow(axes[k], 0, 3)], axes[k]) if k in axes else v for k, v in feeds.items()}
    try:
        got = sess.run(None, {k: v.numpy() for k, v in longer.items()})
    except Exception:  # onnxruntime raises its own Fail / InvalidArgument types
        return False
    return all(g.shape == w.shape and np.allclose(g, w, atol=1e-4) for g, w in zip(got, reference(longer)))


def save(stem, cases):
    arrays = {}
    for i, (feeds, outs) in enumerate(cases):
        arrays.update({f"case{i}.in.{k}": np.asarray(v) for k, v in feeds.items()})
        arrays.update({f"case{i}.out.{k}": v for k, v in outs.items()})
    np.savez_compressed(os.path.join(OUT, stem + ".npz"), **arrays)


def check(path):
    """Guard the fixture contract: loadable, checkable by onnx and below the size budget."""
    onnx.checker.check_model(onnx.load(path))
    size = os.path.getsize(path)
    assert size < 2 * 1024 * 1024, f"{path}: {size} bytes"


def make_plain(name, exporter):
    cls, spec, out_names = MODELS[name]
    torch.manual_seed(0)
    module = cls().eval()
    gen = torch.Generator().manual_seed(1)
    path = os.path.join(OUT, f"{name}.{exporter}.onnx")
    cases = []
    for i, (batch, seq) in enumerate(SHAPES):
        if i == 0:
            feeds = export(module, spec, out_names, path, exporter == "dynamo", batch, seq, gen)
        else:
            axes = {n: shape.index("T") for n, shape in spec if "T" in shape}
            dynamic = seq_is_dynamic(path, lambda f: torch_outputs(module, f), cases[0][0], axes)
            feeds = make_inputs(spec, batch, seq if dynamic else SHAPES[0][1], gen)
        cases.append((feeds, dict(zip(out_names, torch_outputs(module, feeds)))))
    check(path)
    save(f"{name}.{exporter}", cases)
    return path, module, cases


def lstm_if_cases(module, gen, path):
    """Both branches at both shapes: case0/1 take the then branch, case2/3 the else branch."""
    cases = []
    x = torch.randn(SHAPES[0][1], SHAPES[0][0], 5, generator=gen)

    def eager(feeds):  # torch.cond around an LSTM only runs under export, so call the branch directly
        with torch.no_grad():
            return [(module.a(feeds["x"])[0] if bool(feeds["flag"]) else module.b(feeds["x"])[0] * 0.5).numpy()]

    dynamic = seq_is_dynamic(path, eager, {"x": x, "flag": torch.tensor(True)}, {"x": 0})
    for flag in (True, False):
        for batch, seq in SHAPES:
            seq = seq if dynamic else SHAPES[0][1]
            feeds = {"x": torch.randn(seq, batch, 5, generator=gen), "flag": torch.tensor(flag)}
            cases.append((feeds, {"y": eager(feeds)[0]}))
    return cases


def make_lstm_if_dynamo():
    torch.manual_seed(0)
    module = LstmIf().eval()
    gen = torch.Generator().manual_seed(1)
    path = os.path.join(OUT, "lstm_if.dynamo.onnx")
    x = torch.randn(SHAPES[0][1], SHAPES[0][0], 5, generator=gen)
    dims = {0: torch.export.Dim("seq", min=2, max=512), 1: torch.export.Dim("batch", min=2, max=64)}
    torch.onnx.export(module, (x, torch.tensor(True)), path, dynamo=True, input_names=["x", "flag"],
                      output_names=["y"], dynamic_shapes=(dims, None), opset_version=20,
                      external_data=False)
    check(path)
    save("lstm_if.dynamo", lstm_if_cases(module, gen, path))


def if_around_exported_branches():
    """The TorchScript exporter cannot run torch.cond around an LSTM: export each branch alone with it, then put
    both graphs into the branches of an If (onnx.helper). Branch-local names get a prefix so the two graphs
    cannot collide, and the branch input `x` becomes a read of the outer graph's `x`."""
    torch.manual_seed(0)
    module = LstmIf().eval()
    gen = torch.Generator().manual_seed(1)

    class Branch(nn.Module):
        def __init__(self, lstm, scale):
            super().__init__()
            self.lstm, self.scale = lstm, scale

        def forward(self, x):
            return self.lstm(x)[0] * self.scale

    graphs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, (lstm, scale) in {"then": (module.a, 1.0), "else": (module.b, 0.5)}.items():
            p = os.path.join(tmp, key + ".onnx")
            torch.onnx.export(Branch(lstm, scale), (torch.randn(7, 2, 5),), p, dynamo=False, input_names=["x"],
                              output_names=["y"], dynamic_axes={"x": {0: "seq", 1: "batch"}}, opset_version=17)
            graphs[key] = onnx.load(p).graph
    branches = {}
    for key, g in graphs.items():
        rename = lambda n: n if n in ("", "x") else f"{key}/{n}"
        for node in g.node:
            node.input[:] = [rename(n) for n in node.input]
            node.output[:] = [rename(n) for n in node.output]
            node.name = rename(node.name)
        for init in g.initializer:
            init.name = rename(init.name)
        out = helper.make_tensor_value_info(rename("y"), TensorProto.FLOAT, None)
        branches[key] = helper.make_graph(list(g.node), f"{key}_branch", [], [out], list(g.initializer))
    node = helper.make_node("If", ["flag"], ["y"], then_branch=branches["then"], else_branch=branches["else"],
                            name="choose_lstm")
    graph = helper.make_graph(
        [node], "lstm_if",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["seq", "batch", 5]),
         helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["seq", "batch", 16])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="make_onnx_fixtures")
    path = os.path.join(OUT, "lstm_if.ts.onnx")
    onnx.save(model, path)
    check(path)
    save("lstm_if.ts", lstm_if_cases(module, gen, path))


def make_quantized():
    """quantize_dynamic of the TorchScript export of BiLstmHead, LSTM only, so the Linear head stays float."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, _, cases = make_plain("bilstm_head", "ts")
    for stem, per_channel, reduce_range in (("lstm_quant.int8", False, False),
                                            ("lstm_quant.int8_per_channel", True, False),
                                            ("lstm_quant.int8_reduce_range", True, True)):
        path = os.path.join(OUT, stem + ".onnx")
        quantize_dynamic(src, path, weight_type=QuantType.QInt8, per_channel=per_channel, reduce_range=reduce_range,
                         op_types_to_quantize=["LSTM"])
        ops = {(n.domain, n.op_type) for n in onnx.load(path).graph.node}
        assert ("com.microsoft", "DynamicQuantizeLSTM") in ops, f"{path}: {sorted(ops)}"
        check(path)
        save(stem, cases)


def main(only=()):
    """Every fixture, or only the models named (`lstm_if`, `lstm_quant` or a MODELS key): each is seeded on its
    own, so regenerating some leaves the others' bytes unchanged."""
    warnings.filterwarnings("ignore")
    os.makedirs(OUT, exist_ok=True)
    wanted = lambda name: not only or name in only
    for name in MODELS:
        for exporter in ("ts", "dynamo"):
            if wanted(name):
                make_plain(name, exporter)
                print("wrote", name, exporter, file=sys.stderr)
    if wanted("lstm_if"):
        make_lstm_if_dynamo()
        if_around_exported_branches()
    if wanted("lstm_quant"):
        make_quantized()
    print("wrote", sorted(os.listdir(OUT)), file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
