"""Pure loss and target functions of the continuous-control agents.

Critic values come as [K, B] tensors: K critics, B transitions.
"""

import tensorflow as tf

from batch_rl.agents import losses as discrete_losses

# REM's mixing weights, as the discrete agents draw them.
random_convex_combination = discrete_losses.random_convex_combination

# How the K target critics are turned into TD targets.
INDEPENDENT = 'independent'  # y_k from Q'_k: each critic its own target.
MINIMUM = 'min'              # y from min_k Q'_k: TD3's clipped double Q.
REM = 'rem'                  # y from sum_k alpha_k Q'_k, alpha random convex.
TARGET_COMBINATIONS = (INDEPENDENT, MINIMUM, REM)


def td_target(reward, terminal, next_q, cumulative_gamma):
  """y = r + gamma^n * (1 - terminal) * Q'(s', a')."""
  not_terminal = 1.0 - tf.cast(terminal, tf.float32)
  return tf.stop_gradient(reward + cumulative_gamma * not_terminal * next_q)


def mse_loss(targets, predictions):
  """mean((predictions - targets)^2)."""
  return tf.reduce_mean(discrete_losses.mse_loss(targets, predictions))


def critic_loss(q_values, targets):
  """sum_k mean_b (Q_k(s_b, a_b) - y_kb)^2, targets broadcast over K."""
  targets = tf.broadcast_to(targets, tf.shape(q_values))
  return tf.reduce_sum(tf.reduce_mean(tf.square(q_values - targets), axis=1))


def soft_clipped_double_q(q_values, lam: float = 1.0):
  """lam min_k Q_k + (1 - lam) max_k Q_k; lam = 1 is TD3's clipped double Q."""
  return (lam * tf.reduce_min(q_values, axis=0) +
          (1.0 - lam) * tf.reduce_max(q_values, axis=0))


def combine_target_critics(target_q_values, combination: str, weights=None):
  """Per-critic next-state values for the TD target: [K, B] or [B].

  Args:
    target_q_values: [K, B] target critics at (s', a').
    combination: one of TARGET_COMBINATIONS.
    weights: [K] convex weights, used (and required) for REM only.
  """
  if combination == INDEPENDENT:
    return target_q_values
  if combination == MINIMUM:
    return soft_clipped_double_q(target_q_values)
  if combination == REM:
    return tf.tensordot(weights, target_q_values, axes=1)
  raise ValueError(f'Unknown target combination {combination!r}; valid: '
                   f'{", ".join(TARGET_COMBINATIONS)}.')


def perturb_actions(actions, perturbation, phi: float, max_action: float = 1.0):
  """clip(a + phi * max_action * xi, -max_action, max_action), xi in [-1, 1]."""
  return tf.clip_by_value(actions + phi * max_action * perturbation,
                          -max_action, max_action)


def gaussian_kl_to_standard_normal(mean, std):
  """mean over elements of KL(N(mean, std^2) || N(0, 1)), as BCQ averages it."""
  return -0.5 * tf.reduce_mean(1.0 + tf.math.log(tf.square(std)) -
                               tf.square(mean) - tf.square(std))


def vae_loss(actions, reconstructions, mean, std, kl_weight: float = 0.5):
  """mean (a_hat - a)^2 + kl_weight * KL(q(z | s, a) || N(0, I))."""
  return (mse_loss(actions, reconstructions) +
          kl_weight * gaussian_kl_to_standard_normal(mean, std))


def td3_bc_actor_loss(q_values, policy_actions, data_actions,
                      alpha: float = 2.5):
  """-lambda mean Q(s, pi(s)) + mean (pi(s) - a)^2, lambda = alpha / mean|Q|."""
  lam = tf.stop_gradient(alpha / tf.reduce_mean(tf.abs(q_values)))
  return -lam * tf.reduce_mean(q_values) + mse_loss(data_actions,
                                                    policy_actions)


def cql_penalty(data_q_values, sampled_q_values, sample_log_densities,
                temperature: float = 1.0):
  """T mean_b logsumexp_j((Q(s_b, a_j) - log mu(a_j)) / T) - mean_b Q(s_b, a_b).

  Args:
    data_q_values: [B] one critic at the data actions.
    sampled_q_values: [B, N] the same critic at N sampled actions per state.
    sample_log_densities: [B, N] log-densities of those actions under their
      proposal (importance weights of CQL(H)'s logsumexp estimate).
    temperature: T.
  """
  logits = (sampled_q_values - sample_log_densities) / temperature
  return (temperature * tf.reduce_mean(tf.reduce_logsumexp(logits, axis=1)) -
          tf.reduce_mean(data_q_values))
