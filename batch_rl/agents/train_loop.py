"""Many gradient steps in one graph call.

A Python loop pays a function dispatch and a host-side `next()` per step;
for small networks that is a large share of the step. `make_train_steps`
runs the steps in a `tf.function` loop that reads batches from the
iterator in-graph (as Keras' steps_per_execution does), so the host only
wakes once per call. Reading stacks of batches (`stacked=True`, see
`pipeline.transition_dataset`) also pays the iterator once per stack.
"""

import functools

import tensorflow as tf


def make_train_steps(train_ops):
  """f(iterator, num_steps, stacked) -> outputs of the last of num_steps steps.

  Args:
    train_ops: batch -> dict of scalar tensors; the ops of one gradient step,
      traced into the loop body (not a tf.function itself).

  The returned function takes an iterator of batches, or with `stacked=True`
  of stacks [K, batch...] of K batches, used in order; the batches of the
  last stack that `num_steps` (>= 1) leaves unused are dropped.
  """

  def batch_of(stack, index):
    return tf.nest.map_structure(lambda x: x[index], stack)

  @tf.function
  def train_steps(iterator, num_steps, stacked=False):
    if not stacked:
      outputs = train_ops(next(iterator))
      for _ in tf.range(num_steps - 1):
        outputs = train_ops(next(iterator))
      return outputs
    stack = next(iterator)
    per_stack = tf.shape(tf.nest.flatten(stack)[0], out_type=num_steps.dtype)[0]
    outputs = train_ops(batch_of(stack, 0))
    for step in tf.range(1, num_steps):
      if step % per_stack == 0:
        stack = next(iterator)
      outputs = train_ops(batch_of(stack, step % per_stack))
    return outputs

  return train_steps


def whole_stacks(num_steps: int, element_spec) -> int:
  """`num_steps` rounded up to whole stacks of a stacked dataset's elements,
  so that calls of that many steps drop no batch."""
  per_stack = tf.nest.flatten(element_spec)[0].shape[0]
  return -(-num_steps // per_stack) * per_stack


class MultiStepTraining:
  """Gives an agent with a `train_ops(batch)` method its `train_steps`."""

  def train_steps(self, iterator, num_steps: int,
                  stacked: bool = False) -> dict:
    """`num_steps` gradient steps on batches read in-graph from `iterator`.

    Args:
      iterator: of batches, or with `stacked` of stacks of batches
        (`pipeline.transition_dataset(..., stacked=True)`).
      num_steps: gradient steps in this call.
      stacked: whether the iterator yields stacks.

    Returns:
      train_step's outputs for the last step.
    """
    return self._train_steps_fn(iterator, tf.constant(num_steps), stacked)

  @functools.cached_property
  def _train_steps_fn(self):
    return make_train_steps(self.train_ops)
