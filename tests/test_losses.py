"""Loss functions against hand-computed values and plain-numpy references."""

import functools

import gin
import numpy as np
import pytest
import tensorflow as tf

from batch_rl.agents import losses
from batch_rl.agents import multi_head_dqn_agent
from batch_rl.agents import networks
from batch_rl.agents import optimizers


def test_huber_loss_hand_values():
  targets = tf.constant([0., 1., -2., 3., 3.])
  predictions = tf.constant([0., 0.5, 0., 0., 0.])
  # |x| = 0, 0.5, 2, 3, 3: quadratic up to delta = 1, linear beyond.
  np.testing.assert_allclose(
      losses.huber_loss(targets, predictions).numpy(),
      [0., 0.125, 1.5, 2.5, 2.5])
  np.testing.assert_allclose(
      losses.huber_loss(targets, predictions, delta=2.).numpy(),
      [0., 0.125, 2., 4., 4.])


def test_mse_loss_hand_values():
  np.testing.assert_allclose(
      losses.mse_loss(tf.constant([1., -2.]), tf.constant([0.5, 1.])).numpy(),
      [0.25, 9.])


def test_quantile_huber_loss_two_quantiles_by_hand():
  # theta = (0, 2) at tau = (1/4, 3/4); targets (1, 3).
  # tau 1/4: u = 1, 3 -> 1/4 * (0.5 + 2.5) / 2 = 0.375.
  # tau 3/4: u = -1, 1 -> (1/4 * 0.5 + 3/4 * 0.5) / 2 = 0.25.
  # Second example, kappa = 1: theta = (1, 1), target (1, 1) -> 0.
  loss = losses.quantile_huber_loss(
      tf.constant([[1., 3.], [1., 1.]]), tf.constant([[0., 2.], [1., 1.]]))
  np.testing.assert_allclose(loss.numpy(), [0.625, 0.], rtol=1e-6)


def test_quantile_huber_loss_kappa_is_the_huber_threshold():
  # One quantile (tau = 1/2), one target 3 above it: 1/2 * kappa (3 - kappa/2).
  loss = losses.quantile_huber_loss(
      tf.constant([[3.]]), tf.constant([[0.]]), kappa=2.)
  np.testing.assert_allclose(loss.numpy(), [0.5 * 2. * (3. - 1.)])


def test_project_distribution_dopamine_docstring_example():
  projection = losses.project_distribution(
      tf.constant([[0., 2., 4., 6., 8.], [1., 3., 4., 5., 6.]]),
      tf.constant([[0.1, 0.6, 0.1, 0.1, 0.1], [0.1, 0.2, 0.5, 0.1, 0.1]]),
      tf.constant([4., 5., 6., 7., 8.]))
  np.testing.assert_allclose(
      projection.numpy(),
      [[0.8, 0., 0.1, 0., 0.1], [0.8, 0.1, 0.1, 0., 0.]], atol=1e-6)


def _numpy_projection(supports, weights, target_support):
  """C51's projection, one atom at a time (Bellemare et al., Algorithm 1)."""
  num_atoms = len(target_support)
  v_min = float(target_support[0])
  delta_z = float(target_support[1] - target_support[0])
  projection = np.zeros((supports.shape[0], num_atoms))
  for b in range(supports.shape[0]):
    for z, p in zip(supports[b], weights[b]):
      position = np.clip((float(z) - v_min) / delta_z, 0., num_atoms - 1.)
      lower, upper = int(np.floor(position)), int(np.ceil(position))
      if lower == upper:
        projection[b, lower] += p
      else:
        projection[b, lower] += p * (upper - position)
        projection[b, upper] += p * (position - lower)
  return projection


def test_project_distribution_matches_numpy_loop_on_random_inputs():
  rng = np.random.default_rng(0)
  # In float64, so that a mismatch cannot hide in float32 round-off.
  target_support = np.linspace(-10., 10., 51)
  rewards = rng.normal(scale=3., size=(16, 1))
  discounts = rng.choice([0., 0.99], size=(16, 1))
  # Some atoms fall outside [-10, 10] and must be clipped onto the ends.
  supports = rewards + discounts * 1.3 * target_support
  weights = rng.dirichlet(np.ones(51), size=16)
  projection = losses.project_distribution(
      tf.constant(supports), tf.constant(weights), tf.constant(target_support))
  np.testing.assert_allclose(
      projection.numpy(),
      _numpy_projection(supports, weights, target_support), atol=1e-12)
  np.testing.assert_allclose(projection.numpy().sum(axis=1), 1., rtol=1e-12)


