"""Discrete agents: acting, training, learning, checkpoints, gin files."""

import functools
import os
import subprocess
import sys
import textwrap

import gin
import numpy as np
import pytest
import tensorflow as tf

from batch_rl.agents import c51_agent
from batch_rl.agents import dqn_agent
from batch_rl.agents import exploration
from batch_rl.agents import multi_head_dqn_agent
from batch_rl.agents import multi_network_dqn_agent
from batch_rl.agents import networks
from batch_rl.agents import optimizers
from batch_rl.agents import quantile_agent
from batch_rl.agents import registry
from batch_rl.environments.environment_spec import EnvironmentSpec
from conftest import TWO_CPU_REPLICAS_PREAMBLE

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Registry name, constructor arguments and outputs per action of each agent,
# kept small so that every test stays fast.
AGENT_CONFIGS = {
    'dqn': ('dqn', {}, 1),
    'c51': ('c51', {'num_atoms': 11, 'vmax': 1.}, 11),
    'quantile': ('quantile', {'num_quantiles': 8}, 8),
    'ensemble_dqn': ('ensemble_dqn', {'num_heads': 4}, 4),
    'rem': ('rem', {'num_heads': 4}, 4),
    'multi_network_dqn': ('multi_network_dqn', {'num_networks': 3}, 3),
}


@pytest.fixture(autouse=True)
def clean_gin_and_seed():
  tf.keras.utils.set_random_seed(0)
  yield
  gin.clear_config()


def _use_mlp_torso(hidden_units=(16,)):
  gin.bind_parameter('QHeadsNetwork.torso', networks.MLPTorso)
  gin.bind_parameter('MLPTorso.hidden_units', hidden_units)


def _adam(learning_rate=1e-3):
  return functools.partial(optimizers.adam_optimizer,
                           learning_rate=learning_rate, epsilon=1e-4)


def _random_batch(rng, batch_size, state_shape, dtype, num_actions):
  """A transition batch with the keys and dtypes of docs/DESIGN.md."""

  def states():
    if dtype == np.uint8:
      return rng.integers(0, 256, (batch_size,) + state_shape, dtype=np.uint8)
    return rng.normal(size=(batch_size,) + state_shape).astype(dtype)

  return {
      'state': states(),
      'action': rng.integers(0, num_actions, batch_size).astype(np.int32),
      'reward': rng.normal(size=batch_size).astype(np.float32),
      'next_state': states(),
      'next_action': rng.integers(0, num_actions, batch_size).astype(np.int32),
      'next_reward': rng.normal(size=batch_size).astype(np.float32),
      'terminal': rng.integers(0, 2, batch_size).astype(np.uint8),
      'indices': np.arange(batch_size, dtype=np.int32),
  }


def _make_agent(config, num_actions, observation_shape, observation_dtype,
                stack_size, **kwargs):
  name, agent_kwargs, _ = AGENT_CONFIGS[config]
  spec = EnvironmentSpec(num_actions, observation_shape, observation_dtype,
                         stack_size)
  return registry.create_agent(name, spec, **{**agent_kwargs, **kwargs})


def _epsilon_greedy(**kwargs):
  return exploration.EpsilonGreedy(**{'epsilon_eval': 0., **kwargs})


# ---- Optimizers and epsilon. ----


def _apply_updates(optimizer, init, gradients):
  variable = tf.Variable(init)
  for gradient in gradients:
    optimizer.apply_gradients([(tf.constant(gradient), variable)])
  return variable.numpy()


def test_tf1_rmsprop_reproduces_tf1_centered_rmsprop():
  rng = np.random.default_rng(0)
  init = rng.normal(size=(3, 2)).astype(np.float32)
  gradients = [rng.normal(size=(3, 2)).astype(np.float32) for _ in range(4)]
  tf1 = _apply_updates(
      tf.compat.v1.train.RMSPropOptimizer(
          2.5e-4, decay=0.95, momentum=0., epsilon=1e-5, centered=True),
      init, gradients)
  ours = _apply_updates(optimizers.centered_rmsprop_optimizer(), init,
                        gradients)
  keras = _apply_updates(
      tf.keras.optimizers.RMSprop(2.5e-4, rho=0.95, epsilon=1e-5,
                                  centered=True), init, gradients)
  np.testing.assert_allclose(ours, tf1, rtol=0, atol=1e-7)
  # Keras' zero-initialized mean square moves the weights far more.
  assert np.abs(keras - tf1).max() > np.abs(tf1 - init).max()


