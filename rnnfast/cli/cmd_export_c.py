"""`rnnfast export-c FILE -o DIR`: the model as C99 source with static weights: a chain (rnnfast/exporters/c.py), or
with --dim the whole graph (rnnfast/exporters/c_graph.py)."""
from __future__ import annotations

import os

from ..errors import FormatError
from .codes import EXIT_CODES_NO_CHECK_HELP, EXIT_OK
from .common import add_model_arguments, load_model


def add_parser(sub):
    p = sub.add_parser(
        "export-c", help="write the model as C99 source with static weights, for embedded builds",
        description="Load FILE, convert it to a chain of layers (an optional embedding, recurrent stacks, dense "
                    "heads; a model that is not one is refused, naming the layer or node) and write DIR/PREFIX.h, "
                    "DIR/PREFIX.c (weights as static const arrays, a state struct, PREFIX_init/_reset/_step/_run; no "
                    "malloc, no global mutable state) and DIR/PREFIX_test.c, a program that runs embedded inputs and "
                    "exits non-zero when its outputs differ from rnnfast's beyond the tolerance it states. Build it "
                    "with e.g. `gcc -std=c99 -O2 PREFIX.c PREFIX_test.c -lm`. With --dim (or --graph), the whole "
                    "graph instead, any model the C executor runs (convolutions, If, several inputs and outputs, "
                    "state loops): DIR/PREFIX.h, DIR/PREFIX.c, DIR/PREFIX_test.c and DIR/rnnf_runtime/ (rnnfast's "
                    "own executor and kernels), for one shape fixed by the --dim sizes. docs/export-c.md is the user "
                    "guide.",
        epilog=EXIT_CODES_NO_CHECK_HELP)
    add_model_arguments(p)
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output directory (made if missing)")
    p.add_argument("--prefix", default="model", help="C prefix of the file, type and function names (default: model)")
    p.add_argument("--quantize", choices=["int8", "fp16"], default=None,
                   help="store the recurrent weights (w_ih, w_hh, w_hr) as int8 with a symmetric scale per output "
                        "row, or fp16, as Model.quantize does (everything else stays float32); compute stays "
                        "float32")
    p.add_argument("--quantize-scope", choices=["recurrent", "all"], default="recurrent",
                   help="with --quantize, whole graph: 'all' also stores the MatMul, Gemm and Conv weights quantized "
                        "(Model.quantize(scope='all')); refused by node where the exported code has no kernel "
                        "that reads them")
    p.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE",
                   help="export the whole graph for this size of a symbolic input dimension (repeat for each: "
                        "--dim batch=1 --dim chunk=512)")
    p.add_argument("--graph", action="store_true", help="export the whole graph (implied by --dim)")
    p.add_argument("--sequence-lens", action="store_true",
                   help="whole graph: with the run option sequence lengths (TF 1.x sequence_length, PyTorch packed "
                        "sequences) as an int32 [batch] input, so rows may end early")
    p.add_argument("--state", action="append", default=[], metavar="INPUT=OUTPUT",
                   help="whole graph: a state loop for PREFIX_step (default: the pairs found by name and shape)")
    return p


def _pairs(values, what):
    out = {}
    for v in values:
        name, sep, value = v.rpartition("=")
        if not sep or not name or not value:
            raise ValueError(f"--{what} {v!r}: expected NAME=VALUE")
        out[name] = value
    return out


def _main_graph(args, model=None) -> int:
    from ..exporters.c_graph import export_c_graph

    dims = {}
    for name, value in _pairs(args.dim, "dim").items():
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"--dim {name}={value}: the size must be an integer >= 1")
        dims[name] = int(value)
    if model is None:
        model, _ = load_model(args)
    if args.quantize:  # the rule of Model.quantize (rnnfast/quantize.py): the executor's own quantized kernels
        model = model.quantize(args.quantize, args.quantize_scope)
    states = _pairs(args.state, "state") if args.state else None
    written = export_c_graph(model, args.out, prefix=args.prefix, dims=dims, states=states, where=args.file,
                             lengths=args.sequence_lens)
    for path in (written.header, written.source) + ((written.test,) if written.test else ()):
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    if written.test_note:
        print(written.test_note)
    print(f"wrote {len(written.units)} runtime units under {os.path.join(args.out, 'rnnf_runtime')}")
    print(f"state struct: {written.mem_bytes} bytes of pool; step function: "
          + (", ".join(f"{i} -> {o}" for i, o in written.states.items()) or "no (no state loop)"))
    return EXIT_OK


def main(args) -> int:
    from ..exporters.c import export_c

    if args.quantize_scope != "recurrent" and not args.quantize:
        raise ValueError(f"--quantize-scope {args.quantize_scope}: give --quantize int8 or fp16 too")
    if args.dim or args.graph or args.state or args.sequence_lens or args.quantize_scope != "recurrent":
        return _main_graph(args)
    model, _ = load_model(args)
    try:
        chain = model.to_pipeline()
    except FormatError as e:
        if getattr(model.graph, "compiled", None) is None:
            raise
        # not a chain of embedding, recurrent and dense layers: the whole graph is what there is to export
        print(f"exporting the whole graph: {e}")
        return _main_graph(args, model)
    written = export_c(chain, args.out, prefix=args.prefix, quantize=args.quantize)
    for path in (written.header, written.source, written.test):
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    print(f"step function: {'yes' if written.has_step else 'no (bidirectional or reverse layers: use _run)'}")
    return EXIT_OK
