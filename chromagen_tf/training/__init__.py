"""Training: the loop, per-replica steps, losses, evaluation and summaries,
checkpoints, strategies and preemption."""
