"""Using a trained model: colorize files and folders, evaluate, and the
model flags those tools share."""
