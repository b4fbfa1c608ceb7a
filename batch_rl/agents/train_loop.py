"""Many gradient steps in one graph call.

A Python loop pays a function dispatch and a host-side `next()` per step;
for small networks that is a large share of the step. `make_train_steps`
runs the steps in a `tf.function` loop that reads batches from the
iterator in-graph (as Keras' steps_per_execution does), so the host only
wakes once per call.
"""

import tensorflow as tf


def make_train_steps(train_ops):
  """f(iterator, num_steps) -> outputs of the last of num_steps >= 1 steps.

  Args:
    train_ops: batch -> dict of scalar tensors; the ops of one gradient step,
      traced into the loop body (not a tf.function itself).
  """

  @tf.function
  def train_steps(iterator, num_steps):
    outputs = train_ops(next(iterator))
    for _ in tf.range(num_steps - 1):
      outputs = train_ops(next(iterator))
    return outputs

  return train_steps
