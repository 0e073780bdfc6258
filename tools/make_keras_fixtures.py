"""Make the Keras fixtures under tests/data/keras/ with the real frameworks (the test suite needs neither).

Run each generation in its own virtual environment (never in the project's Python):

    python -m venv /work/venv-keras3 && /work/venv-keras3/bin/pip install keras tensorflow
    python3.11 -m venv /work/venv-tfkeras && /work/venv-tfkeras/bin/pip install tensorflow==2.21.0 tf-keras==2.21.0 h5py
    /work/venv-keras3/bin/python tools/make_keras_fixtures.py keras3     # .keras, Keras 3 legacy .h5, .weights.h5
    /work/venv-tfkeras/bin/python tools/make_keras_fixtures.py tfkeras   # tf.keras 2.x .h5 (Keras 2 layout)
    /work/venv-tfkeras/bin/python tools/make_keras_fixtures.py legacy    # Keras 1.2 / 2.1 / CuDNN .h5 files
    .../python tools/make_keras_fixtures.py keras3-graph | tfkeras-graph  # the cases added with the graph lowering

Each model gets random weights (biases too, so every bias path is exercised), is saved in the formats its Keras
writes, and is run with `model.predict`; inputs and outputs go to `<case>.npz` (x0.., y0..; stateful cases hold
chunks c<k>_x0.., c<k>_y..). `manifest_<generation>.json` lists the cases for tests/test_keras_fixtures.py.

Keras 1 and Keras 2.0-2.3 cannot be installed on Python 3.11, so `legacy` writes their files with h5py following
the layout those versions wrote (root attrs keras_version/backend/model_config, model_weights with layer_names and
per-layer weight_names such as `lstm_1/kernel:0` or Keras 1's `lstm_1_W_i`, optionally chunked `layer_names0/1`).
The expected outputs still come from the real framework: an equivalent tf-keras model calls `load_weights` on that
very file, and tf-keras' own legacy loader converts the Keras 1 per-gate arrays and the CuDNN layouts
(hdf5_format.preprocess_weights_for_loading / _convert_rnn_weights) before running `predict`.
"""
from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "keras")
RNG = np.random.default_rng(5)


def randomize(model):
    """Uniform(-0.6, 0.6) for every weight (positive variances for BatchNormalization)."""
    for w in model.weights:
        name = getattr(w, "path", None) or w.name
        shape = tuple(w.shape)
        if "moving_variance" in name:
            value = RNG.uniform(0.5, 1.5, shape)
        else:
            value = RNG.uniform(-0.6, 0.6, shape)
        w.assign(value.astype(np.float32))


def seq(batch, steps, feat):
    return RNG.standard_normal((batch, steps, feat)).astype(np.float32)


def ids_with_padding(batch, steps, vocab):
    """Token ids with zeros (padding) at the end of one row, in the middle of another, at the start of a third."""
    ids = RNG.integers(1, vocab, (batch, steps))
    ids[0, steps - 2:] = 0
    if batch > 1:
        ids[1, 2:4] = 0
    if batch > 2:
        ids[2, :2] = 0
    return ids.astype(np.int32)


def zero_steps(x):
    """Whole zero vectors at some steps (for Masking): end of row 0, middle of row 1, start of row 2."""
    x = x.copy()
    T = x.shape[1]
    x[0, T - 2:] = 0
    if x.shape[0] > 1:
        x[1, 2:4] = 0
    if x.shape[0] > 2:
        x[2, :1] = 0
    return x


