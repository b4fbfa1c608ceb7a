r"""Exports a trained run's evaluation policy as a SavedModel.

  python -m batch_rl.export_policy --base_dir=runs/rem_pong --out=rem_pong_policy

Rebuilds the run's agent from its run_info.json (agent, environment, seed
and the operative gin config; --gin_files/--gin_bindings are applied on
top), restores its latest checkpoint and writes the greedy policy with
`batch_rl.interop.saved_policy` (docs/TF_AGENTS.md): load it with
`tf.saved_model.load(OUT)` and call `.action(states)`; batch_rl need not be
installed where it is loaded.
"""

from absl import flags

from batch_rl import cli
from batch_rl import command_line

flags.adopt_module_key_flags(command_line)
FLAGS = command_line.FLAGS


def load_trained_agent(base_dir: str, gin_files=(), gin_bindings=()):
  """(agent, iteration): the run's agent at its latest checkpoint.

  Replaces the process's gin config with the run's.

  Raises:
    ValueError: naming the run file that is missing or does not fit.
  """
  # pylint: disable=g-import-not-at-top
  from batch_rl import experiment
  from batch_rl.run_directory import RunDirectory
  # pylint: enable=g-import-not-at-top
  run_directory = RunDirectory(base_dir)
  checkpoints = run_directory.existing_checkpoints()
  iteration = checkpoints.latest() if checkpoints else None
  if iteration is None:
    raise ValueError(f'{run_directory.checkpoints_path}: no iteration_N '
                     'checkpoint to export.')
  agent, _ = experiment.rebuild_agent(base_dir, gin_files, gin_bindings)
  path = checkpoints.path(iteration)
  if not agent.unbundle(path, iteration, None):
    raise ValueError(f'{path}: no agent checkpoint of iteration {iteration}.')
  return agent, iteration


def main(argv) -> int:
  del argv
  command_line.require_flags('base_dir', 'out')
  agent, iteration = load_trained_agent(FLAGS.base_dir, FLAGS.gin_files,
                                        FLAGS.gin_bindings)
  # pylint: disable-next=g-import-not-at-top
  from batch_rl.interop import saved_policy
  saved_policy.save(agent, FLAGS.out)
  print(f'{FLAGS.out}: policy of {FLAGS.base_dir} after iteration '
        f'{iteration}.')
  return 0


if __name__ == '__main__':
  cli.run(main)
