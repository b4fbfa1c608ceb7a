r"""Gradient steps per second of the continuous agents, and pipeline overhead.

For each agent, built with its published settings (gin/mujoco/<agent>.gin),
on Hopper-sized synthetic data (observation 11, action 3, 200k transitions
in one in-memory replay checkpoint) at batch 256, `--steps` steps per call:
  * isolated: the agent's train ops on one fixed batch already in memory,
    looped in one graph;
  * pipeline: `agent.train_steps(iterator, steps)`, as the
    runner trains: the same loop reading stacks of batches from
    `pipeline.transition_dataset(...)` in-graph (128 batches
    per stack for these rows, see `pipeline.auto_batches_per_call`);
  * overhead: pipeline time per step / isolated time per step (target <= 1.05);
  * python loop: `train_step(next(batches))` once per step from Python, the
    way a hand-written loop would train, for comparison.
All are timed in alternating blocks (at least `--rounds` of each, and
`--seconds` of pipeline blocks); rates are medians over blocks and the
overhead is the median of the ratios of neighbouring blocks, so load from
other processes hits both alike. The pipeline's own rate, read in-graph
without training, is printed first.

  python benchmarks/continuous.py                      # every agent
  python benchmarks/continuous.py --agents=bc,td3 --seconds=30
  # Slow steps (BCQ, CQL): short blocks from small stacks, many blocks.
  python benchmarks/continuous.py --agents=bcq,cql --steps=16 \
      --batches_per_call=16 --seconds=30
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
import gin  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from batch_rl.agents import train_loop  # pylint: disable=g-import-not-at-top
from batch_rl.continuous import CONTINUOUS_AGENTS  # pylint: disable=g-import-not-at-top
from batch_rl.data import pipeline  # pylint: disable=g-import-not-at-top
from batch_rl.data import transitions  # pylint: disable=g-import-not-at-top
from batch_rl.data.dopamine_replay import ReplayArrays  # pylint: disable=g-import-not-at-top
from batch_rl.data.replay_store import ReplayStore  # pylint: disable=g-import-not-at-top
import timing  # pylint: disable=g-import-not-at-top

GIN_DIR = os.path.join(os.path.dirname(__file__), '..', 'gin', 'mujoco')
EPISODE_LENGTH = 1000  # Steps of a synthetic episode (Hopper's time limit).
# Batches the pipeline alone is timed on (rounded up to whole stacks).
PIPELINE_BATCHES = 2000

flags.DEFINE_list('agents', sorted(CONTINUOUS_AGENTS), 'Agents to time.')
flags.DEFINE_integer('steps', 100, 'Gradient steps per call and timed block '
                     '(rounded up to whole stacks, as the runner does).')
flags.DEFINE_integer('rounds', 3, 'Least alternating blocks of each kind.')
flags.DEFINE_float('seconds', 10, 'Blocks go on until the pipeline blocks of '
                   'an agent took this long in all (many blocks for fast '
                   'agents, whose ratios are the noisiest).')
flags.DEFINE_integer('batch_size', 256, 'Transitions per batch.')
flags.DEFINE_integer('batches_per_call', None,
                     'Batches per sampler call (stack size); default: the '
                     "pipeline's automatic choice.")
flags.DEFINE_integer('num_transitions', 200_000, 'Synthetic replay size.')
flags.DEFINE_integer('observation_dim', 11, 'Hopper: 11.')
flags.DEFINE_integer('action_dim', 3, 'Hopper: 3.')
FLAGS = flags.FLAGS


def synthetic_replay(num: int, observation_dim: int,
                     action_dim: int) -> ReplayStore:
  """A full replay checkpoint of random transitions in EPISODE_LENGTH-step
  episodes."""
  rng = np.random.default_rng(0)
  terminal = np.zeros(num, np.uint8)
  terminal[EPISODE_LENGTH - 1::EPISODE_LENGTH] = 1
  return ReplayStore.from_arrays([ReplayArrays(
      observation=rng.normal(size=(num, observation_dim)).astype(np.float32),
      action=rng.uniform(-1, 1, (num, action_dim)).astype(np.float32),
      reward=rng.normal(size=num).astype(np.float32),
      terminal=terminal,
      add_count=num,
      invalid_range=np.zeros(0, np.int64))])


def batch_iterator(store: ReplayStore, stacked: bool = False):
  """The pipeline's stacks of batches (or its batches) at the flags'
  settings."""
  dataset = pipeline.transition_dataset(
      store, batch_size=FLAGS.batch_size, stack_size=1, update_horizon=1,
      elements=transitions.TRAINING_ELEMENTS,
      batches_per_call=FLAGS.batches_per_call)
  return iter(dataset if stacked else dataset.unbatch())


def time_agent(name: str, store: ReplayStore) -> tuple[float, ...]:
  """Seconds per gradient step of agent `name`: isolated, fed by the
  pipeline, from a Python loop; the pipeline's overhead ratio; blocks."""
  gin.clear_config()
  with gin.config.unlock_config():
    gin.add_config_file_search_path(os.path.join(GIN_DIR, '..', '..'))
    gin.parse_config_file(os.path.join(GIN_DIR, f'{name}.gin'))
  agent_class, presets = CONTINUOUS_AGENTS[name]
  agent = agent_class(action_dim=FLAGS.action_dim,
                      observation_shape=(FLAGS.observation_dim,), **presets)
  batches, stacks = batch_iterator(store), batch_iterator(store, True)
  fixed = next(batches)
  isolated_steps = train_loop.make_train_steps(
      lambda unused_batch: agent.train_ops(fixed))
  steps = train_loop.whole_stacks(FLAGS.steps, stacks.element_spec)
  # One placeholder stack per call: the loop reads no iterator between steps.
  no_input = iter(tf.data.Dataset.from_tensors(tf.zeros([steps])).repeat())
  timed = {
      'isolated': lambda: isolated_steps(no_input, tf.constant(steps)),
      timing.PIPELINE: lambda: agent.train_steps(stacks, steps),
      'python': lambda: [agent.train_step(next(batches))
                         for _ in range(steps)][-1],
  }
  for run in timed.values():  # Traces and warms up every kind of call.
    run()
  blocks = timing.alternating_blocks(
      lambda kind: timing.seconds_per_step(timed[kind], steps), list(timed),
      steps, FLAGS.rounds, FLAGS.seconds)
  times = {kind: [wall for wall, _ in blocks[kind]] for kind in timed}
  overhead = np.median(np.array(times[timing.PIPELINE]) / times['isolated'])
  return (*(float(np.median(times[kind])) for kind in timed),
          float(overhead), len(times[timing.PIPELINE]))