class Writer:
    def __init__(self, generation, version, manifest=None):
        self.generation = generation
        self.manifest = manifest or generation
        self.version = version
        self.cases = []
        self.prefix = {"keras3": "k3_", "tfkeras": "tf2_", "legacy": ""}[generation]
        os.makedirs(OUT, exist_ok=True)

    def predict(self, model, xs):
        out = model.predict(xs if len(xs) > 1 else xs[0], verbose=0, batch_size=len(xs[0]))
        return out if isinstance(out, list) else [out]

    def case(self, name, model, xs, formats, describe=(), note=""):
        """Save `model` in `formats`, run predict on xs, record the case."""
        name = f"{self.prefix}{name}"
        ys = self.predict(model, xs)
        np.savez_compressed(os.path.join(OUT, f"{name}.npz"), **_pack(xs, ys))
        for fmt in formats:
            entry = {"name": f"{name}[{fmt}]", "npz": f"{name}.npz", "generation": self.generation,
                     "keras_version": self.version, "describe": list(describe), "note": note}
            entry.update(self.save(model, name, fmt))
            self.cases.append(entry)

    def stateful_case(self, name, model, chunks, reset_before, formats, describe=()):
        name = f"{self.prefix}{name}"
        data = {}
        for k, xs in enumerate(chunks):
            if k in reset_before:
                reset(model)
            ys = self.predict(model, xs)
            data.update({f"c{k}_{key}": v for key, v in _pack(xs, ys).items()})
        reset(model)
        np.savez_compressed(os.path.join(OUT, f"{name}.npz"), **data)
        for fmt in formats:
            entry = {"name": f"{name}[{fmt}]", "npz": f"{name}.npz", "generation": self.generation,
                     "keras_version": self.version, "chunks": len(chunks), "reset_before": list(reset_before),
                     "describe": list(describe)}
            entry.update(self.save(model, name, fmt))
            self.cases.append(entry)

    def save(self, model, name, fmt) -> dict:
        if fmt == "keras":
            model.save(os.path.join(OUT, f"{name}.keras"))
            return {"file": f"{name}.keras"}
        if fmt == "h5":
            model.save(os.path.join(OUT, f"{name}.h5"))
            return {"file": f"{name}.h5"}
        if fmt == "weights":  # Keras 3 object-tree weights + the architecture as JSON
            model.save_weights(os.path.join(OUT, f"{name}.weights.h5"))
            with open(os.path.join(OUT, f"{name}.json"), "w") as f:
                f.write(model.to_json())
            return {"file": f"{name}.weights.h5", "config": f"{name}.json"}
        if fmt == "legacy_weights":  # tf.keras save_weights in the legacy HDF5 layout
            model.save_weights(os.path.join(OUT, f"{name}_w.h5"), save_format="h5")
            with open(os.path.join(OUT, f"{name}.json"), "w") as f:
                f.write(model.to_json())
            return {"file": f"{name}_w.h5", "config": f"{name}.json"}
        raise ValueError(fmt)

    def finish(self):
        path = os.path.join(OUT, f"manifest_{self.manifest}.json")
        with open(path, "w") as f:
            json.dump(self.cases, f, indent=1)
        print(f"{len(self.cases)} cases -> {path}")


def _pack(xs, ys):
    d = {f"x{i}": np.asarray(x) for i, x in enumerate(xs)}
    d.update({f"y{i}": np.asarray(y, np.float32) for i, y in enumerate(ys)})
    return d


def reset(model):
    if hasattr(model, "reset_states"):
        model.reset_states()
        return
    for layer in model.layers:
        for fn in ("reset_states", "reset_state"):
            if hasattr(layer, fn):
                getattr(layer, fn)()
                break


# ---------------------------------------------------------------------------------------------------------------
# Architectures shared by Keras 3 and tf.keras (K is the keras module).

