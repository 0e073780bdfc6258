"""`rnnfast export-c FILE -o DIR`: the model as C99 source with static weights (rnnfast/exporters/c.py)."""
from __future__ import annotations

import os

from .codes import EXIT_CODES_NO_CHECK_HELP, EXIT_OK
from .common import add_model_arguments, load_model


def add_parser(sub):
    p = sub.add_parser(
        "export-c", help="write the model as C99 source with static weights, for embedded builds",
        description="Load FILE, convert it to a pipeline (optional embedding, recurrent stacks, dense heads; a model "
                    "that does not fit is refused, naming the layer or node) and write DIR/PREFIX.h, DIR/PREFIX.c "
                    "(weights as static const arrays, a state struct, PREFIX_init/_reset/_step/_run; no malloc, no "
                    "global mutable state) and DIR/PREFIX_test.c, a program that runs embedded inputs and exits "
                    "non-zero when its outputs differ from rnnfast's beyond the tolerance it states. Build it with "
                    "e.g. `gcc -std=c99 -O2 PREFIX.c PREFIX_test.c -lm`. docs/export-c.md is the user guide.",
        epilog=EXIT_CODES_NO_CHECK_HELP)
    add_model_arguments(p)
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output directory (made if missing)")
    p.add_argument("--prefix", default="model", help="C prefix of the file, type and function names (default: model)")
    p.add_argument("--quantize", choices=["int8", "fp16"], default=None,
                   help="weight storage: int8 with a symmetric scale per output row, or fp16; compute stays float32")
    return p


def main(args) -> int:
    from ..exporters.c import export_c

    model, _ = load_model(args)
    written = export_c(model.to_pipeline(), args.out, prefix=args.prefix, quantize=args.quantize)
    for path in (written.header, written.source, written.test):
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    print(f"step function: {'yes' if written.has_step else 'no (bidirectional or reverse layers: use _run)'}")
    return EXIT_OK
