"""Discrete CQL, QR-CQL, REM+CQL, BCQ, REM+BCQ and BC against numpy.

Losses on fixed batches against independent numpy computations, the edge
cases of BCQ's constraint (one allowed action, ties), CQL with alpha = 0 as
its base agent exactly, acting, and the gin files.
"""

import os

import gin
import numpy as np
import pytest
import tensorflow as tf

from batch_rl.agents import behaviour_cloning_agent
from batch_rl.agents import conservative_agents
from batch_rl.agents import constrained_agents
from batch_rl.agents import networks
from batch_rl.agents import offline_losses
from batch_rl.agents import exploration
from batch_rl.agents import registry
from batch_rl.environments.environment_spec import EnvironmentSpec

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_ACTIONS, OBS_DIM, GAMMA = 3, 4, 0.9


@pytest.fixture(autouse=True)
def clean_gin_and_seed():
  tf.keras.utils.set_random_seed(0)
  gin.bind_parameter('QHeadsNetwork.torso', networks.MLPTorso)
  gin.bind_parameter('MLPTorso.hidden_units', (8,))
  yield
  gin.clear_config()


def _agent(name, eval_mode=False, **kwargs):
  """A small agent; in eval mode it acts greedily (evaluation epsilon 0)."""
  if eval_mode:
    kwargs['exploration'] = exploration.EpsilonGreedy(epsilon_eval=0.)
  agent = registry.create_agent(
      name, EnvironmentSpec(NUM_ACTIONS, (OBS_DIM,), np.float32, 1),
      gamma=GAMMA, optimizer_fn=lambda: tf.keras.optimizers.Adam(1e-3),
      seed=0, **kwargs)
  agent.eval_mode = eval_mode
  return agent


def _batch(batch_size=6, seed=0):
  rng = np.random.default_rng(seed)
  return {
      'state': rng.normal(size=(batch_size, OBS_DIM, 1)).astype(np.float32),
      'action': rng.integers(0, NUM_ACTIONS, batch_size).astype(np.int32),
      'reward': rng.normal(size=batch_size).astype(np.float32),
      'next_state': rng.normal(
          size=(batch_size, OBS_DIM, 1)).astype(np.float32),
      'terminal': (np.arange(batch_size) % 3 == 0).astype(np.uint8),
  }


def _randomize(agent, seed=1, scale=1.0):
  """Distinct random online and target weights, large enough to matter."""
  rng = np.random.default_rng(seed)
  for variable in agent.online_network.variables + (
      agent.target_network.variables):
    variable.assign(rng.normal(0, scale, variable.shape))


def _copy_weights(source, destination):
  for network in ('online_network', 'target_network'):
    for a, b in zip(getattr(source, network).variables,
                    getattr(destination, network).variables):
      b.assign(a)


def _loss_and_gradients(agent, batch, step_inputs):
  batch = {key: tf.constant(value) for key, value in batch.items()}
  variables = agent.online_network.trainable_variables
  with tf.GradientTape() as tape:
    per_example = agent._per_example_loss(batch, step_inputs)  # pylint: disable=protected-access
    loss = tf.reduce_mean(per_example)
  gradients = tape.gradient(loss, variables)
  return per_example.numpy(), [g.numpy() for g in gradients]


def _outputs(network, states):
  return network(tf.constant(states)).numpy().astype(np.float64)


