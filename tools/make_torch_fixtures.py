"""Write PyTorch test fixtures with real torch: tests/data/torch/<name>.<ext> plus <name>.npz beside each.

Run with a separate environment that has torch (never the package's own):
    python -m venv /work/venv-torch && /work/venv-torch/bin/pip install torch==2.13.0 numpy safetensors
    /work/venv-torch/bin/python tools/make_torch_fixtures.py

`python tools/make_torch_fixtures.py cells` (re)makes only tests/data/torch/cells/ (nn.*Cell weights in every
file kind, see cell_cases); `traced` adds only the traced-module cases.

Each .npz holds the inputs (input, optionally h0 / c0), torch's own outputs (output, h_n, optionally c_n), and two
JSON strings: load_options (keyword options for rnnfast.load) and run_options (for Model.run). The tests read
only these files; they never import torch. Sizes stay small (hidden <= 16) so the whole directory is well
under 2 MiB.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch
from torch import nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "torch")


class Net(nn.Module):
    """Embedding -> LSTM -> Linear at every step: the typical sequence tagger."""

    def __init__(self, vocab=20, dim=6, hidden=8, classes=5):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, ids):
        out, (h, c) = self.lstm(self.emb(ids))
        return self.fc(out), h, c


class EncoderDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.GRU(3, 5)
        self.decoder = nn.LSTM(4, 6, num_layers=2)


def run_rnn(m, x, h0=None, c0=None):
    with torch.no_grad():
        if isinstance(m, nn.LSTM):
            out, (h, c) = m(x, None if h0 is None else (h0, c0))
            return {"output": out, "h_n": h, "c_n": c}
        out, h = m(x, h0)
        return {"output": out, "h_n": h}


def states(m, batch):
    d = 2 if m.bidirectional else 1
    out = m.proj_size or m.hidden_size
    h0 = torch.randn(m.num_layers * d, batch, out)
    c0 = torch.randn(m.num_layers * d, batch, m.hidden_size) if isinstance(m, nn.LSTM) else None
    return h0, c0


def save_npz(name, inputs, outputs, load_options=None, run_options=None):
    arrays = {k: v.detach().numpy() if torch.is_tensor(v) else np.asarray(v) for k, v in {**inputs, **outputs}.items()
              if v is not None}
    np.savez_compressed(os.path.join(OUT, name + ".npz"), **arrays,
                        load_options=np.array(json.dumps(load_options or {})),
                        run_options=np.array(json.dumps(run_options or {})))


def rnn_case(name, m, seq=6, batch=3, with_state=True, load_options=None, save=None, ext="pt", batch_first=False):
    """Save module `m` (state_dict unless `save` says otherwise) and its outputs on random input."""
    m.eval()
    x = torch.randn(batch, seq, m.input_size) if batch_first else torch.randn(seq, batch, m.input_size)
    h0, c0 = states(m, batch) if with_state else (None, None)
    outputs = run_rnn(m, x, h0, c0)
    path = os.path.join(OUT, f"{name}.{ext}")
    (save or (lambda mod, p: torch.save(mod.state_dict(), p)))(m, path)
    save_npz(name, {"input": x, "h0": h0, "c0": c0}, outputs, load_options)


def rounded(m, dtype):
    """Round m's weights through `dtype` in place, so torch's float32 outputs use exactly what the file stores."""
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.to(dtype).float())
    return m


def shared_storage_state_dict(m):
    """Every tensor a view into one flat storage; weight_ih also transposed in memory (non-contiguous)."""
    sd = m.state_dict()
    flat = torch.cat([v.reshape(-1) for v in sd.values()])
    out, off = {}, 0
    for k, v in sd.items():
        out[k] = flat[off:off + v.numel()].view(v.shape)
        off += v.numel()
    w = sd["weight_ih_l0"]
    out["weight_ih_l0"] = w.t().contiguous().t()
    return out


def traced_cases():
    """torch.jit.trace keeps no module constants: batch_first, the nonlinearity and the layout are only in the ATen
    call of the traced forward (rnnfast reads them there instead of assuming defaults)."""
    def trace(m, p):
        x = torch.zeros(2, 4, m.input_size) if m.batch_first else torch.zeros(4, 2, m.input_size)
        torch.jit.save(torch.jit.trace(m, x), p)

    rnn_case("traced_lstm_bidir_batch_first", nn.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True),
             save=trace, batch_first=True)
    rnn_case("traced_rnn_relu_batch_first", nn.RNN(3, 5, nonlinearity="relu", batch_first=True), save=trace,
             batch_first=True)
    rnn_case("traced_gru", nn.GRU(4, 6), save=trace)


CELLS = os.path.join(OUT, "cells")


class Decoder(nn.Module):
    """A decoder that applies its cell in a Python loop: the state_dict keys are decoder.cell.weight_ih, ..."""

    def __init__(self, cell):
        super().__init__()
        self.cell = cell


class Seq2Seq(nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.decoder = Decoder(cell)


def cell_loop(cell, x, h0, c0=None):
    """What a model does with a cell in a loop: output = the h of every step, then the last h (and c)."""
    h, c, outs = h0, c0, []
    with torch.no_grad():
        for t in range(x.shape[0]):
            if c is None:
                h = cell(x[t], h)
            else:
                h, c = cell(x[t], (h, c))
            outs.append(h)
    return torch.stack(outs), h, c


def numpy_dict(sd):
    return {k: v.detach().numpy() for k, v in sd.items()}


def cell_cases():
    """nn.LSTMCell / GRUCell / RNNCell: one set of weights per kind, written as a zip state_dict (.pt, bare keys), a
    legacy-format checkpoint (.pth, {'epoch', 'state_dict'} with decoder.cell. keys), .safetensors, a raw .npz and
    a pickled dict of numpy arrays (pickle protocols 2, 4 and 5 between the kinds). <kind>_cell.io.npz holds torch's
    outputs for one step (step_*) and for the cell applied in a loop over a short sequence (loop_*, nn.LSTM's names
    and shapes: h0 [1, batch, hidden])."""
    import pickle

    from safetensors.torch import save_file

    os.makedirs(CELLS, exist_ok=True)
    for f in os.listdir(CELLS):
        os.remove(os.path.join(CELLS, f))
    kinds = [("lstm", nn.LSTMCell(5, 8), {}, 4), ("gru", nn.GRUCell(4, 10), {}, 5),
             ("rnn", nn.RNNCell(3, 12, nonlinearity="relu"), {"nonlinearity": "relu"}, 2)]
    for kind, cell, load_options, protocol in kinds:
        cell.eval()
        H, batch, seq = cell.hidden_size, 3, 5
        x, h0 = torch.randn(batch, cell.input_size), torch.randn(batch, H)
        c0 = torch.randn(batch, H) if kind == "lstm" else None
        with torch.no_grad():
            step = cell(x, (h0, c0)) if kind == "lstm" else (cell(x, h0), None)
        xs = torch.randn(seq, batch, cell.input_size)
        lh0 = torch.randn(batch, H)
        lc0 = torch.randn(batch, H) if kind == "lstm" else None
        out, h_n, c_n = cell_loop(cell, xs, lh0, lc0)
        arrays = {"step_input": x, "step_h0": h0, "step_c0": c0, "step_h1": step[0], "step_c1": step[1],
                  "loop_input": xs, "loop_h0": lh0[None], "loop_c0": None if lc0 is None else lc0[None],
                  "loop_output": out, "loop_h_n": h_n[None], "loop_c_n": None if c_n is None else c_n[None]}
        np.savez_compressed(os.path.join(CELLS, f"{kind}_cell.io.npz"),
                            **{k: v.detach().numpy() for k, v in arrays.items() if v is not None},
                            load_options=np.array(json.dumps(load_options)))
        name = os.path.join(CELLS, f"{kind}_cell")
        torch.save(cell.state_dict(), name + ".pt")
        full = Seq2Seq(cell).state_dict()
        torch.save({"epoch": 3, "state_dict": full}, name + "_checkpoint.pth", _use_new_zipfile_serialization=False)
        save_file({k: v.contiguous() for k, v in full.items()}, name + ".safetensors")
        np.savez(name + ".weights.npz", **numpy_dict(full))
        with open(name + ".pkl", "wb") as f:
            pickle.dump(numpy_dict(full), f, protocol=protocol)

    # nn.GRU with PyTorch's layer names (rnn.weight_ih_l0 ...) as a raw .npz and a pickled numpy dict.
    m = nn.GRU(4, 6, num_layers=2).eval()
    x, h0 = torch.randn(5, 2, 4), torch.randn(2, 2, 6)
    outputs = run_rnn(m, x, h0)
    weights = {f"rnn.{k}": v for k, v in numpy_dict(m.state_dict()).items()}
    np.savez(os.path.join(CELLS, "gru_layers.weights.npz"), **weights)
    with open(os.path.join(CELLS, "gru_layers.pkl"), "wb") as f:
        pickle.dump(weights, f, protocol=4)
    np.savez_compressed(os.path.join(CELLS, "gru_layers.io.npz"), input=x.numpy(), h0=h0.numpy(),
                        **{k: v.numpy() for k, v in outputs.items()}, load_options=np.array("{}"))


def main():
    if sys.argv[1:] == ["traced"]:  # add these without remaking (and so changing) every other fixture
        torch.manual_seed(99)
        traced_cases()
        return
    if sys.argv[1:] == ["cells"]:  # the same: only tests/data/torch/cells/
        torch.manual_seed(16)
        cell_cases()
        return
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if os.path.isfile(os.path.join(OUT, f)):
            os.remove(os.path.join(OUT, f))
    torch.manual_seed(1234)

    rnn_case("lstm", nn.LSTM(5, 8))
    rnn_case("lstm_no_state", nn.LSTM(5, 8), with_state=False)
    rnn_case("gru_2layer", nn.GRU(4, 7, num_layers=2))
    rnn_case("rnn_tanh_3layer_bidir", nn.RNN(3, 6, num_layers=3, bidirectional=True))
    rnn_case("rnn_relu_2layer", nn.RNN(4, 5, num_layers=2, nonlinearity="relu"),
             load_options={"nonlinearity": "relu"})
    rnn_case("lstm_bidir_batch_first", nn.LSTM(4, 6, num_layers=2, bidirectional=True, batch_first=True),
             load_options={"batch_first": True}, batch_first=True)
    rnn_case("gru_no_bias_bidir", nn.GRU(3, 5, bias=False, bidirectional=True))
    rnn_case("lstm_no_bias_3layer", nn.LSTM(3, 4, num_layers=3, bias=False))
    rnn_case("lstm_proj", nn.LSTM(4, 10, proj_size=4))
    rnn_case("lstm_proj_2layer_bidir", nn.LSTM(4, 12, proj_size=5, num_layers=2, bidirectional=True))
    rnn_case("lstm_proj_no_bias", nn.LSTM(3, 9, proj_size=3, bias=False, num_layers=2))
    rnn_case("gru_legacy", nn.GRU(4, 6, num_layers=2),
             save=lambda m, p: torch.save(m.state_dict(), p, _use_new_zipfile_serialization=False))
    rnn_case("lstm_legacy_whole_module", nn.LSTM(3, 5, bidirectional=True),
             save=lambda m, p: torch.save(m, p, _use_new_zipfile_serialization=False))
    rnn_case("lstm_f16", rounded(nn.LSTM(4, 6), torch.float16),
             save=lambda m, p: torch.save({k: v.half() for k, v in m.state_dict().items()}, p))
    rnn_case("gru_bf16", rounded(nn.GRU(4, 6), torch.bfloat16),
             save=lambda m, p: torch.save({k: v.bfloat16() for k, v in m.state_dict().items()}, p))
    rnn_case("rnn_f64", nn.RNN(4, 6),
             save=lambda m, p: torch.save({k: v.double() for k, v in m.state_dict().items()}, p))
    rnn_case("lstm_shared_storage", nn.LSTM(3, 4),
             save=lambda m, p: torch.save(shared_storage_state_dict(m), p))
    rnn_case("rnn_relu_torchscript", nn.RNN(3, 5, num_layers=2, nonlinearity="relu", batch_first=True),
             save=lambda m, p: torch.jit.save(torch.jit.script(m), p), batch_first=True)
    rnn_case("lstm_proj_torchscript", nn.LSTM(3, 8, proj_size=3),
             save=lambda m, p: torch.jit.save(torch.jit.script(m), p))
    rnn_case("gru_whole_module", nn.GRU(3, 4, num_layers=2, batch_first=True),
             save=lambda m, p: torch.save(m, p), batch_first=True)
    traced_cases()

    def checkpoint(m, p):
        opt = torch.optim.Adam(m.parameters())
        torch.save({"epoch": 7, "model_state_dict": m.state_dict(), "optimizer_state_dict": opt.state_dict(),
                    "loss": 0.25, "note": "trained"}, p)

    rnn_case("lstm_checkpoint", nn.LSTM(4, 6, num_layers=2), save=checkpoint, ext="pth")

    def safetensors_save(m, p):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in m.state_dict().items()}, p, metadata={"format": "pt"})

    rnn_case("gru_bidir_2layer", nn.GRU(4, 6, num_layers=2, bidirectional=True), save=safetensors_save,
             ext="safetensors")

    # Variable-length rows as a PackedSequence: rnnfast takes the lengths as sequence_lens.
    m = nn.LSTM(3, 5, bidirectional=True).eval()
    lengths = [6, 4, 1]
    x = torch.randn(6, 3, 3)
    for b, n in enumerate(lengths):
        x[n:, b] = 0
    with torch.no_grad():
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, (h, c) = m(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, total_length=6)
    torch.save(m.state_dict(), os.path.join(OUT, "lstm_packed.pt"))
    save_npz("lstm_packed", {"input": x}, {"output": out, "h_n": h, "c_n": c},
             run_options={"sequence_lens": lengths})

    # Unbatched (2-D) input and state.
    m = nn.GRU(3, 4, num_layers=2).eval()
    x, h0 = torch.randn(5, 3), torch.randn(2, 4)
    with torch.no_grad():
        out, h = m(x, h0)
    torch.save(m.state_dict(), os.path.join(OUT, "gru_unbatched.pt"))
    save_npz("gru_unbatched", {"input": x, "h0": h0}, {"output": out, "h_n": h})

    # Embedding -> LSTM -> Linear, as a state_dict and as a whole pickled module.
    net = Net().eval()
    ids = torch.randint(0, 20, (2, 7))
    with torch.no_grad():
        logits, h, c = net(ids)
    opts = {"embedding": "emb", "rnn": "lstm", "head": "fc", "batch_first": True}
    torch.save(net.state_dict(), os.path.join(OUT, "emb_lstm_fc.pt"))
    save_npz("emb_lstm_fc", {"input": ids}, {"output": logits, "h_n": h, "c_n": c}, opts)
    torch.save(net, os.path.join(OUT, "emb_lstm_fc_whole_module.pt"))
    save_npz("emb_lstm_fc_whole_module", {"input": ids}, {"output": logits, "h_n": h, "c_n": c},
             {**opts, "allow_classes": ["__main__.Net"]})
    torch.jit.save(torch.jit.script(net), os.path.join(OUT, "emb_lstm_fc_torchscript.pt"))
    save_npz("emb_lstm_fc_torchscript", {"input": ids}, {"output": logits, "h_n": h, "c_n": c},
             {"embedding": "emb", "rnn": "lstm", "head": "fc"})

    # Two recurrent modules in one file: pick one, leave the other out on purpose.
    ed = EncoderDecoder().eval()
    x = torch.randn(5, 2, 4)
    torch.save(ed.state_dict(), os.path.join(OUT, "two_modules.pt"))
    save_npz("two_modules", {"input": x}, run_rnn(ed.decoder, x), {"rnn": "decoder", "ignore": ["encoder."]})

    torch.manual_seed(16)
    cell_cases()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, to {os.path.normpath(OUT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