def common_cases(w, K, formats, k3):
    L = K.layers
    B = 3

    def model(*layers_, input_shape=None, batch_shape=None, dtype="float32"):
        inp = K.Input(shape=input_shape, batch_shape=batch_shape, dtype=dtype) if batch_shape else \
            K.Input(shape=input_shape, dtype=dtype)
        m = K.Sequential([inp] + list(layers_))
        randomize(m)
        return m

    # Seed tutorials.
    w.case("seed_mnist_simplernn", model(L.SimpleRNN(16, activation="relu"), L.Dense(10, activation="softmax"),
                                          input_shape=(28, 28)),
           [RNG.uniform(0, 1, (B, 28, 28)).astype(np.float32)], formats)
    w.case("seed_imdb_embedding_simplernn", model(L.Embedding(50, 8), L.SimpleRNN(8), L.Dense(1, activation="sigmoid"),
                                                  input_shape=(12,), dtype="int32"),
           [RNG.integers(0, 50, (B, 12)).astype(np.int32)], formats)
    onehot = np.eye(20, dtype=np.float32)[RNG.integers(0, 20, (B, 10))]
    w.case("seed_char_lstm", model(L.LSTM(16), L.Dense(20, activation="softmax"), input_shape=(10, 20)), [onehot],
           formats)
    w.case("seed_stacked_lstm", model(L.LSTM(8, return_sequences=True), L.LSTM(8, return_sequences=True), L.LSTM(6),
                                      L.Dense(1), input_shape=(7, 3)), [seq(B, 7, 3)], formats)
    w.case("seed_bidirectional", model(L.Bidirectional(L.LSTM(6)), L.Dense(2, activation="softmax"),
                                       input_shape=(6, 4)), [seq(B, 6, 4)], formats)
    w.case("seed_deep_bidirectional", model(L.Bidirectional(L.GRU(5, return_sequences=True)),
                                            L.Bidirectional(L.LSTM(4, return_sequences=True)),
                                            L.Bidirectional(L.SimpleRNN(3)), L.Dense(1), input_shape=(6, 4)),
           [seq(B, 6, 4)], formats)
    w.case("seed_encoder_decoder", model(L.LSTM(8), L.RepeatVector(5), L.LSTM(8, return_sequences=True),
                                         L.TimeDistributed(L.Dense(4, activation="softmax")), input_shape=(6, 3)),
           [seq(B, 6, 3)], formats)
    w.case("seed_masked_middle", model(L.Embedding(30, 6, mask_zero=True), L.LSTM(5, return_sequences=True),
                                       L.GRU(4, return_sequences=True), L.SimpleRNN(3), L.Dense(1, activation="sigmoid"),
                                       input_shape=(8,), dtype="int32"),
           [ids_with_padding(B, 8, 30)], formats)
    st = model(L.LSTM(6, stateful=True, return_sequences=True), L.GRU(4, stateful=True), L.Dense(2),
               batch_shape=(2, 4, 3))
    w.stateful_case("seed_stateful_lstm", st, [[seq(2, 4, 3)] for _ in range(4)], reset_before=[3], formats=formats)

    # Options.
    for ra in (True, False):
        w.case(f"gru_reset_after_{ra}", model(L.GRU(5, reset_after=ra, return_sequences=True), input_shape=(5, 3)),
               [seq(B, 5, 3)], formats, describe=[f"reset_after={ra}"])
    w.case("go_backwards", model(L.LSTM(4, go_backwards=True, return_sequences=True),
                                 L.GRU(3, go_backwards=True, return_sequences=True),
                                 L.SimpleRNN(3, go_backwards=True), input_shape=(5, 3)), [seq(B, 5, 3)], formats)
    w.case("use_bias_false", model(L.LSTM(4, use_bias=False, return_sequences=True), L.GRU(3, use_bias=False),
                                   L.Dense(2, use_bias=False), input_shape=(5, 3)), [seq(B, 5, 3)], formats)
    inp = K.Input((5, 3))
    s, h, c = L.LSTM(4, return_sequences=True, return_state=True)(inp)
    g, gh = L.GRU(3, return_state=True)(s)
    r, rh = L.SimpleRNN(2, return_state=True, go_backwards=True)(s)
    m = K.Model(inp, [s, h, c, g, gh, r, rh])
    randomize(m)
    w.case("return_state", m, [seq(B, 5, 3)], formats)

    acts = ["tanh", "sigmoid", "relu", "elu", "selu", "softsign", "softplus", "swish", "gelu", "linear",
            "hard_sigmoid", "exponential"]
    inp = K.Input((4, 3))
    outs = [L.SimpleRNN(3, activation=a, name=f"rnn_{a}")(inp) for a in acts]
    outs.append(L.LSTM(3, recurrent_activation="hard_sigmoid", name="lstm_hard")(inp))
    outs.append(L.GRU(3, recurrent_activation="hard_sigmoid", activation="relu", name="gru_hard")(inp))
    outs.append(L.Dense(4, activation="softmax", name="dense_softmax")(L.Flatten()(inp)))
    m = K.Model(inp, outs)
    randomize(m)
    for layer in m.layers:  # keep exponential / relu recurrences small
        if layer.name in ("rnn_exponential", "rnn_relu", "rnn_elu", "rnn_selu", "rnn_linear", "rnn_softplus"):
            layer.set_weights([v * 0.3 for v in layer.get_weights()])
    w.case("activations", m, [seq(B, 4, 3) * 0.5], formats, describe=["hard_sigmoid"])

    # Bidirectional.
    inp = K.Input((6, 3))
    outs = [L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode=mm, name=f"bi_{mm}")(inp)
            for mm in ("concat", "sum", "mul", "ave")]
    none_pair = L.Bidirectional(L.GRU(2, return_sequences=True), merge_mode=None, name="bi_none")(inp)
    outs += list(none_pair)
    bs = L.Bidirectional(L.LSTM(3, return_state=True), name="bi_state")(inp)
    outs += list(bs)
    outs.append(L.Bidirectional(L.LSTM(3, return_sequences=True),
                                backward_layer=L.LSTM(2, return_sequences=True, go_backwards=True, activation="relu"),
                                name="bi_explicit_backward")(inp))
    m = K.Model(inp, outs)
    randomize(m)
    w.case("bidirectional_modes", m, [seq(B, 6, 3)], formats)

    # Masks: Masking with zero vectors anywhere; Bidirectional under masks; masked state outputs.
    inp = K.Input((7, 3))
    mk = L.Masking(0.0)(inp)
    a = L.SimpleRNN(4, return_sequences=True)(mk)
    b = L.Bidirectional(L.GRU(3, return_sequences=True))(a)
    c2 = L.Bidirectional(L.LSTM(2))(b)
    d, dh, dc = L.LSTM(3, return_state=True, go_backwards=True)(mk)
    e = L.LSTM(3, return_sequences=True, zero_output_for_mask=True)(mk)
    m = K.Model(inp, [a, b, c2, d, dh, dc, e])
    randomize(m)
    w.case("masking_anywhere", m, [zero_steps(seq(B, 7, 3))], formats)

    # Functional: two inputs, shared layer, nested model, merges, attention with Dot, other layers.
    x1, x2 = K.Input((5, 3), name="left"), K.Input((5, 3), name="right")
    shared = L.LSTM(4, return_sequences=True, name="shared_lstm")
    s1, s2 = shared(x1), shared(x2)
    sub = K.Sequential([K.Input((5, 4)), L.Dense(4, activation="tanh"), L.BatchNormalization()], name="sub")
    n1 = sub(s1)
    added, mult, avg = L.Add()([n1, s2]), L.Multiply()([s1, s2]), L.Average()([s1, s2])
    sub2 = L.Subtract()([s1, s2])
    mx, mn = L.Maximum()([s1, s2]), L.Minimum()([s1, s2])
    cat = L.Concatenate()([added, mult, avg, sub2, mx, mn])
    scores = L.Dot(axes=[2, 2])([s1, s2])
    att = L.Softmax()(scores)
    ctx_ = L.Dot(axes=[2, 1])([att, s2])
    cosine = L.Dot(axes=2, normalize=True)([s1, s2])
    ln = L.LayerNormalization()(cat)
    act = L.Activation("relu")(ln)
    drop = L.SpatialDropout1D(0.3)(L.GaussianNoise(0.2)(L.GaussianDropout(0.2)(L.Dropout(0.5)(act))))
    perm = L.Permute((2, 1))(drop)
    resh = L.Reshape((-1, 6))(perm)
    flat = L.Flatten()(resh)
    gap = L.GlobalAveragePooling1D()(ctx_)
    gmp = L.GlobalMaxPooling1D()(ctx_)
    head = L.Dense(3, activation="softmax", name="head")(L.Concatenate()([flat, gap, gmp]))
    m = K.Model([x1, x2], [head, cosine, ctx_])
    randomize(m)
    w.case("functional_mix", m, [seq(B, 5, 3), seq(B, 5, 3)], formats)

    # Encoder-decoder with initial_state and Luong attention (functional seed tutorial shape).
    enc_in, dec_in = K.Input((6, 3), name="enc"), K.Input((4, 3), name="dec")
    enc_seq, eh, ec = L.LSTM(5, return_sequences=True, return_state=True)(enc_in)
    dec_seq = L.LSTM(5, return_sequences=True)(dec_in, initial_state=[eh, ec])
    att = L.Softmax()(L.Dot(axes=[2, 2])([dec_seq, enc_seq]))
    ctx_ = L.Dot(axes=[2, 1])([att, enc_seq])
    out = L.TimeDistributed(L.Dense(3, activation="softmax"))(L.Concatenate()([ctx_, dec_seq]))
    m = K.Model([enc_in, dec_in], out)
    randomize(m)
    w.case("seq2seq_attention", m, [seq(B, 6, 3), seq(B, 4, 3)], formats)

    # Embedding mask through Bidirectional, TimeDistributed and masked pooling.
    ids = K.Input((8,), dtype="int32")
    e = L.Embedding(20, 4, mask_zero=True)(ids)
    bi = L.Bidirectional(L.LSTM(3, return_sequences=True))(e)
    td = L.TimeDistributed(L.Dense(2))(bi)
    gap = L.GlobalAveragePooling1D()(td)
    last = L.GRU(3)(td)
    m = K.Model(ids, [bi, td, gap, last])
    randomize(m)
    w.case("embedding_mask_pipeline", m, [ids_with_padding(B, 8, 20)], formats)


