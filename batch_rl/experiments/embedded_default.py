"""The embedded default: offline REM on a shipped, logged CartPole replay.

`python -m batch_rl.train` with no flags runs this; it needs no download.
The replay under data/cartpole_dqn_replay/ was logged by online DQN with
`batch_rl.baselines` (its README gives the command). Offline REM trains on
that fixed replay alone (gin/classic/rem.gin + gin/classic/
offline_cartpole.gin), is evaluated online after every iteration, and the
returns are printed next to the average episode return in the data, the
behaviour policy it has to beat. The run resumes if interrupted.
"""

import os

from batch_rl import command_line
from batch_rl import experiment
from batch_rl.data import summary
from batch_rl.run_directory import EVAL_RETURN_MEAN

REPLAY_DIR = os.path.join(os.path.dirname(__file__), 'data',
                          'cartpole_dqn_replay')
DEFAULT_BASE_DIR = os.path.join('runs', 'embedded_default')
GIN_FILES = ('classic/rem.gin', 'classic/offline_cartpole.gin')


def behaviour_return(replay_dir: str) -> float:
  """Average return of the complete episodes in a logged replay, as
  `python -m batch_rl.data info` reports it (episodes cut by checkpoint
  boundaries joined and counted once)."""
  return summary.summarize(replay_dir)['episode_return']['mean']


def run(base_dir=None, gin_bindings=()) -> list[dict]:
  """Trains offline REM under `base_dir`; returns the metrics rows."""
  base_dir = base_dir or DEFAULT_BASE_DIR
  data_return = behaviour_return(REPLAY_DIR)
  print(f'Offline REM on a logged CartPole-v1 DQN replay ({REPLAY_DIR});\n'
        f'average episode return in the data: {data_return:.1f}. '
        f'Run directory: {base_dir}', flush=True)
  experiment.register_all_agents()
  command_line.load_gin_configs(
      [os.path.join(command_line.GIN_DIR, f) for f in GIN_FILES],
      gin_bindings)
  rows = experiment.create_runner(None, REPLAY_DIR,
                                  base_dir).run_experiment()
  best = max(row[EVAL_RETURN_MEAN] for row in rows)
  verdict = 'above' if best > data_return else 'not above'
  print(f'\nBest offline REM evaluation return {best:.1f}, {verdict} the '
        f'behaviour data\'s {data_return:.1f}, learned without any '
        'environment interaction during training.')
  return rows
