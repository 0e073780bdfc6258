"""Train the tutorials' models for real with Keras 3 and record what Keras computes (the examples and the tests
need neither TensorFlow nor PyTorch).

    python3.11 -m venv /work/venv-tut
    /work/venv-tut/bin/pip install tensorflow keras scikit-learn numpy h5py matplotlib
    /work/venv-tut/bin/python tools/train_tutorials.py            # all; or name some: digits_rnn sentiment ...

Writes rnnfast/examples_data/<name>.{keras,h5} and <name>.npz. Each .npz holds the test inputs `x`, the truth
`y_true`, Keras' `model.predict` output `keras_pred`, Keras' metric `keras_metric` (named by `metric`), and what
the example needs to show the result (vocabularies, chunking). The data, all available offline:
- digits: scikit-learn's bundled 8x8 digits, each image read row by row as an 8-step sequence of 8 values.
- sentiment: SYNTHETIC reviews from a template grammar (no labelled review set ships inside a PyPI package we
  could use offline): "the plot was not very good but the acting was superb". The label is the sentiment of the
  last clause, a "not" flips it, so the network has to read in order; see `review()`.
- text: the Zen of Python (PEP 20, placed in the public domain), which every Python ships as `this.s` (rot13).
- sine: a noisy sine, next value from the previous 20; running mean: random steps, output the mean so far.
- addition: "a+b" written as text (a, b < 100), answer written as text.
Training takes half a minute to four minutes per model on a busy 2-core machine; seeds are fixed. The files
are saved without the optimizer (see `bare`), so each stays under 500 KB.

digits_tf1_lstm is trained the TensorFlow 1.x way instead (tf.compat.v1 graph, BasicLSTMCell, dynamic_rnn,
tf.layers.dense, tf.train.Saver): it needs tf-keras for the legacy rnn_cell classes (pip install tf-keras; this
script sets TF_USE_LEGACY_KERAS=1, which changes only tf.keras, not the `keras` package the other models use), and
writes a checkpoint <name>.ckpt.index + .ckpt.data-00000-of-00001 with its Adam slots, as Saver writes it.
"""
from __future__ import annotations

import codecs
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.compat.v1.nn.rnn_cell (digits_tf1_lstm) lives in tf-keras

import numpy as np  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "rnnfast", "examples_data")
RNG = np.random.default_rng(7)


def keras_modules():
    import keras
    from keras import layers

    keras.utils.set_random_seed(7)
    return keras, layers


def bare(model):
    """The model without its optimizer: Keras writes the optimizer's slots (twice the weights for Adam) into
    the file of a compiled model, and inference needs none of them."""
    out = model.__class__.from_config(model.get_config())  # clone_model would copy the compiled optimizer too
    out.set_weights(model.get_weights())
    return out


def save(model, name, fmt, **arrays):
    bare(model).save(os.path.join(OUT, f"{name}.{fmt}"))
    np.savez_compressed(os.path.join(OUT, f"{name}.npz"), **arrays)
    size = os.path.getsize(os.path.join(OUT, f"{name}.{fmt}"))
    print(f"{name}.{fmt}: {size / 1024:.0f} KB, {arrays['metric']} {float(arrays['keras_metric']):.4f}")


def accuracy(pred, y):
    return np.float64(np.mean(np.argmax(pred, -1) == y))


# -- data ---------------------------------------------------------------------------------------------------------
def digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)  # [n, 8 rows, 8 columns]: rows are the time steps
    return train_test_split(x, d.target, test_size=0.25, random_state=0, stratify=d.target)


SUBJECTS = ["the movie", "the plot", "the acting", "the music", "the ending", "the story", "the film", "the cast"]
GOOD = ["good", "great", "superb", "wonderful", "brilliant", "fun", "moving", "excellent"]
BAD = ["bad", "awful", "boring", "dull", "terrible", "weak", "poor", "silly"]
ADVERBS = ["", "very ", "really ", "quite "]


def clause(rng):
    positive = rng.random() < 0.5
    negated = rng.random() < 0.3
    word = rng.choice(GOOD if positive else BAD)
    text = f"{rng.choice(SUBJECTS)} was {'not ' if negated else ''}{rng.choice(ADVERBS)}{word}"
    return text, positive != negated