def test_adam_matches_tf1_adam():
  rng = np.random.default_rng(1)
  init = rng.normal(size=(4,)).astype(np.float32)
  gradients = [rng.normal(size=(4,)).astype(np.float32) for _ in range(4)]
  np.testing.assert_allclose(
      _apply_updates(optimizers.adam_optimizer(1e-2, 3.125e-4), init,
                     gradients),
      _apply_updates(tf.compat.v1.train.AdamOptimizer(1e-2, epsilon=3.125e-4),
                     init, gradients), atol=1e-6)


def test_linearly_decaying_epsilon():
  schedule = functools.partial(exploration.linearly_decaying_epsilon, 100,
                               warmup_steps=20, epsilon=0.1)
  assert schedule(step=0) == 1.0
  assert schedule(step=20) == 1.0
  assert schedule(step=70) == pytest.approx(0.55)
  assert schedule(step=120) == pytest.approx(0.1)
  assert schedule(step=10**6) == pytest.approx(0.1)


# ---- Networks. ----


@pytest.mark.parametrize('torso, state_shape, dtype', [
    (networks.NatureDQNTorso, (84, 84, 4), np.uint8),
    (networks.MinAtarTorso, (10, 10, 3, 2), np.uint8),
    (networks.MLPTorso, (5, 3), np.float32),
])
def test_q_heads_network_outputs_per_action_and_head(torso, state_shape,
                                                     dtype):
  network = networks.QHeadsNetwork(num_actions=3, num_outputs=7, torso=torso)
  outputs = network(tf.zeros((2,) + state_shape, dtype))
  assert outputs.shape == (2, 3, 7)


def test_nature_torso_scales_frames_and_minatar_merges_channels():
  nature = networks.NatureDQNTorso()
  frames = tf.fill((1, 84, 84, 4), tf.constant(255, tf.uint8))
  np.testing.assert_allclose(nature.preprocess(frames).numpy(), 1.)
  minatar = networks.MinAtarTorso()
  state = tf.reshape(tf.range(10 * 10 * 3 * 2), (1, 10, 10, 3, 2))
  merged = minatar.preprocess(state)
  assert merged.shape == (1, 10, 10, 6)
  np.testing.assert_array_equal(merged[0, 4, 7].numpy(),
                                np.reshape(state[0, 4, 7].numpy(), -1))


def test_ensemble_network_stacks_independent_networks():
  _use_mlp_torso()
  network = networks.EnsembleQNetwork(num_actions=2, num_networks=3)
  state = tf.random.normal((4, 5, 1))
  outputs = network(state)
  assert outputs.shape == (4, 2, 3)
  # Each network has its own weights, so the Q-functions differ.
  assert not np.allclose(outputs[..., 0], outputs[..., 1])


# ---- Every agent: build, act, train. ----


def test_frame_stack_resets_every_episode():
  _use_mlp_torso()
  agent = _make_agent('rem', num_actions=3, observation_shape=(2, 3),
                      observation_dtype=np.uint8, stack_size=3,
                      optimizer_fn=_adam())
  frames = np.arange(4 * 6, dtype=np.uint8).reshape(4, 2, 3) + 1
  actions = [agent.begin_episode(frames[0]), agent.step(0., frames[1])]
  np.testing.assert_array_equal(
      agent.state[0], np.stack([np.zeros((2, 3)), frames[0], frames[1]], -1))
  actions.append(agent.step(0., frames[2]))
  agent.end_episode(1.)
  actions.append(agent.begin_episode(frames[3]))
  np.testing.assert_array_equal(
      agent.state[0], np.stack([np.zeros((2, 3))] * 2 + [frames[3]], -1))
  assert all(isinstance(a, int) and 0 <= a < 3 for a in actions)


def test_dqn_acts_and_trains_on_atari_frames():
  agent = registry.create_agent('dqn', EnvironmentSpec(6, (84, 84), np.uint8,
                                                       4))
  rng = np.random.default_rng(0)
  assert 0 <= agent.begin_episode(
      rng.integers(0, 256, (84, 84), dtype=np.uint8)) < 6
  batch = _random_batch(rng, 4, (84, 84, 4), np.uint8, 6)
  assert np.isfinite(agent.train_step(batch)['loss'])
  assert isinstance(agent.optimizer, optimizers.TF1RMSprop)


