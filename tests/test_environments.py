"""Environment makers: shapes, the Atari protocol, sticky actions, seeding."""

import re

import cv2
import gin
import gymnasium as gym
import numpy as np
import pytest

from batch_rl.environments import create_environment
from batch_rl.environments.atari import make_atari_environment
from batch_rl.environments.environment_spec import spec_of
from batch_rl.environments.minatar import make_minatar_environment


def rollout(env, actions, seed):
  """Observations and rewards of a fixed action sequence from reset(seed)."""
  observation, _ = env.reset(seed=seed)
  observations, rewards = [observation], []
  for action in actions:
    observation, reward, terminated, truncated, _ = env.step(action)
    observations.append(observation)
    rewards.append(reward)
    if terminated or truncated:
      break
  return np.stack(observations), np.array(rewards)


@pytest.mark.parametrize('name, num_actions, shape, dtype, stack_size', [
    ('atari:Pong', 6, (84, 84), np.uint8, 4),
    ('atari:Breakout', 4, (84, 84), np.uint8, 4),
    ('minatar:breakout', 3, (10, 10, 4), np.uint8, 1),
    ('minatar:space_invaders', 4, (10, 10, 6), np.uint8, 1),
    ('classic:CartPole-v1', 2, (4,), np.float32, 1),
    ('classic:Acrobot-v1', 3, (6,), np.float32, 1),
])
def test_spec_matches_observations(name, num_actions, shape, dtype, stack_size):
  env, spec = create_environment(name)
  assert spec.num_actions == num_actions == env.action_space.n
  assert spec.observation_shape == shape
  assert spec.observation_dtype == np.dtype(dtype)
  assert spec.stack_size == stack_size
  observation, _ = env.reset(seed=0)
  assert observation.shape == shape and observation.dtype == dtype
  observation, *_ = env.step(num_actions - 1)
  assert observation.shape == shape and observation.dtype == dtype


@pytest.mark.parametrize('name, fragment', [
    ('Pong', 'must be <family>:<game>'),
    ('nes:Mario', 'family one of atari, classic, minatar'),
    ('atari:Pongg', 'valid games: Adventure'),
    ('minatar:pong', 'valid games: asterix, breakout'),
    ('classic:MountainCar-v0', 'valid: CartPole-v1, Acrobot-v1'),
])
def test_unknown_names_list_valid_ones(name, fragment):
  with pytest.raises(ValueError, match=fragment):
    create_environment(name)


def test_the_discrete_spec_refuses_continuous_actions():
  env = gym.make('Pendulum-v1')
  with pytest.raises(ValueError, match=re.escape(
      f'{env}: action space is {env.action_space}, expected Discrete.')):
    spec_of(env, stack_size=1)


def test_create_environment_takes_its_name_and_protocol_from_gin():
  with gin.unlock_config():
    gin.parse_config([
        "create_environment.name = 'minatar:freeway'",
        'make_minatar_environment.sticky_action_probability = 0.3',
    ])
  try:
    env, spec = create_environment()
  finally:
    gin.clear_config()
  assert spec.observation_shape == (10, 10, 7)
  assert env.unwrapped.game.sticky_action_prob == 0.3


def test_atari_protocol():
  env = make_atari_environment('Pong')
  ale = env.unwrapped.ale
  assert ale.getFloat('repeat_action_probability') == 0.25
  env.reset(seed=0)
  assert ale.getEpisodeFrameNumber() == 0  # No no-op starts.
  env.step(0)
  assert ale.getEpisodeFrameNumber() == 4  # Four frames per agent step.


def test_atari_frames_max_pool_the_last_two_frames():
  env = make_atari_environment('Pong', sticky_action_probability=0.)
  env.reset(seed=0)
  ale = env.unwrapped.ale
  for _ in range(30):
    env.step(1)
  screens = []
  for _ in range(4):
    ale.act(0)
    screens.append(ale.getScreenGrayscale())
  assert not np.array_equal(screens[2], screens[3])  # The ball is moving.
  pooled = np.maximum(screens[2], screens[3])
  expected = cv2.resize(pooled, (84, 84), interpolation=cv2.INTER_AREA)
  reference = make_atari_environment('Pong', sticky_action_probability=0.)
  reference.reset(seed=0)
  for _ in range(30):
    reference.step(1)
  observation, *_ = reference.step(0)
  np.testing.assert_array_equal(observation, expected)


def test_atari_life_loss_is_not_terminal():
  env = make_atari_environment('Breakout')
  env.reset(seed=0)
  lives = env.unwrapped.ale.lives()
  for _ in range(2000):
    _, _, terminated, truncated, _ = env.step(1)  # FIRE, never move.
    if env.unwrapped.ale.lives() < lives:
      break
  assert env.unwrapped.ale.lives() == lives - 1
  assert not terminated and not truncated


def test_atari_episode_truncated_at_step_limit():
  env = make_atari_environment('Pong', max_episode_steps=7)
  env.reset(seed=0)
  ends = [env.step(0)[2:4] for _ in range(7)]
  assert ends[:-1] == [(False, False)] * 6
  assert ends[-1] == (False, True)


def test_minatar_episode_truncated_at_step_limit():
  env = make_minatar_environment('freeway', max_episode_steps=5)
  env.reset(seed=0)
  assert [env.step(0)[3] for _ in range(5)] == [False] * 4 + [True]


@pytest.mark.parametrize('make', [
    lambda p: make_atari_environment('Breakout', sticky_action_probability=p),
    lambda p: make_minatar_environment('breakout', sticky_action_probability=p),
])
def test_sticky_actions(make):
  # With probability 1 every chosen action is replaced by the previous one,
  # which is NOOP from the start of an episode: the actions have no effect.
  rng = np.random.default_rng(0)
  env = make(1.0)
  actions = rng.integers(env.action_space.n, size=60)
  sticky, _ = rollout(env, actions, seed=3)
  noop, _ = rollout(make(1.0), np.zeros_like(actions), seed=3)
  np.testing.assert_array_equal(sticky, noop)
  free, _ = rollout(make(0.0), actions, seed=3)
  assert not np.array_equal(free, noop[:len(free)])


@pytest.mark.parametrize('name', [
    'atari:Breakout', 'minatar:asterix', 'classic:CartPole-v1',
    'classic:Acrobot-v1'
])
def test_seeding_is_deterministic(name):
  env, spec = create_environment(name)
  actions = np.random.default_rng(0).integers(spec.num_actions, size=200)
  first = rollout(env, actions, seed=5)
  rollout(env, actions, seed=6)
  again = rollout(env, actions, seed=5)  # Same env, reseeded.
  fresh = rollout(create_environment(name)[0], actions, seed=5)
  other = rollout(create_environment(name)[0], actions, seed=6)
  for run in (again, fresh):
    np.testing.assert_array_equal(run[0], first[0])
    np.testing.assert_array_equal(run[1], first[1])
  assert (len(other[0]) != len(first[0]) or
          not np.array_equal(other[0], first[0]))
