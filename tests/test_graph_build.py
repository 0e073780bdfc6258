"""graph/build.py: graphs an importer builds (embedding, a stack of canonical layers with stacked states, dense
heads) run through the C executor and give what the float64 reference computes."""
import numpy as np
import pytest
from conftest import assert_close, random_layer

from rnnfast import reference
from rnnfast.graph.build import GraphBuilder


def _reference_stack(layers, x, h0=None, c0=None, sequence_lens=None):
    """y [T, B, D*P], h_n [L*D, B, P], c_n [L*D, B, H] (None unless LSTM), float64."""
    T, B = x.shape[:2]
    hs, cs = [], []
    for k, layer in enumerate(layers):
        rows = slice(k * layer.n_dirs, (k + 1) * layer.n_dirs)
        y, y_h, y_c = reference.run_layer(layer, x, sequence_lens, None if h0 is None else h0[rows],
                                          None if c0 is None else c0[rows])
        x = y.transpose(0, 2, 1, 3).reshape(T, B, -1)
        hs.append(y_h)
        cs.append(y_c)
    if len({h.shape for h in hs}) > 1:
        return x, hs, cs  # layers of different sizes: their states stay apart
    return x, np.concatenate(hs), None if cs[0] is None else np.concatenate(cs)


@pytest.mark.parametrize("cell,direction,proj", [("lstm", "bidirectional", 0), ("gru", "forward", 0),
                                                 ("lstm", "forward", 3), ("rnn", "reverse", 0)])
def test_embedding_stack_dense_with_states(rng, cell, direction, proj):
    E, H, V, O = 5, 6, 11, 4
    d = 2 if direction == "bidirectional" else 1
    layers = [random_layer(rng, cell, direction, E, H, proj_size=proj),
              random_layer(rng, cell, direction, d * (proj or H), H, proj_size=proj)]
    table = rng.standard_normal((V, E)).astype(np.float32)
    w, bias = rng.standard_normal((O, d * (proj or H))).astype(np.float32), rng.standard_normal(O).astype(np.float32)
    b = GraphBuilder("built")
    ids = b.input("input", np.int64, ["seq_len", "batch"])
    h0 = b.input("h0", np.float32, [2 * d, "batch", proj or H])
    c0 = b.input("c0", np.float32, [2 * d, "batch", H]) if cell == "lstm" else ""
    y, h_n, c_n = b.recurrent(b.embedding(ids, table), layers, h0=h0, c0=c0, states=True)
    b.output(b.dense(y, w, bias, "tanh"), "output")
    b.output(h_n, "h_n")
    if c_n:
        b.output(c_n, "c_n")
    compiled = b.compile()
    T, B = 7, 3
    x = rng.integers(0, V, (T, B))
    feeds = [x, rng.standard_normal((2 * d, B, proj or H)).astype(np.float32)]
    if cell == "lstm":
        feeds.append(rng.standard_normal((2 * d, B, H)).astype(np.float32))
    got = compiled.run(feeds)
    seq, ref_h, ref_c = _reference_stack(layers, table[x].astype(np.float64), *feeds[1:])
    assert_close(got[0], np.tanh(seq @ w.T.astype(np.float64) + bias), what="output")
    assert_close(got[1], ref_h, what="h_n")
    if cell == "lstm":
        assert_close(got[2], ref_c, what="c_n")
    assert compiled.output_names == ["output", "h_n"] + (["c_n"] if cell == "lstm" else [])


