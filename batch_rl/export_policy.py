r"""Exports a trained run's evaluation policy as a SavedModel.

  python -m batch_rl.export_policy --base_dir=runs/rem_pong --out=rem_pong_policy

Rebuilds the run's agent from its run_info.json (agent, environment, seed
and the operative gin config; --gin_files/--gin_bindings are applied on
top), restores its latest checkpoint and writes the greedy policy with
`batch_rl.interop.saved_policy` (docs/TF_AGENTS.md): load it with
`tf.saved_model.load(OUT)` and call `.action(states)`; batch_rl need not be
installed where it is loaded.
"""

import os
import sys

from absl import app
from absl import flags

from batch_rl import command_line

flags.DEFINE_string('out', None, 'Directory to write the SavedModel to.')
FLAGS = command_line.FLAGS


def load_trained_agent(base_dir: str, gin_files=(), gin_bindings=()):
  """(agent, iteration): the run's agent at its latest checkpoint.

  Replaces the process's gin config with the run's.

  Raises:
    ValueError: naming the run file that is missing or does not fit.
  """
  # pylint: disable=g-import-not-at-top
  import gin
  from batch_rl import experiment
  from batch_rl.agents import registry
  from batch_rl.analysis import runs
  from batch_rl.environments import factory
  from batch_rl.runner import run_state
  # pylint: enable=g-import-not-at-top
  info = runs.read_run_info(base_dir)
  if 'gin_config' not in info:
    raise ValueError(f'{os.path.join(base_dir, runs.RUN_INFO)}: no '
                     'gin_config; logs of batch_rl.train have one.')
  experiment.register_all_agents()
  gin.clear_config()
  try:
    gin.parse_config(info['gin_config'])
  except (ValueError, SyntaxError, ImportError) as e:
    message = str(e).strip().splitlines()[0]
    raise ValueError(f'{os.path.join(base_dir, runs.RUN_INFO)}: gin_config '
                     f'does not parse: {message}') from None
  command_line.load_gin_configs(gin_files, gin_bindings)
  root = os.path.join(base_dir, 'checkpoints')
  iteration = (run_state.CheckpointDirectory(root).latest()
               if os.path.isdir(root) else None)
  if iteration is None:
    raise ValueError(f'{root}: no iteration_N checkpoint to export.')
  env, spec = factory.create_environment(info['environment'])
  env.close()
  agent = registry.create_agent(info['agent_name'], spec.num_actions,
                                spec.observation_shape,
                                spec.observation_dtype, spec.stack_size,
                                seed=int(info['seed']))
  path = os.path.join(root, f'iteration_{iteration}')
  if not agent.unbundle(path, iteration, None):
    raise ValueError(f'{path}: no agent checkpoint of iteration {iteration}.')
  return agent, iteration


def main(argv) -> int:
  del argv
  try:
    command_line.require_flags('base_dir', 'out')
    agent, iteration = load_trained_agent(FLAGS.base_dir, FLAGS.gin_files,
                                          FLAGS.gin_bindings)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  # pylint: disable-next=g-import-not-at-top
  from batch_rl.interop import saved_policy
  saved_policy.save(agent, FLAGS.out)
  print(f'{FLAGS.out}: policy of {FLAGS.base_dir} after iteration '
        f'{iteration}.')
  return 0


if __name__ == '__main__':
  app.run(lambda argv: sys.exit(main(argv)))
