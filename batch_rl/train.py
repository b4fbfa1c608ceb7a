r"""Offline training on a fixed replay dataset, evaluated online.

  python -m batch_rl.train --replay_dir=/data/Pong/1/replay_logs \
      --base_dir=runs/rem_pong --gin_files=gin/atari/rem.gin \
      --gin_bindings="create_runner.environment_name='atari:Pong'"

Flags are the original batch_rl release's (batch_rl/command_line.py);
--agent_name may be left to the gin file's `create_agent.agent_name`.
Without --agent_name, --replay_dir and --gin_files it runs the embedded
default (batch_rl/experiments/embedded_default.py): offline REM on a
shipped CartPole DQN replay. SIGINT/SIGTERM stop at the next train call
(exit 130/143); rerunning resumes.
"""

from absl import flags

from batch_rl import cli
from batch_rl import command_line

FLAGS = command_line.FLAGS
flags.adopt_module_key_flags(command_line)


def main(argv) -> int:
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments {argv[1:]}; flags are '
                     '--name=value.')
  # Imported here so `--help` answers without loading TensorFlow.
  from batch_rl import experiment  # pylint: disable=g-import-not-at-top
  if (FLAGS.agent_name is None and FLAGS.replay_dir is None and
      not FLAGS.gin_files):
    from batch_rl.experiments import embedded_default  # pylint: disable=g-import-not-at-top
    embedded_default.run(FLAGS.base_dir, FLAGS.gin_bindings)
    return 0
  command_line.require_flags('replay_dir', 'base_dir')
  experiment.register_all_agents()
  command_line.load_gin_configs(FLAGS.gin_files, FLAGS.gin_bindings)
  experiment.create_runner(FLAGS.agent_name, FLAGS.replay_dir,
                           FLAGS.base_dir).run_experiment()
  return 0


if __name__ == '__main__':
  cli.run(main)
