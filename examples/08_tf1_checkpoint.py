"""Tutorial 8: the MNIST-rows LSTM the TensorFlow 1.x tutorials train (BasicLSTMCell under tf.nn.dynamic_rnn, a
tf.layers.dense head, saved by tf.train.Saver), on the digits, loaded from its checkpoint without TensorFlow."""
import sys

from rnnfast import tutorials

result = tutorials.digits_tf1()
result.show()
sys.exit(0 if result.ok else 1)
