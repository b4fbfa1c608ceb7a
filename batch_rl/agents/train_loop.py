"""Many gradient steps in one graph call, on stacks of batches.

A Python loop pays a function dispatch and a host-side `next()` per step;
for small networks that is a large share of the step. `make_train_steps`
runs the steps in a `tf.function` loop that reads stacks of batches (see
`ReplayDataset.batches`) from the iterator in-graph (as Keras'
steps_per_execution does), so the host only wakes once per call and the
iterator is paid once per stack.
"""

import functools

import tensorflow as tf


def make_train_steps(train_ops, strategy=None):
  """f(iterator, num_steps) -> outputs of the last of num_steps steps.

  Args:
    train_ops: batch -> dict of scalar tensors; the ops of one gradient step,
      traced into the loop body (not a tf.function itself).
    strategy: with more than one replica, each batch is split along its
      first axis into one equal part per replica (a PerReplica value).

  The returned function takes an iterator of stacks [K, batch...] of K
  batches, used in order; the batches of the last stack that `num_steps`
  (>= 1) leaves unused are dropped.
  """
  replicas = strategy.num_replicas_in_sync if strategy else 1

  def batch_of(stack, index):
    batch = tf.nest.map_structure(lambda x: x[index], stack)
    if replicas == 1:
      return batch
    return strategy.experimental_distribute_values_from_function(
        lambda context: tf.nest.map_structure(
            lambda x: tf.split(x, replicas)[context.replica_id_in_sync_group],
            batch))

  @tf.function
  def train_steps(iterator, num_steps):
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
  """`num_steps` rounded up to whole stacks of a dataset's elements, so that
  calls of that many steps drop no batch."""
  per_stack = tf.nest.flatten(element_spec)[0].shape[0]
  return -(-num_steps // per_stack) * per_stack


class MultiStepTraining:
  """Gives an agent with a `train_ops(batch)` method its `train_steps`."""

  def train_steps(self, iterator, num_steps: int) -> dict:
    """`num_steps` gradient steps on stacks of batches read from `iterator`.

    Args:
      iterator: of stacks [K, batch...] of batches
        (`ReplayDataset.batches`).
      num_steps: gradient steps in this call.

    Returns:
      train_step's outputs for the last step.
    """
    return self._train_steps_fn(iterator, tf.constant(num_steps))

  @functools.cached_property
  def _train_steps_fn(self):
    return make_train_steps(self.train_ops, getattr(self, '_strategy', None))
