"""Continuous agents: interface, targets, update schedules, checkpoints."""

import glob
import os
import re
import types

import gin
import numpy as np
import pytest
import tensorflow as tf

from batch_rl.agents import registry
from batch_rl.continuous import CONTINUOUS_AGENTS
from batch_rl.continuous import make_continuous_environment
from batch_rl.continuous import TD3_SETTINGS
from batch_rl.continuous import networks
from batch_rl.continuous.agent import Transitions

OBS_DIM, ACTION_DIM, BATCH = 4, 2, 16
SMALL = {
    'bcq': dict(actor_hidden_sizes=(16,), critic_hidden_sizes=(16,),
                vae_hidden_sizes=(16,)),
}


def spec_of(action_dim=ACTION_DIM, observation_shape=(OBS_DIM,),
            observation_dtype=np.float32, stack_size=1):
  """What `registry.create_agent` reads from an environment spec."""
  return types.SimpleNamespace(
      action_dim=action_dim, observation_shape=observation_shape,
      observation_dtype=observation_dtype, stack_size=stack_size)


def make_agent(name, seed=0, **kwargs):
  return registry.create_agent(
      name, spec_of(), seed=seed,
      **{**SMALL.get(name, dict(hidden_sizes=(16,))), **kwargs})


def make_batch(seed=0, size=BATCH):
  rng = np.random.default_rng(seed)
  return {
      'state': rng.normal(size=(size, OBS_DIM, 1)).astype(np.float32),
      'action': rng.uniform(-1, 1, (size, ACTION_DIM)).astype(np.float32),
      'reward': rng.normal(size=size).astype(np.float32),
      'next_state': rng.normal(size=(size, OBS_DIM, 1)).astype(np.float32),
      'terminal': (np.arange(size) % 4 == 0).astype(np.uint8),
  }


def vectors(batch):
  return Transitions(*(tf.constant(batch[k].reshape(len(batch['reward']), -1)
                                   if k in ('state', 'next_state') else
                                   batch[k]) for k in Transitions._fields))


def weights(model):
  return [w.copy() for w in model.get_weights()]


def assert_weights_equal(a, b, equal=True):
  same = all(np.array_equal(x, y) for x, y in zip(a, b))
  assert same == equal


@pytest.fixture
def eager():
  """Skips tracing where a test checks Python-level behaviour only."""
  tf.config.run_functions_eagerly(True)
  yield
  tf.config.run_functions_eagerly(False)


@pytest.mark.parametrize('name', sorted(CONTINUOUS_AGENTS))
def test_agent_trains_and_acts(name, eager):
  del eager
  agent = make_agent(name)
  for step in range(3):
    report = agent.train_step(make_batch(step))
  assert 'loss' in report
  assert all(np.isfinite(float(v)) for v in report.values())
  assert agent.gradient_steps == 3
  for eval_mode in (False, True):
    agent.eval_mode = eval_mode
    action = agent.begin_episode(np.zeros(OBS_DIM, np.float32))
    assert action.shape == (ACTION_DIM,) and np.abs(action).max() <= 1
    assert agent.step(0.0, np.ones(OBS_DIM)).shape == (ACTION_DIM,)
    agent.end_episode(0.0)


# One agent per set of checkpointed objects (the DDPG family shares one).
# Graph mode, as in training.
@pytest.mark.parametrize('name', ['td3', 'bcq', 'bc', 'cql'])
def test_agent_resumes_exactly_from_checkpoint(name, tmp_path):
  agent = make_agent(name, seed=0)
  assert_weights_equal(weights(agent.actor),
                       weights(make_agent(name, seed=0).actor))
  assert_weights_equal(weights(agent.actor),
                       weights(make_agent(name, seed=1).actor), equal=False)
  for step in range(3):
    agent.train_step(make_batch(step))
  bundle = agent.bundle_and_checkpoint(str(tmp_path), 3)
  restored = make_agent(name, seed=1)
  assert not restored.unbundle(str(tmp_path), 4, bundle)
  assert restored.unbundle(str(tmp_path), 3, bundle)
  assert restored.gradient_steps == 3
  # Networks, optimizer moments and the noise generator all come back.
  for step in range(7, 9):
    expected = agent.train_step(make_batch(step))
    got = restored.train_step(make_batch(step))
    assert {k: float(v) for k, v in got.items()} == {
        k: float(v) for k, v in expected.items()}
  states = make_batch(9)['state'][:, :, 0]
  np.testing.assert_array_equal(agent.policy(states), restored.policy(states))
  agent.eval_mode = restored.eval_mode = False
  np.testing.assert_array_equal(agent.begin_episode(states[0]),
                                restored.begin_episode(states[0]))


