"""ChromaGen: colorizing black-and-white photos with TensorFlow and Keras.

The model reads the L (lightness) channel of CIELAB and predicts a*b*; see
`chromagen_tf.color` for the colour maths and README.md for the tools.
"""

__version__ = '0.1.0'
