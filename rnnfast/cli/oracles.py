"""What `rnnfast verify --against` compares with: the float64 reference, onnxruntime, and the source framework
(PyTorch, Keras) run in a subprocess.

The framework is never imported here nor made a dependency: rnnfast/cli/_oracle_child.py runs under `--python`
(else RNNFAST_ORACLE_PYTHON, else this interpreter), reads the file with the framework's own loader, and exchanges
arrays through .npz files in a temporary folder. A TorchScript file, a whole pickled module or a Keras model is an
independent check of rnnfast's reading; a state_dict stores no architecture, so the modules are built from
rnnfast's reading of the settings and the check covers the weights' numerics, not those settings (the report says
which).
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from .common import CliError

ORACLES = ("reference", "onnxruntime", "torch", "keras")
DEFAULT_ORACLES = ("reference", "onnxruntime")
FRAMEWORK_FORMATS = {"torch": ("torch-zip", "torch-legacy", "safetensors"), "keras": ("keras-h5", "keras-zip")}
INSTALL = {"torch": "pip install torch", "keras": "pip install keras tensorflow",
           "onnxruntime": "pip install onnxruntime"}
PYTHON_ENV = "RNNFAST_ORACLE_PYTHON"
_CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_oracle_child.py")
_CHILD_MISSING, _CHILD_FAILED = 3, 4  # the child's exit codes (see _oracle_child.py)


def oracle_list(text: str) -> list:
    """An argparse `type` for --against: one name or a comma list of ORACLES."""
    names = [n.strip() for n in text.split(",")]
    bad = [n for n in names if n not in ORACLES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown oracle {', '.join(map(repr, bad)) or repr(text)}; expected "
                                         f"some of {', '.join(ORACLES)} (repeat --against or separate by commas)")
    return names


def wanted_oracles(against) -> tuple:
    """The oracles asked for (each once, in the order given), or the default ones; explicit says whether asked."""
    if not against:
        return DEFAULT_ORACLES, False
    names = []
    for group in against:
        names += [n for n in group if n not in names]
    return tuple(names), True


def oracle_python(args) -> str:
    python = getattr(args, "python", None) or os.environ.get(PYTHON_ENV) or sys.executable
    where = "--python" if getattr(args, "python", None) else (PYTHON_ENV if os.environ.get(PYTHON_ENV) else None)
    if where and not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise CliError(f"{where} {python}: not an executable file; give the path of a Python interpreter (e.g. "
                       f"/path/to/venv/bin/python) that has the framework installed")
    return python


def check_installed(name: str, python: str):
    """Refuse before any work when `python` cannot find the framework (find_spec: nothing is imported)."""
    probe = f"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec({name!r}) else {_CHILD_MISSING})"
    try:
        done = subprocess.run([python, "-c", probe], capture_output=True, text=True)
    except OSError as e:
        raise CliError(f"--against {name}: cannot start {python}: {e.strerror or e}") from None
    if done.returncode == _CHILD_MISSING:
        raise CliError(_missing(name, python, "no module named " + repr(name)))
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise CliError(f"--against {name}: {python} does not run: {last}")


def _missing(name: str, python: str, why: str) -> str:
    return (f"--against {name}: {name} is not installed for {python} ({why}); install it there ({INSTALL[name]}) "
            f"or give --python PATH (or {PYTHON_ENV}) naming an interpreter that has it")


def check_applicable(name: str, kind: str, path: str):
    formats = FRAMEWORK_FORMATS.get(name)
    if formats is not None and kind not in formats:
        readers = [n for n, f in FRAMEWORK_FORMATS.items() if kind in f]
        hint = (f"; this file's framework is {readers[0]} (--against {readers[0]})" if readers else
                "; --against reference checks it without the framework")
        raise CliError(f"--against {name}: {path} is a {kind} file, which {name} does not load (it reads "
                       f"{', '.join(formats)} files){hint}")


def _state_dict_key(source: str):
    """The checkpoint entry the torch importer found the weights in: its source ends with ['key']."""
    m = re.search(r"\[('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\]$", source or "")
    return ast.literal_eval(m.group(1)) if m else None


def torch_architecture(model) -> dict:
    """rnnfast's reading of a PyTorch state_dict's modules, for the child to build them with torch."""
    g = model.graph
    layers = getattr(g, "layers", None)
    if getattr(g, "framework", None) != "torch" or not layers:
        raise CliError(f"--against torch: rnnfast did not read this file as a PyTorch recurrent model "
                       f"({type(g).__name__}); nothing to rebuild in torch")
    first = layers[0]
    acts = first.activations[0] if first.activations else ()
    arch = {"rnn": {"prefix": g.name, "cell": first.cell, "input_size": first.input_size,
                    "hidden_size": first.hidden_size, "num_layers": len(layers), "proj_size": first.proj_size,
                    "bidirectional": first.n_dirs == 2, "batch_first": bool(g.batch_first),
                    "nonlinearity": "relu" if acts and acts[0].name == "Relu" else "tanh"}}
    cell = getattr(g, "cell_module", None)
    if cell is not None:  # nn.LSTMCell/GRUCell/RNNCell: one step, or (cell_loop) the cell over every step
        arch["rnn"]["cell_module"] = cell.split(".")[-1]
        arch["rnn"]["loop"] = bool(getattr(g, "cell_loop", False))
    if g.embedding is not None:
        arch["embedding"] = {"prefix": g.embedding.name, "shape": list(g.embedding.weight.shape)}
    if g.head is not None:
        arch["head"] = {"prefix": g.head.name, "shape": list(g.head.weight.shape), "bias": g.head.bias is not None}
    return arch


def run_framework(name: str, args, model, kind: str, feeds: dict, python: str) -> dict:
    """Run the file in `name` (torch or keras) under `python`: {"outputs": [...], "how": str, "independent":
    bool, "used": input names the framework's call took}."""
    job = {"framework": name, "file": os.path.abspath(args.file), "format": kind, "names": list(feeds)}
    if name == "torch":
        job["arch"] = torch_architecture(model)
        job["state_dict_key"] = _state_dict_key(getattr(model.graph, "source", ""))
    if name == "keras" and getattr(args, "config", None):
        job["config"] = os.path.abspath(args.config)
    with tempfile.TemporaryDirectory(prefix="rnnfast-oracle-") as tmp:
        with open(os.path.join(tmp, "job.json"), "w") as f:
            json.dump(job, f)
        np.savez(os.path.join(tmp, "inputs.npz"), **feeds)
        # A copy beside the job: run from rnnfast/cli/, the script's folder would lead sys.path and its trace.py
        # would hide the standard library's module of that name from the framework.
        script = shutil.copy(_CHILD, os.path.join(tmp, "rnnfast_oracle.py"))
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
        try:
            done = subprocess.run([python, script, tmp], capture_output=True, text=True, cwd=tmp, env=env)
        except OSError as e:
            raise CliError(f"--against {name}: cannot start {python}: {e.strerror or e}") from None
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        if done.returncode == _CHILD_MISSING:
            raise CliError(_missing(name, python, last))
        if done.returncode != 0:
            why = last if done.returncode == _CHILD_FAILED else f"{python} ended with code {done.returncode}: {last}"
            raise CliError(f"{args.file}: --against {name}: {name} could not load or run it: {why}")
        with open(os.path.join(tmp, "result.json")) as f:
            result = json.load(f)
        with np.load(os.path.join(tmp, "outputs.npz"), allow_pickle=False) as data:
            result["outputs"] = [data[f"out{i}"] for i in range(len(data.files))]
    return result
