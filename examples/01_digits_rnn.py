"""Tutorial 1: 8x8 digit images read row by row (8 steps of 8 pixels) by a trained Keras SimpleRNN(16, relu) +
Dense softmax, run by rnnfast without TensorFlow; prints the test accuracy next to the one Keras measured.

    pip install . && python examples/01_digits_rnn.py
"""
import sys

from rnnfast import tutorials

result = tutorials.digits_rnn()
result.show()
sys.exit(0 if result.ok else 1)
