"""Input pipeline benchmark: batch rate vs dopamine-rl, load time, peak RSS.

  python benchmarks/pipeline.py [--capacity 100000] [--seconds 5]

Writes a synthetic Atari-shaped run (84x84 uint8 frames, stack 4, batch 32)
with dopamine-rl's own buffer, then prints, measured in this one run:
batches/s of our tf.data pipeline (in memory and memory-mapped) and of
dopamine-rl's `sample_transition_batch` on the same files, their ratio,
seconds to load one checkpoint, and peak RSS when streaming from 1 vs 10
converted checkpoints (each measured in a fresh process).
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import numpy as np  # pylint: disable=g-import-not-at-top

BATCH = 32


def make_run(directory: str, capacity: int, copies: int) -> None:
  """One checkpoint of Atari-like episodes, copied as suffixes 0..copies-1."""
  from dopamine.replay_memory import circular_replay_buffer  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  buffer = circular_replay_buffer.OutOfGraphReplayBuffer(
      (84, 84), 4, capacity, BATCH)
  # Flat backgrounds with a few sprites compress like game screens.
  tiles = np.full((64, 84, 84), 40, dtype=np.uint8)
  for tile in tiles:
    for _ in range(6):
      y, x = rng.integers(0, 76, size=2)
      tile[y:y + 8, x:x + 4] = rng.integers(60, 256)
  while buffer.add_count < capacity + 1000:
    buffer.add(tiles[rng.integers(64)], rng.integers(18), rng.normal(),
               rng.random() < 1 / 500)
  buffer.save(directory, 0)
  for suffix in range(1, copies):
    for name in os.listdir(directory):
      if '_ckpt.0.' in name:
        shutil.copy(os.path.join(directory, name),
                    os.path.join(directory, name.replace('.0.', f'.{suffix}.')))


def rate(step, seconds: float) -> float:
  for _ in range(20):  # Warm up (tracing, prefetch buffers).
    step()
  count, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    step()
    count += 1
  return count / (time.perf_counter() - start)


def batches_of(source: str, selection):
  """The batches of `source` one by one, as a run's data layer makes them."""
  from batch_rl.data import replay_dataset  # pylint: disable=g-import-not-at-top
  from batch_rl.data import transitions  # pylint: disable=g-import-not-at-top
  replay = replay_dataset.open_replay(source, 4, 1, 0.99, selection)
  return replay.batches(BATCH, seed=0,
                        elements=transitions.TRANSITION_ELEMENTS).unbatch()


def peak_rss_child(source: str, checkpoints: int, batches: int) -> None:
  """Child process: stream `batches` batches and print peak RSS in MiB."""
  from batch_rl.data.selection import DataSelection  # pylint: disable=g-import-not-at-top
  dataset = batches_of(source, DataSelection(first_k=checkpoints))
  for _ in dataset.take(batches):
    pass
  print(json.dumps({'peak_rss_mib': peak_rss_mib()}))


def peak_rss_mib() -> float:
  """This process's peak RSS (VmHWM; unlike ru_maxrss, not inherited)."""
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith('VmHWM:'):
        return int(line.split()[1]) / 1024
  raise RuntimeError('no VmHWM in /proc/self/status')


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--capacity', type=int, default=100_000)
  parser.add_argument('--seconds', type=float, default=5.0)
  parser.add_argument('--rss_batches', type=int, default=3000)
  parser.add_argument('--workdir', default=None)
  parser.add_argument('--_rss_child', nargs=2, default=None)
  args = parser.parse_args()
  if args._rss_child:
    peak_rss_child(args._rss_child[0], int(args._rss_child[1]),
                   args.rss_batches)
    return

  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from dopamine.replay_memory import circular_replay_buffer  # pylint: disable=g-import-not-at-top
  from batch_rl.data import converted  # pylint: disable=g-import-not-at-top
  from batch_rl.data import dopamine_replay  # pylint: disable=g-import-not-at-top
  from batch_rl.data.selection import DataSelection  # pylint: disable=g-import-not-at-top

  work = args.workdir or tempfile.mkdtemp(prefix='batch_rl_bench_')
  run_dir, memmap_dir = os.path.join(work, 'run'), os.path.join(work, 'memmap')
  os.makedirs(run_dir, exist_ok=True)
  start = time.perf_counter()
  make_run(run_dir, args.capacity, copies=10)
  print(f'wrote 10 checkpoints of {args.capacity} transitions '
        f'in {time.perf_counter() - start:.0f}s')

  dopamine_buffer = circular_replay_buffer.OutOfGraphReplayBuffer(
      (84, 84), 4, args.capacity, BATCH)
  dopamine_load, our_load = [], []
  for _ in range(2):  # Alternated, best of two: the page cache is warm.
    start = time.perf_counter()
    dopamine_buffer.load(run_dir, 0)
    dopamine_load.append(time.perf_counter() - start)
    start = time.perf_counter()
    dopamine_replay.read_arrays(run_dir, 0)
    our_load.append(time.perf_counter() - start)
  dopamine_load, our_load = min(dopamine_load), min(our_load)

  dopamine_rate = rate(dopamine_buffer.sample_transition_batch, args.seconds)
  del dopamine_buffer
  in_memory = iter(batches_of(run_dir, DataSelection(first_k=1)))
  in_memory_rate = rate(lambda: next(in_memory), args.seconds)
  del in_memory
  converted.convert(run_dir, memmap_dir, progress=False)
  streamed = iter(batches_of(memmap_dir, DataSelection(first_k=10)))
  streamed_rate = rate(lambda: next(streamed), args.seconds)
  del streamed

  rss = {}
  for k in (1, 10):
    out = subprocess.run(
        [sys.executable, __file__, '--_rss_child', memmap_dir, str(k),
         '--rss_batches', str(args.rss_batches)],
        capture_output=True, text=True, check=True).stdout
    rss[k] = json.loads(out.strip().splitlines()[-1])['peak_rss_mib']

  print(f'\nmachine: {platform.processor() or platform.machine()}, '
        f'{os.cpu_count()} cores, TF {tf.__version__}, batch {BATCH}, '
        f'84x84x4 uint8 states, checkpoint capacity {args.capacity}')
  rows = [
      ('dopamine-rl sample_transition_batch', f'{dopamine_rate:9.1f} batches/s'),
      ('tf.data pipeline, in memory (1 ckpt)', f'{in_memory_rate:9.1f} batches/s'),
      ('tf.data pipeline, memory-mapped (10 ckpts)',
       f'{streamed_rate:9.1f} batches/s'),
      ('ratio in-memory / dopamine', f'{in_memory_rate / dopamine_rate:9.2f}x'),
      ('ratio memory-mapped / dopamine',
       f'{streamed_rate / dopamine_rate:9.2f}x'),
      ('load one checkpoint: dopamine-rl', f'{dopamine_load:9.2f} s'),
      ('load one checkpoint: batch_rl read_arrays', f'{our_load:9.2f} s'),
      ('peak RSS streaming 1 checkpoint', f'{rss[1]:9.0f} MiB'),
      ('peak RSS streaming 10 checkpoints', f'{rss[10]:9.0f} MiB'),
      ('RSS ratio 10 / 1 checkpoints', f'{rss[10] / rss[1]:9.2f}x'),
  ]
  for name, value in rows:
    print(f'{name:45s} {value}')
  if not args.workdir:
    shutil.rmtree(work)


if __name__ == '__main__':
  main()
