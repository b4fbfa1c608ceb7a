r"""Online agents that log every transition, as the DQN Replay Dataset was made.

  python -m batch_rl.baselines.train --agent_name=dqn \
      --base_dir=/tmp/dqn_cartpole --gin_files=gin/baselines/cartpole_dqn.gin

The run directory gets `replay_logs/` (Dopamine replay checkpoints 0, 1, ...,
one per `replay_capacity` slots added), `metrics.csv`, `run_info.json`,
`tensorboard/` and `checkpoints/` (resumable). The flags are those of
`batch_rl.train`, less --replay_dir.
"""

import sys

from absl import app

from batch_rl import command_line
from batch_rl import experiment
from batch_rl.baselines import online_experiment

FLAGS = command_line.FLAGS


def train(agent_name: str, base_dir: str, gin_files=(),
          gin_bindings=()) -> list[dict]:
  """Parses the gin configuration, then runs (or resumes) the experiment.

  Returns:
    The metrics rows of every finished iteration.
  """
  experiment.register_all_agents()
  command_line.load_gin_configs(list(gin_files), list(gin_bindings))
  return online_experiment.create_online_runner(agent_name,
                                                base_dir).run_experiment()


def main(argv) -> int:
  del argv
  try:
    if FLAGS.replay_dir is not None:
      raise ValueError('--replay_dir is for offline training '
                       '(python -m batch_rl.train); online runs log their own.')
    command_line.require_flags('agent_name', 'base_dir')
    train(FLAGS.agent_name, FLAGS.base_dir, FLAGS.gin_files, FLAGS.gin_bindings)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  return 0


if __name__ == '__main__':
  app.run(lambda argv: sys.exit(main(argv)))