GIN_DIR = os.path.join(os.path.dirname(__file__), '..', 'gin', 'mujoco')


def test_every_agent_has_a_gin_file_that_builds_it():
  """Gin files bind real parameters with the published values; agents are
  built from an environment spec's fields as `registry.create_agent` does."""
  _, spec = make_continuous_environment('Hopper-v5')
  files = {os.path.basename(p)[:-4]: p
           for p in glob.glob(os.path.join(GIN_DIR, '*.gin'))}
  assert set(files) == set(CONTINUOUS_AGENTS) | {'offline'}
  del files['offline']  # The runner's protocol, not an agent.
  try:
    for name, path in files.items():
      gin.clear_config()
      with gin.config.unlock_config():
        gin.add_config_file_search_path(os.path.join(GIN_DIR, '..', '..'))
        gin.parse_config_file(path)
      assert gin.query_parameter('create_agent.agent_name') == name
      agent = registry.create_agent(name, spec)
      batch_size = gin.query_parameter('create_runner.batch_size')
      assert batch_size == (100 if name == 'bcq' else 256)
      if name in ('td3', 'td3_bc', 'rem_td3', 'ensemble_td3'):
        assert (agent.policy_noise, agent.noise_clip, agent.policy_delay,
                agent.tau) == (0.2, 0.5, 2, 0.005)
      expected_critics = dict(ddpg=1, td3=2, td3_bc=2, ensemble_ddpg=4,
                              rem_ddpg=4, ensemble_td3=4, rem_td3=4)
      if name in expected_critics:
        assert agent.num_critics == expected_critics[name]
        assert agent.actor.net.layers[0].units == 256
        assert float(agent.actor_optimizer.learning_rate) == pytest.approx(3e-4)
      if name == 'bcq':
        assert (agent.lam, agent.phi, agent.latent_dim) == (0.75, 0.05, 6)
      if name == 'td3_bc':
        assert agent.alpha == 2.5
  finally:
    gin.clear_config()


def test_agents_refuse_stacked_or_integer_observations_and_replicas():
  with pytest.raises(ValueError, match=r'observation_shape=\(84, 84\), '
                     'stack_size=4; expected'):
    registry.create_agent('td3', spec_of(3, (84, 84), np.uint8, 4))
  with pytest.raises(ValueError, match='observation_dtype=uint8'):
    registry.create_agent('bc', spec_of(3, (11,), np.uint8, 1))
  two_replicas = types.SimpleNamespace(num_replicas_in_sync=2)
  with pytest.raises(ValueError, match='one device; got a strategy with 2'):
    registry.create_agent('bc', spec_of(3, (11,)), strategy=two_replicas)
  assert registry.create_agent('bc', spec_of(3, (11,)),
                               strategy=tf.distribute.get_strategy())


@pytest.mark.parametrize('binding, message', [
    ("DDPGAgent.target_combination = 'best'",
     "DDPGAgent.target_combination='best'; valid: independent, min, rem."),
    ("DDPGAgent.actor_objective = 'max'",
     "DDPGAgent.actor_objective='max'; valid: 'first', 'mean'."),
    ("DDPGAgent.target_combination = 'min'",
     "DDPGAgent.target_combination='min' needs DDPGAgent.num_critics >= 2, "
     'got 1.'),
])
def test_actor_critic_bindings_name_the_binding_and_valid_values(binding,
                                                                 message):
  gin.parse_config(binding)
  try:
    with pytest.raises(ValueError, match=re.escape(message)):
      make_agent('ddpg')
  finally:
    gin.clear_config()


