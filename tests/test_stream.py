"""Model.stream(): step-by-step inference with the state kept in C, checked against whole-sequence runs."""
import pickle

import numpy as np
import pytest

import rnnfast
from conftest import assert_close
from onnx_builders import recurrent_model

from rnnfast.layers import N_GATES
from pathlib import Path

TORCH_DATA = Path(__file__).parent / "data" / "torch"


def onnx_model(cell, direction="forward", batch=3, hidden=6, inputs=4, seed=0):
    rng = np.random.default_rng(seed)
    D, G = (2 if direction == "bidirectional" else 1), N_GATES[cell]
    f = lambda *s: rng.uniform(-0.5, 0.5, s).astype(np.float32)
    attrs = {"hidden_size": hidden, "direction": direction}
    if cell == "gru":
        attrs["linear_before_reset"] = 1
    data, _ = recurrent_model(cell, attrs, [f(5, batch, inputs), f(D, G * hidden, inputs), f(D, G * hidden, hidden),
                                            f(D, 2 * G * hidden)], 3 if cell == "lstm" else 2)
    return rnnfast.load(data)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_steps_equal_run_and_state_round_trips(cell):
    model = onnx_model(cell)
    x = np.random.default_rng(1).standard_normal((9, 3, 4)).astype(np.float32)
    y = model.run(x)[0]  # [T, 1, B, H]
    stream = model.stream(batch=3)
    for t in range(4):
        assert np.array_equal(stream.step(x[t]), y[t, 0])
    saved = pickle.loads(pickle.dumps(stream.state))
    rest = stream.feed(x[4:])
    assert np.array_equal(rest, y[4:, 0])
    stream.state = saved  # back to after step 4: the same steps again give the same outputs
    assert np.array_equal(stream.feed(x[4:]), y[4:, 0])


def test_reset_rows_restarts_only_those_rows():
    model = onnx_model("lstm")
    x = np.random.default_rng(2).standard_normal((6, 3, 4)).astype(np.float32)
    stream = model.stream(batch=3)
    stream.feed(x[:3])
    stream.reset(rows=[1])
    out = stream.feed(x[3:])
    fresh = model.run(x[3:])[0][:, 0]
    cont = model.run(x)[0][3:, 0]
    assert np.array_equal(out[:, 1], fresh[:, 1])
    assert np.array_equal(out[:, [0, 2]], cont[:, [0, 2]])


def test_bidirectional_models_refuse_to_stream_by_name():
    with pytest.raises(rnnfast.FormatError, match="bidirectional.*sliding window"):
        onnx_model("gru", "bidirectional").stream()


def test_refused_step_leaves_the_state_unchanged():
    stream = onnx_model("gru").stream(batch=3)
    stream.step(np.ones((3, 4), np.float32))
    before = stream.state
    with pytest.raises(ValueError, match="\\[batch, input\\] = \\(3, 4\\)"):
        stream.step(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="must have shape"):
        stream.state = {"layer0.h": np.zeros((1, 2, 6), np.float32)}
    after = stream.state
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_torch_embedding_lstm_linear_streams_token_by_token():
    """Against torch's own recorded output (batch-first [2, 7] token ids -> [2, 7, 5])."""
    ref = np.load(TORCH_DATA / "emb_lstm_fc.npz")
    model = rnnfast.load(TORCH_DATA / "emb_lstm_fc.pt", embedding="emb", rnn="lstm", head="fc", batch_first=True)
    ids = ref["input"]
    stream = model.stream(batch=ids.shape[0])
    steps = np.stack([stream.step(ids[:, t]) for t in range(ids.shape[1])], axis=1)
    assert_close(steps, ref["output"])
    with pytest.raises(ValueError, match="integer token id"):
        stream.step(np.array([0.5, 1.5]))


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("hidden", [1, 7, 16, 17, 33, 64])
@pytest.mark.parametrize("seq_len", [1, 7, 13])
def test_batch_one_steps_equal_run_to_the_bit(cell, hidden, seq_len):
    """At batch 1 a step's input projection is a one-row GEMM while the run's covers all steps: each output must
    still be summed in the same order (seq_len 7 and 13 leave a lone last row beside 6-row blocks)."""
    from conftest import random_layer
    from rnnfast.engine import CompiledStack
    from rnnfast.stream import Stream

    rng = np.random.default_rng(hidden * 31 + seq_len)
    layer = random_layer(rng, cell, "forward", input_size=9, hidden_size=hidden)
    x = rng.standard_normal((seq_len, 1, 9)).astype(np.float32)
    y, _, _ = CompiledStack([layer]).run(x)
    stream = Stream([layer], 1)
    assert np.array_equal(np.stack([stream.step(x[t]) for t in range(seq_len)]), y[:, 0])
