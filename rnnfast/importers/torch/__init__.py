"""PyTorch nn.RNN / nn.LSTM / nn.GRU and nn.RNNCell / nn.LSTMCell / nn.GRUCell files (.pt/.pth zip or legacy,
TorchScript, checkpoints, whole pickled modules, .safetensors, and .npz or pickled dicts of numpy arrays holding
PyTorch's names) read without torch.

    model = rnnfast.load("lstm.pt")                                   # a file holding one recurrent module
    model = rnnfast.load("net.pt", embedding="emb", rnn="lstm", head="fc", batch_first=True)
    output, h_n, c_n = model.run(x)                                   # or model.run({"input": x, "h0": h0, "c0": c0})

What the weights tell: every recurrent module is found from its keys `<prefix>weight_ih_l{k}[_reverse]`,
`weight_hh_l{k}`, `bias_ih_l{k}` / `bias_hh_l{k}` (absent when bias=False) and `weight_hr_l{k}` (LSTM proj_size):
the cell type from the row count (1, 3 or 4 times hidden_size, where hidden_size is the column count of
weight_hh, or of weight_hr with projection), num_layers, bidirectional, bias and proj_size. A cell's keys have no
layer suffix (`<prefix>weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`): it loads as one step (cell.py: inputs `input`
[batch, input_size], `h0`, `c0` [batch, hidden]; outputs `h1`, `c1`), or with cell_loop=True as the cell applied
in a loop over a sequence, which is nn.LSTM/GRU/RNN with one layer and its conventions (output, h_n [1, batch,
hidden], ...). One prefix holding both a cell's and a layered module's keys is refused.

Options of `rnnfast.load` for these files (what a state_dict does not store):
- rnn: prefix of the recurrent module to run ("lstm", "encoder.rnn"); needed only when the file holds several.
- nonlinearity: "tanh" (default) or "relu", for nn.RNN and nn.RNNCell.
- batch_first: False (default) or True; applies to `input` and `output`, never to h0/c0/h_n/c_n (for a cell, with
  cell_loop=True only).
- cell_loop: False (default) or True: a cell's weights as the cell applied to every step of a sequence.
- rename: {OLD: NEW} (or ["OLD=NEW", ...]): a project's own tensor names mapped to PyTorch's before anything is
  recognised; each OLD replaces the start of a name (an exact name or a prefix; rename.py has the rule).
- embedding: prefix of an nn.Embedding (key `<prefix>.weight`) applied to integer token ids before the stack.
- head: prefix of an nn.Linear (keys `<prefix>.weight`, optional `<prefix>.bias`) applied to the stack's output at
  every time step; for a model that does `fc(out[:, -1])`, take `output[:, -1]`.
- ignore: key prefixes to leave unused on purpose (e.g. ["decoder."]). Any other tensor not used is an error
  naming it: a silently unused layer is the classic import bug.
- state_dict_key: the checkpoint entry holding the weights, when it is not one of model_state_dict, state_dict,
  model, net, network, module, model_state.
- allow_classes: dotted names of your own nn.Module subclasses in a whole-model `torch.save(model)` file, e.g.
  ["__main__.Net"]. They are read as plain data (their attributes and tensors); the class is never imported.
  Without it such a file is refused, naming the class. torch.nn's own module classes need no permission.
Whole pickled modules and TorchScript archives also store batch_first, nonlinearity and proj_size; those stored
values are used, and an option that contradicts them is an error.

Model.run follows nn.LSTM/GRU/RNN: inputs `input` [seq_len, batch, input_size] (batch-first, or unbatched
[seq_len, input_size]; int token ids with an embedding), optional `h0` [layers*dirs, batch, out] and `c0`
[layers*dirs, batch, hidden]; outputs `output`, `h_n` and, for LSTM, `c_n`. Run options: sequence_lens (int [batch],
the lengths a post-padded PackedSequence would carry), n_threads.
"""
from __future__ import annotations

import re

import numpy as np

