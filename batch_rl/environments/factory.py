"""`create_environment('<family>:<game>')`: one entry point for every family."""

import functools

import gin
import gymnasium as gym

from batch_rl.environments import atari
from batch_rl.environments import classic
from batch_rl.environments import minatar
from batch_rl.environments.environment_spec import EnvironmentSpec
from batch_rl.environments.environment_spec import spec_of


def _discrete(make, stack_size: int, game: str):
  env = make(game)
  return env, spec_of(env, stack_size)


def _mujoco(game: str):
  # The continuous branch is imported only when one of its tasks is asked for.
  from batch_rl.continuous import environments  # pylint: disable=g-import-not-at-top
  return environments.make_continuous_environment(game)


# family -> maker of (environment, spec) from the game name
_FAMILIES = {
    'atari': functools.partial(_discrete, atari.make_atari_environment,
                               atari.STACK_SIZE),
    'minatar': functools.partial(_discrete, minatar.make_minatar_environment,
                                 minatar.STACK_SIZE),
    'classic': functools.partial(_discrete, classic.make_classic_environment,
                                 classic.STACK_SIZE),
    'mujoco': _mujoco,
}
_EXAMPLES = ('atari:Pong, minatar:breakout, classic:CartPole-v1, '
             'mujoco:Hopper-v5')


@gin.configurable
def create_environment(name: str = gin.REQUIRED
                       ) -> tuple[gym.Env, EnvironmentSpec]:
  """A gymnasium environment and its spec for a name like 'atari:Pong'.

  The family makers (`make_atari_environment`, ...) take their protocol
  settings from gin. Seed the environment with `env.reset(seed=...)`.
  MuJoCo tasks take actions in [-1, 1] (batch_rl.continuous.environments).
  """
  family, sep, game = name.partition(':')
  if not sep or family not in _FAMILIES:
    raise ValueError(
        f'Environment name {name!r} must be <family>:<game> with family one '
        f'of {", ".join(sorted(_FAMILIES))}, e.g. {_EXAMPLES}.')
  return _FAMILIES[family](game)
