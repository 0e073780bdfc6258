"""The `rnnfast` command (also `python -m rnnfast`).

Subcommands live in rnnfast/cli/cmd_*.py. Errors a user can cause (a bad file, bad usage) end as one line
on stderr and exit code 2, never a traceback; see rnnfast/cli/codes.py for the exit codes.
"""
from __future__ import annotations

import argparse
import os
import sys

COMMANDS = ("inspect", "run", "verify", "bench", "convert", "export-c", "score")


def _command_modules() -> dict:
    import importlib

    modules = {}
    for name in COMMANDS:
        try:
            module = f"cmd_{name.replace('-', '_')}"
            modules[name] = importlib.import_module(f".{module}", __package__)
        except ModuleNotFoundError as e:
            if e.name != f"{__package__}.{module}":
                raise
    return modules


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr, like every other error of the command (subcommand parsers inherit it)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    from .codes import EXIT_CODES_HELP

    parser = _Parser(prog="rnnfast", description="Fast CPU inference for recurrent networks.",
                                     epilog=EXIT_CODES_HELP)
    parser.add_argument("--version", action="version", version=f"rnnfast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules().values():
        module.add_parser(sub)
    sub.add_parser("demo", help="run the tutorials' trained models and show agreement and speed against Keras",
                   description="Run the tutorials' trained Keras models (rnnfast/examples_data) with rnnfast against "
                               "the predictions and metrics Keras recorded, and a synthetic ONNX LSTM against the "
                               "float64 reference and onnxruntime (if installed); print one table of agreement and "
                               "timings. Exits 1 on disagreement.")
    sub.add_parser("config", help="print the build configuration (instruction sets, OpenMP, threads)",
                   description="Print compiled, supported and selected instruction sets, OpenMP and threads.")
    return parser


def _set_threads(n):
    """The engine's default thread count comes from OpenMP, which reads OMP_NUM_THREADS once when it starts;
    setting it before the engine is first imported makes --threads reach every layer of every format (argparse has
    already refused counts below 1)."""
    if n is not None and "rnnfast._core" not in sys.modules:
        os.environ["OMP_NUM_THREADS"] = str(n)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings as one line each on stderr, without the source line Python prints."""
    print(f"rnnfast: warning: {message}", file=file or sys.stderr)


def main(argv=None) -> int:
    import warnings

    from .codes import EXIT_USAGE
    from .common import CliError

    warnings.showwarning = _show_warning
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ..demo import run_demo

        return run_demo()
    if args.command == "config":
        from .. import show_config

        show_config()
        return 0
    modules = _command_modules()
    if args.command not in modules:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        _set_threads(getattr(args, "threads", None))
        return modules[args.command].main(args)
    except CliError as e:
        return _fail(str(e))
    except (ValueError, OSError, MemoryError) as e:  # FormatError is a ValueError
        return _fail(_named(str(e) or type(e).__name__, getattr(args, "file", None)))
    except KeyboardInterrupt:
        return 130


def _named(message: str, path) -> str:
    """Messages from a model run do not always name the file; the user needs to know which one."""
    return message if not path or path in message else f"{path}: {message}"


def _fail(message: str) -> int:
    from .codes import EXIT_USAGE

    print(f"rnnfast: error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
