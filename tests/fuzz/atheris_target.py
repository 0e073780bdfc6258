"""One fuzz target under atheris (coverage-guided, libFuzzer's engine), when atheris is installed:

    python -m tests.fuzz.atheris_target TARGET [libFuzzer flags, corpus dirs]

rnnfast's Python modules are instrumented so coverage steers the mutations; a Finding (an exception rnnfast must
not let out) is an uncaught exception, which libFuzzer reports and saves as a crash-* file."""
import sys

import atheris

with atheris.instrument_imports(include=["rnnfast"]):
    import rnnfast  # noqa: F401
    from rnnfast.importers import _pickle, _safetensors, _zip  # noqa: F401
    from rnnfast.importers import keras, onnx, rnnf, torch  # noqa: F401

from tests.fuzz.targets import run_one  # noqa: E402


def main():
    target = sys.argv.pop(1)
    atheris.Setup(sys.argv, lambda data: run_one(target, data))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
