"""The ONNX backend node test cases for LSTM, GRU and RNN, against the outputs stored with them."""
import numpy as np
import pytest
from onnx.backend.test.case.node import collect_testcases

import rnnfast
from conftest import assert_close

CASES = [c for c in collect_testcases(None) if any(cell in c.name for cell in ("_lstm_", "_gru_", "_rnn_"))]


def test_all_recurrent_cases_are_collected():
    assert len(CASES) >= 18, [c.name for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_backend_case(case):
    model = rnnfast.load(case.model.SerializeToString())
    for inputs, expected in case.data_sets:
        outputs = model.run(dict(zip(model.input_names, inputs)))
        assert len(outputs) == len(expected)
        for got, want in zip(outputs, expected):
            assert got.dtype == want.dtype
            assert_close(got, want, what=case.name)
