"""One-time tools that are not part of training (e.g. weight importers)."""
