"""What several subcommands share: loading a model from the command line's options, reading or making inputs,
and the one error type that becomes a one-line message with exit code 2."""
from __future__ import annotations

import argparse
import json
import os
import re

import numpy as np

from .codes import EXIT_MISMATCH, EXIT_OK


class CliError(Exception):
    """Bad usage or a bad file: printed as one line on stderr, exit code 2."""


def _number(parse, low, strict, what):
    """An argparse `type` that refuses numbers below `low` (or equal to it when `strict`): argparse then prints a
    usage error and exits 2 before any work, instead of a zero batch reaching a runtime that aborts on it."""
    def check(text):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value != value or value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value
    check.__name__ = what
    return check


positive_int = _number(int, 1, False, "an integer >= 1")
non_negative_int = _number(int, 0, False, "an integer >= 0")
positive_float = _number(float, 0.0, True, "a number > 0")
non_negative_float = _number(float, 0.0, False, "a number >= 0")


# numpy dtypes of the ONNX tensor types the commands feed (onnxruntime takes no implicit casts).
ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
               "tensor(int64)": np.int64, "tensor(int32)": np.int32}


def add_model_arguments(parser, file_help="model file: .onnx, .h5/.keras/.weights.h5, .pt/.pth, .safetensors, "
                                          ".npz/.pkl of PyTorch weights, .rnnf, or a TensorFlow 1.x checkpoint's "
                                          "prefix (model.ckpt)",
                        metavar="FILE"):
    parser.add_argument("file", metavar=metavar, help=file_help)
    parser.add_argument("--config", metavar="PATH",
                        help="architecture for a Keras weights-only file (.weights.h5 or an HDF5 file without "
                             "model_config): a .json, .keras or full-model .h5 file")
    parser.add_argument("--safe", action="store_true",
                        help="parse an HDF5 file (.h5/.keras) in a child process with a time and memory limit: for "
                             "files from untrusted sources (libhdf5 can crash or loop on a damaged file)")
    parser.add_argument("--max-memory", metavar="SIZE",
                        help="memory budget for the load and each run, e.g. 2G (default RNNFAST_MAX_MEMORY, else "
                             "the smaller of 4 GiB and half the RAM)")
    parser.add_argument("-O", "--option", metavar="KEY=VALUE", action="append", default=[],
                        help="a load option of the importer, repeatable; VALUE is read as JSON when it parses "
                             "(true, 3, [\"a.\"]), else as a string. PyTorch files: rnn=PREFIX, embedding=PREFIX, "
                             "head=PREFIX, batch_first=true, nonlinearity=relu, cell_loop=true (an nn.*Cell's "
                             "weights run over a sequence), ignore=[...], state_dict_key=KEY, allow_classes=[...] "
                             "(see rnnfast/importers/torch/__init__.py). TensorFlow checkpoints: "
                             "rnn=SCOPE, forget_bias=1.0, activation=tanh, time_major=true, embedding=NAME, "
                             "head=SCOPE, head_activation=relu, ignore=[...] (see rnnfast/importers/tf/__init__.py)")
    parser.add_argument("--rename", metavar="OLD=NEW", action="append", default=[],
                        help="PyTorch weights under a project's own names: rename tensors before the modules are "
                             "recognised, repeatable (--rename enc_w_ih=weight_ih_l0, or a prefix: --rename "
                             "enc_=lstm.); OLD replaces the start of a name, the longest OLD wins, and an OLD that "
                             "matches no tensor is an error")
    parser.add_argument("--strict", action="store_true",
                        help="refuse a file that leaves out something that changes the result (PyTorch batch_first "
                             "or nonlinearity, an old Keras GRU's reset_after, a TF checkpoint's forget_bias...) "
                             "instead of assuming the framework's default with a warning")


