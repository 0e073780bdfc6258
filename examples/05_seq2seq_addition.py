"""Tutorial 5: sequence to sequence: an LSTM encoder-decoder adds two numbers written as text ("37+45" -> "82").
The encoder reads the question one stream.step per character; the decoder is stepped once per answer character."""
import sys

from rnnfast import tutorials

result = tutorials.addition()
result.show()
sys.exit(0 if result.ok else 1)
