"""TensorFlow 1.x recurrent cells recognised from a checkpoint's variable names, as canonical RecurrentLayers.

What the names tell (tf.compat.v1.nn.rnn_cell, dynamic_rnn and bidirectional_dynamic_rnn scopes):
    <root>/basic_lstm_cell/{kernel,bias}                BasicLSTMCell
    <root>/lstm_cell/{kernel,bias}[, w_f_diag, w_i_diag, w_o_diag][, projection/kernel]
                                                        LSTMCell (peepholes, num_proj)
    <root>/gru_cell/{gates,candidate}/{kernel,bias}     GRUCell
    <root>/basic_rnn_cell/{kernel,bias}                 BasicRNNCell
where <root> is a dynamic_rnn scope (default "rnn"), `<scope>/multi_rnn_cell/cell_N` for layer N of a MultiRNNCell,
`<scope>/fw` and `<scope>/bw` for bidirectional_dynamic_rnn (default scope "bidirectional_rnn"), or
`<scope>/cell_N/bidirectional_rnn/{fw,bw}` for tf.contrib's stack_bidirectional_dynamic_rnn. Sizes come from the
shapes: the kernel is [input + state, gates*hidden] over concat([x, h]). Gate orders are in importers/_gates.py.

What a checkpoint does not store is a load option with TensorFlow's default, recorded as an assumption: forget_bias
(1.0, folded into the f bias), activation ("tanh"). cell_clip and proj_clip clamp LSTMCell's cell state and
projected output, which rnnfast's engine (ONNX clip: gate pre-activations) does not reproduce: they are refused
when set. Anything not matched is listed in the error.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ...errors import FormatError
from ...layers import Activation, RecurrentLayer
from .._gates import from_tf1, from_tf1_gru, from_tf1_peepholes

CELL_KINDS = {"basic_lstm_cell": "lstm", "lstm_cell": "lstm", "gru_cell": "gru", "basic_rnn_cell": "rnn"}
CELL_VARIABLES = {
    "basic_lstm_cell": ("kernel", "bias"),
    "lstm_cell": ("kernel", "bias", "w_f_diag", "w_i_diag", "w_o_diag", "projection/kernel"),
    "gru_cell": ("gates/kernel", "gates/bias", "candidate/kernel", "candidate/bias"),
    "basic_rnn_cell": ("kernel", "bias"),
}
ACTIVATIONS = {"tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid", "softsign": "Softsign"}
_CELL = re.compile(r"^(?:(?P<scope>.*)/)?(?P<cell>basic_lstm_cell|lstm_cell|gru_cell|basic_rnn_cell)(?:_\d+)?/"
                   r"(?P<var>.+)$")
_STACK_BIDI = re.compile(r"^(?P<root>.*)/cell_(?P<layer>\d+)/bidirectional_rnn/(?P<dir>fw|bw)$")
_BIDI = re.compile(r"^(?:(?P<root>.*)/)?(?P<dir>fw|bw)(?:/multi_rnn_cell/cell_(?P<inner>\d+))?$")
_MULTI = re.compile(r"^(?:(?P<root>.*)/)?multi_rnn_cell/cell_(?P<layer>\d+)$")


@dataclass
class Cell:
    """One cell's variables: (short name -> full checkpoint name), and where it sits."""

    scope: str  # the variable scope up to and including the cell's own name
    kind: str  # basic_lstm_cell, lstm_cell, gru_cell, basic_rnn_cell
    root: str
    layer: int
    direction: str  # fw or bw
    inner: int = 0  # layer of a MultiRNNCell inside one direction of bidirectional_dynamic_rnn
    names: dict = field(default_factory=dict)


def find_cells(names) -> list:
    """Cells whose variables are among `names`, with their place (root scope, layer, direction)."""
    cells = {}
    for name in names:
        m = _CELL.match(name)
        if m is None or m.group("var") not in CELL_VARIABLES[m.group("cell")]:
            continue
        scope = name[: len(name) - len(m.group("var")) - 1]
        if scope not in cells:
            cells[scope] = _place(scope, m.group("scope") or "", m.group("cell"))
        cells[scope].names[m.group("var")] = name
    return list(cells.values())


