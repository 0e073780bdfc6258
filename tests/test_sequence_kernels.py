"""The sequence kernels (kernels.h lstm_seq, gru_lbr_seq, rnn_seq: one direction of a small batch-1 layer run whole in
one call, input projection included) against the step drivers, bit for bit, under every kernel table this CPU runs.

The engine takes a sequence kernel only when every step of the row is real. A mask that leaves out the direction's
last step sends the same sequence through the step drivers instead: that step carries the state, so the final
states and every output before it must have the bits of the sequence kernel's run over the other steps. Sizes reach
every unit block count the kernels take (and one past), the gate configurations all of test_isa_tables.py's."""
import numpy as np
import pytest

from conftest import random_layer
from rnnfast import _core
from rnnfast.engine import CompiledStack

CONFIGS = [
    dict(cell="rnn"), dict(cell="rnn", activations="Relu"), dict(cell="rnn", clip=0.5),
    dict(cell="gru", linear_before_reset=True), dict(cell="gru", linear_before_reset=False),
    dict(cell="gru", linear_before_reset=True, clip=0.5), dict(cell="gru", activations="HardSigmoid"),
    dict(cell="lstm"), dict(cell="lstm", peepholes=True), dict(cell="lstm", input_forget=True),
    dict(cell="lstm", peepholes=True, input_forget=True, clip=0.5), dict(cell="lstm", clip=0.5),
    dict(cell="lstm", activations="Softsign"), dict(cell="lstm", proj_size=5),
]
# per cell: 1..4 unit blocks for LSTM (at most 256 packed columns), 1..5 for GRU, 1..16 for the simple RNN (AVX-512
# in one to four groups), then one more block, which the step drivers run
HIDDEN = {"lstm": [1, 16, 17, 33, 64, 65], "gru": [7, 32, 80, 81], "rnn": [5, 48, 100, 128, 129, 200, 256, 257]}


@pytest.fixture(params=_core.isa_supported())
def table(request):
    before = _core.isa_selected()
    _core.isa_select(request.param)
    yield request.param
    _core.isa_select(before)


def cases():
    for config in CONFIGS:
        for hidden in HIDDEN[config["cell"]]:
            for direction in ("forward", "reverse"):
                yield pytest.param(config, hidden, direction,
                                   id="-".join(f"{k}={v}" for k, v in config.items()) + f"-{hidden}-{direction}")


