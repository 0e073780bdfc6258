"""The `rnnfast` command (also `python -m rnnfast`)."""
from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="rnnfast", description="Fast CPU inference for recurrent networks.")
    parser.add_argument("--version", action="version", version=f"rnnfast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("demo", help="run small models with rnnfast and show agreement and speed against references",
                   description="Build small LSTM/GRU/RNN ONNX models, run them with rnnfast, the float64 reference "
                               "and onnxruntime (if installed), and print agreement and timings. Exits 1 on "
                               "disagreement.")
    sub.add_parser("config", help="print the build configuration (instruction sets, OpenMP, threads)",
                   description="Print compiled, supported and selected instruction sets, OpenMP and threads.")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo()
    if args.command == "config":
        from . import show_config

        show_config()
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