from ...assumptions import assumed
from ...errors import FormatError, OptionError
from ...layers import N_GATES, Activation, RecurrentLayer
from ...model import Model
from .._gates import from_torch
from .cell import CELL_CLASSES, TorchCellGraph
from .graph import Embedding, Linear, TorchGraph
from .files import ModuleInfo, read_torch_weights
from .rename import apply_rename, check_rename, renamed

OPTIONS = ("rnn", "nonlinearity", "batch_first", "embedding", "head", "ignore", "state_dict_key", "allow_classes",
           "cell_loop", "rename")
CELL_BY_GATES = {n: cell for cell, n in N_GATES.items()}
CELL_BY_MODE = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn", "RNN_RELU": "rnn"}
_RNN_KEY = re.compile(r"^((?:.*\.)?)weight_ih_l(\d+)(_reverse)?$")
_CELL_KEY = re.compile(r"^((?:.*\.)?)weight_ih$")


def load_torch(data: bytes, name: str = "<bytes>", **options) -> Model:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise OptionError(f"unknown option(s) {unknown} for a PyTorch file; expected some of {list(OPTIONS)}")
    for key in ("batch_first", "cell_loop"):
        if options.get(key) not in (None, True, False):  # 0 and 1 compare equal to False and True
            raise ValueError(f"{name}: option {key} must be true or false, got {options[key]!r}")
    rename = check_rename(options.get("rename"), name)
    weights = read_torch_weights(data, name, allow_classes=options.get("allow_classes") or (),
                                 state_dict_key=options.get("state_dict_key"))
    where = f"{name}{weights.found_at}"
    tensors, was = apply_rename(weights.tensors, rename, where)
    modules = {renamed(p, rename): m for p, m in weights.modules.items()}
    prefix, is_cell = _choose_prefix(tensors, options.get("rnn"), where)
    if is_cell:
        return _load_cell(tensors, prefix, modules.get(prefix), options, name, where, was)
    if options.get("cell_loop") is not None:
        raise ValueError(f"{where}: cell_loop applies to the weights of a cell (nn.LSTMCell/GRUCell/RNNCell: "
                         f"{prefix}weight_ih); {prefix or 'the module'} is a layered module ({prefix}weight_ih_l0)")
    info = modules.get(prefix)
    stored = dict(info.attrs) if info is not None else {}
    if stored.get("mode") in ("RNN_TANH", "RNN_RELU"):
        stored.setdefault("nonlinearity", stored["mode"][4:].lower())
    nonlinearity = _stored_or_option(stored, "nonlinearity", options.get("nonlinearity"), "tanh", where, info)
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    batch_first = bool(_stored_or_option(stored, "batch_first", options.get("batch_first"), False, where, info))

    used: set = set()
    layers = _recurrent_layers(tensors, prefix, nonlinearity, info, where, used)
    defaults = []  # what neither the file nor the caller said: (module, option, value, why), for describe()
    for key, value in (("nonlinearity", nonlinearity), ("batch_first", batch_first)):
        if key == "nonlinearity" and layers[0].cell != "rnn":
            continue
        if stored.get(key) is None and options.get(key) is None:
            defaults.append((prefix.rstrip(".") or "<top>", key, value, "not stored in the file; PyTorch's default"))
            assumed(f"{where}: module {prefix.rstrip('.') or '<top>'!r}", key, value,
                    "not stored in the file; PyTorch's default")
    if options.get("nonlinearity") is not None and layers[0].cell != "rnn":
        raise ValueError(f"{where}: nonlinearity applies to nn.RNN only; {prefix or 'the module'} is an "
                         f"{layers[0].cell.upper()}")
    embedding = head = None
    if options.get("embedding") is not None:
        embedding = _embedding(tensors, options["embedding"], layers[0].input_size, weights.modules, where, used)
    if options.get("head") is not None:
        last = layers[-1]
        head = _linear(tensors, options["head"], last.n_dirs * last.output_size, where, used)
    _check_all_used(tensors, used, options.get("ignore") or (), layers, where, was)
    graph = TorchGraph(layers, batch_first, embedding, head, name=prefix.rstrip("."), source=where,
                       defaults=defaults)
    return Model(graph, source=name)


