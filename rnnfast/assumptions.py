"""Values a file does not store and an importer had to assume: one warning each, or an error with strict=True.

Importers call `assumed(...)` where they fill in a framework default that changes the result; `rnnfast.load` collects
the warnings and, with strict=True, refuses the file listing every assumption instead."""
from __future__ import annotations

import warnings

from .errors import AssumptionWarning, FormatError


def assumed(where: str, option: str, value, why: str) -> None:
    warning = AssumptionWarning(f"{where}: assumed {option}={value!r} ({why}); pass {option}=... to say so, or "
                                f"strict=True to refuse files that leave it out")
    warning.detail = f"{where}: {option}={value!r} ({why})"
    warnings.warn(warning, stacklevel=3)


def load_checked(load, name: str, strict):
    """load() with the assumptions it made: re-warned, or with strict=True a FormatError listing them."""
    if not isinstance(strict, bool):
        raise ValueError(f"{name}: strict must be True or False, got {strict!r}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load()
    assumptions = [w.message.detail for w in caught if issubclass(w.category, AssumptionWarning)]
    if strict and assumptions:
        raise FormatError(f"{name}: strict=True, and the file leaves out what changes the result: "
                          + "; ".join(assumptions) + "; pass those options to load it")
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    return model