def test_td3_target_is_clipped_double_q_of_the_target_actor():
  # TD3's settings without the smoothing noise; `td3` presets the noise.
  agent = make_agent('ddpg', **dict(TD3_SETTINGS, policy_noise=0.0))
  agent.train_step(make_batch(0))  # Moves the target networks off init.
  t = vectors(make_batch(1))
  next_q = agent.target_critics(t.next_state, agent.target_actor(t.next_state))
  expected = t.reward + 0.99 * (1 - t.terminal.numpy()) * np.minimum(
      next_q[0], next_q[1])
  np.testing.assert_allclose(agent._critic_targets(t), expected, rtol=1e-5)


def test_td3_target_smoothing_noise_is_clipped():
  agent = make_agent('td3')
  states = tf.random.stateless_normal([4096, OBS_DIM], seed=[0, 1])
  noise = (agent._target_actions(states) - agent.target_actor(states)).numpy()
  inside = np.abs(agent.target_actor(states).numpy()) < 0.5  # No bound clip.
  assert np.abs(noise).max() <= 0.5 + 1e-6
  assert np.abs(noise[inside]).max() == pytest.approx(0.5)
  assert np.std(noise[inside]) == pytest.approx(0.19, abs=0.02)


def test_ensemble_critics_regress_on_their_own_targets_and_rem_mixes():
  ensemble = make_agent('ensemble_ddpg')
  a = ensemble._as_vectors(make_batch(1))
  next_q = ensemble.target_critics(a.next_state,
                                   ensemble.target_actor(a.next_state))
  expected = a.reward + 0.99 * (1 - a.terminal) * next_q
  np.testing.assert_allclose(ensemble._critic_targets(a), expected, rtol=1e-5)

  rem = make_agent('rem_ddpg')
  next_q = rem.target_critics(a.next_state, rem.target_actor(a.next_state))
  per_critic = (a.reward + 0.99 * (1 - a.terminal) * next_q).numpy()
  first, second = rem._critic_targets(a), rem._critic_targets(a)
  assert first.shape == (BATCH,)
  assert (first >= per_critic.min(axis=0) - 1e-5).numpy().all()
  assert (first <= per_critic.max(axis=0) + 1e-5).numpy().all()
  # One convex combination per minibatch, redrawn for the next one.
  alpha = np.linalg.lstsq(per_critic.T, first.numpy(), rcond=None)[0]
  assert alpha.sum() == pytest.approx(1.0, abs=1e-4) and alpha.min() >= -1e-4
  assert not np.allclose(first, second)


@pytest.mark.parametrize('name,objective', [('td3', 'first'),
                                            ('ensemble_ddpg', 'mean')])
def test_actor_ascends_its_critic_objective(name, objective):
  agent = make_agent(name)
  actor_before = networks.copy_of(
      agent.actor, lambda: networks.DeterministicActor(
          ACTION_DIM, (16,), networks.SeedStream(9)), OBS_DIM)
  batch = make_batch(2)
  report = agent.train_step(batch)
  states = batch['state'][:, :, 0]
  q = agent.critics(states, actor_before(states)).numpy()  # Updated critics.
  expected = -(q[0] if objective == 'first' else q.mean(axis=0)).mean()
  assert float(report['actor_loss']) == pytest.approx(expected, rel=1e-4)


def test_td3_delays_actor_and_target_updates_ddpg_does_not():
  td3 = make_agent('td3')
  history = []
  for step in range(4):
    td3.train_step(make_batch(step))
    history.append((weights(td3.actor), weights(td3.target_critics)))
  assert_weights_equal(history[0][0], history[1][0])   # Step 1: actor waits.
  assert_weights_equal(history[0][1], history[1][1])   # ... and so do targets.
  assert_weights_equal(history[1][0], history[2][0], equal=False)
  assert_weights_equal(history[1][1], history[2][1], equal=False)

  ddpg = make_agent('ddpg', tau=0.1)
  before = weights(ddpg.target_critics)
  ddpg.train_step(make_batch(0))
  for target, old, online in zip(ddpg.target_critics.get_weights(), before,
                                 ddpg.critics.get_weights()):
    np.testing.assert_allclose(target, 0.1 * online + 0.9 * old, rtol=1e-5,
                               atol=1e-7)