def _place(scope: str, outer: str, kind: str) -> Cell:
    m = _STACK_BIDI.match(outer)
    if m:
        return Cell(scope, kind, m.group("root") + "/", int(m.group("layer")), m.group("dir"))
    m = _BIDI.match(outer)
    if m:
        inner = int(m.group("inner")) if m.group("inner") is not None else 0
        return Cell(scope, kind, m.group("root") or "", 0, m.group("dir"), inner)
    m = _MULTI.match(outer)
    if m:
        return Cell(scope, kind, m.group("root") or "", int(m.group("layer")), "fw")
    return Cell(scope, kind, outer, 0, "fw")


def stacks(cells) -> dict:
    """root -> cells of that stack."""
    out = {}
    for c in cells:
        out.setdefault(c.root, []).append(c)
    return out


def build_layers(cells, read, where: str, forget_bias: float, activation: str) -> list:
    """Canonical RecurrentLayers of one stack's cells; `read(name)` gives a checkpoint tensor."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"{where}: activation {activation!r}; expected one of {sorted(ACTIVATIONS)}")
    if any(c.inner for c in cells):
        deep = sorted({c.scope for c in cells if c.inner})
        raise FormatError(f"{where}: bidirectional_dynamic_rnn over a MultiRNNCell ({deep[0]} ...) runs each "
                          f"direction as its own stack of layers; rnnfast's bidirectional layers join the directions "
                          f"after every layer (stack_bidirectional_dynamic_rnn), so this model is not implemented")
    by_layer = {}
    for c in cells:
        slot = by_layer.setdefault(c.layer, {})
        if c.direction in slot:
            raise FormatError(f"{where}: two cells for layer {c.layer} {c.direction}: {slot[c.direction].scope} and "
                              f"{c.scope}")
        slot[c.direction] = c
    numbers = sorted(by_layer)
    if numbers != list(range(len(numbers))):
        raise FormatError(f"{where}: MultiRNNCell layers {numbers}; expected cell_0..cell_{len(numbers) - 1} "
                          f"without gaps")
    layers = []
    input_size = None
    for k in numbers:
        slot = by_layer[k]
        if set(slot) == {"bw"}:
            raise FormatError(f"{where}: {slot['bw'].scope} is a backward cell without a forward one (fw)")
        dirs = [slot["fw"]] + ([slot["bw"]] if "bw" in slot else [])
        parts = [_cell_weights(c, read, where, input_size, forget_bias) for c in dirs]
        shapes = {(p["cell"], p["hidden"], p["proj"], p["input"], p["peepholes"] is not None) for p in parts}
        if len(shapes) != 1:
            raise FormatError(f"{where}: the fw and bw cells of layer {k} differ: {dirs[0].scope} is "
                              f"{parts[0]['desc']}, {dirs[1].scope} is {parts[1]['desc']}")
        p0 = parts[0]
        if layers and p0["cell"] != layers[0].cell:
            raise FormatError(f"{where}: layer {k} ({dirs[0].scope}) is {p0['cell']} but layer 0 is "
                              f"{layers[0].cell}; rnnfast runs one cell type per stack")
        act = Activation(ACTIVATIONS[activation])
        acts = {"rnn": (act,), "gru": (Activation("Sigmoid"), act), "lstm": (Activation("Sigmoid"), act, act)}
        stack = lambda key: None if parts[0][key] is None else np.stack([p[key] for p in parts])
        layers.append(RecurrentLayer(
            cell=p0["cell"], direction="bidirectional" if len(dirs) == 2 else "forward", hidden_size=p0["hidden"],
            input_size=p0["input"], w_ih=stack("w_ih"), w_hh=stack("w_hh"), b_ih=stack("b_ih"), b_hh=stack("b_hh"),
            activations=tuple(acts[p0["cell"]] for _ in dirs), linear_before_reset=False,
            peepholes=stack("peepholes"), w_hr=stack("w_hr"), name=dirs[0].scope if len(dirs) == 1 else
            f"{dirs[0].root}layer{k}", source=f"{where}: {' + '.join(c.scope for c in dirs)}"))
        input_size = len(dirs) * (p0["proj"] or p0["hidden"])
    return layers


def _tensor(read, name, where, ndim):
    arr = read(name)
    if arr.dtype.kind != "f" or arr.ndim != ndim:
        raise FormatError(f"{where}: variable {name} is {arr.dtype} with shape {list(arr.shape)}, expected a "
                          f"{ndim}-D float tensor")
    return arr


def _cell_weights(c: Cell, read, where, input_size, forget_bias) -> dict:
    get = lambda var, ndim: _tensor(read, c.names[var], where, ndim) if var in c.names else None
    needed = [v for v in CELL_VARIABLES[c.kind] if v.endswith("kernel") and v != "projection/kernel"]
    missing = [f"{c.scope}/{v}" for v in needed if v not in c.names]
    if missing:
        raise FormatError(f"{where}: {c.kind} {c.scope} lacks {missing}; found {sorted(c.names.values())}")
    cell = CELL_KINDS[c.kind]
    peep = proj = w_hr = None
    if c.kind == "gru_cell":
        gk, ck = get("gates/kernel", 2), get("candidate/kernel", 2)
        H = ck.shape[1]
        gb = _bias(get("gates/bias", 1), 2 * H, c, "gates/bias", where)
        cb = _bias(get("candidate/bias", 1), H, c, "candidate/bias", where)
        if gk.shape[1] != 2 * H or gk.shape[0] != ck.shape[0]:
            raise FormatError(f"{where}: {c.scope}/gates/kernel has shape {list(gk.shape)}; with candidate/kernel "
                              f"{list(ck.shape)} it must be [{ck.shape[0]}, {2 * H}]")
        rows, state = gk.shape[0], H
    else:
        kernel = get("kernel", 2)
        gates = 4 if cell == "lstm" else 1
        if kernel.shape[1] % gates or kernel.shape[1] == 0:
            raise FormatError(f"{where}: {c.scope}/kernel has shape {list(kernel.shape)}; its columns must be "
                              f"{gates} x the hidden size")
        H = kernel.shape[1] // gates
        bias = _bias(get("bias", 1), gates * H, c, "bias", where)
        rows, state = kernel.shape[0], H
        proj = get("projection/kernel", 2)
        if proj is not None:
            if proj.shape[0] != H:
                raise FormatError(f"{where}: {c.scope}/projection/kernel has shape {list(proj.shape)}, expected "
                                  f"[{H}, num_proj]")
            state = proj.shape[1]
            w_hr = np.ascontiguousarray(proj.T)
        diags = [get(v, 1) for v in ("w_i_diag", "w_f_diag", "w_o_diag")]
        if any(d is not None for d in diags):
            if any(d is None or d.shape != (H,) for d in diags):
                raise FormatError(f"{where}: {c.scope} peepholes w_i_diag, w_f_diag, w_o_diag must all be [{H}]; "
                                  f"found {[None if d is None else list(d.shape) for d in diags]}")
            peep = from_tf1_peepholes(*diags)
    if rows <= state:
        raise FormatError(f"{where}: {c.scope} kernel has {rows} rows, not more than the state size {state} it "
                          f"also reads (rows = input + state)")
    n_in = rows - state
    if input_size is not None and n_in != input_size:
        raise FormatError(f"{where}: {c.scope} kernel reads {n_in} inputs (rows {rows} - state {state}); the "
                          f"layer before gives {input_size}")
    if c.kind == "gru_cell":
        w_ih, w_hh, b_ih, b_hh = from_tf1_gru(gk, gb, ck, cb, n_in, H)
    else:
        w_ih, w_hh, b_ih, b_hh = from_tf1(cell, kernel, bias, n_in, H, forget_bias if cell == "lstm" else 0.0)
    proj_size = state if w_hr is not None else 0
    desc = f"{c.kind} hidden {H} proj {proj_size} input {n_in} peepholes {peep is not None}"
    return dict(cell=cell, hidden=H, proj=proj_size, input=n_in, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh,
                peepholes=peep, w_hr=w_hr, desc=desc)


def _bias(b, size, c, var, where):
    if b is None:  # every TF1 cell makes its biases
        raise FormatError(f"{where}: {c.scope} has no variable {c.scope}/{var}")
    if b.shape != (size,):
        raise FormatError(f"{where}: {c.scope}/{var} has shape {list(b.shape)}, expected [{size}]")
    return b
