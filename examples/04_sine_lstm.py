"""Tutorial 4: an LSTM predicts the next value of a noisy sine from the 20 before it; prints the MSE next to
Keras' and writes a PNG plot of prediction against truth when matplotlib is installed.

    python examples/04_sine_lstm.py [plot.png]
"""
import sys

from rnnfast import tutorials

result = tutorials.sine_lstm(png=sys.argv[1] if len(sys.argv) > 1 else "sine_lstm.png")
result.show()
sys.exit(0 if result.ok else 1)