def _log_softmax(logits):
  shifted = logits - logits.max(axis=1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _huber(x):
  return np.where(np.abs(x) <= 1, 0.5 * x**2, np.abs(x) - 0.5)


# ---- Pure losses. ----


def test_cql_penalty_matches_numpy_per_head_and_single():
  rng = np.random.default_rng(0)
  q = rng.normal(0, 3, (5, NUM_ACTIONS, 2))
  actions = rng.integers(0, NUM_ACTIONS, 5)
  per_head = (np.log(np.exp(q).sum(axis=1)) -
              q[np.arange(5), actions])  # [B, H]
  np.testing.assert_allclose(
      offline_losses.cql_penalty(tf.constant(q), actions).numpy(),
      per_head.mean(axis=1), rtol=1e-10)
  np.testing.assert_allclose(
      offline_losses.cql_penalty(tf.constant(q[..., 0]), actions).numpy(),
      per_head[:, 0], rtol=1e-10)
  # Nonnegative; near 0 when the logged action dominates the soft maximum.
  assert (per_head > 0).all()
  dominant = np.array([[50., 0., 0.]])
  assert offline_losses.cql_penalty(
      tf.constant(dominant), [0]).numpy()[0] == pytest.approx(0., abs=1e-12)


def test_behaviour_cloning_loss_and_logit_penalty_match_numpy():
  rng = np.random.default_rng(1)
  logits = rng.normal(0, 2, (6, NUM_ACTIONS)).astype(np.float32)
  actions = rng.integers(0, NUM_ACTIONS, 6)
  np.testing.assert_allclose(
      offline_losses.behaviour_cloning_loss(logits, actions).numpy(),
      -_log_softmax(logits.astype(np.float64))[np.arange(6), actions],
      rtol=1e-5)
  np.testing.assert_allclose(offline_losses.logit_penalty(logits).numpy(),
                             (logits.astype(np.float64)**2).mean(axis=1),
                             rtol=1e-6)


def test_bcq_mask_is_the_probability_ratio_above_the_threshold():
  rng = np.random.default_rng(2)
  logits = np.concatenate([
      rng.normal(0, 1.5, (20, NUM_ACTIONS)),
      [[4., 4., -1.],      # Tie for the most likely action: both allowed.
       [30., 0., 0.],      # Every action masked but one.
       [0., 0., 0.]]])     # Uniform: all allowed.
  probabilities = np.exp(_log_softmax(logits))
  expected = probabilities / probabilities.max(axis=1, keepdims=True) > 0.3
  mask = offline_losses.bcq_action_mask(tf.constant(logits), 0.3).numpy()
  np.testing.assert_array_equal(mask, expected)
  np.testing.assert_array_equal(mask[-3:], [[True, True, False],
                                            [True, False, False],
                                            [True, True, True]])
  assert 0 < expected[:20].sum() < 60  # The random rows mix both outcomes.
  assert offline_losses.bcq_action_mask(tf.constant(logits), 0.).numpy().all()


def test_constrained_greedy_actions_skip_masked_actions_and_break_ties_first():
  q = tf.constant([[1., 5., 3.],
                   [1., 5., 3.],
                   [3., 3., 9.],
                   [2., 7., 2.]])
  mask = tf.constant([[True, False, True],     # Best Q masked: 2.
                      [True, False, False],    # One allowed: 0.
                      [True, True, False],     # Tie among allowed: first.
                      [True, False, True]])    # Tie again: first.
  np.testing.assert_array_equal(
      offline_losses.constrained_greedy_actions(q, mask).numpy(),
      [2, 0, 0, 0])
  # Per head: [B, A, H] with one mask per state.
  per_head = tf.stack([q, -q], axis=-1)
  np.testing.assert_array_equal(
      offline_losses.constrained_greedy_actions(per_head, mask).numpy(),
      [[2, 0], [0, 0], [0, 0], [0, 0]])


# ---- CQL agents. ----

REM = {'num_heads': 3, 'transform_strategy': 'STOCHASTIC'}
CQL_CASES = [
    ('discrete_cql', 'dqn', {}, None),
    ('quantile_cql', 'quantile', {'num_quantiles': 4}, None),
    ('rem_cql', 'multi_head_dqn', REM, 'mixture'),
    ('rem_cql', 'multi_head_dqn', REM, 'heads'),
    ('rem_cql', 'multi_head_dqn', REM, 'mean'),
]


def _numpy_q_to_penalize(outputs, alpha, penalty_on):
  if penalty_on == 'mixture':
    return outputs @ alpha
  if penalty_on == 'heads':
    return outputs
  return outputs.mean(axis=-1)


@pytest.mark.parametrize(
    'name, base_name, kwargs, penalty_on', CQL_CASES,
    ids=[f'{case[0]}-{case[3]}' if case[3] else case[0] for case in CQL_CASES])
def test_cql_loss_is_the_base_loss_plus_alpha_times_the_numpy_penalty(
    name, base_name, kwargs, penalty_on):
  extra = {'penalty_on': penalty_on} if penalty_on else {}
  base = _agent(base_name, **kwargs)
  zero = _agent(name, cql_alpha=0., **kwargs, **extra)
  cql = _agent(name, cql_alpha=2.5, **kwargs, **extra)
  _randomize(base)
  _copy_weights(base, zero)
  _copy_weights(base, cql)
  batch = _batch()
  step_inputs = base._sample_step_inputs()  # pylint: disable=protected-access

  base_loss, base_gradients = _loss_and_gradients(base, batch, step_inputs)
  zero_loss, zero_gradients = _loss_and_gradients(zero, batch, step_inputs)
  # alpha = 0 is the base agent: the same loss and gradients.
  np.testing.assert_array_equal(zero_loss, base_loss)
  for got, expected in zip(zero_gradients, base_gradients):
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)

  cql_loss, cql_gradients = _loss_and_gradients(cql, batch, step_inputs)
  alpha = step_inputs['alpha'].numpy() if step_inputs else None
  q = _numpy_q_to_penalize(_outputs(base.online_network, batch['state']),
                           alpha, penalty_on)
  penalty = np.log(np.exp(q).sum(axis=1)) - q[np.arange(len(q)),
                                               batch['action']]
  if penalty.ndim > 1:
    penalty = penalty.mean(axis=1)
  np.testing.assert_allclose(cql_loss - base_loss, 2.5 * penalty, rtol=1e-4,
                             atol=1e-5)
  assert any(not np.allclose(a, b)
             for a, b in zip(cql_gradients, base_gradients))