def late_cases(w, K, formats):
    """Cases added after the others were committed: last, so the earlier files (and their layer names) stay."""
    L = K.layers
    # A fully masked row: masked average pooling divides 0 by 0 (NaN in Keras), recurrent layers keep zero state.
    ids = K.Input((5,), dtype="int32")
    e = L.Embedding(10, 3, mask_zero=True)(ids)
    m = K.Model(ids, [L.GlobalAveragePooling1D()(e), L.LSTM(2)(e), L.GRU(2, return_sequences=True)(e),
                      L.Bidirectional(L.SimpleRNN(2, return_sequences=True))(e)])
    randomize(m)
    x = ids_with_padding(3, 5, 10)
    x[1] = 0
    w.case("fully_masked_row", m, [x], formats)


def graph_cases(w, K, formats):
    """Cases added with the Keras graph lowering (manifest_<generation>_graph.json; own random stream, so the files
    above stay as they are): convolutions and pools, a layer the graph cannot express yet, masks reaching a held
    or given state."""
    global RNG
    RNG = np.random.default_rng(20)
    L = K.layers
    inp = K.Input((12, 3))
    c = L.Conv1D(4, 3, padding="same", activation="relu")(inp)
    c = L.MaxPooling1D(2)(c)
    c = L.Conv1D(5, 2, padding="causal", dilation_rate=2)(c)
    c = L.AveragePooling1D(2, padding="same")(c)
    m = K.Model(inp, [L.Dense(2)(L.LSTM(4)(c)), c])
    randomize(m)
    w.case("conv_pool_1d", m, [seq(3, 12, 3)], formats)
    inp = K.Input((8, 7, 2))
    c = L.Conv2D(3, (3, 3), strides=2, padding="same", activation="relu")(inp)
    p = L.AveragePooling2D(2, padding="same")(L.MaxPooling2D(2, strides=1, padding="same")(c))
    p = L.Flatten()(L.Conv2D(4, (2, 2), activation="tanh")(p))
    head = L.Dense(3)(L.Concatenate()([p, L.GlobalAveragePooling2D()(c), L.GlobalMaxPooling2D()(c)]))
    m = K.Model(inp, head)
    randomize(m)
    w.case("conv2d_pools", m, [RNG.standard_normal((2, 8, 7, 2)).astype(np.float32)], formats)
    # LayerNormalization over two axes: no graph lowering yet, so the layer path runs it.
    m = K.Sequential([K.Input((5, 3)), L.LSTM(4, return_sequences=True), L.LayerNormalization(axis=[1, 2]),
                      L.Flatten(), L.Dense(2)])
    randomize(m)
    w.case("layernorm_two_axes", m, [seq(3, 5, 3)], formats)
    # Masked steps at the end of a chunk while the state is held between calls.
    st = K.Sequential([K.Input(batch_shape=(2, 5, 3)), L.Masking(0.0), L.LSTM(4, stateful=True, return_sequences=True),
                       L.GRU(3, stateful=True), L.Dense(2)])
    randomize(st)
    w.stateful_case("stateful_masked", st, [[zero_steps(seq(2, 5, 3))] for _ in range(3)], reset_before=[2],
                    formats=formats)
    # Initial states from another layer under a mask, with a fully masked row and go_backwards.
    enc, dec = K.Input((6, 3), name="enc"), K.Input((5, 3), name="dec")
    _, h, c = L.LSTM(4, return_state=True)(enc)
    masked = L.Masking(0.0)(dec)
    back = L.LSTM(4, go_backwards=True)(masked, initial_state=[h, c])
    seqs = L.LSTM(4, return_sequences=True)(masked, initial_state=[h, c])
    bi = L.Bidirectional(L.GRU(4))(masked, initial_state=[h, h])
    m = K.Model([enc, dec], [back, seqs, bi])
    randomize(m)
    d = zero_steps(seq(4, 5, 3))
    d[3] = 0
    w.case("initial_state_masked", m, [seq(4, 6, 3), d], formats)


