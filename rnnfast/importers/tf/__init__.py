"""TensorFlow 1.x checkpoints (tf.train.Saver: `model.ckpt.index` + `model.ckpt.data-00000-of-00001`) of
tf.compat.v1.nn.rnn_cell models, read without TensorFlow.

    model = rnnfast.load("model.ckpt")            # the prefix Saver.save was given (or the .index file's path)
    output, state_h, state_c = model.run(x)       # x [batch, time, features]; run(x, sequence_length=lens)

bundle.py reads the files (table.py the .index table, crc32c.py the checksums), cells.py recognises the cells from
their variable scopes, graph.py runs them as dynamic_rnn does.

Options of `rnnfast.load` for these files (what a checkpoint does not store; TensorFlow's defaults otherwise, listed
by `rnnfast inspect` as assumptions):
- rnn: the root scope of the recurrent stack ("rnn", "encoder/rnn", "bidirectional_rnn"); needed only when the
  checkpoint holds several.
- forget_bias: what BasicLSTMCell / LSTMCell were built with (default 1.0); folded into the f gate's bias.
- activation: the cells' activation, "tanh" (default), "relu", "sigmoid" or "softsign".
- time_major: False (default, input [batch, time, ...]) or True.
- embedding: the name of an embedding variable [vocab, dim] looked up before the stack; found by itself when one
  unused 2-D variable with "embedding" in its last name part has the stack's input width.
- head: the scope(s) of tf.layers.dense heads (`<scope>/kernel`, `<scope>/bias`) applied at every step, in order;
  by default every `dense`, `dense_1`, ... scope, in that order. head_activation: "linear" (default, dense's
  activation=None), "relu", "tanh", "sigmoid", "softmax", or one per head. head_on: "outputs" (default: the heads
  read every step's output, `output` is [batch, time, units]) or "state" (they read the top layer's final h, fw and
  bw concatenated: dense(states[-1].h); `output` is [batch, units]; with sequence_length it is not the last step).
- cell_clip, proj_clip: LSTMCell's clipping of the cell state and the projection; refused when set (not None):
  rnnfast's clip clamps gate pre-activations (ONNX), which is not the same.
- ignore: name prefixes to leave unused on purpose. Optimizer slots (…/Adam, …/Adam_1, …/Momentum, …/RMSProp,
  …/Adagrad …), beta1_power, beta2_power and global_step are ignored by name; any other variable left unused is an
  error naming it.
"""
from __future__ import annotations

import re

from ...assumptions import assumed
from ...errors import FormatError, OptionError
from ...model import Model
from ...pipeline import DENSE_ACTIVATIONS, DenseStage, EmbeddingStage
from .bundle import Bundle
from .cells import build_layers, find_cells, stacks
from .graph import TF1Graph

OPTIONS = ("rnn", "forget_bias", "activation", "time_major", "embedding", "head", "head_activation", "head_on",
           "cell_clip", "proj_clip", "ignore")
HEAD_ON = ("outputs", "state")
_IGNORED = re.compile(r"(^|/)(global_step|beta1_power|beta2_power)(_\d+)?$"
                      r"|/(Adam|Momentum|RMSProp|Adagrad|AdagradDA|Adadelta|Ftrl|ProximalAdagrad)(_\d+)?$")
_DENSE = re.compile(r"^(?:(?P<scope>.*)/)?(?P<name>dense(?:_(?P<n>\d+))?)/kernel$")


