"""Runner layer: iterations of training and evaluation, checkpoints, logs."""
