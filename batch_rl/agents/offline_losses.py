"""Pure losses that keep discrete agents close to the data.

CQL(H)'s penalty (Kumar et al., 2020), discrete BCQ's imitation loss and
action constraint (Fujimoto et al., 2019, "Benchmarking batch deep
reinforcement learning algorithms") and behaviour cloning.
Shapes: B batch, A actions, H heads (or any trailing axes).
"""

import math

import tensorflow as tf

from batch_rl.agents import losses


def cql_penalty(q_values, actions):
  """mean_h [log sum_a exp Q_h(s, a) - Q_h(s, a_data)]: CQL(H)'s regularizer.

  Pushes down the soft maximum of Q over all actions and up Q at the logged
  action; nonnegative, zero only in the limit where the logged action holds
  all the soft-max mass.

  Args:
    q_values: [B, A] or [B, A, H] Q-values; the penalty is averaged over H.
    actions: [B] logged actions.

  Returns:
    [B] penalty per example.
  """
  soft_maximum = tf.reduce_logsumexp(q_values, axis=1)
  penalty = soft_maximum - losses.select_actions(q_values, actions)
  return tf.reduce_mean(penalty, axis=list(range(1, len(penalty.shape))))


def behaviour_cloning_loss(logits, actions):
  """-log pi(a_data | s), pi = softmax(logits): the imitation cross-entropy.

  Args:
    logits: [B, A] unnormalized log-probabilities of the behaviour model.
    actions: [B] logged actions.

  Returns:
    [B] loss per example.
  """
  return tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=tf.cast(actions, tf.int32), logits=logits)


def logit_penalty(logits):
  """mean_a logits(s, a)^2: BCQ's regularizer of the imitation logits.

  Discrete BCQ's official code adds 1e-2 times this (averaged over the
  batch) to its loss.

  Returns:
    [B] penalty per example.
  """
  return tf.reduce_mean(tf.square(logits), axis=1)


def bcq_action_mask(logits, threshold: float):
  """[B, A] bool: pi(a|s) / max_a' pi(a'|s) > threshold, pi = softmax(logits).

  The ratio is exp(logit_a - max_a' logit_a'), so the mask compares logit
  differences with log(threshold), exactly and without a softmax. The most
  likely actions (ratio 1) are always allowed for a threshold in [0, 1);
  threshold 0 allows every action.
  """
  if threshold == 0.:
    return tf.ones_like(logits, dtype=tf.bool)
  gap = logits - tf.reduce_max(logits, axis=1, keepdims=True)
  return gap > math.log(threshold)


def constrained_greedy_actions(q_values, mask):
  """argmax over allowed a of Q(s, a); ties go to the lowest index.

  (tf.argmax's choice on CPU, tested; TensorFlow does not promise it on
  other devices.)

  Args:
    q_values: [B, A] or [B, A, H] Q-values.
    mask: [B, A] bool, the allowed actions (at least one per row).

  Returns:
    [B] or [B, H] int32 actions.
  """
  extra_axes = len(q_values.shape) - 2
  mask = tf.reshape(mask, tf.concat(
      [tf.shape(mask), tf.ones([extra_axes], tf.int32)], axis=0))
  allowed = tf.where(mask, q_values, tf.constant(-math.inf, q_values.dtype))
  return tf.argmax(allowed, axis=1, output_type=tf.int32)
