"""The score of a uniformly random policy: the 0% of normalized scores where
no published table has one (MinAtar, classic control).

Plays whole episodes with `batch_rl.runner.evaluation.run_episode`, as the
runner evaluates agents (same environment maker and episode cap), without
TensorFlow.
"""

import csv
import io
from typing import Sequence

import numpy as np

from batch_rl import storage
from batch_rl.environments import factory
from batch_rl.runner import evaluation

SEED = 0
RANDOM_SCORES = 'random_scores.csv'
_FIELDS = ('environment', 'random', 'episodes', 'seed',
           'max_steps_per_episode')


class UniformRandomAgent:
  """Uniformly random actions from a seeded generator; learns nothing."""

  def __init__(self, num_actions: int, seed: int):
    self.num_actions = num_actions
    self.eval_mode = True
    self._rng = np.random.default_rng(seed)

  def _act(self) -> int:
    return int(self._rng.integers(self.num_actions))

  def begin_episode(self, observation) -> int:
    del observation
    return self._act()

  def step(self, reward, observation) -> int:
    del reward, observation
    return self._act()

  def end_episode(self, reward, terminal: bool = True,
                  observation=None) -> None:
    del reward, terminal, observation


def random_policy_score(environment_name: str, episodes: int, seed: int,
                        max_steps_per_episode: int) -> float:
  """Mean return of a uniformly random policy over `episodes` episodes."""
  env, spec = factory.create_environment(environment_name)
  env.reset(seed=seed)  # Later resets continue this seeded stream.
  agent = UniformRandomAgent(spec.num_actions, seed)
  return float(np.mean([
      evaluation.run_episode(agent, env, max_steps_per_episode)[0]
      for _ in range(episodes)]))


def random_policy_scores(directory: str, environments: Sequence[str],
                         episodes: int, max_steps_per_episode: int
                         ) -> dict[str, float]:
  """Random scores per environment, measured once and kept in
  `directory`/random_scores.csv (remeasured when the settings change)."""
  path = storage.join(directory, RANDOM_SCORES)
  wanted = {'episodes': episodes, 'seed': SEED,
            'max_steps_per_episode': max_steps_per_episode}
  rows = {}
  if storage.isfile(path):
    rows = {row['environment']: row for row in csv.DictReader(
        io.StringIO(storage.read_text(path), newline=''))}
  for environment in environments:
    row = rows.get(environment)
    if row is None or any(int(row[k]) != v for k, v in wanted.items()):
      print(f'measuring a random policy on {environment} over {episodes} '
            'episodes', flush=True)
      score = random_policy_score(environment, episodes, SEED,
                                  max_steps_per_episode)
      rows[environment] = {'environment': environment, 'random': score,
                           **wanted}
  out = io.StringIO(newline='')
  writer = csv.DictWriter(out, _FIELDS)
  writer.writeheader()
  writer.writerows(rows[e] for e in sorted(rows))
  storage.write_atomically(path, out.getvalue())
  return {e: float(rows[e]['random']) for e in environments}