def test_greedy_and_random_acting():
  _use_mlp_torso()
  agent = _make_agent('rem', num_actions=3, observation_shape=(5,),
                      observation_dtype=np.float32, stack_size=2,
                      optimizer_fn=_adam(),
                      exploration=_epsilon_greedy(min_replay_history=1000),
                      seed=0)
  rng = np.random.default_rng(0)
  # Training mode: epsilon is 1 during the warm-up, so actions are uniform.
  agent.begin_episode(rng.normal(size=5))
  actions = {agent.step(0., rng.normal(size=5)) for _ in range(60)}
  assert actions == {0, 1, 2}
  assert agent.acting_steps == 61
  # Eval mode: greedy on the mean of the heads, steps not counted.
  agent.eval_mode = True
  for _ in range(10):
    action = agent.step(0., rng.normal(size=5))
    heads = agent.online_network(agent.state).numpy()
    assert action == int(np.argmax(heads.mean(axis=-1)[0]))
  assert agent.acting_steps == 61
  with pytest.raises(ValueError, match=r'\(5,\)'):
    agent.step(0., np.zeros(4))


def test_train_step_rejects_malformed_batches():
  _use_mlp_torso()
  agent = _make_agent('dqn', num_actions=2, observation_shape=(3,),
                      observation_dtype=np.float32, stack_size=2)
  batch = _random_batch(np.random.default_rng(0), 4, (3, 2), np.float32, 2)
  with pytest.raises(ValueError, match='terminal'):
    agent.train_step({k: v for k, v in batch.items() if k != 'terminal'})
  batch['next_state'] = batch['next_state'][..., :1]
  with pytest.raises(ValueError, match='next_state'):
    agent.train_step(batch)


def test_target_network_is_copied_every_target_update_period_steps():
  _use_mlp_torso()
  agent = _make_agent('dqn', num_actions=2, observation_shape=(3,),
                      observation_dtype=np.float32, stack_size=1,
                      optimizer_fn=_adam(1e-2), target_update_period=3)
  batch = _random_batch(np.random.default_rng(0), 8, (3, 1), np.float32, 2)
  initial = [v.numpy() for v in agent.target_network.variables]
  for _ in range(2):
    agent.train_step(batch)
    for value, variable in zip(initial, agent.target_network.variables):
      np.testing.assert_array_equal(value, variable.numpy())
  agent.train_step(batch)
  for target, online in zip(agent.target_network.variables,
                            agent.online_network.variables):
    np.testing.assert_array_equal(target.numpy(), online.numpy())


# ---- Losses of the agents against references. ----


def test_dqn_loss_uses_n_step_discount_and_terminal_mask():
  _use_mlp_torso()
  gamma, horizon = 0.9, 3
  agent = _make_agent('dqn', num_actions=2, observation_shape=(3,),
                      observation_dtype=np.float32, stack_size=1,
                      gamma=gamma, update_horizon=horizon,
                      optimizer_fn=_adam(), td_loss='mse')
  batch = _random_batch(np.random.default_rng(0), 16, (3, 1), np.float32, 2)
  q = agent.online_network(batch['state']).numpy()[..., 0]
  next_q = agent.target_network(batch['next_state']).numpy()[..., 0]
  # Rewards (some beyond +-1 here) are clipped to [-1, 1], as in Dopamine.
  target = np.clip(batch['reward'], -1, 1) + gamma**horizon * (
      1 - batch['terminal']) * next_q.max(axis=1)
  expected = np.mean((target - q[np.arange(16), batch['action']])**2)
  np.testing.assert_allclose(agent.train_step(batch)['loss'], expected,
                             rtol=1e-5)


def test_reward_clip_none_trains_on_raw_rewards():
  _use_mlp_torso()
  agent = _make_agent('dqn', num_actions=2, observation_shape=(3,),
                      observation_dtype=np.float32, stack_size=1, gamma=0.5,
                      optimizer_fn=_adam(), td_loss='mse', reward_clip=None)
  batch = _random_batch(np.random.default_rng(0), 16, (3, 1), np.float32, 2)
  batch['reward'] = batch['reward'] * 10
  q = agent.online_network(batch['state']).numpy()[..., 0]
  next_q = agent.target_network(batch['next_state']).numpy()[..., 0]
  target = batch['reward'] + 0.5 * (1 - batch['terminal']) * next_q.max(1)
  expected = np.mean((target - q[np.arange(16), batch['action']])**2)
  np.testing.assert_allclose(agent.train_step(batch)['loss'], expected,
                             rtol=1e-5)