def keras3_cases(w, K):
    from keras import ops

    L = K.layers
    formats = ["keras", "h5"]
    common_cases(w, K, formats, True)
    # Hand-made masks spelled as op-nodes (NotEqual, Any) passed with mask=.
    inp = K.Input((6, 3))
    mask = ops.any(ops.not_equal(inp, 0.0), axis=-1)
    a = L.LSTM(4, return_sequences=True)(inp, mask=mask)
    b = L.Bidirectional(L.GRU(3, return_sequences=True))(inp, mask=mask)
    m = K.Model(inp, [a, b])
    randomize(m)
    w.case("keras3_opnode_mask", m, [zero_steps(seq(3, 6, 3))], formats)
    # Weights-only files with the architecture given separately.
    m = K.Sequential([K.Input((5, 3)), L.Bidirectional(L.GRU(4, return_sequences=True)), L.LSTM(3), L.Dense(2)])
    randomize(m)
    w.case("weights_only", m, [seq(3, 5, 3)], ["weights"])
    late_cases(w, K, formats)


def tfkeras_cases(w, K):
    import tensorflow as tf

    L = K.layers
    formats = ["h5"]
    common_cases(w, K, formats, False)
    inp = K.Input((6, 3))
    mask = tf.math.reduce_any(tf.math.not_equal(inp, 0.0), axis=-1)
    a = L.LSTM(4, return_sequences=True)(inp, mask=mask)
    m = K.Model(inp, [a])
    randomize(m)
    w.case("tfkeras_tfop_mask", m, [zero_steps(seq(3, 6, 3))], formats)
    m = K.Sequential([K.Input((5, 3)), L.Bidirectional(L.GRU(4, return_sequences=True)), L.LSTM(3), L.Dense(2)])
    randomize(m)
    w.case("weights_only", m, [seq(3, 5, 3)], ["legacy_weights", "weights"])
    late_cases(w, K, formats)
    # A Sequential nested in a Sequential, the inner one declaring its input: Keras 2 numbers its calls from 1.
    inner = K.Sequential([L.LSTM(5, return_sequences=True, input_shape=(None, 3))], name="inner_seq")
    m = K.Sequential([inner, L.GRU(4), L.Dense(2)], name="outer_seq")
    randomize(m)
    w.case("nested_sequential", m, [seq(2, 6, 3)], formats)