def test_batch_first_sequence_lens_and_softmax(rng):
    layers = [random_layer(rng, "gru", "forward", 4, 5), random_layer(rng, "lstm", "bidirectional", 5, 3)]
    w = rng.standard_normal((3, 6)).astype(np.float32)
    b = GraphBuilder("bf")
    x = b.input("input", np.float32, ["batch", "seq_len", 4])
    lens = b.input("lens", np.int32, ["batch"])
    xt = b.node("Transpose", [x], {"perm": [1, 0, 2]})
    y, _, _ = b.recurrent(xt, layers, sequence_lens=lens)
    y = b.node("Transpose", [b.dense(y, w, activation="softmax")], {"perm": [1, 0, 2]})
    b.output(y, "output")
    compiled = b.compile()
    xs = rng.standard_normal((2, 6, 4)).astype(np.float32)
    n = np.array([6, 3], np.int32)
    (got,) = compiled.run([xs, n])
    seq, _, _ = _reference_stack(layers, xs.transpose(1, 0, 2).astype(np.float64), sequence_lens=n)
    z = seq @ w.T.astype(np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    assert_close(got, (e / e.sum(-1, keepdims=True)).transpose(1, 0, 2))


def test_final_state_of_a_stack_of_unequal_layers(rng):
    """The last layer's own final state, [B, D*P], as a Keras return_sequences=False stage gives it."""
    layers = [random_layer(rng, "lstm", "forward", 3, 7), random_layer(rng, "gru", "bidirectional", 7, 4)]
    b = GraphBuilder("last")
    x = b.input("input", np.float32, ["seq_len", "batch", 3])
    y, _, _ = b.recurrent(x, layers[:1])
    _, h, _ = b.recurrent(y, layers[1:], sequence=False, states=True)
    b.output(b.node("Reshape", [b.node("Transpose", [h], {"perm": [1, 0, 2]}), np.array([0, -1], np.int64)]), "out")
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    (got,) = b.compile().run([x])
    _, hs, _ = _reference_stack(layers, x.astype(np.float64))
    assert_close(got, hs[1].transpose(1, 0, 2).reshape(2, 8))


def test_final_state_of_a_layer_merged_into_the_stack(rng):
    """Two nodes of equal layers become one stack (one C node); the last layer's final state is still given."""
    layers = [random_layer(rng, "lstm", "forward", 3, 4), random_layer(rng, "lstm", "forward", 4, 4)]
    b = GraphBuilder("merged")
    x = b.input("input", np.float32, ["seq_len", "batch", 3])
    y, _, _ = b.recurrent(x, layers[:1])
    _, h, c = b.recurrent(y, layers[1:], sequence=False, states=True)
    b.output(h, "h")
    b.output(c, "c")
    compiled = b.compile()
    assert [n[0] for n in compiled.desc["nodes"]].count(22) == 1  # compile.OP["RECURRENT"]
    xs = rng.standard_normal((5, 2, 3)).astype(np.float32)
    _, ref_h, ref_c = _reference_stack(layers, xs.astype(np.float64))
    got = compiled.run([xs])
    assert_close(got[0], ref_h[1:], what="h")
    assert_close(got[1], ref_c[1:], what="c")


def test_built_graph_refuses_by_name(rng):
    layers = [random_layer(rng, "lstm", "forward", 3, 4), random_layer(rng, "lstm", "forward", 4, 5)]
    b = GraphBuilder("bad")
    x = b.input("input", np.float32, ["seq_len", "batch", 3])
    with pytest.raises(ValueError, match="one cell, direction count and size"):
        b.recurrent(x, layers, states=True)
    with pytest.raises(ValueError, match="'nowhere', which is not defined"):
        b.node("Relu", ["nowhere"])
    with pytest.raises(ValueError, match="activation 'gelu'"):
        b.dense(x, np.zeros((2, 3)), activation="gelu")


@pytest.mark.parametrize("dtype", ["int8", "float16"])
def test_stored_weight_dtypes_and_a_folded_linear(rng, dtype):
    """Quantized layers run with their stored weights (a Linear before them is not folded into those); the
    reference computes with the float32 values they stand for."""
    layers = [random_layer(rng, "lstm", "forward", 4, 6, proj_size=3).with_weight_dtype(dtype)]
    w = rng.standard_normal((4, 5)).astype(np.float32)
    b = GraphBuilder("q")
    x = b.input("input", np.float32, ["seq_len", "batch", 5])
    y, _, _ = b.recurrent(b.dense(x, w), layers)
    b.output(y, "output")
    xs = rng.standard_normal((6, 2, 5)).astype(np.float32)
    (got,) = b.compile().run([xs])
    seq, _, _ = _reference_stack(layers, xs.astype(np.float64) @ w.T.astype(np.float64))
    assert_close(got, seq)
