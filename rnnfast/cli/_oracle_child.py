"""Run a model file in its own framework (PyTorch or Keras) for `rnnfast verify --against torch|keras`.

This file runs as a script in a separate interpreter (`--python`, RNNFAST_ORACLE_PYTHON, else the current one) and
imports only numpy and the framework, never rnnfast: the framework must stay out of rnnfast's process and out of its
dependencies, and the interpreter that has it may not have rnnfast at all. The parent (rnnfast/cli/oracles.py)
writes job.json and inputs.npz into a temporary folder; this script writes outputs.npz (out0, out1, ... in the
order the framework returns them, nested tuples flattened) and result.json (how the model was loaded and run).
Exit codes: 0 done, 3 the framework is not installed here, 4 the framework could not load or run the file; the
reason is the last line on stderr.
"""
import json
import os
import sys
import zipfile

EXIT_MISSING, EXIT_FAILED = 3, 4


class Failed(Exception):
    """The framework could not load or run the file: reported by the parent as a one-line error."""


def _flatten(obj, out):
    if isinstance(obj, (tuple, list)):
        for item in obj:
            _flatten(item, out)
    elif isinstance(obj, dict):
        for item in obj.values():
            _flatten(item, out)
    elif obj is not None:
        out.append(obj)
    return out


def _import(name):
    try:
        return __import__(name)
    except ImportError as e:
        if e.name == name:
            print(f"{name} cannot be imported by {sys.executable}: {e}", file=sys.stderr)
            sys.exit(EXIT_MISSING)
        raise Failed(f"{name} is installed for {sys.executable} but its import fails: {e}") from None


def _torch_state_dict(torch, job):
    """The file's tensors as torch reads them (never through rnnfast), from the entry rnnfast found them in."""
    path, fmt = job["file"], job["format"]
    if fmt == "safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as e:
            raise Failed(f"reading a .safetensors file with torch needs the safetensors package ({e})") from None
        return load_file(path), "safetensors.torch.load_file"
    obj = torch.load(path, map_location="cpu", weights_only=True)
    key = job.get("state_dict_key")
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            raise Failed(f"torch.load gives no entry {key!r} in {path}")
        obj = obj[key]
    if not isinstance(obj, dict):
        raise Failed(f"torch.load(weights_only=True) gives a {type(obj).__name__}, not a state_dict")
    return obj, "torch.load(weights_only=True)"


def _dot(prefix):
    return prefix + "." if prefix and not prefix.endswith(".") else prefix


def _rebuilt(torch, job):
    """nn.Embedding -> nn.LSTM/GRU/RNN -> nn.Linear built from rnnfast's view of the architecture, loaded with
    load_state_dict(strict=True) from the tensors torch itself read out of the file."""
    nn = torch.nn
    tensors, how = _torch_state_dict(torch, job)
    arch = job["arch"]
    rnn = arch["rnn"]
    kinds = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
    prefix = _dot(rnn["prefix"])
    if rnn.get("cell_module"):  # nn.LSTMCell / GRUCell / RNNCell: the keys have no layer suffix
        kwargs = dict(input_size=rnn["input_size"], hidden_size=rnn["hidden_size"], bias=f"{prefix}bias_ih" in tensors)
        if rnn["cell"] == "rnn":
            kwargs["nonlinearity"] = rnn["nonlinearity"]
        modules = {"rnn": getattr(nn, rnn["cell_module"])(**kwargs)}
    else:
        kwargs = dict(input_size=rnn["input_size"], hidden_size=rnn["hidden_size"], num_layers=rnn["num_layers"],
                      bias=f"{prefix}bias_ih_l0" in tensors, batch_first=rnn["batch_first"],
                      bidirectional=rnn["bidirectional"])
        if rnn["cell"] == "lstm" and rnn["proj_size"]:
            kwargs["proj_size"] = rnn["proj_size"]
        if rnn["cell"] == "rnn":
            kwargs["nonlinearity"] = rnn["nonlinearity"]
        modules = {"rnn": kinds[rnn["cell"]](**kwargs)}
    if arch.get("embedding"):
        modules["embedding"] = nn.Embedding(*arch["embedding"]["shape"])
    if arch.get("head"):
        out_f, in_f = arch["head"]["shape"]
        modules["head"] = nn.Linear(in_f, out_f, bias=arch["head"]["bias"])
    for role, module in modules.items():
        prefix = _dot(arch[role]["prefix"])
        part = {k[len(prefix):]: v.float() for k, v in tensors.items() if k.startswith(prefix)
                and "." not in k[len(prefix):]}
        try:
            module.load_state_dict(part, strict=True)
        except RuntimeError as e:
            raise Failed(f"load_state_dict into {module} from the tensors under {prefix or 'the top'!r}: "
                         f"{' '.join(str(e).split())}") from None
        module.eval()
    desc = " -> ".join(str(m).replace("\n", "") for m in modules.values())
    return modules, f"{how} into {desc}"


