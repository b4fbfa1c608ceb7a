"""n-step transitions from an RLDS dataset: rlds.transformations vs ours.

  python benchmarks/rlds_transformations.py [--update_horizon 3]

Exports the shipped CartPole replay (40k transitions) to RLDS, then builds
every n-step transition of it twice and prints the seconds each took:
* rlds: episodes -> `rlds.transformations.batch(steps, size=n+1, shift=1)`
  sliding windows per episode -> discounted n-step returns cut at the
  terminal, as a tf.data pass over all windows;
* ours: `replay_dataset.open_replay` on the RLDS directory (Dopamine's slot
  layout rebuilt from the episodes, converted into a compact cache in the
  temporary directory, so that every run converts) and
  `transitions.gather_from_arrays` over every valid index.
Both count the transitions they built (they must agree up to the episode
tails the rlds windows drop).
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import rlds  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top
import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

from batch_rl.data import gz_cache  # pylint: disable=g-import-not-at-top
from batch_rl.data import replay_dataset  # pylint: disable=g-import-not-at-top
from batch_rl.data import rlds_io  # pylint: disable=g-import-not-at-top
from batch_rl.data import transitions  # pylint: disable=g-import-not-at-top
from batch_rl.experiments import embedded_default  # pylint: disable=g-import-not-at-top


def rlds_n_step(builder_dir: str, n: int, gamma: float) -> int:
  """Transitions built with rlds' sliding windows; returns their count."""
  episodes = tfds.builder_from_directory(builder_dir).as_dataset(
      split='all', shuffle_files=False)
  discounts = tf.constant(transitions.discount_vector(gamma, n))

  def n_step(window):
    # Steps up to and including the first terminal-reward step count.
    after_terminal = tf.cumsum(
        tf.cast(window['is_terminal'][1:], tf.float32), exclusive=False)
    alive = tf.cast(after_terminal == 0, tf.float32)
    return {'state': window['observation'][0],
            'action': window['action'][0],
            'reward': tf.reduce_sum(discounts * window['reward'][:n] * alive),
            'next_state': window['observation'][n],
            'terminal': tf.reduce_any(window['is_terminal'][1:])}

  windows = episodes.flat_map(lambda episode: rlds.transformations.batch(
      episode[rlds.STEPS], size=n + 1, shift=1, drop_remainder=True))
  count = 0
  for batch in windows.map(n_step).batch(4096):
    count += int(batch['reward'].shape[0])
  return count


def ours_n_step(builder_dir: str, n: int, gamma: float) -> int:
  start = time.perf_counter()
  replay = replay_dataset.open_replay(builder_dir, 1, n, gamma)
  store, indices = replay.store, replay.training_indices
  print(f'  batch_rl reads the episodes into slot arrays in '
        f'{time.perf_counter() - start:.2f} s')
  count = 0
  for arrays, start, capacity in zip(store.checkpoints, store.starts,
                                     store.capacities):
    local = indices[(indices >= start) & (indices < start + capacity)] - start
    batch = transitions.gather_from_arrays(arrays, local, 1, n, gamma)
    count += len(batch['reward'])
  return count


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--update_horizon', type=int, default=3)
  parser.add_argument('--gamma', type=float, default=0.99)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    os.environ[gz_cache.CACHE_ENV] = os.path.join(tmp, 'cache')
    builder_dir = rlds_io.export_to_rlds(embedded_default.REPLAY_DIR,
                                         os.path.join(tmp, 'rlds'),
                                         stack_size=1, progress=False)
    for name, build in (('rlds.transformations', rlds_n_step),
                        ('batch_rl', ours_n_step)):
      start = time.perf_counter()
      count = build(builder_dir, args.update_horizon, args.gamma)
      print(f'{name}: {count} {args.update_horizon}-step transitions in '
            f'{time.perf_counter() - start:.2f} s', flush=True)


if __name__ == '__main__':
  main()
