"""The subcommands of the `rnnfast` command line (rnnfast/cli/__init__.py builds the parser from them).

Each module `cmd_<name>.py` has `add_parser(subparsers)` and `main(args) -> exit code`. Exit codes are the same
for every subcommand:
    0  success
    1  the check failed: outputs disagree beyond the tolerance (verify, bench, convert's reload check)
    2  bad usage or a bad file (one line on stderr naming it)
"""
EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2

EXIT_CODES_HELP = "exit codes: 0 success, 1 outputs disagree beyond the tolerance, 2 bad usage or bad file"
EXIT_CODES_NO_CHECK_HELP = "exit codes: 0 success, 2 bad usage or bad file"