def test_random_convex_combination_is_a_fresh_convex_combination():
  generator = tf.random.Generator.from_seed(3)
  first = losses.random_convex_combination(200, generator=generator).numpy()
  second = losses.random_convex_combination(200, generator=generator).numpy()
  for alpha in (first, second):
    assert alpha.shape == (200,)
    assert (alpha >= 0).all()
    np.testing.assert_allclose(alpha.sum(), 1., rtol=1e-5)
  assert not np.allclose(first, second)
  replay = losses.random_convex_combination(
      200, generator=tf.random.Generator.from_seed(3)).numpy()
  np.testing.assert_array_equal(replay, first)


def test_select_actions_and_bellman_target():
  values = tf.constant([[[1., 2.], [3., 4.]], [[5., 6.], [7., 8.]]])
  np.testing.assert_array_equal(
      losses.select_actions(values, tf.constant([1, 0])).numpy(),
      [[3., 4.], [5., 6.]])
  target = losses.bellman_target(tf.constant([1., 2.]), tf.constant([0.5, 0.]),
                                 tf.constant([[2., 4.], [6., 8.]]))
  np.testing.assert_array_equal(target.numpy(), [[2., 3.], [2., 2.]])


@pytest.fixture
def mlp_torso():
  gin.bind_parameter('QHeadsNetwork.torso', networks.MLPTorso)
  gin.bind_parameter('MLPTorso.hidden_units', (16,))
  yield
  gin.clear_config()


def _rem_reference_loss(online_heads, target_heads, batch, online_alpha,
                        target_alpha, gamma):
  """Huber TD loss of mixtures of the online and of the target heads."""
  q = online_heads @ online_alpha
  next_q = target_heads @ target_alpha
  target = batch['reward'] + gamma * (1. - batch['terminal']) * next_q.max(1)
  error = np.abs(target - q[np.arange(len(q)), batch['action']])
  return np.mean(np.where(error <= 1., 0.5 * error**2, error - 0.5))


def test_rem_draws_one_alpha_per_step_for_online_and_target(mlp_torso):
  """Replays the agent's alpha stream from the same seed, step by step."""
  del mlp_torso
  tf.keras.utils.set_random_seed(0)
  num_heads, seed, gamma = 5, 11, 0.9
  agent = multi_head_dqn_agent.MultiHeadDQNAgent(
      num_actions=3, observation_shape=(4,), observation_dtype=np.float32,
      stack_size=1, num_heads=num_heads, transform_strategy='STOCHASTIC',
      gamma=gamma, target_update_period=1000, seed=seed,
      optimizer_fn=functools.partial(optimizers.adam_optimizer,
                                     learning_rate=0.05, epsilon=1e-4))
  rng = np.random.default_rng(0)
  batch = {
      'state': rng.normal(size=(8, 4, 1)).astype(np.float32),
      'next_state': rng.normal(size=(8, 4, 1)).astype(np.float32),
      'action': rng.integers(0, 3, size=8).astype(np.int32),
      # Within [-1, 1], so Dopamine's reward clipping leaves them as they are.
      'reward': rng.uniform(-1, 1, size=8).astype(np.float32),
      'terminal': np.array([0, 1] * 4, dtype=np.uint8),
  }
  # A copy of the agent's per-step generator, before any step draws.
  reference_generator = tf.random.Generator.from_state(
      agent._generator.state.numpy(), agent._generator.algorithm)
  alphas = []
  for _ in range(2):
    online = agent.online_network(batch['state']).numpy()
    target = agent.target_network(batch['next_state']).numpy()
    alpha = losses.random_convex_combination(
        num_heads, generator=reference_generator).numpy()
    expected = _rem_reference_loss(online, target, batch, alpha, alpha, gamma)
    # A target mixed with any other alpha gives a different loss.
    other_target = _rem_reference_loss(
        online, target, batch, alpha, np.roll(alpha, 1), gamma)
    loss = float(agent.train_step(batch)['loss'])
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert abs(loss - other_target) > 1e-4
    alphas.append(alpha)
  assert not np.allclose(alphas[0], alphas[1])
