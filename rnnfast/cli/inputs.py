"""The inputs of run, verify and bench: arrays from a file, shapes / dtypes / ranges and constants from the command
line, and random values for the rest.

    --inputs X.npz|X.npy                   arrays from a file (`--input X.npz` still works)
    --input NAME=SHAPE[:DTYPE[:LOW..HIGH]] e.g. x=1x512, ids=4x20:int64:0..999, sr=:int64, state=2x1x128
    --value NAME=V                         a constant: every element is V (a scalar input is V), e.g. sr=16000

SHAPE is dims joined by x (1x512), `scalar` for a 0-d input, or empty to keep the declared shape (dynamic dims
guessed from --batch / --seq-len). DTYPE is one of DTYPES. LOW..HIGH bounds the random values: floats are uniform in
[LOW, HIGH), integers drawn from LOW to HIGH inclusive. Every mistake in these is a usage error (exit 2).
"""
from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..batching import BATCH_DIM
from .common import ONNX_DTYPES, CliError, feeds_text, read_inputs

DTYPES = ("float32", "float64", "float16", "int64", "int32", "int8", "uint8", "bool")
# Dynamic dims whose names say they are the sequence axis take --seq-len; others are guesses the error names.
SEQ_DIM = re.compile(r"(?i)^(seq.*|.*seq_?len.*|.*length.*|time.*|t|steps?|frames?|.*_seq|sequence.*|len)$")
_NAME = r"[^=\s]+"
_NUMBER = r"[-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|\.\d+(?:e[-+]?\d+)?|inf)"
_SPEC = re.compile(rf"^({_NAME})=(scalar|\d+(?:x\d+)*|)(?::([a-z0-9]*)(?::({_NUMBER})\.\.({_NUMBER}))?)?$",
                   re.IGNORECASE)
SPEC_HELP = ("NAME=SHAPE[:DTYPE[:LOW..HIGH]], e.g. x=1x512, ids=4x20:int64:0..999, sr=:int64 (SHAPE dims joined "
             "by x, `scalar`, or empty for the declared shape)")


@dataclass
class InputSpec:
    name: str
    shape: Optional[tuple]  # None: the declared shape, dynamic dims guessed
    dtype: Optional[str]
    low: Optional[float] = None
    high: Optional[float] = None