def _load_cell(tensors, prefix, info, options, name, where, was) -> Model:
    """A cell's weights: one step (TorchCellGraph), or with cell_loop the cell over a sequence (TorchGraph)."""
    module = prefix.rstrip(".") or "<top>"
    loop = bool(options.get("cell_loop"))
    stored = dict(info.attrs) if info is not None else {}
    nonlinearity = _stored_or_option(stored, "nonlinearity", options.get("nonlinearity"), "tanh", where, info)
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    used: set = set()
    key = lambda kind: f"{prefix}{kind}"  # noqa: E731
    d = _direction(tensors, key, f"cell {module}", where, used, projection=False)
    cell = d["cell"]
    acts = ((Activation("Relu" if nonlinearity == "relu" else "Tanh"),),) if cell == "rnn" else ()
    layer = RecurrentLayer(cell=cell, direction="forward", hidden_size=d["hidden"], input_size=d["input"],
                           w_ih=d["w_ih"][None], w_hh=d["w_hh"][None], b_ih=d["b_ih"][None], b_hh=d["b_hh"][None],
                           activations=acts, linear_before_reset=cell == "gru", name=prefix.rstrip(".") or "cell",
                           source=f"{where}: {prefix}weight_*")
    _check_module_attrs(info, [layer], d["bias"], nonlinearity, where, prefix)
    if options.get("nonlinearity") is not None and cell != "rnn":
        raise ValueError(f"{where}: nonlinearity applies to nn.RNNCell only; {module} is an {CELL_CLASSES[cell]}")
    defaults = []
    if cell == "rnn" and stored.get("nonlinearity") is None and options.get("nonlinearity") is None:
        defaults.append((module, "nonlinearity", "tanh", "not stored in the file; PyTorch's default"))
    if not loop:
        for option in ("batch_first", "embedding", "head"):
            if options.get(option) is not None:
                raise ValueError(f"{where}: {option} applies to a cell run over a sequence; {module} is an "
                                 f"{CELL_CLASSES[cell]} loaded as one step (pass cell_loop=True)")
    batch_first = bool(options.get("batch_first"))
    if loop and options.get("batch_first") is None:
        defaults.append((module, "batch_first", False, "a cell applied in a loop: the file does not say how the "
                                                       "sequence is laid out; nn.LSTM's default"))
    for module_name, option, value, why in defaults:
        assumed(f"{where}: module {module_name!r}", option, value, why)
    embedding = head = None
    if options.get("embedding") is not None:
        embedding = _embedding(tensors, options["embedding"], layer.input_size, {}, where, used)
    if options.get("head") is not None:
        head = _linear(tensors, options["head"], layer.output_size, where, used)
    _check_all_used(tensors, used, options.get("ignore") or (), [layer], where, was)
    if loop:
        graph = TorchGraph([layer], batch_first, embedding, head, name=prefix.rstrip("."), source=where,
                           defaults=defaults)
    else:
        graph = TorchCellGraph(layer, name=prefix.rstrip("."), source=where, defaults=defaults)
    # the module the file's weights are, and whether it runs over a sequence (for rnnfast verify --against torch)
    graph.cell_module, graph.cell_loop = CELL_CLASSES[cell], loop
    return Model(graph, source=name)


def _dot(prefix: str) -> str:
    prefix = str(prefix)
    return prefix if prefix == "" or prefix.endswith(".") else prefix + "."