def review(rng):
    """One or two clauses; with "but", the second one decides."""
    text, label = clause(rng)
    if rng.random() < 0.5:
        second, label = clause(rng)
        text = f"{text} but {second}"
    return text.split(), int(label)


def zen_text():
    import this  # noqa: F401  (prints the poem once on import, as it always does)

    return codecs.decode(this.s, "rot13")


def noisy_sine(n):
    t = np.arange(n) * 0.1
    return (np.sin(t) + 0.1 * RNG.standard_normal(n)).astype(np.float32)


# -- the models ---------------------------------------------------------------------------------------------------
def digits_rnn():
    """1: SimpleRNN(16, relu) over the image rows, Dense softmax."""
    keras, L = keras_modules()
    xtr, xte, ytr, yte = digits_split()
    model = keras.Sequential([keras.Input((8, 8)), L.SimpleRNN(16, activation="relu"), L.Dense(10, "softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(xtr, ytr, epochs=60, batch_size=32, verbose=0)
    pred = model.predict(xte, verbose=0)
    save(model, "digits_rnn", "keras", x=xte, y_true=yte, keras_pred=pred, keras_metric=accuracy(pred, yte),
         metric="accuracy")


def digits_variants():
    """6: Bidirectional LSTM, deep (stacked) Bidirectional, and a GRU variant of example 1."""
    keras, L = keras_modules()
    xtr, xte, ytr, yte = digits_split()
    models = {
        "digits_bilstm": ("keras", [L.Bidirectional(L.LSTM(16))]),
        "digits_deep_bilstm": ("h5", [L.Bidirectional(L.LSTM(16, return_sequences=True)),
                                      L.Bidirectional(L.LSTM(16))]),
        "digits_gru": ("keras", [L.GRU(24)]),
    }
    for name, (fmt, rnn) in models.items():
        model = keras.Sequential([keras.Input((8, 8))] + rnn + [L.Dense(10, "softmax")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(xtr, ytr, epochs=40, batch_size=32, verbose=0)
        pred = model.predict(xte, verbose=0)
        save(model, name, fmt, x=xte, y_true=yte, keras_pred=pred, keras_metric=accuracy(pred, yte),
             metric="accuracy")


def digits_tf1_lstm():
    """8: the MNIST-rows LSTM of the TF 1.x tutorials on the digits: BasicLSTMCell(32) under dynamic_rnn, a dense
    layer on the last output, softmax cross-entropy, Adam; saved by tf.train.Saver. The same dense layer is applied
    to every step's output for the record (`keras_pred`, [n, 8, 10] probabilities), so rnnfast's whole output
    sequence is checked; the accuracy reads the last step, which is what the model was trained on."""
    import json

    import tensorflow as tf

    tf1 = tf.compat.v1
    xtr, xte, ytr, yte = digits_split()
    graph = tf.Graph()
    with graph.as_default():  # graph mode here only: the Keras models above keep eager execution
        tf1.set_random_seed(7)
        x = tf1.placeholder(tf.float32, [None, 8, 8])
        y = tf1.placeholder(tf.int64, [None])
        outputs, _ = tf1.nn.dynamic_rnn(tf1.nn.rnn_cell.BasicLSTMCell(32), x, dtype=tf.float32)
        head = tf1.layers.Dense(10)
        logits = head(outputs[:, -1])
        every_step = tf.nn.softmax(head(outputs))
        loss = tf1.losses.sparse_softmax_cross_entropy(y, logits)
        train = tf1.train.AdamOptimizer(0.01).minimize(loss)
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            rng = np.random.default_rng(7)
            for _ in range(40):
                order = rng.permutation(len(xtr))
                for k in range(0, len(order), 32):
                    batch = order[k:k + 32]
                    sess.run(train, {x: xtr[batch], y: ytr[batch]})
            pred = sess.run(every_step, {x: xte})
            prefix = os.path.join(OUT, "digits_tf1_lstm.ckpt")
            tf1.train.Saver().save(sess, prefix, write_meta_graph=False, write_state=False)
    arrays = dict(x=xte, y_true=yte, keras_pred=pred, keras_metric=accuracy(pred[:, -1], yte), metric="accuracy",
                  load_options=json.dumps({"head_activation": "softmax"}))
    np.savez_compressed(os.path.join(OUT, "digits_tf1_lstm.npz"), **arrays)
    size = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT) if f.startswith("digits_tf1_lstm.ckpt"))
    print(f"digits_tf1_lstm.ckpt: {size / 1024:.0f} KB, accuracy {float(arrays['keras_metric']):.4f}")


def sentiment():
    """2: Embedding + SimpleRNN + Dense sigmoid on the synthetic reviews, zero-padded at the end (mask_zero), so
    the ONNX export may turn the mask into sequence_lens (assume_suffix_padding)."""
    keras, L = keras_modules()
    rng = np.random.default_rng(11)
    words = ["<pad>"] + sorted({w for s in SUBJECTS for w in s.split()} | set(GOOD) | set(BAD)
                               | {a.strip() for a in ADVERBS if a} | {"was", "not", "but"})
    index = {w: i for i, w in enumerate(words)}
    T = 16
    reviews = [review(rng) for _ in range(3000)]
    x = np.zeros((len(reviews), T), np.int32)
    for i, (ws, _) in enumerate(reviews):
        x[i, :len(ws)] = [index[w] for w in ws]
    y = np.array([label for _, label in reviews], np.int32)
    xtr, xte, ytr, yte = x[:2500], x[2500:], y[:2500], y[2500:]
    model = keras.Sequential([keras.Input((T,), dtype="int32"), L.Embedding(len(words), 16, mask_zero=True),
                              L.SimpleRNN(32), L.Dense(1, "sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    model.fit(xtr, ytr, epochs=25, batch_size=32, verbose=0)
    pred = model.predict(xte, verbose=0)
    save(model, "sentiment_rnn", "h5", x=xte, y_true=yte, keras_pred=pred,
         keras_metric=np.float64(np.mean((pred[:, 0] > 0.5) == yte)), metric="accuracy", words=np.array(words),
         suffix_padded=True)


def char_lstm():
    """3: next-character LSTM on the Zen of Python (Embedding -> LSTM -> Dense softmax at every step)."""
    keras, L = keras_modules()
    text = zen_text()
    chars = sorted(set(text))
    ids = np.array([chars.index(c) for c in text], np.int32)
    T = 40
    starts = np.arange(0, len(ids) - T - 1)
    x = np.stack([ids[s:s + T] for s in starts])
    y = np.stack([ids[s + 1:s + T + 1] for s in starts])
    model = keras.Sequential([keras.Input((None,), dtype="int32"), L.Embedding(len(chars), 16),
                              L.LSTM(128, return_sequences=True), L.Dense(len(chars), "softmax")])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=40, batch_size=64, verbose=0)
    test = np.arange(0, len(starts), 13)  # every 13th window: the model's next-character accuracy on the text
    pred = model.predict(x[test], verbose=0)
    save(model, "char_lstm", "keras", x=x[test], y_true=y[test], keras_pred=pred,
         keras_metric=accuracy(pred, y[test]), metric="accuracy", chars=np.array(chars))


def sine_lstm():
    """4: next value of a noisy sine from the 20 before it (LSTM -> Dense)."""
    keras, L = keras_modules()
    series = noisy_sine(1400)
    T = 20
    x = np.stack([series[i:i + T] for i in range(len(series) - T)])[..., None]
    y = series[T:]
    xtr, xte, ytr, yte = x[:1000], x[1000:], y[:1000], y[1000:]
    model = keras.Sequential([keras.Input((T, 1)), L.LSTM(32), L.Dense(1)])
    model.compile("adam", "mse")
    model.fit(xtr, ytr, epochs=30, batch_size=32, verbose=0)
    pred = model.predict(xte, verbose=0)
    save(model, "sine_lstm", "h5", x=xte, y_true=yte, keras_pred=pred,
         keras_metric=np.float64(np.mean((pred[:, 0] - yte) ** 2)), metric="mse")


ADD_CHARS = "0123456789+ "


def addition():
    """5: "a+b" -> sum, both as text: LSTM encoder, RepeatVector, LSTM decoder, Dense softmax at each step."""
    keras, L = keras_modules()
    rng = np.random.default_rng(3)
    n, t_in, t_out = 12000, 5, 3
    a, b = rng.integers(0, 100, n), rng.integers(0, 100, n)
    qs = [f"{i}+{j}".ljust(t_in) for i, j in zip(a, b)]
    ans = [str(i + j).ljust(t_out) for i, j in zip(a, b)]
    V = len(ADD_CHARS)
    x = np.zeros((n, t_in, V), np.float32)
    y = np.array([[ADD_CHARS.index(c) for c in s] for s in ans], np.int32)
    for i, q in enumerate(qs):
        x[i, np.arange(t_in), [ADD_CHARS.index(c) for c in q]] = 1
    xtr, xte, ytr, yte = x[:11000], x[11000:], y[:11000], y[11000:]
    model = keras.Sequential([keras.Input((t_in, V)), L.LSTM(96, name="encoder"), L.RepeatVector(t_out),
                              L.LSTM(96, return_sequences=True, name="decoder"), L.Dense(V, "softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(xtr, ytr, epochs=40, batch_size=64, verbose=0)
    pred = model.predict(xte, verbose=0)
    save(model, "addition_seq2seq", "keras", x=xte, y_true=yte, keras_pred=pred,
         keras_metric=np.float64(np.mean(np.all(np.argmax(pred, -1) == yte, axis=1))), metric="exact answers",
         chars=np.array(list(ADD_CHARS)))


def running_mean():
    """7: trained stateless on whole sequences, run stateful chunk by chunk (Keras reset_states between
    sequences): LSTM(return_sequences) -> Dense gives the mean of the inputs so far at every step."""
    keras, L = keras_modules()
    T, B, chunk = 60, 4, 20

    def data(n):
        x = RNG.uniform(-1, 1, (n, T, 1)).astype(np.float32)
        return x, np.cumsum(x, 1) / np.arange(1, T + 1)[None, :, None]

    xtr, ytr = data(4000)
    trained = keras.Sequential([keras.Input((None, 1)), L.LSTM(24, return_sequences=True), L.Dense(1)])
    trained.compile("adam", "mse")
    trained.fit(xtr, ytr, epochs=25, batch_size=32, verbose=0)
    model = keras.Sequential([keras.Input(batch_shape=(B, chunk, 1)),
                              L.LSTM(24, return_sequences=True, stateful=True), L.Dense(1)])
    model.set_weights(trained.get_weights())
    n_seq = 3  # three sets of B sequences, each fed in T / chunk chunks
    xte, yte = data(n_seq * B)
    xs, ps, reset_before = [], [], []
    for s in range(n_seq):
        for layer in model.layers:
            if hasattr(layer, "reset_states"):
                layer.reset_states()
        reset_before.append(len(xs))
        for c in range(T // chunk):
            xc = xte[s * B:(s + 1) * B, c * chunk:(c + 1) * chunk]
            xs.append(xc)
            ps.append(model.predict(xc, verbose=0, batch_size=B))
    ys = [yte[s * B:(s + 1) * B, c * chunk:(c + 1) * chunk] for s in range(n_seq) for c in range(T // chunk)]
    pred, y_true = np.stack(ps), np.stack(ys)
    save(model, "running_mean_stateful", "h5", x=np.stack(xs), y_true=y_true, keras_pred=pred,
         keras_metric=np.float64(np.mean((pred - y_true) ** 2)), metric="mse", reset_before=np.array(reset_before))


MODELS = {"digits_rnn": digits_rnn, "sentiment": sentiment, "char_lstm": char_lstm, "sine_lstm": sine_lstm,
          "addition": addition, "digits_variants": digits_variants, "running_mean": running_mean,
          "digits_tf1_lstm": digits_tf1_lstm}

if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name in sys.argv[1:] or list(MODELS):
        MODELS[name]()
