"""The agent base: seeding, acting RNG, checkpoints, exploration, registry.

Agents of both families are built through `registry.create_agent` from
small specs, as the runner builds them.
"""

import types

import gin
import numpy as np
import pytest
import tensorflow as tf

import batch_rl.continuous  # pylint: disable=unused-import
from batch_rl.agents import base
from batch_rl.agents import exploration
from batch_rl.agents import registry
from batch_rl.environments.environment_spec import EnvironmentSpec

DISCRETE = EnvironmentSpec(3, (4,), np.float32, 2)
CONTINUOUS = types.SimpleNamespace(action_dim=2, observation_shape=(4,),
                                   observation_dtype=np.float32, stack_size=1)
# name -> (spec, small constructor arguments)
AGENTS = {
    'dqn': (DISCRETE, {}),
    'rem': (DISCRETE, {'num_heads': 3}),
    'multi_network_dqn': (DISCRETE, {'num_networks': 2}),
    'c51': (DISCRETE, {'num_atoms': 5}),
    'td3': (CONTINUOUS, {'hidden_sizes': (8,)}),
    'cql': (CONTINUOUS, {'hidden_sizes': (8,)}),
    'bcq': (CONTINUOUS, {'actor_hidden_sizes': (8,),
                         'critic_hidden_sizes': (8,),
                         'vae_hidden_sizes': (8,)}),
}


@pytest.fixture(autouse=True)
def small_torso():
  gin.parse_config(['QHeadsNetwork.torso = @MLPTorso',
                    'MLPTorso.hidden_units = (8,)'])
  yield
  gin.clear_config()


def make(name, **kwargs):
  spec, small = AGENTS[name]
  return registry.create_agent(name, spec, **{**small, **kwargs})


def weights(agent):
  return [v.numpy() for _, trackable in sorted(agent._trackables().items())
          if isinstance(trackable, tf.keras.Model)
          for v in trackable.variables]


def batch_for(spec, size=6, seed=0):
  rng = np.random.default_rng(seed)
  state_shape = (size,) + spec.observation_shape + (spec.stack_size,)
  if hasattr(spec, 'num_actions'):
    action = rng.integers(0, spec.num_actions, size).astype(np.int32)
  else:
    action = rng.uniform(-1, 1, (size, spec.action_dim)).astype(np.float32)
  return {'state': rng.normal(size=state_shape).astype(np.float32),
          'next_state': rng.normal(size=state_shape).astype(np.float32),
          'action': action,
          'reward': rng.normal(size=size).astype(np.float32),
          'terminal': (np.arange(size) % 3 == 0).astype(np.uint8)}


# ---- Seeding. ----


@pytest.mark.parametrize('name', sorted(AGENTS))
def test_initial_weights_follow_the_agent_seed(name):
  tf.random.set_seed(1)
  first = weights(make(name, seed=7))
  tf.random.set_seed(2)  # The global seed plays no part.
  again = weights(make(name, seed=7))
  other = weights(make(name, seed=8))
  assert len(first) == len(again) > 0
  for x, y in zip(first, again):
    np.testing.assert_array_equal(x, y)
  assert any(not np.array_equal(x, y) for x, y in zip(first, other))


# ---- Acting and checkpoints. ----


