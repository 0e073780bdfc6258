"""The private _core.CModel binding checks every weight buffer's length against the layer's dims itself (the C side
only gets pointers): a short array used to be read past its end."""
import numpy as np
import pytest

from conftest import random_layer
from rnnfast import _core
from rnnfast.engine import layer_desc


@pytest.mark.parametrize("key, cut", [("w_ih", 1), ("w_hh", 5), ("b_ih", 1), ("b_hh", 2), ("peepholes", 1),
                                      ("w_hr", 3)])
def test_a_short_weight_buffer_is_refused(key, cut):
    layer = random_layer(np.random.default_rng(0), "lstm", "bidirectional", peepholes=True, proj_size=3)
    desc = layer_desc(layer)
    desc[key] = np.asarray(desc[key]).reshape(-1)[:-cut]
    with pytest.raises(ValueError, match=rf"{key} holds \d+ values, the layer's dims .* need \d+"):
        _core.CModel([desc])


def test_a_missing_weight_and_a_wrong_cell_are_refused():
    desc = layer_desc(random_layer(np.random.default_rng(1), "gru"))
    with pytest.raises(ValueError, match="w_hh is missing"):
        _core.CModel([dict(desc, w_hh=None)])
    with pytest.raises(ValueError, match="cell 7 is not RNN, GRU or LSTM"):
        _core.CModel([dict(desc, cell=7)])


def test_short_quantized_weights_are_refused():
    layer = random_layer(np.random.default_rng(2), "lstm").with_weight_dtype("int8")
    desc = layer_desc(layer)
    q, s = desc["qweights"]["w_hh"]
    with pytest.raises(ValueError, match=r"quantized w_hh holds \d+ bytes"):
        _core.CModel([dict(desc, qweights=dict(desc["qweights"], w_hh=(q.reshape(-1)[:-4], s)))])
    with pytest.raises(ValueError, match=r"int8 w_hh needs \d+ scales"):
        _core.CModel([dict(desc, qweights=dict(desc["qweights"], w_hh=(q, s.reshape(-1)[:-1])))])


def test_whole_layers_still_build():
    for cell in ("rnn", "gru", "lstm"):
        _core.CModel([layer_desc(random_layer(np.random.default_rng(3), cell, "bidirectional"))])
