"""Tutorial 7: a stateful Keras LSTM fed chunk by chunk, its state reset between sequences: with a rnnfast stream
(stream.feed on each chunk, stream.reset between sequences) and with Model.run + reset_states, both against
Keras' stateful predict."""
import sys

from rnnfast import tutorials

result = tutorials.running_mean()
result.show()
sys.exit(0 if result.ok else 1)
