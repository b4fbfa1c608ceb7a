"""Runner layer: the offline train/evaluate loop, checkpoints and logs."""