def load_options(args) -> dict:
    options = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--option {item!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    if args.config is not None:
        options["config"] = args.config
    if getattr(args, "safe", False):
        options["safe"] = True
    if getattr(args, "max_memory", None) is not None:
        options["max_memory"] = args.max_memory
    if getattr(args, "strict", False):
        options["strict"] = True
    if getattr(args, "rename", None):
        for item in args.rename:
            old, sep, new = item.partition("=")
            if not sep or not old or not new:
                raise CliError(f"--rename {item!r}: expected OLD=NEW")
        if "rename" in options:
            raise CliError("--rename and -O rename=... both given; use one")
        options["rename"] = list(args.rename)
    return options


def detect_format(path: str) -> str:
    """The format name rnnfast.formats gives the file's content (onnx, keras-h5, keras-zip, torch-zip, ...), or
    tf-checkpoint for a path naming a TensorFlow checkpoint."""
    from .. import formats

    if formats.checkpoint_prefix(path) is not None:
        return "tf-checkpoint"
    data, name = formats.read_source(path)
    return formats.detect(data, name)


def load_model(args, n_threads=None):
    """(Model, format name) for the FILE and load options on the command line."""
    import rnnfast

    from .. import formats

    if not os.path.exists(args.file) and formats.checkpoint_prefix(args.file) is None:
        raise CliError(f"{args.file}: no such file (nor a TensorFlow checkpoint prefix with {args.file}.index)")
    kind = detect_format(args.file)
    options = load_options(args)
    if n_threads:
        options.setdefault("n_threads", n_threads)
    try:
        return rnnfast.load(args.file, **options), kind
    except TypeError as e:  # an option the importer does not take
        raise CliError(f"{args.file}: {e}") from None
    except rnnfast.FormatError as e:
        if kind == "keras-h5" and args.config is None and "config=" in str(e):
            raise CliError(f"{e} (on the command line: --config PATH)") from None
        raise


def feed_names(model) -> list:
    return [i.name for i in model.inputs]


def read_inputs(path: str, model) -> dict:
    """Inputs from a .npy (the model's first input) or .npz (arrays named after the inputs, or x0, x1, ... in
    input order)."""
    names = feed_names(model)
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise CliError(f"{path}: cannot read: {e.strerror or e}") from None
    if magic != b"\x93NUMPY" and not magic.startswith(b"PK"):
        raise CliError(f"{path}: not a .npy or .npz file (no numpy or zip signature)")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise CliError(f"{path}: not a .npy or .npz file numpy can read: {e}") from None
    if isinstance(data, np.ndarray):
        return {names[0]: data}
    with data:
        keys = list(data.keys())
        feeds = {}
        for k in keys:
            if k in names:
                feeds[k] = data[k]
            elif re.fullmatch(r"x\d+", k) and int(k[1:]) < len(names):
                feeds[names[int(k[1:])]] = data[k]
            else:
                raise CliError(f"{path}: array {k!r} is neither an input of the model {names} nor x0..x"
                               f"{len(names) - 1}")
    if not feeds:
        raise CliError(f"{path}: holds no arrays")
    return feeds


def feeds_text(feeds: dict) -> str:
    return ", ".join(f"{k} {v.dtype} {list(v.shape)}" for k, v in feeds.items())


def to_json(obj) -> str:
    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        return str(o)

    return json.dumps(obj, indent=2, default=default)


def inputs_info(feeds: dict) -> dict:
    """The feeds' dtypes and shapes, for a JSON report."""
    return {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in feeds.items()}


def report(args, info: dict, print_text) -> int:
    """Print a checking command's result (`info` without its private "_feeds") as JSON or through
    print_text(info, feeds); the exit code says whether every check passed."""
    feeds = info.pop("_feeds")
    if args.json:
        print(to_json(info))
    else:
        print_text(info, feeds)
    return EXIT_OK if info["ok"] else EXIT_MISMATCH


def executor_info(model) -> dict:
    """Which executor runs the model: the C graph executor (its node count per op), or node by node, and why."""
    compiled = getattr(model.graph, "compiled", None)
    if compiled is None:
        why = getattr(model.graph, "unfit_reason", None)
        return {"executor": getattr(model.graph, "fallback_executor", "node by node") if why else "per layer",
                "why": why or f"{type(model.graph).__name__} models run layer by layer"}
    from ..graph.compile import OP_NAMES

    ops = {}
    for node in compiled.desc["nodes"]:
        ops[OP_NAMES[node[0]]] = ops.get(OP_NAMES[node[0]], 0) + 1
    return {"executor": "C graph", "c_nodes": len(compiled.desc["nodes"]), "ops": ops,
            "outside_c": [host.where for host in compiled.desc["hosts"]]}


def executor_line(info: dict) -> str:
    if info["executor"] == "C graph":
        ops = ", ".join(f"{k.lower()} x{v}" for k, v in sorted(info["ops"].items()) if k != "HOST")
        line = f"executor: C graph, one C call per run ({info['c_nodes']} C nodes: {ops})"
        if info["outside_c"]:
            line += ("; outside C, through onnx.reference between two parts of the call: "
                     + ", ".join(info["outside_c"]))
        return line
    return f"executor: {info['executor']} in Python ({info['why']})"
