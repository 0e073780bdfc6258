"""Tutorial 6: the digits task with a Bidirectional LSTM, two stacked Bidirectional LSTMs and a GRU, trained with
Keras and run by rnnfast (bidirectional layers run whole sequences with Model.run; they cannot stream)."""
import sys

from rnnfast import tutorials

results = tutorials.digits_variants()
for result in results:
    result.show()
    print()
sys.exit(0 if all(r.ok for r in results) else 1)