def test_ensemble_dqn_loss_averages_per_head_td_losses():
  _use_mlp_torso()
  agent = _make_agent('ensemble_dqn', num_actions=2, observation_shape=(3,),
                      observation_dtype=np.float32, stack_size=1, gamma=0.5,
                      optimizer_fn=_adam())
  batch = _random_batch(np.random.default_rng(0), 16, (3, 1), np.float32, 2)
  heads = agent.online_network(batch['state']).numpy()
  next_heads = agent.target_network(batch['next_state']).numpy()
  # Each head bootstraps from its own maximum.
  target = np.clip(batch['reward'], -1, 1)[:, None] + 0.5 * (
      1 - batch['terminal'])[:, None] * next_heads.max(axis=1)
  error = np.abs(target - heads[np.arange(16), batch['action']])
  expected = np.mean(np.where(error <= 1, 0.5 * error**2, error - 0.5))
  np.testing.assert_allclose(agent.train_step(batch)['loss'], expected,
                             rtol=1e-5)


def test_c51_loss_on_terminal_transition_by_hand():
  _use_mlp_torso()
  agent = _make_agent('c51', num_actions=2, observation_shape=(3,),
                      observation_dtype=np.float32, stack_size=1,
                      num_atoms=5, vmax=1., optimizer_fn=_adam())
  batch = _random_batch(np.random.default_rng(0), 1, (3, 1), np.float32, 2)
  batch.update(reward=np.array([0.3], np.float32),
               terminal=np.array([1], np.uint8))
  # Atoms -1, -0.5, 0, 0.5, 1: r = 0.3 splits 0.4 onto 0 and 0.6 onto 0.5.
  logits = agent.online_network(batch['state'])[0, batch['action'][0]]
  log_p = tf.nn.log_softmax(logits).numpy()
  expected = -(0.4 * log_p[2] + 0.6 * log_p[3])
  np.testing.assert_allclose(agent.train_step(batch)['loss'], expected,
                             rtol=1e-5)


def test_quantile_loss_bootstraps_from_greedy_target_quantiles():
  _use_mlp_torso()
  agent = _make_agent('quantile', num_actions=2, observation_shape=(3,),
                      observation_dtype=np.float32, stack_size=1,
                      num_quantiles=4, gamma=0.5, optimizer_fn=_adam())
  batch = _random_batch(np.random.default_rng(0), 8, (3, 1), np.float32, 2)
  theta = agent.online_network(batch['state']).numpy()
  next_theta = agent.target_network(batch['next_state']).numpy()
  greedy = next_theta.mean(axis=2).argmax(axis=1)
  target = np.clip(batch['reward'], -1, 1)[:, None] + 0.5 * (
      1 - batch['terminal'])[:, None] * next_theta[np.arange(8), greedy]
  chosen = theta[np.arange(8), batch['action']]
  tau = (np.arange(4) + 0.5) / 4
  u = target[:, None, :] - chosen[:, :, None]
  huber = np.where(np.abs(u) <= 1, 0.5 * u**2, np.abs(u) - 0.5)
  rho = np.abs(tau[None, :, None] - (u < 0)) * huber
  expected = rho.mean(axis=2).sum(axis=1).mean()
  np.testing.assert_allclose(agent.train_step(batch)['loss'], expected,
                             rtol=1e-5)


# ---- Learning on a tiny MDP. ----

# Two states (one-hot), two actions, gamma 0.9:
#   s0 -a0-> s1 (r 0), s0 -a1-> end (r 1), s1 -a0-> end (r 0.5), s1 -a1-> end.
# Q*(s0) = (0.9 * 0.5, 1), Q*(s1) = (0.5, 0).
CHAIN_STATES = np.eye(2, dtype=np.float32)[:, :, None]
CHAIN_Q = np.array([[0.45, 1.], [0.5, 0.]])