@pytest.mark.parametrize("input_size", [3, 40])  # projected inside the kernel, or by one GEMM first
@pytest.mark.parametrize("config,hidden,direction", list(cases()))
def test_sequence_kernel_gives_the_step_drivers_bits(table, config, hidden, direction, input_size):
    rng = np.random.default_rng(hidden * 7 + input_size)
    layer = random_layer(rng, direction=direction, input_size=input_size, hidden_size=hidden, **config)
    T = 9
    x = (rng.standard_normal((T, 1, input_size)) * 2).astype(np.float32)
    h0 = rng.standard_normal((1, 1, layer.output_size)).astype(np.float32)
    c0 = rng.standard_normal((1, 1, hidden)).astype(np.float32) if config["cell"] == "lstm" else None
    stack = CompiledStack([layer])
    # the step the direction takes last: masked, it sends the whole run through the step drivers
    last = 0 if direction == "reverse" else T - 1
    kept = slice(1, T) if direction == "reverse" else slice(0, T - 1)
    mask = np.ones((T, 1), bool)
    mask[last] = False
    for n_threads in (1, 2):
        by_steps = stack.run(x, initial_h=[h0], initial_c=[c0], mask=mask, n_threads=n_threads)
        whole = stack.run(np.ascontiguousarray(x[kept]), initial_h=[h0], initial_c=[c0], n_threads=n_threads)
        what = f"{table} {config} hidden {hidden} {direction} input {input_size} threads {n_threads}"
        assert by_steps[0][kept].tobytes() == whole[0].tobytes(), f"{what}: outputs"
        assert by_steps[1][0].tobytes() == whole[1][0].tobytes(), f"{what}: final h"
        if c0 is not None:
            assert by_steps[2][0].tobytes() == whole[2][0].tobytes(), f"{what}: final c"


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_bidirectional_and_stacked_small_layers_give_the_step_drivers_bits(table, cell):
    """Each direction of a bidirectional layer (one thread each, or both on one) and each layer of a stack through the
    sequence kernels: the forward direction's outputs before a masked last step, as above, and a stack's first layer
    feeding the second one row at a time (the second layer's input is the first's output sequence)."""
    rng = np.random.default_rng(5)
    extra = dict(linear_before_reset=True) if cell == "gru" else {}
    bi = random_layer(rng, cell=cell, direction="bidirectional", input_size=6, hidden_size=24, **extra)
    top = random_layer(rng, cell=cell, input_size=48, hidden_size=20, **extra)
    T = 7
    x = rng.standard_normal((T, 1, 6)).astype(np.float32)
    mask = np.ones((T, 1), bool)
    mask[T - 1] = False
    for n_threads in (1, 2):
        by_steps = CompiledStack([bi]).run(x, mask=mask, n_threads=n_threads)[0]
        whole = CompiledStack([bi]).run(np.ascontiguousarray(x[:T - 1]), n_threads=n_threads)[0]
        assert by_steps[:T - 1, 0].tobytes() == whole[:, 0].tobytes(), f"{table} {cell} forward direction"
        stacked = CompiledStack([bi, top]).run(x, n_threads=n_threads)[0]
        first = CompiledStack([bi]).run(x, n_threads=n_threads)[0]
        second_in = np.ascontiguousarray(first.transpose(0, 2, 1, 3).reshape(T, 1, 48))
        top_mask = np.ones((T + 1, 1), bool)
        top_mask[T] = False  # one extra masked step: the second layer on its own through the step drivers
        second = CompiledStack([top]).run(np.concatenate([second_in, second_in[:1]]), mask=top_mask,
                                          n_threads=n_threads)[0]
        assert stacked.tobytes() == second[:T].tobytes(), f"{table} {cell} stacked"


@pytest.mark.parametrize("input_size", [12, 64])  # the first layer projects in the kernel, or a chunk by one GEMM
@pytest.mark.parametrize("cell,hidden", [("lstm", 32), ("lstm", 64), ("gru", 32), ("gru", 80), ("rnn", 160)])
def test_two_layers_side_by_side_give_one_threads_bits(table, cell, hidden, input_size):
    """Two stacked forward layers at batch 1 on two threads run side by side (recurrent.c run_pipelined), each thread
    a chunk of steps at a time through the sequence kernel, or through the step drivers where the chunk has a masked
    step: outputs and final states have one thread's bits, with initial states and a step count that is no whole
    number of chunks, masked or not."""
    rng = np.random.default_rng(hidden + input_size)
    extra = dict(linear_before_reset=True) if cell == "gru" else {}
    first = random_layer(rng, cell=cell, input_size=input_size, hidden_size=hidden, **extra)
    second = random_layer(rng, cell=cell, input_size=hidden, hidden_size=hidden, **extra)
    stack = CompiledStack([first, second])
    T = 61
    x = rng.standard_normal((T, 1, input_size)).astype(np.float32)
    kw = {"initial_h": [rng.standard_normal((1, 1, hidden)).astype(np.float32) for _ in range(2)]}
    if cell == "lstm":
        kw["initial_c"] = [rng.standard_normal((1, 1, hidden)).astype(np.float32) for _ in range(2)]
    mask = np.ones((T, 1), bool)
    mask[[20, 40]] = False
    for m in (None, mask):
        one = stack.run(x, mask=m, n_threads=1, **kw)
        two = stack.run(x, mask=m, n_threads=2, **kw)
        what = f"{table} {cell} input {input_size} mask {m is not None}"
        assert one[0].tobytes() == two[0].tobytes(), f"{what}: outputs"
        for layer in range(2):
            assert one[1][layer].tobytes() == two[1][layer].tobytes(), f"{what}: layer {layer} final h"
            if cell == "lstm":
                assert one[2][layer].tobytes() == two[2][layer].tobytes(), f"{what}: layer {layer} final c"