def test_cql_and_bcq_options_are_validated():
  with pytest.raises(ValueError, match='cql_alpha must be >= 0'):
    _agent('discrete_cql', cql_alpha=-1.)
  with pytest.raises(ValueError, match="penalty_on 'max' is not one of"):
    _agent('rem_cql', penalty_on='max')
  with pytest.raises(ValueError, match=r'threshold must be in \[0, 1\)'):
    _agent('discrete_bcq', threshold=1.)
  with pytest.raises(ValueError, match='transform_strategy'):
    _agent('rem_bcq', transform_strategy='UNIFORM')


# ---- BCQ agents. ----


def _numpy_bcq_loss(agent, batch, alpha=None, threshold=0.3,
                    logit_weight=1e-2):
  """Discrete BCQ's loss from the networks' outputs, in numpy."""
  online = _outputs(agent.online_network, batch['state'])
  next_online = _outputs(agent.online_network, batch['next_state'])
  next_target = _outputs(agent.target_network, batch['next_state'])
  combine = (lambda q: q @ alpha[:, None]) if alpha is not None else (
      lambda q: q)
  rows = np.arange(len(online))
  next_log_pi = _log_softmax(next_online[..., -1])
  allowed = np.exp(next_log_pi - next_log_pi.max(axis=1,
                                                 keepdims=True)) > threshold
  next_q = np.where(allowed[..., None], combine(next_online[..., :-1]),
                    -np.inf)
  best = next_q.argmax(axis=1)  # [B, H]
  heads = np.arange(best.shape[1])
  next_value = combine(next_target[..., :-1])[rows[:, None], best, heads]
  target = batch['reward'][:, None] + GAMMA * (
      1 - batch['terminal'][:, None]) * next_value
  q = combine(online[..., :-1])[rows, batch['action']]
  td = _huber(target - q).mean(axis=1)
  logits = online[..., -1]
  imitation = -_log_softmax(logits)[rows, batch['action']]
  return td + imitation + logit_weight * (logits**2).mean(axis=1), allowed