def _chain_batch():
  s0, s1 = CHAIN_STATES
  transitions = [(s0, 0, 0., s1, 0), (s0, 1, 1., s0, 1), (s1, 0, 0.5, s0, 1),
                 (s1, 1, 0., s0, 1)] * 8
  state, action, reward, next_state, terminal = map(np.array,
                                                    zip(*transitions))
  return {'state': state, 'action': action.astype(np.int32),
          'reward': reward.astype(np.float32), 'next_state': next_state,
          'terminal': terminal.astype(np.uint8)}


@pytest.mark.parametrize('config', sorted(AGENT_CONFIGS))
def test_agent_trains_learns_chain_q_values_and_acts_greedily(config):
  _use_mlp_torso(hidden_units=(32,))
  agent = _make_agent(config, num_actions=2, observation_shape=(2,),
                      observation_dtype=np.float32, stack_size=1, gamma=0.9,
                      target_update_period=25, optimizer_fn=_adam(1e-2),
                      exploration=_epsilon_greedy(), seed=0)
  outputs = agent.online_network(CHAIN_STATES)
  assert outputs.shape == (2, 2, AGENT_CONFIGS[config][2])
  # A batch with every key of docs/DESIGN.md, not only those the loss reads.
  random_batch = _random_batch(np.random.default_rng(0), 8, (2, 1),
                               np.float32, 2)
  loss = agent.train_step(random_batch)['loss']
  assert loss.shape == () and np.isfinite(float(loss))

  chain_batch = _chain_batch()
  for _ in range(300):
    agent.train_step(chain_batch)
  assert agent.gradient_steps == 301
  np.testing.assert_allclose(agent.q_values(CHAIN_STATES).numpy(), CHAIN_Q,
                             atol=0.01)
  agent.eval_mode = True
  assert agent.begin_episode(CHAIN_STATES[0, :, 0]) == 1
  assert agent.step(0., CHAIN_STATES[1, :, 0]) == 0


# ---- Distribution and XLA. ----

MIRRORED_SCRIPT = TWO_CPU_REPLICAS_PREAMBLE + textwrap.dedent("""

    def make(strategy):
      return registry.create_agent(
          'rem', EnvironmentSpec(3, (4,), np.float32, 1), num_heads=4,
          seed=3, strategy=strategy,
          target_update_period=2,
          optimizer_fn=functools.partial(optimizers.adam_optimizer,
                                         learning_rate=1e-2, epsilon=1e-4))

    single = make(None)
    strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
    mirrored = make(strategy)
    for network in ('online_network', 'target_network'):
      getattr(mirrored, network).set_weights(
          getattr(single, network).get_weights())
    rng = np.random.default_rng(0)
    batch = {
        'state': rng.normal(size=(8, 4, 1)).astype(np.float32),
        'next_state': rng.normal(size=(8, 4, 1)).astype(np.float32),
        'action': rng.integers(0, 3, 8).astype(np.int32),
        'reward': rng.normal(size=8).astype(np.float32),
        'terminal': rng.integers(0, 2, 8).astype(np.uint8),
    }
    # Each replica trains on half of the global batch of 8.
    halves = iter(strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(batch).repeat()))
    for _ in range(3):
      np.testing.assert_allclose(mirrored.train_step(next(halves))['loss'],
                                 single.train_step(batch)['loss'], rtol=1e-5)
    states = batch['state']
    np.testing.assert_allclose(mirrored.q_values(states),
                               single.q_values(states), rtol=1e-4, atol=1e-6)
    print('mirrored OK')
""")


def test_two_replica_mirrored_strategy_matches_single_device():
  result = subprocess.run([sys.executable, '-c', MIRRORED_SCRIPT],
                          capture_output=True, text=True, cwd=REPO_ROOT,
                          timeout=120, check=False)
  assert result.returncode == 0 and 'mirrored OK' in result.stdout, (
      result.stderr[-3000:])


def test_jit_compiled_train_step_matches_graph_train_step():
  _use_mlp_torso()
  make = functools.partial(_make_agent, 'dqn', num_actions=2,
                           observation_shape=(3,),
                           observation_dtype=np.float32, stack_size=1,
                           optimizer_fn=_adam(1e-2))
  graph = make()
  xla = make(jit_compile=True)
  xla.online_network.set_weights(graph.online_network.get_weights())
  xla.target_network.set_weights(graph.target_network.get_weights())
  batch = _random_batch(np.random.default_rng(0), 8, (3, 1), np.float32, 2)
  for _ in range(3):
    np.testing.assert_allclose(xla.train_step(batch)['loss'],
                               graph.train_step(batch)['loss'], rtol=1e-4)


