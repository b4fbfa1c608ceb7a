"""Pure loss functions and TD-target helpers shared by the discrete agents.

Shapes: B batch, A actions, N and M atoms/quantiles, K heads.
"""

import tensorflow as tf


def huber_loss(targets, predictions, delta: float = 1.0):
  """0.5 x^2 if |x| <= delta else delta (|x| - delta / 2); x = t - p."""
  error = tf.abs(targets - predictions)
  quadratic = tf.minimum(error, delta)
  return 0.5 * quadratic**2 + delta * (error - quadratic)


def mse_loss(targets, predictions):
  """(targets - predictions)^2, elementwise as in Dopamine."""
  return tf.square(targets - predictions)


def quantile_huber_loss(target_quantiles, predicted_quantiles,
                        kappa: float = 1.0):
  """sum_i mean_j |tau_i - 1{u_ij < 0}| L_kappa(u_ij), u_ij = y_j - theta_i.

  QR-DQN's Eq. 10 as Dopamine and the batch_rl release compute it (without the
  paper's 1/kappa, which is 1 at kappa = 1); y_j are the target quantiles and
  tau_i = (2i + 1) / 2N the quantile midpoints.

  Args:
    target_quantiles: [B, M] samples of the target distribution.
    predicted_quantiles: [B, N] the online network's quantiles.
    kappa: Huber threshold.

  Returns:
    [B] loss per example.
  """
  num_quantiles = predicted_quantiles.shape[-1]
  errors = target_quantiles[:, None, :] - predicted_quantiles[:, :, None]
  tau_hat = (tf.range(num_quantiles, dtype=tf.float32) + 0.5) / num_quantiles
  weight = tf.abs(tau_hat[None, :, None] -
                  tf.cast(errors < 0, tf.float32))
  elementwise = weight * huber_loss(errors, 0., delta=kappa)
  return tf.reduce_sum(tf.reduce_mean(elementwise, axis=2), axis=1)


def project_distribution(supports, weights, target_support):
  """(Phi T Z)_i = sum_j [1 - |clip(T z_j, v_min, v_max) - z_i| / dz]_0^1 p_j.

  The categorical projection of C51 (Bellemare et al., 2017, Eq. 7), the same
  function as Dopamine's `project_distribution` without its tiling.

  Args:
    supports: [B, N] atoms of the distribution to project (e.g. r + g z).
    weights: [B, N] their probabilities.
    target_support: [N'] equally spaced, increasing atoms to project onto.

  Returns:
    [B, N'] weights on `target_support`.
  """
  supports.shape.assert_is_compatible_with(weights.shape)
  target_support.shape.assert_has_rank(1)
  v_min, v_max = target_support[0], target_support[-1]
  delta_z = target_support[1] - target_support[0]
  clipped = tf.clip_by_value(supports, v_min, v_max)[:, None, :]
  distance = tf.abs(clipped - target_support[None, :, None])
  share = tf.clip_by_value(1. - distance / delta_z, 0., 1.)
  return tf.reduce_sum(share * weights[:, None, :], axis=2)


def random_convex_combination(num_heads: int, generator=None):
  """alpha_k = u_k / sum_l u_l with u_k ~ U(0, 1): REM's random mixture.

  Args:
    num_heads: K, the number of Q-value estimates to mix.
    generator: optional `tf.random.Generator`; the global RNG otherwise.

  Returns:
    [K] nonnegative weights summing to 1.
  """
  uniform = generator.uniform if generator is not None else tf.random.uniform
  alpha = uniform([num_heads], dtype=tf.float32)
  return alpha / tf.reduce_sum(alpha)


def select_actions(values, actions):
  """values[b, actions[b], ...]: per-action outputs [B, A, ...] -> [B, ...]."""
  return tf.gather(values, tf.cast(actions, tf.int32), axis=1, batch_dims=1)


def bellman_target(rewards, discounts, next_values):
  """r + discount v(s'); [B] r and discount broadcast over v's extra axes."""
  extra_axes = len(next_values.shape) - 1
  expand = lambda x: tf.reshape(x, [-1] + [1] * extra_axes)
  return expand(rewards) + expand(discounts) * next_values
