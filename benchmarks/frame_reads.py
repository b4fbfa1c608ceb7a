"""Compact frame reads on 1, 2, ... threads at once: do they scale?

  python benchmarks/frame_reads.py CONVERTED_DIR [--threads 1,2]
      [--calls 200] [--rounds 4]

Reads, with `compact.FrameReader` (what the pipeline's host reads call),
the frame windows of calls of 8 batches of 32 random Atari transitions
(windows of 5 slots: stack 4, horizon 1) from the first checkpoint of a
converted directory, on each listed number of threads at once; the thread
counts alternate over rounds. Prints, per count, the median over rounds of
the wall time per call, the reads' batches/s, the CPU time per call, and
the speed-up over the first count: what more parallel host reads
(`pipeline.transition_dataset(read_parallel_calls=...)`) can give where
cores are free.
"""

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top

from batch_rl.data import compact  # pylint: disable=g-import-not-at-top

BATCHES_PER_CALL = 8
BATCH = 32
WINDOW = 5


def timed(reader: compact.FrameReader, calls: list, threads: int):
  """(wall s, CPU s) per call with `threads` threads each reading `calls`."""
  ckpt = np.zeros(BATCHES_PER_CALL * BATCH, np.int64)

  def work():
    for slots in calls:
      reader.read(ckpt, slots)

  workers = [threading.Thread(target=work) for _ in range(threads)]
  wall, cpu = time.perf_counter(), time.process_time()
  for worker in workers:
    worker.start()
  for worker in workers:
    worker.join()
  done = len(calls) * threads
  return ((time.perf_counter() - wall) / done,
          (time.process_time() - cpu) / done)


def main():
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('converted_dir')
  parser.add_argument('--threads', default='1,2')
  parser.add_argument('--calls', type=int, default=200,
                      help='calls per thread and round')
  parser.add_argument('--rounds', type=int, default=4)
  args = parser.parse_args()
  try:
    counts = [int(n) for n in args.threads.split(',')]
  except ValueError:
    counts = [0]
  if min(counts) < 1 or args.calls < 1 or args.rounds < 1:
    parser.exit(2, 'error: --threads takes positive integers separated by '
                'commas; --calls and --rounds must be at least 1.\n')
  manifest = compact.read_manifest(args.converted_dir)
  if not manifest or not manifest['checkpoints']:
    parser.exit(2, f'error: {args.converted_dir}: no converted checkpoint '
                '(write one with python -m batch_rl.data convert).\n')
  checkpoint = compact.CompactCheckpoint(compact.checkpoint_dir(
      args.converted_dir, manifest['checkpoints'][0]))
  reader = compact.FrameReader([checkpoint.frames])
  capacity = len(checkpoint.frames)
  rng = np.random.default_rng(0)
  calls = [(rng.integers(0, capacity, (BATCHES_PER_CALL * BATCH, 1)) +
            np.arange(WINDOW)) % capacity for _ in range(args.calls)]
  timed(reader, calls[:max(1, args.calls // 10)], 1)  # Warms the caches.
  results = {n: [] for n in counts}
  for r in range(args.rounds):
    for n in (counts if r % 2 == 0 else counts[::-1]):
      results[n].append(timed(reader, calls, n))
  print(f'{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; '
        f'{capacity:,} slots; calls of {BATCHES_PER_CALL} batches of {BATCH} '
        f'windows of {WINDOW} frames; medians over {args.rounds} rounds')
  base = np.median([wall for wall, _ in results[counts[0]]])
  for n in counts:
    wall = np.median([w for w, _ in results[n]])
    cpu = np.median([c for _, c in results[n]])
    print(f'{n:3d} thread(s): {wall * 1e3:6.2f} ms per call, '
          f'{BATCHES_PER_CALL / wall:8,.0f} batches/s of reads, '
          f'{cpu * 1e3:6.2f} CPU ms per call, x{base / wall:.2f} of '
          f'{counts[0]} thread(s)')


if __name__ == '__main__':
  main()
