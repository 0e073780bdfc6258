"""The C engine (whichever kernel table is selected) against the float64 reference over the option grid:
cells, directions, gate options, sequence_lens (none, full, mixed, zeros), Keras masks, initial states,
stacked projection, batch and hidden sizes. The same grid runs against onnxruntime in test_onnx_*.py."""
import itertools

import numpy as np
import pytest

from conftest import assert_close, random_layer
from rnnfast import _core, engine, reference

CELL_OPTIONS = [
    dict(cell="rnn"), dict(cell="rnn", activations="Relu"), dict(cell="rnn", activations="Softsign", clip=0.8),
    dict(cell="gru", linear_before_reset=True), dict(cell="gru"), dict(cell="gru", clip=0.6),
    dict(cell="gru", linear_before_reset=True, activations="HardSigmoid"),
    dict(cell="lstm"), dict(cell="lstm", peepholes=True), dict(cell="lstm", input_forget=True, clip=0.7),
    dict(cell="lstm", proj_size=3), dict(cell="lstm", activations="Elu", bias=False),
]
GRID = list(itertools.product(CELL_OPTIONS, ["forward", "reverse", "bidirectional"],
                              ["none", "full", "mixed", "mask", "mask_zero"], [1, 3, 7], [1, 7, 16, 33]))


@pytest.mark.parametrize("index", range(0, len(GRID), 7))  # a seeded sixth of the grid, every option covered
def test_engine_matches_float64_reference(index):
    options, direction, lens_kind, batch, hidden = GRID[index]
    rng = np.random.default_rng(index)
    layer = random_layer(rng, direction=direction, input_size=5, hidden_size=hidden, **options)
    T = 6
    x = rng.standard_normal((T, batch, 5)).astype(np.float32)
    kw = {}
    if lens_kind == "full":
        kw["sequence_lens"] = np.full(batch, T)
    elif lens_kind == "mixed":
        kw["sequence_lens"] = rng.integers(0, T + 1, batch)
    elif lens_kind.startswith("mask"):
        kw["mask"] = rng.random((T, batch)) > 0.35
        kw["mask_zero_output"] = lens_kind == "mask_zero"
    if index % 2:
        kw["initial_h"] = rng.standard_normal((layer.n_dirs, batch, layer.output_size)).astype(np.float32)
        if layer.cell == "lstm":
            kw["initial_c"] = rng.standard_normal((layer.n_dirs, batch, hidden)).astype(np.float32)
    got = engine.run_layer(layer, x, **kw)
    want = reference.run_layer(layer, x, **kw)
    for name, g, w in zip(("y", "y_h", "y_c"), got, want):
        if w is None:
            assert g is None
        else:
            assert_close(g, w, what=f"{name} {options} {direction} {lens_kind}")


def test_long_sequence_stays_within_the_long_tolerance():
    rng = np.random.default_rng(5)
    layer = random_layer(rng, cell="lstm", direction="bidirectional", input_size=16, hidden_size=48)
    x = rng.standard_normal((300, 2, 16)).astype(np.float32)
    for g, w in zip(engine.run_layer(layer, x), reference.run_layer(layer, x)):
        assert_close(g, w, long=True)


ROWS_TAIL_CASES = list(itertools.product(
    [dict(cell="rnn"), dict(cell="gru", linear_before_reset=True), dict(cell="lstm"),
     dict(cell="lstm", peepholes=True, input_forget=True)],
    [1, 7, 8, 15, 16, 17, 33, 64]))


@pytest.mark.parametrize("isa_name", _core.isa_supported())
@pytest.mark.parametrize("options,hidden", ROWS_TAIL_CASES,
                         ids=[f"{o['cell']}{len(o)}-{h}" for o, h in ROWS_TAIL_CASES])
def test_batch_rows_match_float64_reference_for_every_tail(isa_name, options, hidden):
    """Batch > 1 (rows_step.c) against the float64 reference with each kernel table forced, for every remainder
    of the 16-unit blocks: rows that end early (sequence_lens) or are masked keep their state, in both directions."""
    rng = np.random.default_rng(hidden)
    direction = ["forward", "reverse", "bidirectional"][hidden % 3]
    layer = random_layer(rng, direction=direction, input_size=5, hidden_size=hidden, **options)
    T, batch = 6, 5
    x = rng.standard_normal((T, batch, 5)).astype(np.float32)
    initial_h = rng.standard_normal((layer.n_dirs, batch, hidden)).astype(np.float32)
    initial_c = rng.standard_normal((layer.n_dirs, batch, hidden)).astype(np.float32) if layer.cell == "lstm" else None
    mask = rng.random((T, batch)) > 0.4
    mask[2] = False
    cases = [dict(sequence_lens=np.array([T, 0, 3, 1, T])), dict(mask=mask)]
    before = _core.isa_selected()
    try:
        _core.isa_select(isa_name)
        for kw in cases:
            got = engine.run_layer(layer, x, initial_h=initial_h, initial_c=initial_c, **kw)
            want = reference.run_layer(layer, x, initial_h=initial_h, initial_c=initial_c, **kw)
            for name, g, w in zip(("y", "y_h", "y_c"), got, want):
                if w is None:
                    assert g is None
                else:
                    assert_close(g, w, what=f"{name} {isa_name} {options} {direction} {sorted(kw)}")
    finally:
        _core.isa_select(before)