def _torch(job, feeds, names):
    torch = _import("torch")
    path = job["file"]
    is_script = False
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            is_script = any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())
    tensors = {n: torch.from_numpy(feeds[n]) for n in names}
    if job["format"] in ("torch-zip", "torch-legacy") and is_script:
        module, how = torch.jit.load(path, map_location="cpu"), "torch.jit.load, the file's own forward"
        independent = True
    elif job["format"] in ("torch-zip", "torch-legacy") and not _is_state_dict(torch, path):
        # A whole pickled module: torch rebuilds the class, which runs the pickle's code as torch.load does.
        try:
            module = torch.load(path, map_location="cpu", weights_only=False)
        except (AttributeError, ImportError) as e:
            raise Failed(f"torch cannot rebuild the pickled module: its class must be importable by "
                         f"{sys.executable} (a class defined in a script's __main__ never is; put its module on "
                         f"PYTHONPATH): {' '.join(str(e).split())}") from None
        how, independent = f"torch.load(weights_only=False) of a whole {type(module).__name__} module", True
    else:
        modules, how = _rebuilt(torch, job)
        rnn = job["arch"]["rnn"]
        if rnn.get("loop"):
            how += f", applied to every step in a loop (batch_first={rnn['batch_first']})"
        return (_run_rebuilt(torch, modules, tensors, names, rnn), f"torch {torch.__version__}: {how}", False,
                names)
    module.eval()
    kind = getattr(module, "original_name", type(module).__name__)
    cell = job.get("arch", {}).get("rnn", {})
    if kind in CELLS and cell.get("loop"):  # a whole cell module read with cell_loop: its forward at each step
        outs = _run_rebuilt(torch, {"rnn": module}, tensors, names, cell)
        how = f"torch {torch.__version__}: {how}, applied to every step in a loop"
        return outs, how, True, names
    with torch.no_grad():
        forward, n = _forward(module, len(names))
        if kind in CELLS and n > 1:  # forward(input, hx), hx a tuple (h0, c0) for LSTMCell
            states = [tensors[k] for k in names[1:]]
            used = names
            out = forward(tensors[names[0]], None if not states else tuple(states) if kind == "LSTMCell"
                          else states[0])
        elif kind in ("LSTM", "GRU", "RNN") and n > 1:  # forward(input, hx), hx a tuple (h0, c0) for LSTM
            states = [tensors[k] for k in names[1:]]
            used = names
            out = forward(tensors[names[0]], None if not states else tuple(states) if kind == "LSTM" else states[0])
        else:  # a model of its own (or a traced forward(input)): its positional arguments, in rnnfast's input order
            used = names[:n]
            out = forward(*[tensors[k] for k in used])
    outs = [t.detach().float().numpy() for t in _flatten(out, [])]
    return outs, f"torch {torch.__version__}: {how}", independent, used


def _is_state_dict(torch, path):
    import pickle

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch refuses a pickle of classes outside its allow-list: a whole module
        return False
    return isinstance(obj, dict)


def _forward(module, most):
    """(forward, how many of the inputs it takes positionally). A scripted nn.LSTM/GRU/RNN saved on its own has no
    `forward`, only its overloads forward__0 (tensor input) and forward__1 (PackedSequence)."""
    import inspect

    forward = getattr(module, "forward", None) if hasattr(module, "forward") else None
    if forward is None and hasattr(module, "_c") and "forward__0" in module._c._method_names():
        forward = getattr(module, "forward__0")
    if forward is None:
        raise Failed(f"the module {type(module).__name__} has no forward method torch can call")
    schema = getattr(forward, "schema", None)
    if schema is not None:
        params = [a for a in schema.arguments if a.name != "self"]
        return forward, min(most, len(params))
    try:
        params = list(inspect.signature(forward).parameters.values())
    except (TypeError, ValueError):
        return forward, most
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return forward, min(most, len(positional))