def input_arg(text: str):
    """An argparse `type` for --input: a path to a .npz/.npy file (no `=`, or one that exists) or an InputSpec."""
    if "=" not in text or (os.path.exists(text) and not _SPEC.match(text)):
        return text
    m = _SPEC.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is neither an existing .npz/.npy file nor {SPEC_HELP}")
    name, shape, dtype, low, high = m.groups()
    if dtype is not None and dtype != "" and dtype not in DTYPES:
        raise argparse.ArgumentTypeError(f"{text!r}: unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    dims = None if shape == "" else () if shape.lower() == "scalar" else tuple(int(d) for d in shape.split("x"))
    if dims and 0 in dims:
        raise argparse.ArgumentTypeError(f"{text!r}: dims must be >= 1, got {shape}")
    if low is not None:
        low, high = float(low), float(high)
        if dtype == "bool":
            raise argparse.ArgumentTypeError(f"{text!r}: a bool input takes no LOW..HIGH range")
        if not (np.isfinite(low) and np.isfinite(high)) or low > high or (low == high and _is_float(dtype)):
            raise argparse.ArgumentTypeError(f"{text!r}: expected finite LOW..HIGH with LOW < HIGH, got "
                                             f"{m.group(4)}..{m.group(5)}")
    return InputSpec(name, dims, dtype or None, low, high)


def value_arg(text: str):
    """An argparse `type` for --value NAME=V: (name, V as int, float or bool)."""
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=V (a number, true or false), e.g. sr=16000, got {text!r}")
    if value.lower() in ("true", "false"):
        return name, value.lower() == "true"
    try:
        return name, int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: {value!r} is not a number, true or false") from None
    if not np.isfinite(number):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a finite number")
    return name, number


def _is_float(dtype) -> bool:
    return dtype is None or dtype.startswith("float")


def add_input_arguments(parser, what="inputs"):
    parser.add_argument("--input", "-i", action="append", default=[], type=input_arg, metavar="SPEC|X.npz",
                        help=f"{SPEC_HELP}; repeatable. A .npz/.npy path here reads {what} from that file (as "
                             f"--inputs)")
    parser.add_argument("--inputs", metavar="X.npz|X.npy",
                        help="arrays from a file: a .npy feeds the first input; a .npz holds arrays named after the "
                             "inputs, or x0, x1, ... in input order")
    parser.add_argument("--value", action="append", default=[], type=value_arg, metavar="NAME=V",
                        help="a constant input, repeatable: every element is V (a scalar input is V itself), e.g. "
                             "--value sr=16000")


def _declared_dtype(info):
    if info.type == "tensor(bool)":
        return np.dtype(bool)
    if info.type in ONNX_DTYPES:
        return np.dtype(ONNX_DTYPES[info.type])
    if info.type.startswith("tensor(int") or info.type.startswith("tensor(uint"):
        return np.dtype(info.type[len("tensor("):-1])
    return np.dtype(np.int64)


def guessed_shape(info, seq_len: int, batch: int):
    """(shape, labels, unsure): dynamic dims get `batch` (batch-like names), `seq_len` (sequence-like names) or
    `seq_len` as a guess, labelled `name?` so an error can name it; an empty declared shape is a scalar."""
    shape, labels, unsure = [], [], False
    for i, d in enumerate(info.shape):
        if isinstance(d, int) and d > 0:
            shape.append(d)
            labels.append(str(d))
        elif isinstance(d, str) and BATCH_DIM.match(d):
            shape.append(batch)
            labels.append(d)
        elif isinstance(d, str) and SEQ_DIM.match(d):
            shape.append(seq_len)
            labels.append(d)
        else:
            shape.append(seq_len)
            labels.append(f"{d or f'dim{i}'}?")
            unsure = True
    return shape, labels, unsure


def _check_shape(info, spec: InputSpec):
    declared = list(info.shape)
    if not declared or spec.shape is None:
        return
    if len(spec.shape) != len(declared):
        raise CliError(f"--input {spec.name}={'x'.join(map(str, spec.shape)) or 'scalar'}: input {spec.name!r} has "
                       f"{len(declared)} dims {declared}, the shape given has {len(spec.shape)}")
    for i, (d, g) in enumerate(zip(declared, spec.shape)):
        if isinstance(d, int) and d > 0 and d != g:
            raise CliError(f"--input {spec.name}={'x'.join(map(str, spec.shape))}: dim {i} of input {spec.name!r} "
                           f"is {d} (declared {declared}), not {g}")


def float_ids_range(model, name: str, seq_len: int):
    """[low, high) for a float input the model uses as token ids (an ONNX Cast into a Gather on a table, a Keras
    model whose one input feeds an Embedding), or None: standard normal values there would index outside the
    vocabulary."""
    from .anatomy import _ir_int_range, int_input_range, source_framework

    framework = source_framework(model)
    g = model.graph
    if framework == "onnx" and getattr(g, "compiled", None) is not None:
        return _ir_int_range(g.compiled.graph, name, seq_len)
    if framework == "keras" and len(model.inputs) == 1:
        low, high = int_input_range(model, name, seq_len)
        return (low, high) if any(type(obj).__name__ == "Embedding" for _, obj in g.graph.order) else None
    return None


def _draw(model, info, shape, dtype, spec, rng, seq_len):
    from .anatomy import int_input_range

    if spec is not None and spec.low is not None:
        if dtype.kind == "f":
            return rng.uniform(spec.low, spec.high, shape).astype(dtype)
        low, high = int(np.ceil(spec.low)), int(np.floor(spec.high))
        if low > high:
            raise CliError(f"--input {info.name}: no {dtype} value lies in {spec.low:g}..{spec.high:g}")
        return rng.integers(low, high + 1, shape).astype(dtype)
    if dtype.kind == "f":
        ids = float_ids_range(model, info.name, seq_len) if info.type.startswith("tensor(float") else None
        if ids is not None:
            return rng.integers(ids[0], ids[1], shape).astype(dtype)
        return np.asarray(rng.standard_normal(shape), dtype)
    if dtype.kind == "b":
        return np.asarray(rng.random(shape) < 0.5)
    low, high = int_input_range(model, info.name, seq_len)
    return np.asarray(rng.integers(low, high, shape), dtype)


def fill_inputs(model, feeds: dict, specs: dict, values: dict, seq_len: int, batch: int, seed: int,
                only_given: bool = False) -> list:
    """Add to `feeds` every model input it lacks (with `only_given`, only those in specs / values): constants
    from values, random draws of the spec's or declared shape and dtype otherwise. Returns "input 'x' has dims
    [...]: give --input x=..." for each input whose dims were guessed."""
    rng = np.random.default_rng(seed)
    unsure = []
    for info in model.inputs:
        name = info.name
        if name in feeds or (only_given and name not in specs and name not in values):
            continue
        spec = specs.get(name)
        if spec is not None:
            _check_shape(info, spec)
        shape, labels, guess = guessed_shape(info, seq_len, batch)
        if spec is not None and spec.shape is not None:
            shape, guess = list(spec.shape), False
        dtype = np.dtype(spec.dtype) if spec is not None and spec.dtype else _declared_dtype(info)
        if name in values:
            feeds[name] = np.full(shape, values[name], dtype)
            continue
        if guess:
            dims = "x".join(str(d) if not label.endswith("?") else "N" for d, label in zip(shape, labels))
            unsure.append(f"input {name!r} has dims [{', '.join(labels)}] (guessed {'x'.join(map(str, shape))}): "
                          f"give --input {name}={dims}")
        feeds[name] = _draw(model, info, shape, dtype, spec, rng, seq_len)
    return unsure


def random_inputs(model, seq_len: int, batch: int, seed: int) -> dict:
    """Random feeds of the declared shapes and types: dynamic batch axes get `batch`, other dynamic axes
    `seq_len`; floats are standard normal (token ids where a float input indexes a table), integers valid token
    ids or lengths, booleans fair coins."""
    feeds = {}
    fill_inputs(model, feeds, {}, {}, seq_len, batch, seed)
    return feeds


@dataclass
class InputPlan:
    """What the command line says about the inputs, checked before the model is read."""
    file: Optional[str]
    specs: dict
    values: dict

    def given(self) -> bool:
        return bool(self.file or self.specs or self.values)


def input_plan(args) -> InputPlan:
    files = [a for a in args.input if isinstance(a, str)] + ([args.inputs] if args.inputs else [])
    if len(files) > 1:
        raise CliError(f"inputs from several files ({', '.join(files)}); give one .npz holding every array")
    specs, values = {}, {}
    for spec in (a for a in args.input if isinstance(a, InputSpec)):
        if spec.name in specs:
            raise CliError(f"--input {spec.name}=... given twice")
        specs[spec.name] = spec
    for name, value in args.value:
        if name in values:
            raise CliError(f"--value {name}=... given twice")
        values[name] = value
    return InputPlan(files[0] if files else None, specs, values)


def make_feeds(plan: InputPlan, model, seq_len: int, batch: int, seed: int):
    """(feeds, source text, unsure): arrays from the file, --input specs and --value constants, random values for
    the rest (with a file, inputs it leaves out stay out: optional h0 / c0)."""
    infos = [i.name for i in model.inputs]
    specs, values = plan.specs, plan.values
    for name in list(specs) + list(values):
        if name not in infos:
            raise CliError(f"--input/--value {name}: the model has no input {name!r}; its inputs are "
                           f"{', '.join(infos)}")
    feeds = read_inputs(plan.file, model) if plan.file else {}
    from_file = set(feeds)
    for name in from_file & (set(specs) | set(values)):
        raise CliError(f"input {name!r} is both in {plan.file} and given by --input/--value; give it once")
    unsure = fill_inputs(model, feeds, specs, values, seq_len, batch, seed, only_given=bool(plan.file))
    sources = [f"from {plan.file}"] if plan.file else []
    if any(n not in values and n not in from_file for n in feeds):
        sources.append(f"random, seed {seed}")
    if values:
        sources.append(f"constant {', '.join(values)}")
    return feeds, "; ".join(sources), unsure


def run_checked(model, feeds: dict, unsure: list, source: str):
    """model.run(feeds); a shape error names the dims that were guessed and the --input that sets them."""
    try:
        return model.run(feeds)
    except ValueError as e:
        hint = "; ".join(unsure) if unsure else "set --seq-len / --batch, or give --input NAME=SHAPE"
        raise CliError(f"{e} (on input {source}: {feeds_text(feeds)}; {hint})") from None