@pytest.mark.parametrize('name', ['rem', 'td3'])
def test_unbundle_restores_acting_rng_steps_and_frame_stack(name, tmp_path):
  spec, _ = AGENTS[name]
  explore = (exploration.EpsilonGreedy(epsilon_train=0.5,
                                       min_replay_history=0,
                                       epsilon_decay_period=1)
             if name == 'rem' else exploration.GaussianNoise(0.3))
  agent = make(name, seed=0, exploration=explore)
  rng = np.random.default_rng(0)
  observations = rng.normal(size=(20,) + spec.observation_shape)
  agent.begin_episode(observations[0])
  for observation in observations[1:5]:
    agent.step(0., observation)
  bundle = agent.bundle_and_checkpoint(str(tmp_path), 3)
  restored = make(name, seed=1, exploration=explore)
  assert restored.unbundle(str(tmp_path), 3, bundle)
  assert restored.acting_steps == agent.acting_steps == 5
  np.testing.assert_array_equal(restored.state, agent.state)
  expected = [agent.step(0., o) for o in observations[5:]]
  got = [restored.step(0., o) for o in observations[5:]]
  np.testing.assert_array_equal(got, expected)
  # Another seed would have explored otherwise.
  fresh = make(name, seed=1, exploration=explore)
  fresh.unbundle(str(tmp_path), 3, dict(
      bundle, acting_rng=np.random.default_rng(5).bit_generator.state))
  assert not np.array_equal([fresh.step(0., o) for o in observations[5:]],
                            expected)


@pytest.mark.parametrize('writer, reader', [('dqn', 'td3'), ('td3', 'dqn'),
                                            ('td3', 'cql'), ('dqn', 'c51')])
def test_checkpoint_of_another_agent_is_a_value_error_naming_it(
    writer, reader, tmp_path):
  make(writer).bundle_and_checkpoint(str(tmp_path), 2)
  prefix = f'{tmp_path}/tf_ckpt-2'
  with pytest.raises(ValueError, match=f'^{prefix} is not a checkpoint of '
                     'this'):
    make(reader).unbundle(str(tmp_path), 2, None)


def test_batches_without_training_elements_are_named():
  agent = make('td3')
  batch = batch_for(CONTINUOUS)
  del batch['reward']
  with pytest.raises(ValueError, match=r"lacks keys \['reward'\]"):
    agent.train_step(batch)
  with pytest.raises(ValueError, match=r"lacks keys \['reward'\]"):
    agent.td_error(batch)


# ---- Public evaluation API. ----


@pytest.mark.parametrize('name', ['dqn', 'c51', 'td3', 'cql', 'bcq'])
def test_greedy_actions_and_td_error_shapes(name):
  spec, _ = AGENTS[name]
  agent = make(name, seed=0)
  batch = batch_for(spec)
  actions = agent.greedy_actions(batch['state']).numpy()
  if hasattr(spec, 'num_actions'):
    assert actions.shape == (6,) and actions.dtype == np.int32
    np.testing.assert_array_equal(
        actions, np.argmax(agent.q_values(batch['state']), axis=1))
  elif name == 'bcq':  # Acts on sampled actions: only their shape is fixed.
    assert actions.shape == (6, 2) and np.abs(actions).max() <= 1
  else:
    np.testing.assert_allclose(actions, agent.policy(batch['state'][..., 0]),
                               rtol=1e-6)
  errors = agent.td_error(batch).numpy()
  assert errors.shape == (6,) and np.isfinite(errors).all()
  assert agent.gradient_steps == 0  # td_error does not train.


def test_td3_td_error_is_the_unsmoothed_clipped_double_q_error():
  agent = make('td3', seed=0)
  agent.train_step(batch_for(CONTINUOUS, seed=1))  # Targets leave the init.
  batch = batch_for(CONTINUOUS, seed=2)
  state, next_state = batch['state'][..., 0], batch['next_state'][..., 0]
  next_q = agent.target_critics(next_state,
                                agent.target_actor(next_state)).numpy()
  target = batch['reward'] + 0.99 * (1 - batch['terminal']) * next_q.min(0)
  q = agent.critics(state, batch['action']).numpy()
  np.testing.assert_allclose(agent.td_error(batch), (target - q).mean(0),
                             rtol=1e-5, atol=1e-6)


def test_agents_without_a_q_function_have_no_td_error():
  agent = registry.create_agent('bc', CONTINUOUS, hidden_sizes=(8,))
  with pytest.raises(NotImplementedError, match='BCAgent has no Q-function'):
    agent.td_error(batch_for(CONTINUOUS))


