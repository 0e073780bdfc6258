"""`rnnfast run FILE --input x.npz --output y.npz`: run a model on arrays from a file."""
from __future__ import annotations

import time

import numpy as np

from .codes import EXIT_CODES_NO_CHECK_HELP, EXIT_OK
from .common import CliError, add_model_arguments, feeds_text, load_model, positive_int, read_inputs


def add_parser(sub):
    p = sub.add_parser(
        "run", help="run a model on inputs from a .npy/.npz file and save the outputs as .npz",
        description="Load FILE, run it on the arrays in --input and write every output to --output (.npz, one "
                    "array per output, named after the model's outputs). A .npy input feeds the model's first "
                    "input; a .npz holds arrays named after the inputs, or x0, x1, ... in input order (inputs the "
                    "model marks optional, such as PyTorch's h0/c0, may be left out). Inputs follow the source "
                    "framework's layout: `rnnfast inspect FILE` lists names, shapes and types. Prints the input "
                    "and output shapes and the run time.",
        epilog=EXIT_CODES_NO_CHECK_HELP)
    add_model_arguments(p)
    p.add_argument("--input", "-i", required=True, metavar="X.npy|X.npz", help="the model's input arrays")
    p.add_argument("--output", "-o", required=True, metavar="Y.npz", help="where to write the outputs")
    p.add_argument("--threads", type=positive_int, metavar="N", help="threads for the recurrent layers (default: "
                                                            "OMP_NUM_THREADS, else every core)")
    return p


def main(args) -> int:
    if not args.output.endswith(".npz"):
        raise CliError(f"--output {args.output}: the outputs are written as .npz; give a name ending in .npz")
    model, _ = load_model(args, n_threads=args.threads)
    feeds = read_inputs(args.input, model)
    start = time.perf_counter()
    try:
        outs = model.run(feeds)
    except ValueError as e:
        raise CliError(f"{e} (inputs from {args.input})") from None
    elapsed = time.perf_counter() - start
    arrays = {o.name: np.asarray(v) for o, v in zip(model.outputs, outs)}
    try:
        np.savez(args.output, **arrays)
    except OSError as e:
        raise CliError(f"{args.output}: cannot write: {e.strerror or e}") from None
    print(f"inputs:  {feeds_text(feeds)}")
    print(f"outputs: {feeds_text(arrays)}")
    print(f"wrote {args.output} ({len(arrays)} arrays) in {elapsed * 1e3:.3f} ms of run time")
    return EXIT_OK