def pipeline_rate(store: ReplayStore) -> tuple[float, int]:
  """(batches per second, batches per stack): the pipeline's stacks read
  in-graph without training, as the runner reads them."""
  stacks = batch_iterator(store, stacked=True)
  num_batches = train_loop.whole_stacks(PIPELINE_BATCHES,
                                        stacks.element_spec)
  read_all = train_loop.make_train_steps(
      lambda batch: {'reward': batch['reward'][0]})
  read_all(stacks, tf.constant(num_batches))
  wall, _ = timing.seconds_per_step(
      lambda: read_all(stacks, tf.constant(num_batches)), num_batches)
  rate = 1 / wall
  return rate, stacks.element_spec['reward'].shape[0]


def main(argv) -> None:
  del argv
  unknown = set(FLAGS.agents) - set(CONTINUOUS_AGENTS)
  if unknown:
    raise app.UsageError(f'--agents: unknown {sorted(unknown)}; valid: '
                         f'{", ".join(CONTINUOUS_AGENTS)}.')
  store = synthetic_replay(FLAGS.num_transitions, FLAGS.observation_dim,
                           FLAGS.action_dim)
  rate, per_stack = pipeline_rate(store)
  print(f'{tf.config.list_logical_devices()[-1].name}, batch '
        f'{FLAGS.batch_size}, {FLAGS.num_transitions} transitions '
        f'(obs {FLAGS.observation_dim}, action {FLAGS.action_dim}), stacks '
        f'of {per_stack} batches')
  print(f'pipeline alone: {rate:,.0f} batches/s\n')
  print(f'{"agent":<14}{"isolated steps/s":>18}{"pipeline steps/s":>18}'
        f'{"python loop steps/s":>21}{"overhead":>10}{"blocks":>8}')
  for name in FLAGS.agents:
    isolated, full, python_loop, overhead, blocks = time_agent(name, store)
    print(f'{name:<14}{1 / isolated:>18.1f}{1 / full:>18.1f}'
          f'{1 / python_loop:>21.1f}{overhead:>10.3f}{blocks:>8}', flush=True)


if __name__ == '__main__':
  app.run(main)
