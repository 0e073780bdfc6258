"""Fuzzing of every loader (targets.py), run by a plain random-mutation driver (plain.py) or by atheris when it is
installed (atheris_target.py); `python -m tests.fuzz.run --minutes N` runs them all (docs/fuzzing.md)."""
