"""The recurrent node's Keras mask input (graph/build.py recurrent(mask=...), src_c/graph/recurrent_node.c): a
masked step keeps every layer's state and repeats the previous output (zeros with zero_output), against the float64
reference; a stack of layers under one mask stays one node; the mask is checked like every other input."""
import numpy as np
import pytest
from conftest import assert_close, random_layer

from rnnfast import reference
from rnnfast.graph.build import GraphBuilder


def _mask(rng, T, B):
    m = rng.random((T, B)) > 0.35
    m[:2, 0] = False      # masked first steps: the repeated output is zeros before any real step
    m[T - 2:, 1 % B] = False  # masked last steps: the final state is the last real step's
    m[:, B - 1] = False   # a fully masked row keeps the initial state
    return m


def _build(layers, zero_output, with_h0):
    b = GraphBuilder("masked")
    x = b.input("x", np.float32, ["T", "B", layers[0].input_size])
    mask = b.input("mask", np.bool_, ["T", "B"])
    d = layers[0].n_dirs
    h0 = b.input("h0", np.float32, [len(layers) * d, "B", layers[0].hidden_size]) if with_h0 else ""
    y, h_n, _ = b.recurrent(x, layers, h0=h0, states=True, mask=mask, zero_output=zero_output)
    b.output(y, "y")
    b.output(h_n, "h_n")
    return b.compile()


@pytest.mark.parametrize("cell,direction", [("lstm", "forward"), ("gru", "bidirectional"), ("rnn", "reverse")])
@pytest.mark.parametrize("zero_output", [False, True])
def test_mask_matches_reference(rng, cell, direction, zero_output):
    T, B, I, H = 6, 4, 3, 5
    d = 2 if direction == "bidirectional" else 1
    layers = [random_layer(rng, cell, direction, I, H), random_layer(rng, cell, direction, d * H, H)]
    compiled = _build(layers, zero_output, with_h0=True)
    assert sum(n.op == "Recurrent" for n in compiled.graph.nodes) == 1  # one mask, one stack
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    mask = _mask(rng, T, B)
    h0 = rng.standard_normal((2 * d, B, H)).astype(np.float32)
    y, h_n = compiled.run([x, mask, h0])
    seq, states = x.astype(np.float64), []
    for k, layer in enumerate(layers):
        out, y_h, _ = reference.run_layer(layer, seq, initial_h=h0[k * d:(k + 1) * d], mask=mask,
                                          mask_zero_output=zero_output)
        seq = out.transpose(0, 2, 1, 3).reshape(T, B, -1)
        states.append(y_h)
    assert_close(y, seq, what="y")
    assert_close(h_n, np.concatenate(states), what="h_n")
    unmasked = compiled.run([x, np.ones((T, B), bool), h0])[0]
    assert np.abs(unmasked - y).max() > 1e-3  # the mask changed the result


def test_mask_shape_checked(rng):
    layer = random_layer(rng, "gru", "forward", 3, 4)
    compiled = _build([layer], False, with_h0=False)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="mask"):
        compiled.run([x, np.ones((5, 3), bool)])


def test_time_reversal_of_a_symbolic_axis(rng):
    """Keras' go_backwards reverses the steps, whose count is known only at run time."""
    b = GraphBuilder("reverse")
    x = b.input("x", np.float32, ["T", "B", 3])
    arr = lambda v: np.array([v], np.int64)
    b.output(b.node("Slice", [x, arr(-1), arr(-2 ** 63), arr(0), arr(-1)]), "y")
    compiled = b.compile()
    for T in (1, 5):
        x = rng.standard_normal((T, 2, 3)).astype(np.float32)
        np.testing.assert_array_equal(compiled.run([x])[0], x[::-1])