def _choose_prefix(tensors: dict, wanted, where: str) -> tuple:
    """(prefix, whether it is a cell's) of the recurrent module to load."""
    layered = {m.group(1) for k in tensors if (m := _RNN_KEY.match(k))}
    cells = {m.group(1) for k in tensors if (m := _CELL_KEY.match(k))}
    for p in sorted(layered & cells):
        raise FormatError(f"{where}: {p}weight_ih (a cell: nn.LSTMCell/GRUCell/RNNCell) and {p}weight_ih_l0 (a "
                          f"layered nn.LSTM/GRU/RNN) under one prefix {p or '<top>'!r}; expected the keys of one "
                          f"module, weight_ih/weight_hh/bias_ih/bias_hh or weight_ih_l0/weight_hh_l0/...")
    prefixes = sorted(layered | cells)
    named = [f"{p}weight_ih" if p in cells else f"{p}weight_ih_l0" for p in prefixes]
    if wanted is not None:
        wanted = _dot(wanted)
        if wanted not in prefixes:
            raise FormatError(f"{where}: no recurrent module {wanted!r} (no key {wanted}weight_ih_l0 or "
                              f"{wanted}weight_ih); recurrent modules in the file: {named or 'none'}")
        return wanted, wanted in cells
    if not prefixes:
        sample = sorted(tensors)[:12]
        raise FormatError(f"{where}: no nn.RNN/LSTM/GRU weights (keys like weight_ih_l0) nor nn.*Cell weights "
                          f"(weight_ih, weight_hh) among the tensors {sample}{' ...' if len(tensors) > 12 else ''}"
                          f"; map other names with rename=")
    if len(prefixes) > 1:
        raise FormatError(f"{where}: several recurrent modules {prefixes} (keys {', '.join(named)}); choose one "
                          f"with rnn=<prefix> (and leave the others out with ignore=[...])")
    return prefixes[0], prefixes[0] in cells


def _stored_or_option(stored: dict, key, option, default, where, info):
    value = stored.get(key)
    if value is None:
        return default if option is None else option
    if option is not None and option != value:
        raise ValueError(f"{where}: option {key}={option!r} contradicts the stored module {info.cls}, which has "
                         f"{key}={value!r}")
    return value


def _get(tensors, key, where, used, ndim):
    if key not in tensors:
        return None
    arr = tensors[key]
    if arr.dtype.kind != "f" or arr.ndim != ndim:
        raise FormatError(f"{where}: {key} is {arr.dtype} with shape {arr.shape}, expected a {ndim}-D float tensor")
    used.add(key)
    return arr


def _recurrent_layers(tensors, prefix, nonlinearity, info, where, used):
    numbers = sorted({int(m.group(2)) for k in tensors if (m := _RNN_KEY.match(k)) and m.group(1) == prefix})
    if numbers != list(range(len(numbers))):
        raise FormatError(f"{where}: {prefix}weight_ih_l* has layers {numbers}; expected 0..{len(numbers) - 1} "
                          f"without gaps")
    bidirectional = f"{prefix}weight_ih_l0_reverse" in tensors
    layers = []
    input_size = has_bias = None
    for k in numbers:
        dirs = []
        for sfx in ("", "_reverse") if bidirectional else ("",):
            key = lambda kind, k=k, sfx=sfx: f"{prefix}{kind}_l{k}{sfx}"  # noqa: E731
            what = f"layer {k}{' reverse' if sfx else ''} of {prefix or '<top>'}"
            dirs.append(_direction(tensors, key, what, where, used))
        cells = {d["cell"] for d in dirs}
        shapes = {(d["hidden"], d["proj"], d["input"], d["bias"]) for d in dirs}
        if len(cells) != 1 or len(shapes) != 1:
            raise FormatError(f"{where}: the two directions of {prefix} layer {k} differ: {dirs[0]['desc']} vs "
                              f"{dirs[1]['desc']}")
        d0 = dirs[0]
        if input_size is not None and d0["input"] != input_size:
            raise FormatError(f"{where}: {prefix}weight_ih_l{k} has {d0['input']} columns; layer {k} reads the "
                              f"previous layer's output of size {input_size}")
        if layers and d0["cell"] != layers[0].cell:
            raise FormatError(f"{where}: {prefix} layer {k} is {d0['cell']} but layer 0 is {layers[0].cell}")
        if layers and d0["bias"] != has_bias:
            raise FormatError(f"{where}: {prefix} layer {k} {'has' if d0['bias'] else 'lacks'} biases, layer 0 "
                              f"does not agree")
        has_bias = d0["bias"]
        cell, H, P = d0["cell"], d0["hidden"], d0["proj"]
        acts = (Activation("Relu" if nonlinearity == "relu" else "Tanh"),) if cell == "rnn" else ()
        layer = RecurrentLayer(
            cell=cell, direction="bidirectional" if bidirectional else "forward", hidden_size=H,
            input_size=d0["input"],
            w_ih=np.stack([d["w_ih"] for d in dirs]), w_hh=np.stack([d["w_hh"] for d in dirs]),
            b_ih=np.stack([d["b_ih"] for d in dirs]), b_hh=np.stack([d["b_hh"] for d in dirs]),
            activations=tuple(acts for _ in dirs) if acts else (),
            linear_before_reset=cell == "gru",
            w_hr=np.stack([d["w_hr"] for d in dirs]) if P else None,
            name=f"{prefix}l{k}",
            source=f"{where}: {prefix}*_l{k}",
        )
        layers.append(layer)
        input_size = len(dirs) * (P or H)
    _check_module_attrs(info, layers, has_bias, nonlinearity, where, prefix)
    return layers


