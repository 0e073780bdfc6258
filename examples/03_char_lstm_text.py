"""Tutorial 3: a character-level LSTM trained on the Zen of Python generates text with temperatures 0.2, 0.5, 1.0
and 1.2, one character per stream.step (the LSTM state stays inside rnnfast between steps).

    python examples/03_char_lstm_text.py [number of characters] [random seed]
"""
import sys

from rnnfast import tutorials

n_chars = int(sys.argv[1]) if len(sys.argv) > 1 else 120
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
result = tutorials.char_lstm(n_chars=n_chars, seed=seed)
result.show()
sys.exit(0 if result.ok else 1)
