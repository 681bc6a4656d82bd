"""The exported model: the SavedModel, the full-resolution graph and
in-graph image decoding."""