@pytest.mark.parametrize('name, kwargs', [
    ('discrete_bcq', {}),
    ('rem_bcq', {'num_heads': 3}),
])
def test_bcq_loss_matches_numpy(name, kwargs):
  agent = _agent(name, **kwargs)
  _randomize(agent, scale=1.5)  # Large logits: some actions masked.
  batch = _batch(batch_size=16)
  step_inputs = agent._sample_step_inputs()  # pylint: disable=protected-access
  loss, _ = _loss_and_gradients(agent, batch, step_inputs)
  alpha = step_inputs['alpha'].numpy() if step_inputs else None
  expected, allowed = _numpy_bcq_loss(agent, batch, alpha)
  assert 0 < (~allowed).sum() and allowed.sum(axis=1).min() >= 1
  np.testing.assert_allclose(loss, expected, rtol=1e-4, atol=1e-5)
  assert agent.num_outputs == kwargs.get('num_heads', 1)
  assert agent.online_network(batch['state']).shape[-1] == (
      agent.num_outputs + 1)


def _constant_outputs(agent, q, logits):
  """Every state gets Q-values `q` (per head) and imitation logits `logits`."""
  q = np.asarray(q, np.float32).reshape(NUM_ACTIONS, -1)
  bias = np.concatenate([q, np.asarray(logits, np.float32)[:, None]], axis=1)
  for network in (agent.online_network, agent.target_network):
    kernel, head_bias = network.variables[-2:]
    kernel.assign(tf.zeros_like(kernel))
    head_bias.assign(bias.reshape(-1))


@pytest.mark.parametrize('q, logits, action', [
    ([1., 5., 3.], [2., -5., 1.5], 2),   # The best Q is masked.
    ([1., 5., 3.], [10., 0., 0.], 0),    # Only one action allowed.
    ([0., 2., 9.], [1., 1., -9.], 1),    # Tie in the behaviour probability.
    ([3., 3., 9.], [1., 1., -9.], 0),    # Tie in Q among allowed: first.
])
@pytest.mark.parametrize('name', ['discrete_bcq', 'rem_bcq'])
def test_bcq_acts_and_bootstraps_on_the_best_allowed_action(
    name, q, logits, action):
  num_heads = 2 if name == 'rem_bcq' else 1
  agent = _agent(name, eval_mode=True,
                 **({'num_heads': num_heads} if num_heads > 1 else {}))
  _constant_outputs(agent, np.repeat(np.asarray(q)[:, None], num_heads, 1),
                    logits)
  assert agent.begin_episode(np.zeros(OBS_DIM, np.float32)) == action
  states = tf.zeros((5, OBS_DIM, 1))
  np.testing.assert_array_equal(
      agent.greedy_actions(states).numpy(), [action] * 5)
  np.testing.assert_array_equal(agent.q_values(states).numpy(), [q] * 5)
  # The bootstrap: r + gamma Q(s', best allowed action), plus imitation.
  batch = _batch(batch_size=4)
  step_inputs = agent._sample_step_inputs()  # pylint: disable=protected-access
  loss, _ = _loss_and_gradients(agent, batch, step_inputs)
  target = batch['reward'] + GAMMA * (1 - batch['terminal']) * q[action]
  logits64 = np.asarray(logits, np.float64)
  imitation = (-_log_softmax(logits64[None])[0][batch['action']] +
               1e-2 * (logits64**2).mean())
  np.testing.assert_allclose(
      loss, _huber(target - np.asarray(q)[batch['action']]) + imitation,
      rtol=1e-5)


# ---- Behaviour cloning. ----


