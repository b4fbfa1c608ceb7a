"""`create_environment('<family>:<game>')`: one entry point for every family."""

import gin
import gymnasium as gym

from batch_rl.environments import atari
from batch_rl.environments import classic
from batch_rl.environments import minatar
from batch_rl.environments.environment_spec import EnvironmentSpec
from batch_rl.environments.environment_spec import spec_of

# family -> (maker taking the game name, frames stacked into a state)
_FAMILIES = {
    'atari': (atari.make_atari_environment, atari.STACK_SIZE),
    'minatar': (minatar.make_minatar_environment, minatar.STACK_SIZE),
    'classic': (classic.make_classic_environment, classic.STACK_SIZE),
}
_EXAMPLES = 'atari:Pong, minatar:breakout, classic:CartPole-v1'


@gin.configurable
def create_environment(name: str = gin.REQUIRED
                       ) -> tuple[gym.Env, EnvironmentSpec]:
  """A gymnasium environment and its spec for a name like 'atari:Pong'.

  The family makers (`make_atari_environment`, ...) take their protocol
  settings from gin. Seed the environment with `env.reset(seed=...)`.
  """
  family, sep, game = name.partition(':')
  if not sep or family not in _FAMILIES:
    raise ValueError(
        f'Environment name {name!r} must be <family>:<game> with family one '
        f'of {", ".join(sorted(_FAMILIES))}, e.g. {_EXAMPLES}.')
  make, stack_size = _FAMILIES[family]
  env = make(game)
  return env, spec_of(env, stack_size)
