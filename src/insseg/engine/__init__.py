"""Training: the loop, checkpoints, progress output, distributed helpers."""