# ---- Exploration pieces. ----


class _CountingGreedy:

  def __init__(self, action):
    self.action, self.calls = action, 0

  def __call__(self):
    self.calls += 1
    return self.action


def test_epsilon_greedy_follows_dopamine_schedule_and_eval_epsilon():
  explore = exploration.EpsilonGreedy(epsilon_train=0.1, epsilon_eval=0.,
                                      epsilon_decay_period=100,
                                      min_replay_history=20)
  assert explore.epsilon(0, False) == 1.0
  assert explore.epsilon(70, False) == pytest.approx(0.55)
  assert explore.epsilon(10**6, False) == pytest.approx(0.1)
  assert explore.epsilon(0, True) == 0.
  actions, rng = base.DiscreteActions(4), np.random.default_rng(0)
  greedy = _CountingGreedy(2)
  # Epsilon 1 during the warm-up: uniform actions, the network never asked.
  warm_up = {explore(greedy, actions, 5, False, rng) for _ in range(200)}
  assert warm_up == {0, 1, 2, 3} and greedy.calls == 0
  assert {explore(greedy, actions, 5, True, rng) for _ in range(20)} == {2}
  late = [explore(greedy, actions, 10**6, False, rng) for _ in range(2000)]
  # Greedy with probability 0.9 + 0.1 / 4.
  assert np.mean(np.equal(late, 2)) == pytest.approx(0.925, abs=0.02)


def test_gaussian_noise_is_clipped_and_off_in_eval_mode():
  explore = exploration.GaussianNoise(stddev=0.5)
  actions, rng = base.ContinuousActions(3), np.random.default_rng(0)
  greedy = _CountingGreedy(np.array([0.0, 0.9, -1.0], np.float32))
  np.testing.assert_array_equal(explore(greedy, actions, 0, True, rng),
                                greedy.action)
  noisy = np.array([explore(greedy, actions, 0, False, rng)
                    for _ in range(4000)])
  assert noisy.dtype == np.float32 and np.abs(noisy).max() <= 1.0
  assert noisy[:, 0].std() == pytest.approx(0.5, abs=0.03)
  assert (noisy[:, 2] == -1.0).mean() == pytest.approx(0.5, abs=0.05)
  with pytest.raises(ValueError, match='continuous actions'):
    explore(greedy, base.DiscreteActions(3), 0, False, rng)


def test_gaussian_noise_acts_uniformly_for_its_random_steps():
  """TD3's start_timesteps: acting steps 1-3 uniform (the policy is not
  even asked), then the noisy policy; eval mode is never random."""
  explore = exploration.GaussianNoise(stddev=0.1, random_steps=3)
  actions, rng = base.ContinuousActions(2), np.random.default_rng(0)
  greedy = _CountingGreedy(np.array([0.5, 0.5], np.float32))
  uniform = np.array([explore(greedy, actions, step, False, rng)
                      for step in (1, 2, 3) for _ in range(300)])
  assert greedy.calls == 0
  assert uniform.min() < -0.9 and uniform.max() > 0.9
  assert abs(uniform.mean()) < 0.1
  noisy = explore(greedy, actions, 4, False, rng)
  assert greedy.calls == 1 and np.abs(noisy - 0.5).max() < 0.5
  np.testing.assert_array_equal(explore(greedy, actions, 1, True, rng),
                                greedy.action)


def test_exploration_is_a_gin_configurable_piece_of_the_agent():
  gin.parse_config(['DQNAgent.exploration = @EpsilonGreedy()',
                    'EpsilonGreedy.epsilon_eval = 0.25'])
  agent = make('dqn')
  assert agent.exploration.epsilon(0, True) == 0.25
  gin.parse_config(['DDPGAgent.exploration = @GaussianNoise()',
                    'GaussianNoise.stddev = 0.7'])
  assert make('td3').exploration.stddev == 0.7


