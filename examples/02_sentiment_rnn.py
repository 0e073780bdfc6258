"""Tutorial 2: sentiment of (synthetic, template-grammar) reviews with Embedding(mask_zero) + SimpleRNN + Dense
sigmoid, trained with Keras and run by rnnfast; prints a few reviews with their scores and the accuracy."""
import sys

from rnnfast import tutorials

result = tutorials.sentiment()
result.show()
sys.exit(0 if result.ok else 1)