# ---------------------------------------------------------------------------------------------------------------
# Keras 1 / Keras 2.1 / CuDNN files written with h5py; expected outputs from tf-keras loading the same files.

def _write_legacy_h5(path, model_config, version, layers, chunk_names=False):
    """layers: list of (layer_name, [(weight_name, array), ...]) in the model's layer order."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = np.bytes_(version)
        f.attrs["backend"] = np.bytes_("tensorflow")
        f.attrs["model_config"] = np.bytes_(json.dumps(model_config))
        g = f.create_group("model_weights")
        names = [np.bytes_(n) for n, _ in layers]
        if chunk_names:
            # What Keras does when the attribute exceeds HDF5's 64 KiB header limit: split it in chunks.
            half = (len(names) + 1) // 2
            g.attrs["layer_names0"] = np.array(names[:half])
            g.attrs["layer_names1"] = np.array(names[half:])
        else:
            g.attrs["layer_names"] = np.array(names)
        if not version.startswith("1."):
            # Keras 1 wrote no version on model_weights; that absence is how Keras 2 (and tf-keras) recognise
            # Keras 1 weights that need converting.
            g.attrs["keras_version"] = np.bytes_(version)
            g.attrs["backend"] = np.bytes_("tensorflow")
        for lname, weights in layers:
            lg = g.create_group(lname)
            lg.attrs["weight_names"] = np.array([np.bytes_(n) for n, _ in weights], dtype="S")
            for wname, arr in weights:
                lg.create_dataset(wname, data=np.asarray(arr, np.float32))


def _u(*shape):
    return RNG.uniform(-0.6, 0.6, shape).astype(np.float32)


def legacy_cases(w, K):
    L = K.layers
    B = 3

    def expect(model, path, xs):
        model.load_weights(path)  # tf-keras converts Keras 1 per-gate and CuDNN weights itself
        return w.predict(model, xs)

    def record(name, path, model, xs, describe=(), note=""):
        ys = expect(model, path, xs)
        np.savez_compressed(os.path.join(OUT, f"{name}.npz"), **_pack(xs, ys))
        w.cases.append({"name": name, "file": os.path.basename(path), "npz": f"{name}.npz", "generation": "legacy",
                        "keras_version": note, "describe": list(describe), "note": note})

    # Keras 1.2.2 Sequential: Embedding(mask_zero) -> LSTM (per-gate weights, hard_sigmoid) -> GRU -> Dense.
    H, G, E, V, T = 4, 3, 5, 15, 6
    lstm = [(f"lstm_1_{k}_{g}", _u(*(E, H) if k == "W" else (H, H) if k == "U" else (H,)))
            for g in "icfo" for k in ("W", "U", "b")]
    gru = [(f"gru_1_{k}_{g}", _u(*(H, G) if k == "W" else (G, G) if k == "U" else (G,)))
           for g in "zrh" for k in ("W", "U", "b")]
    emb = _u(V, E)
    dense_w, dense_b = _u(G, 2), _u(2)
    cfg = {"class_name": "Sequential", "config": [
        {"class_name": "Embedding", "config": {"name": "embedding_1", "input_dim": V, "output_dim": E,
                                               "mask_zero": True, "input_length": T, "batch_input_shape": [None, T],
                                               "init": "uniform", "trainable": True, "dropout": 0.0}},
        {"class_name": "LSTM", "config": {"name": "lstm_1", "output_dim": H, "return_sequences": True,
                                          "go_backwards": False, "stateful": False, "unroll": False,
                                          "consume_less": "cpu", "init": "glorot_uniform", "inner_init": "orthogonal",
                                          "forget_bias_init": "one", "activation": "tanh",
                                          "inner_activation": "hard_sigmoid", "W_regularizer": None,
                                          "U_regularizer": None, "b_regularizer": None, "dropout_W": 0.0,
                                          "dropout_U": 0.0, "trainable": True}},
        {"class_name": "GRU", "config": {"name": "gru_1", "output_dim": G, "return_sequences": False,
                                         "go_backwards": False, "stateful": False, "unroll": False,
                                         "consume_less": "mem", "activation": "tanh",
                                         "inner_activation": "hard_sigmoid", "dropout_W": 0.0, "dropout_U": 0.0,
                                         "trainable": True}},
        {"class_name": "Dense", "config": {"name": "dense_1", "output_dim": 2, "activation": "softmax",
                                           "bias": True, "init": "glorot_uniform", "trainable": True,
                                           "input_dim": None}},
    ]}
    path = os.path.join(OUT, "keras1_sequential.h5")
    _write_legacy_h5(path, cfg, "1.2.2", [("embedding_1", [("embedding_1_W", emb)]), ("lstm_1", lstm),
                                           ("gru_1", gru), ("dense_1", [("dense_1_W", dense_w),
                                                                         ("dense_1_b", dense_b)])])
    m = K.Sequential([K.Input((T,), dtype="int32"), L.Embedding(V, E, mask_zero=True, name="embedding_1"),
                      L.LSTM(H, return_sequences=True, recurrent_activation="hard_sigmoid", name="lstm_1"),
                      L.GRU(G, recurrent_activation="hard_sigmoid", reset_after=False, name="gru_1"),
                      L.Dense(2, activation="softmax", name="dense_1")])
    record("keras1_sequential", path, m, [ids_with_padding(B, T, V)], describe=["hard_sigmoid", "Keras 1.2.2"],
           note="1.2.2")

    # Keras 1.2.2 consume_less='gpu' LSTM (concatenated weights), Bidirectional + TimeDistributed(Dense).
    T2, I2 = 5, 3
    bi = [(f"bidirectional_1_{d}_{k}", a) for d in ("forward", "backward")
          for k, a in (("W", _u(I2, 4 * 3)), ("U", _u(3, 4 * 3)), ("b", _u(4 * 3)))]
    td_w, td_b = _u(6, 2), _u(2)
    cfg = {"class_name": "Sequential", "config": [
        {"class_name": "Bidirectional", "config": {"name": "bidirectional_1", "merge_mode": "concat",
                                                   "batch_input_shape": [None, T2, I2], "trainable": True,
                                                   "layer": {"class_name": "LSTM", "config": {
                                                       "name": "lstm_2", "output_dim": 3, "return_sequences": True,
                                                       "consume_less": "gpu", "activation": "tanh",
                                                       "inner_activation": "hard_sigmoid", "go_backwards": False,
                                                       "stateful": False, "trainable": True}}}},
        {"class_name": "TimeDistributed", "config": {"name": "timedistributed_1", "trainable": True,
                                                     "layer": {"class_name": "Dense", "config": {
                                                         "name": "dense_2", "output_dim": 2, "activation": "linear",
                                                         "bias": True, "trainable": True}}}},
    ]}
    path = os.path.join(OUT, "keras1_bidirectional_gpu.h5")
    _write_legacy_h5(path, cfg, "1.2.2", [("bidirectional_1", bi),
                                           ("timedistributed_1", [("dense_2_W", td_w), ("dense_2_b", td_b)])])
    m = K.Sequential([K.Input((T2, I2)),
                      L.Bidirectional(L.LSTM(3, return_sequences=True, recurrent_activation="hard_sigmoid")),
                      L.TimeDistributed(L.Dense(2))])
    record("keras1_bidirectional_gpu", path, m, [seq(B, T2, I2)], note="1.2.2")

    # Keras 2.1.6 Sequential (list config, `lstm_1/kernel:0` names, chunked layer_names, GRU without reset_after).
    I3, H3 = 3, 4
    layers = [("masking_1", []),
              ("lstm_1", [("lstm_1/kernel:0", _u(I3, 4 * H3)), ("lstm_1/recurrent_kernel:0", _u(H3, 4 * H3)),
                          ("lstm_1/bias:0", _u(4 * H3))]),
              ("gru_1", [("gru_1/kernel:0", _u(H3, 9)), ("gru_1/recurrent_kernel:0", _u(3, 9)),
                         ("gru_1/bias:0", _u(9))]),
              ("dense_1", [("dense_1/kernel:0", _u(3, 2)), ("dense_1/bias:0", _u(2))])]
    rnn_common = {"return_state": False, "go_backwards": False, "stateful": False, "unroll": False,
                  "use_bias": True, "dropout": 0.0, "recurrent_dropout": 0.0, "trainable": True,
                  "activation": "tanh", "recurrent_activation": "hard_sigmoid", "implementation": 1}
    cfg = {"class_name": "Sequential", "config": [
        {"class_name": "Masking", "config": {"name": "masking_1", "mask_value": 0.0, "trainable": True,
                                             "batch_input_shape": [None, 7, I3], "dtype": "float32"}},
        {"class_name": "LSTM", "config": dict(rnn_common, name="lstm_1", units=H3, return_sequences=True,
                                              unit_forget_bias=True)},
        {"class_name": "GRU", "config": dict(rnn_common, name="gru_1", units=3, return_sequences=False)},
        {"class_name": "Dense", "config": {"name": "dense_1", "units": 2, "activation": "linear",
                                           "use_bias": True, "trainable": True}},
    ]}
    path = os.path.join(OUT, "keras2_sequential_chunked.h5")
    _write_legacy_h5(path, cfg, "2.1.6", layers, chunk_names=True)
    m = K.Sequential([K.Input((7, I3)), L.Masking(0.0), L.LSTM(H3, return_sequences=True,
                                                              recurrent_activation="hard_sigmoid"),
                      L.GRU(3, recurrent_activation="hard_sigmoid", reset_after=False), L.Dense(2)])
    record("keras2_sequential_chunked", path, m, [zero_steps(seq(B, 7, I3))],
           describe=["reset_after = False"], note="2.1.6")

    # CuDNNLSTM / CuDNNGRU (Keras 2.1.6 with TF GPU): [8H] / [6H] biases and cuDNN kernel layout.
    H4, I4 = 4, 3
    layers = [("cu_dnnlstm_1", [("cu_dnnlstm_1/kernel:0", _u(I4, 4 * H4)),
                                ("cu_dnnlstm_1/recurrent_kernel:0", _u(H4, 4 * H4)),
                                ("cu_dnnlstm_1/bias:0", _u(8 * H4))]),
              ("cu_dnngru_1", [("cu_dnngru_1/kernel:0", _u(H4, 9)), ("cu_dnngru_1/recurrent_kernel:0", _u(3, 9)),
                               ("cu_dnngru_1/bias:0", _u(18))])]
    cu_common = {"return_state": False, "go_backwards": False, "stateful": False, "trainable": True}
    cfg = {"class_name": "Sequential", "config": [
        {"class_name": "CuDNNLSTM", "config": dict(cu_common, name="cu_dnnlstm_1", units=H4, return_sequences=True,
                                                   batch_input_shape=[None, 5, I4], unit_forget_bias=True)},
        {"class_name": "CuDNNGRU", "config": dict(cu_common, name="cu_dnngru_1", units=3, return_sequences=True)},
    ]}
    path = os.path.join(OUT, "keras2_cudnn.h5")
    _write_legacy_h5(path, cfg, "2.1.6", layers)
    m = K.Sequential([K.Input((5, I4)), L.LSTM(H4, return_sequences=True, recurrent_activation="sigmoid"),
                      L.GRU(3, return_sequences=True, recurrent_activation="sigmoid", reset_after=True)])
    record("keras2_cudnn", path, m, [seq(B, 5, I4)], describe=["cuDNN"], note="2.1.6")


def main():
    generation = sys.argv[1] if len(sys.argv) > 1 else ""
    if generation == "keras3":
        import keras as K

        w = Writer("keras3", K.__version__)
        keras3_cases(w, K)
    elif generation == "keras3-graph":
        import keras as K

        w = Writer("keras3", K.__version__, manifest="keras3_graph")
        graph_cases(w, K, ["keras", "h5"])
    elif generation == "tfkeras-graph":
        import tf_keras as K

        w = Writer("tfkeras", K.__version__, manifest="tfkeras_graph")
        graph_cases(w, K, ["h5"])
    elif generation in ("tfkeras", "legacy"):
        import tf_keras as K

        w = Writer(generation, K.__version__)
        (tfkeras_cases if generation == "tfkeras" else legacy_cases)(w, K)
    else:
        sys.exit("usage: make_keras_fixtures.py keras3|tfkeras|legacy|keras3-graph|tfkeras-graph (see the docstring "
                 "for the venvs)")
    w.finish()


if __name__ == "__main__":
    main()