@pytest.mark.parametrize('name', ['td3', 'bcq'])
def test_train_steps_in_one_graph_equal_single_steps(name):
  """Same updates (incl. TD3's delayed actor) as one train_step per batch."""
  batches = [make_batch(i) for i in range(5)]
  stepwise, looped = make_agent(name, seed=3), make_agent(name, seed=3)
  for batch in batches:
    last = stepwise.train_step(batch)
  dataset = tf.data.Dataset.from_tensor_slices(
      {k: np.stack([b[k] for b in batches]) for k in batches[0]})
  result = looped.train_steps(iter(dataset.batch(5)), 5)
  assert looped.gradient_steps == stepwise.gradient_steps == 5
  np.testing.assert_allclose(result['loss'], last['loss'], rtol=1e-5)
  for a, b in zip(stepwise._trackables().values(),
                  looped._trackables().values()):
    if isinstance(a, tf.keras.Model):
      for x, y in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_train_steps_on_stacks_use_batches_in_order_and_drop_the_rest():
  """Stacks of 2: steps 1-3 read batches 0, 1, 2; batch 3 is dropped, so the
  next call starts with batch 4 (of the next stack)."""
  batches = [make_batch(i) for i in range(6)]
  stepwise, stacked = make_agent('td3', seed=3), make_agent('td3', seed=3)
  for i in (0, 1, 2, 4):
    stepwise.train_step(batches[i])
  stacks = tf.data.Dataset.from_tensor_slices(
      {k: np.stack([b[k] for b in batches]) for k in batches[0]}).batch(2)
  iterator = iter(stacks)
  stacked.train_steps(iterator, 3)
  stacked.train_steps(iterator, 1)
  assert stacked.gradient_steps == 4
  for x, y in zip(weights(stepwise.critics), weights(stacked.critics)):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def deterministic_behaviour_data(num_batches, seed=0, size=64):
  """W and batches with a = tanh(W s): one action per state, r = sum(a)."""
  rng = np.random.default_rng(seed)
  w = rng.normal(size=(OBS_DIM, ACTION_DIM)).astype(np.float32)
  batches = [make_batch(seed + 1 + i, size) for i in range(num_batches)]
  for b in batches:
    b['action'] = np.tanh(b['state'][:, :, 0] @ w)
    b['reward'] = b['action'].sum(axis=1)
  return w, batches


@pytest.mark.parametrize('name,tolerance', [('bc', 0.1), ('bcq', 0.15)])
def test_behaviour_constrained_policies_stay_on_the_data_actions(
    name, tolerance):
  # The reward favours a = 1 everywhere; BCQ may still only move phi = 0.05
  # away from what its VAE decodes, so it must stay near the data actions.
  agent = make_agent(name, learning_rate=3e-3) if name == 'bc' else make_agent(
      name, actor_hidden_sizes=(32,), critic_hidden_sizes=(32,),
      vae_hidden_sizes=(64, 64))
  w, batches = deterministic_behaviour_data(200)
  for batch in batches:
    agent.train_step(batch)
  states = make_batch(99, 256)['state'][:, :, 0]
  error = np.abs(agent.policy(states).numpy() - np.tanh(states @ w))
  assert error.mean() < tolerance  # Untrained, the error is about 0.6.


def test_cql_values_data_actions_above_unseen_actions():
  agent = make_agent('cql', hidden_sizes=(32, 32), critic_learning_rate=1e-3)
  rng = np.random.default_rng(0)
  for step in range(150):
    batch = make_batch(step, 64)
    batch['action'] = np.full_like(batch['action'], 0.5)
    batch['reward'] = np.ones_like(batch['reward'])
    agent.train_step(batch)
  states = make_batch(99, 256)['state'][:, :, 0]
  data_q = agent.critics(states, np.full((256, ACTION_DIM), 0.5, np.float32))
  unseen_q = agent.critics(states, rng.uniform(
      -1, 1, (256, ACTION_DIM)).astype(np.float32))
  assert np.mean(data_q) > np.mean(unseen_q) + 1.0