def _run_rebuilt(torch, modules, tensors, names, arch):
    x = tensors[names[0]]
    states = [tensors[n] for n in names[1:]]
    rnn = modules["rnn"]
    lstm = isinstance(rnn, (torch.nn.LSTM, torch.nn.LSTMCell))
    with torch.no_grad():
        if "embedding" in modules:
            x = modules["embedding"](x.long())
        hx = None if not states else (tuple(states) if lstm else states[0])
        if not isinstance(rnn, CELL_TYPES(torch)):
            out = rnn(x, hx)
        elif not arch.get("loop"):  # one step: cell(input, hx) -> h1, or (h1, c1)
            out = (rnn(x, hx),)
        else:  # the cell at every step, as rnnfast's cell_loop reads it: nn.LSTM's inputs and outputs, one layer
            out = _cell_loop(torch, rnn, x, states, arch["batch_first"], lstm)
        y, rest = out[0], out[1:]
        if "head" in modules:
            y = modules["head"](y)
    return [t.detach().float().numpy() for t in _flatten((y, rest), [])]


CELLS = ("LSTMCell", "GRUCell", "RNNCell")


def CELL_TYPES(torch):
    return tuple(getattr(torch.nn, c) for c in CELLS)


def _cell_loop(torch, cell, x, states, batch_first, lstm):
    """output [seq, batch, hidden] (batch_first: [batch, seq, hidden]), h_n (and c_n) [1, batch, hidden] of the
    cell applied at every step from h0 (c0) [1, batch, hidden] (zeros when not given); an unbatched input too."""
    batched = x.dim() == 3
    if not batched:
        x = x.unsqueeze(0 if batch_first else 1)
        states = [s.unsqueeze(1) for s in states]
    if batch_first:
        x = x.transpose(0, 1)
    h = states[0][0] if states else torch.zeros(x.shape[1], cell.hidden_size)
    c = (states[1][0] if len(states) > 1 else torch.zeros_like(h)) if lstm else None
    ys = []
    for t in range(x.shape[0]):
        if lstm:
            h, c = cell(x[t], (h, c))
        else:
            h = cell(x[t], h)
        ys.append(h)
    y = torch.stack(ys)
    if batch_first:
        y = y.transpose(0, 1)
    finals = [h[None]] + ([c[None]] if lstm else [])
    if not batched:
        y = y.squeeze(0 if batch_first else 1)
        finals = [f[:, 0] for f in finals]
    return (y, *finals)


def _keras(job, feeds, names):
    keras = _import("keras")

    path = job["file"]
    try:
        if job.get("config"):
            cfg = job["config"]
            if cfg.endswith((".keras", ".h5")):
                model = keras.saving.load_model(cfg, compile=False)
            else:
                with open(cfg) as f:
                    model = keras.models.model_from_json(f.read())
            model.load_weights(path)
            how = f"keras {keras.__version__}: the architecture of {cfg}, load_weights of the file"
        else:
            model = keras.saving.load_model(path, compile=False)
            how = f"keras {keras.__version__} ({keras.backend.backend()} backend): keras.saving.load_model"
    except Exception as e:  # Keras raises many types for files it cannot read
        raise Failed(f"keras could not load {path}: {' '.join(str(e).split())[:400]}") from None
    arrays = [feeds[n] for n in names]
    keras_names = [getattr(t, "name", "").split(":")[0] for t in getattr(model, "inputs", None) or []]
    if sorted(keras_names) == sorted(names):
        arrays = [feeds[n] for n in keras_names]
    out = model(arrays[0] if len(arrays) == 1 else arrays, training=False)
    outs = [keras.ops.convert_to_numpy(t) for t in _flatten(out, [])]
    return outs, f"{how}, called on the inputs", True, names


def main():
    import numpy as np

    folder = sys.argv[1]
    with open(os.path.join(folder, "job.json")) as f:
        job = json.load(f)
    with np.load(os.path.join(folder, "inputs.npz"), allow_pickle=False) as data:
        feeds = {k: data[k] for k in data.files}
    names = job["names"]
    try:
        outs, how, independent, used = (_torch if job["framework"] == "torch" else _keras)(job, feeds, names)
    except Failed as e:
        print(str(e), file=sys.stderr)
        return EXIT_FAILED
    except Exception as e:  # anything the framework raises while loading or running: one line for the parent
        print(f"{type(e).__name__}: {' '.join(str(e).split())[:400]}", file=sys.stderr)
        return EXIT_FAILED
    np.savez(os.path.join(folder, "outputs.npz"), **{f"out{i}": np.asarray(o) for i, o in enumerate(outs)})
    with open(os.path.join(folder, "result.json"), "w") as f:
        json.dump({"how": how, "independent": independent, "used": list(used)}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
