"""Conversion and converted-layout figures on full-size checkpoints.

  python benchmarks/convert.py REPLAY_DIR WORK_DIR [--seconds 20]
      [--copies 10] [--read_only]

REPLAY_DIR holds Dopamine gz checkpoints (e.g. two 1M-transition Atari
checkpoints from benchmarks/make_replay.py). Each step runs in a fresh
process, and prints one line:

  convert    `python -m batch_rl.data convert` of every checkpoint, with
             --workers 1 and --workers 2: wall and CPU time per checkpoint
             and the peak RSS of the largest conversion process;
  disk       the gz files and the compact layout;
  read       batches/s of 32 transitions (stack 4, update horizon 1) as the
             runner reads them (`transition_dataset(...)`'s stacks),
             after a warm-up, per second and per CPU second of the process
             (a figure other load on the machine changes less), and the
             reader's peak RSS, with 1 and with `--copies` checkpoints (the
             converted ones repeated through links, replay_copies.py: RAM
             would grow with the checkpoint count; the page cache holds
             only the distinct files).

WORK_DIR receives the outputs.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import replay_copies  # pylint: disable=g-import-not-at-top

_READ = r'''
import json, os, resource, sys, time
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
sys.path.insert(0, sys.argv[1])
from batch_rl.data import converted, pipeline, transitions
from batch_rl.data.selection import DataSelection
store = converted.open_store(sys.argv[2], DataSelection())
dataset = pipeline.transition_dataset(
    store, 32, 4, 1, 0.99, seed=0, elements=transitions.TRAINING_ELEMENTS)
iterator = iter(dataset)
start = time.time()
while time.time() - start < 5:  # Warm-up: tracing, thread pools, caches.
  stack = next(iterator)
count, start, cpu = 0, time.time(), sum(os.times()[:2])
while time.time() - start < float(sys.argv[3]):
  count += next(iterator)['reward'].shape[0]
print(json.dumps({
    'batches_per_s': count / (time.time() - start),
    'batches_per_cpu_s': count / (sum(os.times()[:2]) - cpu),
    'peak_rss_gib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    'slots': store.num_slots}), flush=True)
os._exit(0)  # See docs/PERFORMANCE.md: tf.data threads may block exit.
'''


def _measured(command):
  """(wall seconds, CPU seconds, peak RSS in GiB of the largest process it
  ran, stdout)."""
  wrapper = ('import resource, subprocess, sys, time; t = time.time(); '
             'p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, '
             'text=True, check=True); '
             'u = resource.getrusage(resource.RUSAGE_CHILDREN); '
             'print(time.time() - t, u.ru_utime + u.ru_stime, u.ru_maxrss); '
             'print(p.stdout)')
  out = subprocess.run([sys.executable, '-c', wrapper, *command],
                       stdout=subprocess.PIPE, text=True, check=True,
                       cwd=REPO).stdout.split('\n', 1)
  seconds, cpu_seconds, rss_kib = out[0].split()
  return float(seconds), float(cpu_seconds), int(rss_kib) / 2**20, out[1]


def _with_copies(compact_dir, copies):
  """A converted directory of `copies` checkpoints linking `compact_dir`'s,
  made anew each time (links made before would keep the files of a
  `compact_dir` converted again since)."""
  out = f'{compact_dir}_x{copies}'
  shutil.rmtree(out, ignore_errors=True)
  return replay_copies.converted_with_copies(compact_dir, out, copies)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('replay_dir')
  parser.add_argument('work_dir')
  parser.add_argument('--seconds', type=float, default=20)
  parser.add_argument('--copies', type=int, default=10)
  parser.add_argument('--read_only', action='store_true',
                      help='reuse WORK_DIR/compact_w1 from an earlier run')
  args = parser.parse_args()
  from batch_rl.data import dopamine_replay  # pylint: disable=g-import-not-at-top
  suffixes = dopamine_replay.list_checkpoints(args.replay_dir)
  gz = sum(os.path.getsize(os.path.join(args.replay_dir, name))
           for name in os.listdir(args.replay_dir))
  print(f'disk gz: {gz / 1e9:.3f} GB for {len(suffixes)} checkpoints; '
        f'load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores',
        flush=True)
  for workers in () if args.read_only else (1, 2):
    out = os.path.join(args.work_dir, f'compact_w{workers}')
    seconds, cpu_seconds, rss, _ = _measured(
        [sys.executable, '-m', 'batch_rl.data', 'convert', args.replay_dir,
         out, '--workers', str(workers)])
    print(f'convert --workers {workers}: {seconds / len(suffixes):.1f} s per '
          f'checkpoint ({seconds:.1f} s for {len(suffixes)}; CPU '
          f'{cpu_seconds / len(suffixes):.1f} s per checkpoint), peak RSS '
          f'{rss:.2f} GiB; disk {replay_copies.du(out) / 1e9:.3f} GB '
          f'({replay_copies.du(out) / gz:.2f}x gz)', flush=True)
  out = os.path.join(args.work_dir, 'compact_w1')
  for count in (1, args.copies):
    _, _, _, stdout = _measured([sys.executable, '-c', _READ, REPO,
                                 _with_copies(out, count), str(args.seconds)])
    result = json.loads(stdout.strip().splitlines()[-1])
    print(f'read {count} checkpoints ({result["slots"]:,} slots): '
          f'{result["batches_per_s"]:.0f} batches/s '
          f'({result["batches_per_cpu_s"]:.0f} per CPU second), peak RSS '
          f'{result["peak_rss_gib"]:.2f} GiB (load average '
          f'{os.getloadavg()[0]:.1f})', flush=True)


if __name__ == '__main__':
  main()
