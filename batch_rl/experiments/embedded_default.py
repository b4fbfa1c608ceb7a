"""The embedded default: log a small DQN replay, then train offline REM on it.

`python -m batch_rl.train` with no flags runs this. It needs no download:
1. online DQN plays CartPole-v1 and logs every transition it sees as
   Dopamine replay checkpoints (gin/baselines/cartpole_dqn.gin);
2. offline REM trains on that fixed replay alone and is evaluated online
   each iteration (gin/classic/rem.gin + gin/classic/offline_cartpole.gin);
3. it prints the evaluation returns next to the average episode return in
   the data (the behaviour policy it has to beat).
Both stages resume if interrupted. About 3-5 minutes on 2 CPU cores.
"""

import os

import gin
import numpy as np

from batch_rl import command_line
from batch_rl import experiment
from batch_rl.baselines import online_experiment
from batch_rl.baselines import train as online_train
from batch_rl.data import dopamine_replay
from batch_rl.data import summary

DEFAULT_BASE_DIR = os.path.join('runs', 'embedded_default')


def _gin(name: str) -> str:
  return os.path.join(command_line.GIN_DIR, name)


def behaviour_return(replay_dir: str) -> float:
  """Average return of the complete episodes in the logged replay."""
  returns = [
      summary.episode_returns(dopamine_replay.read_arrays(replay_dir, s))
      for s in dopamine_replay.list_checkpoints(replay_dir)
  ]
  return float(np.mean(np.concatenate(returns)))


def run(base_dir=None, gin_bindings=()) -> list[dict]:
  """Runs both stages under `base_dir`; returns the offline metrics rows."""
  base_dir = base_dir or DEFAULT_BASE_DIR
  logger_dir = os.path.join(base_dir, 'online_dqn_logger')
  print(f'[1/2] Online DQN on CartPole-v1, logging its replay to '
        f'{logger_dir}/{online_experiment.REPLAY_LOG_DIR}', flush=True)
  online_train.train('dqn', logger_dir, [_gin('baselines/cartpole_dqn.gin')])
  replay_dir = os.path.join(logger_dir, online_experiment.REPLAY_LOG_DIR)
  data_return = behaviour_return(replay_dir)
  print(f'      logged replay: average episode return {data_return:.1f}',
        flush=True)

  gin.clear_config()
  offline_dir = os.path.join(base_dir, 'offline_rem')
  print(f'[2/2] Offline REM on that fixed replay (no environment '
        f'interaction in training), run dir {offline_dir}', flush=True)
  command_line.load_gin_configs(
      [_gin('classic/rem.gin'), _gin('classic/offline_cartpole.gin')], list(gin_bindings))
  rows = experiment.create_runner('multi_head_dqn', replay_dir,
                                  offline_dir).run_experiment()
  best = max(row['eval_return_mean'] for row in rows)
  print(f'\nbehaviour data average return: {data_return:.1f}')
  for row in rows:
    print(f'offline REM iteration {row["iteration"]}: evaluation return '
          f'{row["eval_return_mean"]:.1f}')
  print(f'best offline REM return {best:.1f} vs data {data_return:.1f}: '
        f'{"better than" if best > data_return else "not above"} the '
        'behaviour policy.')
  return rows
