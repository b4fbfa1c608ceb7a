r"""Offline training on a fixed replay dataset, evaluated online.

  python -m batch_rl.train --agent_name=multi_head_dqn \
      --replay_dir=/data/Pong/1/replay_logs --base_dir=/tmp/rem_pong \
      --gin_files=gin/atari/rem.gin \
      --gin_bindings="create_runner.environment_name='atari:Pong'"

Flags are the original batch_rl release's (batch_rl/command_line.py).
Without --agent_name and --replay_dir it runs the embedded default
(batch_rl/experiments/embedded_default.py): log a small CartPole DQN
replay, then train offline REM on it.
"""

import sys

from absl import app

from batch_rl import command_line

FLAGS = command_line.FLAGS


def main(argv) -> int:
  del argv
  # Imported here so `--help` answers without loading TensorFlow.
  from batch_rl import experiment  # pylint: disable=g-import-not-at-top
  from batch_rl.data.errors import ReplayDataError  # pylint: disable=g-import-not-at-top
  try:
    if FLAGS.agent_name is None and FLAGS.replay_dir is None:
      from batch_rl.experiments import embedded_default  # pylint: disable=g-import-not-at-top
      embedded_default.run(FLAGS.base_dir, FLAGS.gin_bindings)
      return 0
    command_line.require_flags('agent_name', 'replay_dir', 'base_dir')
    experiment.register_all_agents()
    command_line.load_gin_configs(FLAGS.gin_files, FLAGS.gin_bindings)
    experiment.create_runner(FLAGS.agent_name, FLAGS.replay_dir,
                             FLAGS.base_dir).run_experiment()
  except (ReplayDataError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  return 0


if __name__ == '__main__':
  app.run(lambda argv: sys.exit(main(argv)))
