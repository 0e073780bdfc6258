"""One step of nn.LSTMCell / nn.GRUCell / nn.RNNCell as a model: what a file holding a cell's weights loads as.

PyTorch's cell call is `h1 = cell(input, h0)` (`h1, c1 = cell(input, (h0, c0))` for LSTMCell), so the model's inputs
are `input` [batch, input_size] (or unbatched [input_size]), `h0` and, for LSTMCell, `c0` [batch, hidden] (optional:
zeros when absent, as in PyTorch), and its outputs `h1` (and `c1`). The graph is the layer run over one time step;
`stream()` steps the same layer with its state kept (layer0.h / layer0.c, as for nn.LSTM). It is no chain over a
sequence (export-c's chain export): .rnnf 2, ONNX and export-c --dim write its graph. A cell applied in a loop
over a sequence (`cell_loop=True`) is no cell model: it loads as nn.LSTM/GRU/RNN with one layer (graph.TorchGraph).
"""
from __future__ import annotations

import numpy as np

from ...errors import FormatError
from ...graph.build import GraphBuilder
from ...graph.ir import ZEROS
from .graph import TorchGraph

CELL_CLASSES = {"lstm": "nn.LSTMCell", "gru": "nn.GRUCell", "rnn": "nn.RNNCell"}
_AXIS0 = np.array([0], np.int64)


def cell_graph(layer, name: str, states: bool) -> GraphBuilder:
    """input [batch, I] (h0, c0 [batch, H] when `states`) -> h1, c1 [batch, H]: the layer over one time step."""
    b = GraphBuilder(name)
    x = b.node("Unsqueeze", [b.input("input", np.float32, ["batch", layer.input_size]), _AXIS0], name="one_step")
    h0 = c0 = ""
    if states:
        state = dict(dtype=np.float32, shape=["batch", layer.hidden_size], default=ZEROS)  # zeros, as in PyTorch
        h0 = b.node("Unsqueeze", [b.input("h0", **state), _AXIS0], name="h0/axis")
        if layer.cell == "lstm":
            c0 = b.node("Unsqueeze", [b.input("c0", **state), _AXIS0], name="c0/axis")
    _, h, c = b.recurrent(x, [layer], h0=h0, c0=c0, states=True, sequence=False, name=layer.name or "cell")
    b.output(b.node("Squeeze", [h, _AXIS0], name="h1/axis"), "h1")
    if c:
        b.output(b.node("Squeeze", [c, _AXIS0], name="c1/axis"), "c1")
    return b


class TorchCellGraph(TorchGraph):
    """One step of a PyTorch cell (see the module docstring); run, stream, convert and export-c like TorchGraph."""

    compiled_with_lengths = None  # one step has no sequence, so no lengths: convert/export-c --sequence-lens refuse

    def __init__(self, layer, name="", source="", defaults=()):
        super().__init__([layer], False, name=name, source=source, defaults=defaults)

    def _builder(self, lens, step):
        if step:  # a stream steps the layer with its state kept, as for nn.LSTM
            return super()._builder(lens, step)
        return cell_graph(self.layers[0], self.name, states=True)

    def _prepare(self, feeds, lengths):
        where, layer = self.where, self.layers[0]
        if feeds.get("input") is None:
            raise ValueError(f"{where}: the input 'input' is required")
        names = [t.name for t in self.inputs]
        unknown = [n for n in feeds if n not in names]
        if unknown:
            raise ValueError(f"{where}: unknown input(s) {unknown}; the inputs are {names}")
        x = np.asarray(feeds["input"])
        I, H = layer.input_size, layer.hidden_size
        if x.dtype.kind not in "fiub" or x.ndim not in (1, 2) or x.shape[-1:] != (I,):
            raise ValueError(f"{where}: input of one {CELL_CLASSES[layer.cell]} step must be float [batch, {I}] (or "
                             f"unbatched [{I}]), got {x.dtype} {x.shape}")
        batched = x.ndim == 2
        x = np.asarray(x if batched else x[None], np.float32)
        arrays = [x]
        for key in names[1:]:  # an absent state is zeros, as in PyTorch (the graph's default)
            s = feeds.get(key)
            if s is not None:
                s = np.asarray(s, np.float32)
                want = (x.shape[0], H) if batched else (H,)
                if s.shape != want:
                    raise ValueError(f"{where}: {key} must have shape {want} (batch, hidden) like the input's batch; "
                                     f"got {s.shape}")
                s = s if batched else s[None]
            arrays.append(s)
        self._last = self.variant()
        return self._last, arrays, batched

    def _lengths_option(self, options):
        if options:
            raise TypeError(f"{self.where}: run() got an unexpected option {sorted(options)[0]!r} (one step of a cell "
                            f"has no sequence; load with cell_loop=True to run the cell over one)")
        return None

    def _unbatched(self, outs, batched):
        return outs if batched else [o[0] for o in outs]

    def to_pipeline(self):
        """Refused: a chain (what the ONNX/.npz exports and export-c's chain export write) runs sequences, and one
        step of a cell has other inputs; written as one, it would not be this model."""
        cls = CELL_CLASSES[self.layers[0].cell]
        raise FormatError(f"{self.where}: one step of an {cls} (input [batch, {self.layers[0].input_size}], states in "
                          f"and out) is not a chain over a sequence: convert it to .rnnf or export its whole graph "
                          f"(export-c --dim batch=N), or load it with cell_loop=True (-O cell_loop=true) to write the "
                          f"cell run over a sequence, whose C step function is the cell's step")

    def quantized(self, weight_dtype: str) -> "TorchCellGraph":
        return TorchCellGraph(self.layers[0].with_weight_dtype(weight_dtype), self.name, self.source, self.defaults)

    def describe(self) -> str:
        layer = self.layers[0]
        states = "h0, c0 -> h1, c1" if layer.cell == "lstm" else "h0 -> h1"
        acts = ",".join(a.name for a in layer.activations[0])
        lines = [f"PyTorch {CELL_CLASSES[layer.cell]}, one step, from {self.source or 'memory'}",
                 f"  {layer.name}: input {layer.input_size}, hidden {layer.hidden_size}, activations {acts}; input "
                 f"[batch, {layer.input_size}], {states} [batch, {layer.hidden_size}] (load with cell_loop=True to "
                 f"run it over a sequence)"]
        lines += [f"  default applied: {m}.{o} = {v!r} ({why})" for m, o, v, why in self.defaults]
        return "\n".join(lines)