@pytest.mark.parametrize('config', ['dqn', 'rem'])
def test_train_steps_in_one_graph_equal_single_steps(config):
  """n steps in one call: same weights, target copies and REM draws."""
  _use_mlp_torso()
  make = functools.partial(_make_agent, config, num_actions=2,
                           observation_shape=(3,),
                           observation_dtype=np.float32, stack_size=1,
                           optimizer_fn=_adam(1e-2), target_update_period=2,
                           seed=5)
  stepwise, looped = make(), make()
  looped.online_network.set_weights(stepwise.online_network.get_weights())
  looped.target_network.set_weights(stepwise.target_network.get_weights())
  rng = np.random.default_rng(0)
  batches = [_random_batch(rng, 8, (3, 1), np.float32, 2) for _ in range(5)]
  for batch in batches:
    last = stepwise.train_step(batch)
  dataset = tf.data.Dataset.from_tensor_slices(
      {k: np.stack([b[k] for b in batches]) for k in batches[0]})
  # Stacks of 2 batches; the unused second batch of the last is dropped.
  result = looped.train_steps(iter(dataset.batch(2)), 5)
  np.testing.assert_allclose(result['loss'], last['loss'], rtol=1e-5)
  assert looped.gradient_steps == stepwise.gradient_steps == 5
  for network in ('online_network', 'target_network'):
    for x, y in zip(getattr(stepwise, network).get_weights(),
                    getattr(looped, network).get_weights()):
      np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


# ---- Checkpoints. ----


def test_checkpoint_round_trip_restores_identical_agent(tmp_path):
  _use_mlp_torso()
  make = functools.partial(_make_agent, 'rem', num_actions=3,
                           observation_shape=(4,),
                           observation_dtype=np.float32, stack_size=2,
                           optimizer_fn=_adam(1e-2), seed=5)
  rng = np.random.default_rng(0)
  batch = _random_batch(rng, 8, (4, 2), np.float32, 3)
  agent = make()
  agent.begin_episode(rng.normal(size=4))
  for _ in range(3):
    agent.train_step(batch)
  bundle = agent.bundle_and_checkpoint(str(tmp_path / 'ckpt'), 7)

  restored = make(seed=99)
  states = rng.normal(size=(6, 4, 2)).astype(np.float32)
  assert not np.allclose(restored.q_values(states), agent.q_values(states))
  assert not restored.unbundle(str(tmp_path / 'ckpt'), 8, bundle)
  assert restored.unbundle(str(tmp_path / 'ckpt'), 7, bundle)
  np.testing.assert_array_equal(restored.q_values(states),
                                agent.q_values(states))
  assert restored.gradient_steps == agent.gradient_steps == 3
  assert restored.acting_steps == agent.acting_steps == 1
  np.testing.assert_array_equal(restored.state, agent.state)
  # Optimizer moments, target network and REM's alpha stream come back too.
  for _ in range(2):
    assert float(restored.train_step(batch)['loss']) == float(
        agent.train_step(batch)['loss'])
  np.testing.assert_array_equal(restored.q_values(states),
                                agent.q_values(states))


def test_unbundle_rejects_another_agents_checkpoint(tmp_path):
  _use_mlp_torso()
  common = dict(num_actions=2, observation_shape=(3,),
                observation_dtype=np.float32, stack_size=1)
  _make_agent('dqn', **common).bundle_and_checkpoint(str(tmp_path), 0)
  with pytest.raises(ValueError, match='tf_ckpt-0'):
    _make_agent('quantile', **common).unbundle(str(tmp_path), 0, None)


# ---- Registry. ----


def test_registry_maps_names_to_agents():
  # Other branches (batch_rl.continuous) may have registered theirs too.
  assert {'c51', 'dqn', 'ensemble_dqn', 'multi_head_dqn', 'multi_network_dqn',
          'quantile', 'rem'} <= set(registry.agent_names())
  with pytest.raises(ValueError, match="'rainbow'; valid names: .*c51, .*dqn"):
    registry.create_agent('rainbow', EnvironmentSpec(2, (3,), np.float32, 1))
  with pytest.raises(ValueError, match='already registered'):
    registry.register_agent('dqn')(quantile_agent.QuantileAgent)


