"""Pure loss and target functions against hand-computed values."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from batch_rl.continuous import losses
from batch_rl.continuous import networks


def test_td_target_cuts_bootstrap_at_terminals():
  y = losses.td_target(tf.constant([1.0, 2.0]), tf.constant([0, 1], tf.uint8),
                       tf.constant([10.0, 10.0]), 0.99**3)
  np.testing.assert_allclose(y, [1.0 + 0.99**3 * 10.0, 2.0], rtol=1e-6)


def test_critic_loss_sums_critics_of_mean_squared_errors():
  q = tf.constant([[1.0, 2.0], [0.0, 4.0]])
  shared = losses.critic_loss(q, tf.constant([1.0, 1.0]))
  assert float(shared) == pytest.approx((0 + 1) / 2 + (1 + 9) / 2)
  own = losses.critic_loss(q, tf.constant([[1.0, 1.0], [0.0, 3.0]]))
  assert float(own) == pytest.approx((0 + 1) / 2 + (0 + 1) / 2)


def test_soft_clipped_double_q():
  q = tf.constant([[1.0, 5.0, -2.0], [3.0, 4.0, -1.0]])
  np.testing.assert_allclose(losses.soft_clipped_double_q(q), [1.0, 4.0, -2.0])
  np.testing.assert_allclose(
      losses.soft_clipped_double_q(q, 0.75),
      [0.75 * 1 + 0.25 * 3, 0.75 * 4 + 0.25 * 5, 0.75 * -2 + 0.25 * -1])


def test_target_combinations():
  q = tf.constant([[1.0, 2.0], [3.0, 6.0], [5.0, -2.0]])
  np.testing.assert_array_equal(
      losses.combine_target_critics(q, losses.INDEPENDENT), q)
  np.testing.assert_array_equal(
      losses.combine_target_critics(q, losses.MINIMUM), [1.0, -2.0])
  rem = losses.combine_target_critics(q, losses.REM,
                                      tf.constant([0.5, 0.25, 0.25]))
  np.testing.assert_allclose(rem, [0.5 + 0.75 + 1.25, 1.0 + 1.5 - 0.5])
  with pytest.raises(ValueError, match="'max'.*independent, min, rem"):
    losses.combine_target_critics(q, 'max')


def test_random_convex_combination_is_redrawn_and_convex():
  generator = tf.random.Generator.from_seed(0)
  draws = np.stack([losses.random_convex_combination(4, generator)
                    for _ in range(400)])
  np.testing.assert_allclose(draws.sum(axis=1), 1.0, rtol=1e-5)
  assert (draws >= 0).all()
  assert len(np.unique(draws[:, 0])) == 400
  # Symmetric in the critics: each weighs 1/K on average (3 sigma: 0.03).
  np.testing.assert_allclose(draws.mean(axis=0), 0.25, atol=0.03)


def test_perturbation_stays_within_phi_of_the_action_and_in_bounds():
  rng = np.random.default_rng(0)
  for max_action, phi in ((1.0, 0.05), (2.0, 0.3)):
    actions = rng.uniform(-max_action, max_action, (1000, 3)).astype(np.float32)
    xi = np.tanh(rng.normal(size=(1000, 3)) * 3).astype(np.float32)
    perturbed = losses.perturb_actions(actions, xi, phi, max_action).numpy()
    assert np.abs(perturbed - actions).max() <= phi * max_action + 1e-6
    assert np.abs(perturbed).max() <= max_action
    inside = np.abs(actions + phi * max_action * xi) <= max_action
    np.testing.assert_allclose(perturbed[inside],
                               (actions + phi * max_action * xi)[inside],
                               rtol=1e-6)
    assert not inside.all()  # Some samples were clipped to the bounds.


def test_vae_loss_is_reconstruction_plus_half_kl():
  actions = np.array([[0.5, -0.5], [0.0, 1.0]], np.float32)
  reconstructions = np.array([[0.0, -0.5], [0.5, 1.0]], np.float32)
  mean = np.array([[1.0, 0.0], [0.0, -2.0]], np.float32)
  std = np.array([[1.0, 2.0], [0.5, 1.0]], np.float32)
  recon = np.mean((reconstructions - actions)**2)  # (0.25 + 0.25) / 4
  # KL(N(m, s^2) || N(0, 1)) = (s^2 + m^2 - 1) / 2 - log s, per element.
  kl = np.mean((std**2 + mean**2 - 1) / 2 - np.log(std))
  loss = losses.vae_loss(actions, reconstructions, mean, std, kl_weight=0.5)
  assert float(loss) == pytest.approx(recon + 0.5 * kl, rel=1e-6)
  assert float(losses.gaussian_kl_to_standard_normal(
      np.zeros((3, 2), np.float32), np.ones((3, 2), np.float32))) == 0.0


def test_td3_bc_actor_loss_normalises_q_without_its_gradient():
  q = tf.Variable([2.0, -4.0])
  policy = tf.Variable([[0.5], [0.0]])
  data = tf.constant([[0.0], [1.0]])
  with tf.GradientTape() as tape:
    loss = losses.td3_bc_actor_loss(q, policy, data, alpha=2.5)
  lam = 2.5 / 3.0
  assert float(loss) == pytest.approx(-lam * -1.0 + (0.25 + 1.0) / 2)
  dq, dpolicy = tape.gradient(loss, [q, policy])
  np.testing.assert_allclose(dq, [-lam / 2, -lam / 2], rtol=1e-6)
  np.testing.assert_allclose(dpolicy, [[0.5], [-1.0]], rtol=1e-6)  # pi - a


def test_cql_penalty_is_logsumexp_minus_data_q():
  data_q = np.array([1.0, 2.0], np.float32)
  sampled_q = np.array([[0.0, 1.0, 2.0], [3.0, -1.0, 0.5]], np.float32)
  log_density = np.log(np.array([[0.5, 0.25, 0.25], [1.0, 1.0, 0.5]],
                                np.float32))
  for temperature in (1.0, 2.0):
    logits = (sampled_q - log_density) / temperature
    expected = (temperature * np.mean(np.log(np.exp(logits).sum(axis=1))) -
                data_q.mean())
    assert float(losses.cql_penalty(data_q, sampled_q, log_density,
                                    temperature)) == pytest.approx(
                                        expected, rel=1e-6)


def test_tanh_gaussian_log_prob_matches_transformed_distribution():
  actor = networks.TanhGaussianActor(2, (8,), networks.SeedStream(0))
  states = tf.random.stateless_normal([5, 3], seed=[1, 2])
  noise = tf.random.stateless_normal([5, 2], seed=[3, 4])
  actions, log_prob = actor.sample(states, noise)
  mean, log_std = actor(states)
  reference = tfp.distributions.TransformedDistribution(
      tfp.distributions.MultivariateNormalDiag(mean, tf.exp(log_std)),
      tfp.bijectors.Tanh())
  np.testing.assert_allclose(log_prob, reference.log_prob(actions),
                             rtol=1e-4, atol=1e-4)
  assert np.abs(actions).max() < 1
