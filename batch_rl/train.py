r"""Offline training on a fixed replay dataset, evaluated online.

  python -m batch_rl.train --agent_name=multi_head_dqn \
      --replay_dir=/data/Pong/1/replay_logs --base_dir=/tmp/rem_pong \
      --gin_files=gin/atari/rem.gin \
      --gin_bindings="create_environment.name='atari:Pong'"

Flags are the original batch_rl release's. Without --agent_name and
--replay_dir it runs the embedded default (see batch_rl/experiments/
embedded_default.py): log a small CartPole dataset, train offline REM on it.
"""

import os
import sys

from absl import app
from absl import flags
import gin

flags.DEFINE_string('agent_name', None, 'Agent to train, e.g. dqn, c51, '
                    'quantile, multi_head_dqn, multi_network_dqn, td3, bcq.')
flags.DEFINE_string('replay_dir', None, 'Directory of the fixed replay data '
                    '(Dopamine gz checkpoints, a `convert`ed directory, or '
                    'an RLDS dataset).')
flags.DEFINE_string('base_dir', None, 'Run directory: logs, checkpoints.')
flags.DEFINE_multi_string('gin_files', [], 'Gin config files.')
flags.DEFINE_multi_string('gin_bindings', [], 'Gin bindings, e.g. '
                          '"FixedReplayRunner.num_iterations=10".')
FLAGS = flags.FLAGS

GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'gin')


def load_gin_configs(gin_files, gin_bindings) -> None:
  """Parses gin files (searched also under the repository's gin/) and bindings.

  Raises:
    ValueError: with a one-line message naming the bad file or binding.
  """
  gin.add_config_file_search_path(GIN_DIR)
  gin.add_config_file_search_path(os.path.dirname(GIN_DIR))
  try:
    gin.parse_config_files_and_bindings(gin_files, gin_bindings)
  except (ValueError, OSError, SyntaxError) as e:
    message = str(e).strip().splitlines()[0]
    raise ValueError(f'bad gin configuration: {message}') from None


def main(argv):
  del argv
  # Imported here so `--help` answers without loading TensorFlow.
  from batch_rl.data.errors import ReplayDataError  # pylint: disable=g-import-not-at-top
  from batch_rl import experiment  # pylint: disable=g-import-not-at-top
  try:
    if FLAGS.agent_name is None and FLAGS.replay_dir is None:
      from batch_rl.experiments import embedded_default  # pylint: disable=g-import-not-at-top
      embedded_default.run(FLAGS.base_dir, FLAGS.gin_bindings)
      return 0
    missing = [name for name in ('agent_name', 'replay_dir', 'base_dir')
               if getattr(FLAGS, name) is None]
    if missing:
      raise ValueError(f'missing flags: --{", --".join(missing)}.')
    experiment.register_all_agents()
    load_gin_configs(FLAGS.gin_files, FLAGS.gin_bindings)
    runner = experiment.create_runner(FLAGS.agent_name, FLAGS.replay_dir,
                                      FLAGS.base_dir)
    runner.run_experiment()
  except (ReplayDataError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  return 0


def run():
  app.run(lambda argv: sys.exit(main(argv)))


if __name__ == '__main__':
  run()