def load_tf1(prefix: str, **options) -> Model:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise OptionError(f"unknown option(s) {unknown} for a TensorFlow checkpoint; expected some of {list(OPTIONS)}")
    for key in ("cell_clip", "proj_clip"):
        if options.get(key) is not None:
            raise FormatError(f"{prefix}: option {key}={options[key]!r}: LSTMCell's {key} clamps the "
                              f"{'cell state' if key == 'cell_clip' else 'projected output'}, which rnnfast's engine "
                              f"does not reproduce (its clip clamps the gate pre-activations); not implemented")
    bundle = Bundle(prefix)
    where = bundle.index_path
    entries = bundle.entries
    if "_CHECKPOINTABLE_OBJECT_GRAPH" in entries:
        raise FormatError(f"{where}: a TF2 object-based checkpoint (tf.train.Checkpoint, key "
                          f"_CHECKPOINTABLE_OBJECT_GRAPH); rnnfast reads TF 1.x Saver checkpoints of rnn_cell models")
    cache = {}

    def read(name):
        if name not in cache:
            cache[name] = bundle.read(name)
        return cache[name]

    found = stacks(find_cells(entries))
    root = _choose_root(found, options.get("rnn"), entries, where)
    defaults = []
    forget_bias = float(options.get("forget_bias", 1.0))
    activation = options.get("activation", "tanh")
    cells = found[root]
    keras_cells = [f"{c.scope}/recurrent_kernel" for c in cells if f"{c.scope}/recurrent_kernel" in entries]
    if keras_cells:
        raise FormatError(f"{where}: {keras_cells[0]}: a tf.keras cell (kernel and recurrent_kernel, gates i, f, c, o) "
                          f"under a TF1 scope, not an rnn_cell one; its activations are not stored and their defaults "
                          f"changed between Keras versions, so rnnfast does not guess them: not implemented")
    layers = build_layers(cells, read, where, forget_bias, activation)
    scope = root.rstrip("/") or "<top>"
    if layers[0].cell == "lstm" and "forget_bias" not in options:
        defaults.append((scope, "forget_bias", 1.0, "not stored in a checkpoint; BasicLSTMCell/LSTMCell default, "
                                                     "folded into the f bias"))
    if "activation" not in options:
        defaults.append((scope, "activation", "tanh", "not stored in a checkpoint; the rnn_cell default"))
    if "time_major" not in options:
        defaults.append((scope, "time_major", False, "not stored in a checkpoint; dynamic_rnn's default"))
    used = {n for c in cells for n in c.names.values()}
    embedding = _embedding(entries, read, options.get("embedding"), layers[0].input_size, used, where)
    last = layers[-1]
    heads = _heads(entries, read, options.get("head"), options.get("head_activation"),
                   last.n_dirs * last.output_size, used, where, defaults)
    head_on = options.get("head_on", "outputs")
    if head_on not in HEAD_ON:
        raise ValueError(f"{where}: head_on {head_on!r}; expected one of {HEAD_ON}")
    if heads and "head_on" not in options:
        defaults.append((heads[0].name, "head_on", "outputs", "not stored in a checkpoint; the head reads every "
                                                              "step's output (head_on='state': the final h)"))
    _check_all_used(entries, used, options.get("ignore") or (), where)
    for what, option, value, why in defaults:
        assumed(f"{where}: scope {what!r}", option, value, why)
    variables = [(n, e.dtype, list(e.shape), "used" if n in used else "ignored: optimizer or step counter"
                  if _IGNORED.search(n) else "ignored: ignore option") for n, e in entries.items()]
    graph = TF1Graph(layers, time_major=bool(options.get("time_major", False)), embedding=embedding, heads=heads,
                     name=scope, source=where, defaults=defaults, head_on_state=head_on == "state",
                     variables=variables)
    return Model(graph, source=prefix)


