"""`rnnfast run FILE --inputs x.npz --output y.npz`: run a model on arrays from a file or the command line."""
from __future__ import annotations

import time

import numpy as np

from .codes import EXIT_CODES_NO_CHECK_HELP, EXIT_OK
from .common import CliError, add_model_arguments, feeds_text, load_model, non_negative_int, positive_int
from .inputs import add_input_arguments, input_plan, make_feeds, run_checked


def add_parser(sub):
    p = sub.add_parser(
        "run", help="run a model on inputs from a .npy/.npz file or the command line and save the outputs as .npz",
        description="Load FILE, run it on the arrays in --inputs (or --input X.npz) and write every output to "
                    "--output (.npz, one array per output, named after the model's outputs). A .npy input feeds the "
                    "model's first input; a .npz holds arrays named after the inputs, or x0, x1, ... in input order "
                    "(inputs the model marks optional, such as PyTorch's h0/c0, may be left out). --input "
                    "NAME=SHAPE[:DTYPE[:LOW..HIGH]] and --value NAME=V set inputs from the command line; without a "
                    "file, inputs they do not set are random. Inputs follow the source "
                    "framework's layout: `rnnfast inspect FILE` lists names, shapes and types. Prints the input "
                    "and output shapes and the run time.",
        epilog=EXIT_CODES_NO_CHECK_HELP)
    add_model_arguments(p)
    add_input_arguments(p)
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of random inputs (default 0)")
    p.add_argument("--seq-len", type=positive_int, default=8, metavar="T",
                   help="sequence length of random inputs where the model leaves it open (default 8)")
    p.add_argument("--batch", type=positive_int, default=1, metavar="B", help="batch of random inputs (default 1)")
    p.add_argument("--output", "-o", required=True, metavar="Y.npz", help="where to write the outputs")
    p.add_argument("--threads", type=positive_int, metavar="N", help="threads for the recurrent layers (default: "
                                                            "OMP_NUM_THREADS, else every core)")
    return p


def main(args) -> int:
    if not args.output.endswith(".npz"):
        raise CliError(f"--output {args.output}: the outputs are written as .npz; give a name ending in .npz")
    plan = input_plan(args)
    if not plan.given():
        raise CliError("run needs inputs: --inputs X.npz, or --input NAME=SHAPE[:DTYPE[:LOW..HIGH]] / --value NAME=V "
                       "(inputs not given are then random)")
    model, _ = load_model(args, n_threads=args.threads)
    feeds, source, unsure = make_feeds(plan, model, args.seq_len, args.batch, args.seed)
    start = time.perf_counter()
    outs = run_checked(model, feeds, unsure, source)
    elapsed = time.perf_counter() - start
    arrays = {o.name: np.asarray(v) for o, v in zip(model.outputs, outs)}
    try:
        np.savez(args.output, **arrays)
    except OSError as e:
        raise CliError(f"{args.output}: cannot write: {e.strerror or e}") from None
    print(f"inputs ({source}): {feeds_text(feeds)}")
    print(f"outputs: {feeds_text(arrays)}")
    print(f"wrote {args.output} ({len(arrays)} arrays) in {elapsed * 1e3:.3f} ms of run time")
    return EXIT_OK