def _direction(tensors, key, what, where, used, projection=True) -> dict:
    """One direction of one layer (or a cell): key(kind) names its tensors, `what` says which it is in messages."""
    w_ih = _get(tensors, key("weight_ih"), where, used, 2)
    w_hh = _get(tensors, key("weight_hh"), where, used, 2)
    w_hr = _get(tensors, key("weight_hr"), where, used, 2) if projection else None
    b_ih = _get(tensors, key("bias_ih"), where, used, 1)
    b_hh = _get(tensors, key("bias_hh"), where, used, 1)
    if w_ih is None or w_hh is None:
        missing = [key(n) for n, a in (("weight_ih", w_ih), ("weight_hh", w_hh)) if a is None]
        raise FormatError(f"{where}: missing {missing} ({what})")
    if (b_ih is None) != (b_hh is None):
        missing = key("bias_ih") if b_ih is None else key("bias_hh")
        raise FormatError(f"{where}: {key('bias_ih')} and {key('bias_hh')} must both be present (bias=True) or both "
                          f"absent (bias=False); {missing} is missing ({what})")
    P = w_hh.shape[1]
    H = w_hr.shape[1] if w_hr is not None else P
    if w_hr is not None and w_hr.shape[0] != P:
        raise FormatError(f"{where}: {key('weight_hr')} has shape {w_hr.shape}; expected [{P}, hidden] to match "
                          f"{key('weight_hh')} {w_hh.shape}")
    rows = w_hh.shape[0]
    if H == 0 or rows % H or rows // H not in CELL_BY_GATES:
        raise FormatError(f"{where}: {key('weight_hh')} has shape {w_hh.shape}: rows must be 1, 3 or 4 times the "
                          f"hidden size {H} (RNN, GRU, LSTM)")
    cell = CELL_BY_GATES[rows // H]
    if w_hr is not None and cell != "lstm":
        raise FormatError(f"{where}: {key('weight_hr')} (projection) found on a {cell.upper()}; only LSTM has it")
    if w_ih.shape[0] != rows:
        raise FormatError(f"{where}: {key('weight_ih')} has {w_ih.shape[0]} rows, {key('weight_hh')} has {rows}")
    for name, b in (("bias_ih", b_ih), ("bias_hh", b_hh)):
        if b is not None and b.shape != (rows,):
            raise FormatError(f"{where}: {key(name)} has shape {b.shape}, expected ({rows},)")
    wi, wh, bi, bh = from_torch(cell, w_ih, w_hh, b_ih, b_hh, H)
    desc = f"{cell} hidden {H} proj {P if w_hr is not None else 0} input {w_ih.shape[1]} bias {b_ih is not None}"
    return dict(cell=cell, hidden=H, proj=P if w_hr is not None else 0, input=w_ih.shape[1], bias=b_ih is not None,
                w_ih=wi, w_hh=wh, b_ih=bi, b_hh=bh, w_hr=w_hr, desc=desc)


def _check_module_attrs(info, layers, has_bias, nonlinearity, where, prefix):
    """A pickled module states its shape; the weights must agree (else the file was edited or is corrupt)."""
    if info is None:
        return
    a, first = info.attrs, layers[0]
    found = {
        "mode": {"lstm": "LSTM", "gru": "GRU", "rnn": f"RNN_{nonlinearity.upper()}"}[first.cell],
        "hidden_size": first.hidden_size, "num_layers": len(layers), "input_size": first.input_size,
        "bidirectional": first.n_dirs == 2, "proj_size": first.proj_size,
        "bias": has_bias,
    }
    bad = {k: (a[k], v) for k, v in found.items() if k in a and a[k] != v}
    if bad:
        raise FormatError(f"{where}: module {prefix or '<top>'} ({info.cls}) stores "
                          + ", ".join(f"{k}={s!r} but its weights give {v!r}" for k, (s, v) in bad.items()))


def _embedding(tensors, prefix, input_size, modules, where, used) -> Embedding:
    p = _dot(prefix)
    w = _get(tensors, f"{p}weight", where, used, 2)
    if w is None:
        raise FormatError(f"{where}: embedding={prefix!r} but there is no tensor {p}weight")
    if w.shape[1] != input_size:
        raise FormatError(f"{where}: {p}weight has shape {w.shape}; its width must be the recurrent input size "
                          f"{input_size}")
    info = modules.get(p)
    if info is not None and info.attrs.get("max_norm") is not None:
        raise FormatError(f"{where}: Embedding {p.rstrip('.')} has max_norm={info.attrs['max_norm']}, which "
                          f"renormalises rows at lookup time; rnnfast does not implement it")
    return Embedding(p.rstrip("."), w.astype(np.float32))


def _linear(tensors, prefix, in_features, where, used) -> Linear:
    p = _dot(prefix)
    w = _get(tensors, f"{p}weight", where, used, 2)
    if w is None:
        raise FormatError(f"{where}: head={prefix!r} but there is no tensor {p}weight")
    if w.shape[1] != in_features:
        raise FormatError(f"{where}: {p}weight has shape {w.shape}; a head after the recurrent stack needs "
                          f"{in_features} input features")
    b = _get(tensors, f"{p}bias", where, used, 1)
    if b is not None and b.shape != (w.shape[0],):
        raise FormatError(f"{where}: {p}bias has shape {b.shape}, expected ({w.shape[0]},)")
    return Linear(p.rstrip("."), w.astype(np.float32), None if b is None else b.astype(np.float32))


def _check_all_used(tensors, used, ignore, layers, where, was=None):
    ignore = tuple(str(i) for i in ([ignore] if isinstance(ignore, str) else ignore))
    left = [k for k in tensors if k not in used and not k.startswith(ignore)]
    if not left:
        return
    hints = []
    width = layers[0].input_size
    out = layers[-1].n_dirs * layers[-1].output_size
    for k in left:
        arr = tensors[k]
        if k.endswith(".weight") and arr.ndim == 2:
            p = k[: -len(".weight")]
            if arr.shape[1] == out:
                hints.append(f"head={p!r}")
            elif arr.shape[1] == width and f"{p}.bias" not in tensors:
                hints.append(f"embedding={p!r}")
    was = was or {}
    shown = ", ".join(f"{k}{f' (renamed from {was[k]})' if k in was else ''} {tuple(tensors[k].shape)}"
                      for k in left[:20])
    more = f" and {len(left) - 20} more" if len(left) > 20 else ""
    hint = f"; attach them with {', '.join(hints)}" if hints else ""
    raise FormatError(f"{where}: {len(left)} tensor(s) left unused: {shown}{more}{hint}, or leave them out on "
                      f"purpose with ignore=[prefixes]")