def _listing(entries, names=None, limit=30) -> str:
    names = sorted(entries) if names is None else names
    shown = ", ".join(f"{n} {list(entries[n].shape)}" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _choose_root(found: dict, wanted, entries, where) -> str:
    names = {r.rstrip("/") or "<top>": r for r in found}
    if wanted is not None:
        if str(wanted) not in names:
            raise FormatError(f"{where}: no recurrent cells under scope {wanted!r}; stacks found: "
                              f"{sorted(names) or 'none'}")
        return names[str(wanted)]
    if not found:
        kept = [n for n in sorted(entries) if not _IGNORED.search(n)]
        raise FormatError(f"{where}: no TF1 rnn_cell variables (…/basic_lstm_cell/kernel, …/lstm_cell/kernel, "
                          f"…/gru_cell/gates/kernel, …/basic_rnn_cell/kernel) among the variables: "
                          f"{_listing(entries, kept)}")
    if len(found) > 1:
        raise FormatError(f"{where}: several recurrent stacks {sorted(names)}; choose one with rnn=<scope>")
    return next(iter(found))


def _embedding(entries, read, wanted, width, used, where):
    if wanted is None:
        cands = [n for n, e in entries.items() if n not in used and not _IGNORED.search(n) and len(e.shape) == 2
                 and "embedding" in n.rsplit("/", 1)[-1].lower() and e.shape[1] == width]
        if len(cands) != 1:
            return None
        wanted = cands[0]
    if wanted not in entries:
        raise FormatError(f"{where}: embedding={wanted!r} but the checkpoint has no such variable")
    table = read(wanted)
    if table.dtype.kind != "f" or table.ndim != 2 or table.shape[1] != width:
        raise FormatError(f"{where}: embedding variable {wanted} is {table.dtype} {list(table.shape)}; expected a "
                          f"float [vocab, {width}] table (the stack's input width)")
    used.add(wanted)
    return EmbeddingStage(table, name=wanted)


def _heads(entries, read, wanted, activations, width, used, where, defaults) -> list:
    if wanted is None:
        found = [(int(m.group("n") or 0), n[: -len("/kernel")]) for n in entries if (m := _DENSE.match(n))]
        scopes = [s for _, s in sorted(found)]
    else:
        scopes = [wanted] if isinstance(wanted, str) else list(wanted)
    if not scopes:
        return []
    if activations is None:
        activations = ["linear"] * len(scopes)
        defaults.append((", ".join(scopes), "head_activation", "linear", "not stored in a checkpoint; "
                                                                         "tf.layers.dense's activation=None"))
    elif isinstance(activations, str):
        activations = [activations] * len(scopes)
    if len(activations) != len(scopes):
        raise ValueError(f"{where}: head_activation has {len(activations)} entries for {len(scopes)} heads {scopes}")
    heads = []
    for scope, act in zip(scopes, activations):
        if act not in DENSE_ACTIVATIONS:
            raise ValueError(f"{where}: head_activation {act!r}; expected one of {DENSE_ACTIVATIONS}")
        kname, bname = f"{scope}/kernel", f"{scope}/bias"
        if kname not in entries:
            raise FormatError(f"{where}: head {scope!r} but the checkpoint has no variable {kname}")
        kernel = read(kname)
        if kernel.dtype.kind != "f" or kernel.ndim != 2 or kernel.shape[0] != width:
            raise FormatError(f"{where}: {kname} is {kernel.dtype} {list(kernel.shape)}; the dense head after "
                              f"{'the stack' if not heads else heads[-1].name} needs a float [{width}, units] kernel")
        bias = None
        if bname in entries:
            bias = read(bname)
            if bias.dtype.kind != "f" or bias.shape != (kernel.shape[1],):
                raise FormatError(f"{where}: {bname} is {bias.dtype} {list(bias.shape)}, expected "
                                  f"[{kernel.shape[1]}]")
            used.add(bname)
        used.add(kname)
        heads.append(DenseStage(kernel.T, bias, activation=act, name=scope))
        width = kernel.shape[1]
    return heads


def _check_all_used(entries, used, ignore, where):
    ignore = tuple(str(i) for i in ([ignore] if isinstance(ignore, str) else ignore))
    left = [n for n in sorted(entries) if n not in used and not _IGNORED.search(n) and not n.startswith(ignore)]
    if left:
        raise FormatError(f"{where}: {len(left)} variable(s) left unused: {_listing(entries, left, 20)}; attach them "
                          f"with embedding=NAME / head=SCOPE, or leave them out on purpose with ignore=[prefixes]")