@pytest.mark.parametrize('invalid, error', [
    ({'transform_strategy': 'UNIFORM'}, 'IDENTITY'),
    ({'td_loss': 'l1'}, 'huber'),
])
def test_invalid_agent_options_are_named(invalid, error):
  _use_mlp_torso()
  with pytest.raises(ValueError, match=error):
    multi_head_dqn_agent.MultiHeadDQNAgent(2, (3,), np.float32, 1, **invalid)


# ---- Gin files. ----

ENVIRONMENT_INPUTS = {
    'atari': dict(num_actions=6, observation_shape=(84, 84),
                  observation_dtype=np.uint8, stack_size=4),
    'minatar': dict(num_actions=6, observation_shape=(10, 10, 4),
                    observation_dtype=np.uint8, stack_size=1),
    'classic': dict(num_actions=2, observation_shape=(4,),
                    observation_dtype=np.float32, stack_size=1),
}
AGENT_CLASSES = {
    'dqn': dqn_agent.DQNAgent, 'dqn_adam': dqn_agent.DQNAgent,
    'c51': c51_agent.C51Agent, 'quantile': quantile_agent.QuantileAgent,
    'ensemble_dqn': multi_head_dqn_agent.MultiHeadDQNAgent,
    'rem': multi_head_dqn_agent.MultiHeadDQNAgent,
    'multi_network_dqn': multi_network_dqn_agent.MultiNetworkDQNAgent,
}
GIN_FILES = sorted(
    path for path in (
        os.path.join(REPO_ROOT, 'gin', environment, f'{agent}.gin')
        for environment in ENVIRONMENT_INPUTS for agent in AGENT_CLASSES)
    if os.path.exists(path))
# The release's Atari hyperparameters: optimizer, learning rate, epsilon and
# outputs per action.
ATARI_OPTIMIZERS = {
    'dqn': (optimizers.TF1RMSprop, 2.5e-4, 1e-5, 1),
    'dqn_adam': (tf.keras.optimizers.Adam, 5e-5, 3.125e-4, 1),
    'c51': (tf.keras.optimizers.Adam, 2.5e-4, 3.125e-4, 51),
    'quantile': (tf.keras.optimizers.Adam, 5e-5, 3.125e-4, 200),
    'ensemble_dqn': (tf.keras.optimizers.Adam, 5e-5, 3.125e-4, 200),
    'rem': (tf.keras.optimizers.Adam, 5e-5, 3.125e-4, 200),
    'multi_network_dqn': (tf.keras.optimizers.Adam, 5e-5, 3.125e-5, 4),
}


def test_every_atari_agent_has_a_gin_file():
  atari = {os.path.basename(f)[:-4] for f in GIN_FILES if '/atari/' in f}
  assert atari == set(AGENT_CLASSES)


@pytest.mark.parametrize(
    'gin_file', GIN_FILES,
    ids=[os.path.relpath(f, os.path.join(REPO_ROOT, 'gin')) for f in GIN_FILES])
def test_gin_file_builds_its_agent(gin_file):
  environment = os.path.basename(os.path.dirname(gin_file))
  agent_file = os.path.basename(gin_file)[:-4]
  gin.parse_config_file(gin_file)
  agent = registry.create_agent(
      spec=EnvironmentSpec(**ENVIRONMENT_INPUTS[environment]))
  assert type(agent) is AGENT_CLASSES[agent_file]
  assert registry.bound_agent_name() == (
      'dqn' if agent_file == 'dqn_adam' else agent_file)
  if agent_file in ('ensemble_dqn', 'rem'):
    assert agent.transform_strategy == (
        'IDENTITY' if agent_file == 'ensemble_dqn' else 'STOCHASTIC')
  if environment == 'atari':
    optimizer, learning_rate, epsilon, outputs = ATARI_OPTIMIZERS[agent_file]
    assert type(agent.optimizer) is optimizer
    assert float(agent.optimizer.learning_rate) == pytest.approx(learning_rate)
    assert agent.optimizer.epsilon == pytest.approx(epsilon)
    assert agent.num_outputs == outputs
    assert (agent.gamma, agent.update_horizon, agent.target_update_period,
            agent.exploration.epsilon_train,
            agent.exploration.epsilon_eval) == (0.99, 1, 2000, 0.01, 0.001)