def test_bc_loss_is_cross_entropy_and_it_acts_on_its_likeliest_action():
  agent = _agent('discrete_bc', eval_mode=True)
  assert isinstance(agent, behaviour_cloning_agent.BehaviourCloningAgent)
  _randomize(agent)
  batch = _batch()
  loss, _ = _loss_and_gradients(agent, batch, {})
  logits = _outputs(agent.online_network, batch['state'])[..., 0]
  np.testing.assert_allclose(
      loss, -_log_softmax(logits)[np.arange(len(logits)), batch['action']],
      rtol=1e-5)
  observation = batch['state'][0, :, 0]
  assert agent.begin_episode(observation) == logits[0].argmax()


# ---- Gin files. ----

NEW_AGENTS = {
    'discrete_cql': conservative_agents.DiscreteCQLAgent,
    'quantile_cql': conservative_agents.QuantileCQLAgent,
    'rem_cql': conservative_agents.REMCQLAgent,
    'discrete_bcq': constrained_agents.DiscreteBCQAgent,
    'rem_bcq': constrained_agents.REMBCQAgent,
    'discrete_bc': behaviour_cloning_agent.BehaviourCloningAgent,
}
ENVIRONMENT_SPECS = {
    'atari': EnvironmentSpec(6, (84, 84), np.uint8, 4),
    'minatar': EnvironmentSpec(6, (10, 10, 4), np.uint8, 1),
    'classic': EnvironmentSpec(2, (4,), np.float32, 1),
}
# The published Atari settings: (learning rate, Adam epsilon, outputs per
# action, target update period in gradient steps, regularizer).
ATARI_SETTINGS = {
    'discrete_cql': (5e-5, 3.125e-4, 1, 2000, {'cql_alpha': 1.0}),
    'quantile_cql': (5e-5, 3.125e-4, 200, 2000, {'cql_alpha': 1.0}),
    'rem_cql': (5e-5, 3.125e-4, 200, 2000,
                {'cql_alpha': 1.0, 'penalty_on': 'mixture'}),
    'discrete_bcq': (6.25e-5, 1.5e-4, 1, 8000,
                     {'threshold': 0.3, 'logit_penalty_weight': 1e-2}),
    'rem_bcq': (5e-5, 3.125e-4, 200, 2000,
                {'threshold': 0.3, 'logit_penalty_weight': 1e-2}),
    'discrete_bc': (6.25e-5, 1.5e-4, 1, None, {}),
}
NEW_GIN_FILES = [(environment, agent) for environment in ENVIRONMENT_SPECS
                 for agent in NEW_AGENTS]


@pytest.mark.parametrize('environment, agent_name', NEW_GIN_FILES,
                         ids=[f'{e}/{a}' for e, a in NEW_GIN_FILES])
def test_gin_file_builds_its_agent_with_the_published_settings(
    environment, agent_name):
  gin.clear_config()
  gin.parse_config_file(
      os.path.join(REPO_ROOT, 'gin', environment, f'{agent_name}.gin'))
  agent = registry.create_agent(agent_name, ENVIRONMENT_SPECS[environment])
  assert type(agent) is NEW_AGENTS[agent_name]
  assert type(agent.optimizer) is tf.keras.optimizers.Adam
  if agent_name.startswith('rem'):
    assert agent.transform_strategy == 'STOCHASTIC'
  if environment != 'atari':
    return
  learning_rate, epsilon, outputs, target_period, options = (
      ATARI_SETTINGS[agent_name])
  assert float(agent.optimizer.learning_rate) == pytest.approx(learning_rate)
  assert agent.optimizer.epsilon == pytest.approx(epsilon)
  assert agent.num_outputs == outputs
  if target_period is not None:  # BC has no use for its target network.
    assert (agent.gamma, agent.update_horizon, agent.target_update_period,
            agent.exploration.epsilon_eval) == (0.99, 1, target_period, 0.001)
  for option, value in options.items():
    assert getattr(agent, option) == value

