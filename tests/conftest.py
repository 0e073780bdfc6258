"""Shared test helpers: the one float32 tolerance of the suite, and random canonical layers.

Tolerance (DESIGN.md): float32 results are compared per element with rtol=1e-5, atol=1e-6 for short
sequences. Over long sequences float32 rounding compounds through the recurrence, so `long=True` compares the
relative RMS error ||a - e|| / ||e|| against 1e-5 instead, which bounds the error as a whole without letting
a single element drift far (each element is still held to 1e-3 absolute). `half=True` is for results that
passed through float16 (outputs in [-1, 1]): two engines may round differently in the last fp16 place, 2 ulp =
2e-3 absolute. `int8=True` is for outputs (in [-1, 1]) of a model whose weights were stored as int8 with a
symmetric scale per output row, against the float32 model: each weight moves by at most half a step, max|row|/254,
so a pre-activation moves by at most that times sum|inputs|, about 1e-2 for the test models (hidden <= 16, a
few steps); random rounding keeps the observed error near 8e-3 at worst over 150 random models of 20 steps, and
2e-2 absolute bounds it. Never loosen these to make a test pass.

For other test modules (pytest's rootdir import mode puts tests/ on sys.path):
  from conftest import assert_close, random_layer
  assert_close(actual, expected, long=False, what="", half=False, int8=False)
  random_layer(rng, cell, direction, input_size, hidden_size, clip=, input_forget=, linear_before_reset=,
               peepholes=, proj_size=, activations=, bias=)
and the `rng` fixture (a seeded numpy Generator). Keep these signatures stable: the whole suite uses them.
Subprocesses (`python -m rnnfast ...`, example scripts) use `package_env()` and a cwd outside the checkout (tmp_path),
so they import the same rnnfast as the tests: the installed package in CI, the in-place build in a checkout.
"""
import os
from pathlib import Path

import numpy as np
import pytest

from rnnfast.layers import N_ACTIVATIONS, N_GATES, Activation, RecurrentLayer

def package_env(**extra) -> dict:
    """os.environ with PYTHONPATH leading to the rnnfast these tests import. `python -m` also puts its cwd first on
    sys.path, so run it from a directory that holds no rnnfast/ source tree."""
    import rnnfast

    root = str(Path(rnnfast.__file__).resolve().parent.parent)
    return dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra)


RTOL, ATOL = 1e-5, 1e-6
LONG_REL_RMS, LONG_MAX_ABS = 1e-5, 1e-3
HALF_ATOL = 2e-3
INT8_ATOL = 2e-2


def assert_close(actual, expected, long=False, what="", half=False, int8=False):
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    if half or int8:
        np.testing.assert_allclose(actual.astype(np.float32), expected.astype(np.float32), rtol=0,
                                   atol=INT8_ATOL if int8 else HALF_ATOL, err_msg=what)
        return
    if not long:
        np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, err_msg=what)
        return
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    rel_rms = np.linalg.norm(a - e) / max(np.linalg.norm(e), 1e-12)
    assert rel_rms <= LONG_REL_RMS, f"{what}: relative RMS error {rel_rms:.3g} > {LONG_REL_RMS}"
    np.testing.assert_allclose(a, e, rtol=0, atol=LONG_MAX_ABS, err_msg=what)


@pytest.fixture
def rng():
    """A seeded generator, fresh per test, so every test sees the same numbers whatever runs before it."""
    return np.random.default_rng(20240531)


def random_layer(rng, cell="lstm", direction="forward", input_size=4, hidden_size=8, clip=None, input_forget=False,
                 linear_before_reset=False, peepholes=False, proj_size=0, activations=None, bias=True, name=""):
    """A RecurrentLayer with weights uniform in ±1/sqrt(hidden) (as the frameworks initialise them), so gates
    stay in their sensitive range. `activations` is a name (every slot of every direction) or a full tuple."""
    n_dirs = 2 if direction == "bidirectional" else 1
    gates = N_GATES[cell]
    out = proj_size or hidden_size
    scale = 1.0 / np.sqrt(hidden_size)

    def u(*shape):
        return rng.uniform(-scale, scale, shape).astype(np.float32)

    if isinstance(activations, str):
        n_act = N_ACTIVATIONS[cell]
        activations = tuple((Activation(activations),) * n_act for _ in range(n_dirs))
    zeros = np.zeros((n_dirs, gates * hidden_size), np.float32)
    return RecurrentLayer(
        cell=cell, direction=direction, hidden_size=hidden_size, input_size=input_size,
        w_ih=u(n_dirs, gates * hidden_size, input_size), w_hh=u(n_dirs, gates * hidden_size, out),
        b_ih=u(n_dirs, gates * hidden_size) if bias else zeros, b_hh=u(n_dirs, gates * hidden_size) if bias else zeros,
        activations=activations or (), clip=clip, input_forget=input_forget,
        linear_before_reset=linear_before_reset, peepholes=u(n_dirs, 3 * hidden_size) if peepholes else None,
        w_hr=u(n_dirs, proj_size, hidden_size) if proj_size else None, name=name)