# ---- Registry: presets and the agent's one name. ----


def test_registered_names_carry_their_presets():
  assert make('rem').transform_strategy == 'STOCHASTIC'
  assert registry.create_agent('ensemble_dqn', DISCRETE,
                               num_heads=2).transform_strategy == 'IDENTITY'
  td3 = make('td3')
  assert (td3.num_critics, td3.target_combination, td3.policy_noise,
          td3.policy_delay) == (2, 'min', 0.2, 2)
  rem_td3 = registry.create_agent('rem_td3', CONTINUOUS, hidden_sizes=(8,))
  assert (rem_td3.num_critics, rem_td3.target_combination,
          rem_td3.actor_objective, rem_td3.policy_delay) == (4, 'rem', 'mean',
                                                             2)
  # The name without presets leaves the setting to gin.
  gin.parse_config(["MultiHeadDQNAgent.transform_strategy = 'STOCHASTIC'"])
  assert registry.create_agent('multi_head_dqn', DISCRETE,
                               num_heads=2).transform_strategy == 'STOCHASTIC'
  # A binding that agrees with the preset is accepted.
  assert make('rem').transform_strategy == 'STOCHASTIC'


@pytest.mark.parametrize('binding, name, error', [
    ("MultiHeadDQNAgent.transform_strategy = 'IDENTITY'", 'rem',
     "gin binds MultiHeadDQNAgent.transform_strategy = 'IDENTITY', but agent "
     "'rem' presets transform_strategy='STOCHASTIC'"),
    ('DDPGAgent.num_critics = 3', 'td3',
     "gin binds DDPGAgent.num_critics = 3, but agent 'td3' presets "
     'num_critics=2'),
    # A base class's binding would reach TD3BCAgent's DDPGAgent arguments.
    ('DDPGAgent.policy_delay = 1', 'td3_bc',
     "gin binds DDPGAgent.policy_delay = 1, but agent 'td3_bc' presets "
     'policy_delay=2'),
])
def test_gin_binding_contradicting_a_preset_names_both(binding, name, error):
  gin.parse_config([binding])
  spec = DISCRETE if name == 'rem' else CONTINUOUS
  with pytest.raises(ValueError, match=error):
    registry.create_agent(name, spec, **AGENTS.get(name, (None, {}))[1])


def test_argument_contradicting_a_preset_and_wrong_action_kind_are_named():
  with pytest.raises(ValueError, match="transform_strategy='IDENTITY', but "
                     "agent 'rem' presets"):
    make('rem', transform_strategy='IDENTITY')
  with pytest.raises(ValueError, match="agent 'td3' acts on an environment "
                     'with action_dim'):
    registry.create_agent('td3', DISCRETE)
  with pytest.raises(ValueError, match="agent 'dqn' acts on an environment "
                     'with num_actions'):
    registry.create_agent('dqn', CONTINUOUS)
  with pytest.raises(ValueError, match='already registered'):
    registry.register_agent('rem', type(make('rem')),
                            transform_strategy='IDENTITY')


def test_resolve_agent_name_from_flag_and_gin():
  assert registry.resolve_agent_name('rem', None) == 'rem'
  assert registry.resolve_agent_name(None, 'td3') == 'td3'
  assert registry.resolve_agent_name('dqn', 'dqn') == 'dqn'
  with pytest.raises(ValueError, match=r"^--agent_name=dqn disagrees with the "
                     r"gin binding create_agent.agent_name = 'rem'"):
    registry.resolve_agent_name('dqn', 'rem')
  with pytest.raises(ValueError, match='no agent: pass --agent_name'):
    registry.resolve_agent_name(None, None)
  with pytest.raises(ValueError, match="Unknown agent_name 'rainbow'"):
    registry.resolve_agent_name('rainbow', None)
  gin.parse_config(["create_agent.agent_name = 'rem'"])
  assert registry.bound_agent_name() == 'rem'
