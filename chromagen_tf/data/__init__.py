"""Training data: the record schema, the tf.data input pipeline, and safe
image loading."""
