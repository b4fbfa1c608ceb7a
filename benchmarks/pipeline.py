"""Input pipeline at real scale, per layout: conversion, disk, RSS, batches/s.

  python benchmarks/pipeline.py --replay_dir DIR        # existing gz run
  python benchmarks/pipeline.py --capacity 1000000      # generates 2 ckpts
      [--workdir W] [--layouts in_memory,converted] [--seconds 10]
      [--block_seconds 2] [--skip_dopamine] [--read_parallel_calls 1,2]
      [--json OUT.json]

Sources: `--replay_dir`, a Dopamine gz directory (e.g. written by
benchmarks/make_replay.py), or two checkpoints of `--capacity` real ALE
frames generated into the work directory (gzip level 1). Checkpoints 2..9
of the 10-checkpoint measurements are hard links of the available ones
(symbolic links across file systems), so RSS growth with the number of
checkpoints is measured without 10x the disk.

Each sampler runs in its own process (batch 32, 84x84x4 uint8 states,
update horizon 1), and all of them stay alive side by side:
  * dopamine-rl: `OutOfGraphReplayBuffer.load` and `sample_transition_batch`
    (about 7 GiB of RAM for a 1M checkpoint);
  * in_memory: gz checkpoints decompressed into RAM (1 checkpoint; 10 only
    where 10x the frames fit in a third of the available RAM);
  * converted: `convert`ed checkpoints (the compact layout: zstd frame
    blocks decoded per batch; conversion time and disk per checkpoint
    measured here, before the samplers start), 1 and 10 checkpoints, with
    the pipeline's automatic number of parallel host reads, and 1
    checkpoint with each count `--read_parallel_calls` lists.
The pipeline layouts read `pipeline.transition_dataset(...)`'s stacks
in-graph, as the runner reads them. Each process is opened in turn (open
time), then the processes take turns: in each round every one is timed for
`--block_seconds` (after a short untimed read that empties what its
pipeline buffered while it waited) while the others wait, until each has
`--seconds` of blocks. A process's batches/s is the median over its blocks;
its ratio to dopamine-rl is computed per round (its block over
dopamine-rl's block of the same round), so load that changes over minutes
moves both sides of a ratio alike; the median and the range over rounds
are reported. Then each reports its peak / settled RSS (VmHWM / VmRSS) and
its settled anonymous memory (RssAnon: without the page cache of mapped
files). Before opening anything, the command checks that the processes fit
in the available RAM together.
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
from typing import Optional

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top
import psutil  # pylint: disable=g-import-not-at-top

from process_memory import memory  # pylint: disable=g-import-not-at-top

BATCH = 32
STACK_SIZE = 4
LAYOUTS = ('in_memory', 'converted')
DOPAMINE = 'dopamine-rl (1 ckpt)'
# Batches a pipeline read call takes (rounded up to whole stacks): calls
# short enough that a block ends close to its time.
BATCHES_PER_READ = 64
# Prefix of a child's reply lines on stdout.
RESULT = 'RESULT '


def _gib(n: float) -> float:
  return n / 2**30


def open_sampler(layout: str, source: str, checkpoints: int,
                 read_parallel_calls: Optional[int] = None):
  """Opens `checkpoints` of `source` as `layout` (`read_parallel_calls`:
  the pipeline's host reads in flight, default automatic).

  Returns (read, batches, frame_bytes): read() samples `batches` batches as
  a run would consume them; frame_bytes is the frames the store samples.
  """
  if layout == 'dopamine':
    from dopamine.replay_memory import circular_replay_buffer  # pylint: disable=g-import-not-at-top
    from batch_rl.data import dopamine_replay  # pylint: disable=g-import-not-at-top
    suffix = dopamine_replay.list_checkpoints(source)[0]
    shape, _ = dopamine_replay.read_array_header(
        dopamine_replay.store_filename(source, 'observation', suffix))
    buffer = circular_replay_buffer.OutOfGraphReplayBuffer(
        shape[1:], STACK_SIZE, shape[0], BATCH)
    buffer.load(source, suffix)
    frame_bytes = buffer._store['observation'].nbytes  # pylint: disable=protected-access
    return buffer.sample_transition_batch, 1, frame_bytes
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from batch_rl.agents import train_loop  # pylint: disable=g-import-not-at-top
  from batch_rl.data import converted  # pylint: disable=g-import-not-at-top
  from batch_rl.data import dopamine_replay  # pylint: disable=g-import-not-at-top
  from batch_rl.data import pipeline  # pylint: disable=g-import-not-at-top
  from batch_rl.data import transitions  # pylint: disable=g-import-not-at-top
  from batch_rl.data.replay_store import ReplayStore  # pylint: disable=g-import-not-at-top
  from batch_rl.data.selection import DataSelection  # pylint: disable=g-import-not-at-top
  selection = DataSelection(first_k=checkpoints)
  if layout == 'in_memory':
    store = ReplayStore.read_dopamine(source, selection.select_checkpoints(
        dopamine_replay.list_checkpoints(source)))
  else:
    store = converted.open_store(source, selection)
  stacks = iter(pipeline.transition_dataset(
      store, BATCH, STACK_SIZE, elements=transitions.TRAINING_ELEMENTS,
      read_parallel_calls=read_parallel_calls))
  # Whole stacks read in-graph, as the runner's train calls read them;
  # short calls, so that a timed block ends close to its time.
  per_call = tf.constant(train_loop.whole_stacks(BATCHES_PER_READ,
                                                 stacks.element_spec))
  read_all = train_loop.make_train_steps(
      lambda batch: {'reward': batch['reward'][0]})
  read = lambda: read_all(stacks, per_call)['reward'].numpy()
  frame_bytes = int(np.prod(store.frame_shape)) * store.num_slots
  return read, int(per_call), frame_bytes


def timed_block(read, batches: int, warmup: float, seconds: float) -> dict:
  """Batches/s of `read` over `seconds`, and batches per CPU second of this
  process (all its threads), after `warmup` untimed seconds (they empty
  what the pipeline buffered while other processes ran)."""
  begin = time.perf_counter()
  while time.perf_counter() - begin < warmup:
    read()
  count, begin, cpu = 0, time.perf_counter(), time.process_time()
  while time.perf_counter() - begin < seconds:
    read()
    count += batches
  return {'batches_per_s': count / (time.perf_counter() - begin),
          'batches_per_cpu_s': count / (time.process_time() - cpu)}


def child(layout: str, source: str, checkpoints: int,
          read_parallel_calls: Optional[int]) -> None:
  """A fresh process serving one sampler: opens it, then answers requests
  (one JSON line each on stdin) with RESULT lines on stdout:
  {"block": [warmup, seconds]} -> `timed_block`'s rates;
  {"finish": true} -> its memory, then it exits."""
  start = time.perf_counter()
  read, batches, frame_bytes = open_sampler(layout, source, checkpoints,
                                            read_parallel_calls)
  opened = time.perf_counter() - start
  for _ in range(max(1, 20 // batches)):  # Traces, fills buffers.
    read()
  reply({'open_s': opened, 'frame_bytes': frame_bytes, 'opened': memory()})
  for line in sys.stdin:
    request = json.loads(line)
    if 'finish' in request:
      break
    reply(timed_block(read, batches, *request['block']))
  reply(memory())


def reply(result: dict) -> None:
  print(RESULT + json.dumps(result), flush=True)


class Child:
  """A `child` process kept alive between requests."""

  def __init__(self, name: str, layout: str, source: str, checkpoints: int,
               read_parallel_calls: int, log_dir: str):
    self.name = name
    self.log = os.path.join(
        log_dir, f'{layout}_{checkpoints}_{read_parallel_calls}.stderr')
    with open(self.log, 'w') as stderr:
      self.process = subprocess.Popen(
          [sys.executable, __file__, '--_child', layout, source,
           str(checkpoints), str(read_parallel_calls)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
          stderr=stderr, text=True)

  def request(self, request: Optional[dict]) -> dict:
    """Sends `request` (None: only reads) and returns the child's reply."""
    if request is not None:
      self.process.stdin.write(json.dumps(request) + '\n')
      self.process.stdin.flush()
    for line in self.process.stdout:
      if line.startswith(RESULT):
        return json.loads(line[len(RESULT):])
    self.process.wait()
    with open(self.log) as f:
      raise RuntimeError(f'{self.name} exited with status '
                         f'{self.process.returncode}:\n{f.read()[-3000:]}')

  def kill(self) -> None:
    if self.process.poll() is None:
      self.process.kill()
      self.process.wait()


def resident_estimate(layout: str, checkpoints: int, frame_bytes: int) -> int:
  """About what a `layout` child holds (docs/PERFORMANCE.md's figures):
  the frames in RAM for dopamine-rl and in_memory, the runtime, the small
  arrays."""
  runtime = 2**30
  if layout in ('dopamine', 'in_memory'):
    return checkpoints * frame_bytes * 11 // 10 + runtime
  return runtime + checkpoints * 2**25


def interleave(children: dict, seconds: float, block_seconds: float,
               warmup: float) -> dict:
  """Times every child in turn, round after round (the starting child
  rotating); returns per child its blocks' rates, round by round."""
  rounds = max(1, round(seconds / block_seconds))
  names = list(children)
  blocks = {name: [None] * rounds for name in names}
  for r in range(rounds):
    for i in range(len(names)):
      name = names[(r + i) % len(names)]
      blocks[name][r] = children[name].request(
          {'block': [warmup, block_seconds]})
    print(f'  round {r + 1}/{rounds} (load average '
          f'{os.getloadavg()[0]:.1f}): ' + ', '.join(
              f'{name} {blocks[name][r]["batches_per_s"]:,.0f}'
              for name in names), flush=True)
  return blocks


def converted_copies(gz10: str, converted10: str) -> dict:
  """`converted10`: checkpoints 0 and 1 of `gz10` converted (0 timed),
  2..9 links of them. A complete one from an earlier run with the same
  --workdir is reused (delete it to time the conversion again)."""
  from batch_rl.data import compact  # pylint: disable=g-import-not-at-top
  from batch_rl.data import converted  # pylint: disable=g-import-not-at-top
  import replay_copies  # pylint: disable=g-import-not-at-top
  manifest = compact.read_manifest(converted10)
  if manifest and manifest.get('checkpoints') == list(range(10)):
    print(f'reusing {converted10} (conversion not timed: delete it to '
          'time it)', flush=True)
    return {}
  shutil.rmtree(converted10, ignore_errors=True)
  start = time.perf_counter()
  converted.convert(gz10, converted10, [0], progress=False)
  results = {'convert_s': time.perf_counter() - start,
             'converted_bytes_per_checkpoint': replay_copies.du(
                 compact.checkpoint_dir(converted10, 0))}
  converted.convert(gz10, converted10, [1], progress=False)
  replay_copies.converted_with_copies(converted10, converted10, 10)
  return results


def main():
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--replay_dir')
  parser.add_argument('--capacity', type=int, default=100_000)
  parser.add_argument('--game', default='Asterix')
  parser.add_argument('--workdir')
  parser.add_argument('--layouts', default=','.join(LAYOUTS))
  parser.add_argument('--seconds', type=float, default=10.0,
                      help='timed seconds per measurement, in all blocks')
  parser.add_argument('--block_seconds', type=float, default=2.0,
                      help='seconds of one timed block')
  parser.add_argument('--skip_dopamine', action='store_true')
  parser.add_argument('--read_parallel_calls', default='',
                      help='comma-separated counts of parallel host reads '
                      'to measure besides the automatic one (converted, 1 '
                      'checkpoint)')
  parser.add_argument('--json')
  parser.add_argument('--_child', nargs=4, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args._child:
    layout, source, checkpoints, reads = args._child
    child(layout, source, int(checkpoints), int(reads) or None)
    return
  try:
    read_counts = [int(n) for n in args.read_parallel_calls.split(',') if n]
  except ValueError:
    read_counts = [0]
  if min(read_counts, default=1) < 1:
    parser.exit(2, f'error: --read_parallel_calls {args.read_parallel_calls}:'
                ' expected positive integers separated by commas.\n')
  layouts = args.layouts.split(',')
  unknown = set(layouts) - set(LAYOUTS)
  if unknown:
    parser.exit(2, f'error: --layouts: unknown {sorted(unknown)}; valid: '
                f'{",".join(LAYOUTS)}.\n')
  if not 0 < args.block_seconds <= args.seconds:
    parser.exit(2, f'error: --block_seconds {args.block_seconds}: must be '
                f'in (0, --seconds={args.seconds}].\n')

  from batch_rl.data import dopamine_replay  # pylint: disable=g-import-not-at-top
  import replay_copies  # pylint: disable=g-import-not-at-top
  work = args.workdir or tempfile.mkdtemp(prefix='batch_rl_bench_')
  os.makedirs(work, exist_ok=True)
  gz_dir = args.replay_dir
  if gz_dir is None:
    import make_replay  # pylint: disable=g-import-not-at-top
    gz_dir = os.path.join(work, 'gz')
    if not os.path.exists(os.path.join(gz_dir, 'add_count_ckpt.1.gz')):
      make_replay.main([gz_dir, '--capacity', str(args.capacity),
                        '--checkpoints', '2', '--game', args.game,
                        '--pool_steps', str(min(args.capacity, 100_000)),
                        '--gzip_level', '1'])
  suffixes = dopamine_replay.list_checkpoints(gz_dir)
  gz_bytes = replay_copies.du(gz_dir) / len(suffixes)
  shape, dtype = dopamine_replay.read_array_header(
      dopamine_replay.store_filename(gz_dir, 'observation', suffixes[0]))
  frame_bytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
  results = {'gz_bytes_per_checkpoint': gz_bytes}
  print(f'source {gz_dir}: {len(suffixes)} checkpoints, '
        f'{gz_bytes / 1e6:,.0f} MB of gz and {_gib(frame_bytes):.2f} GiB of '
        'frames each', flush=True)

  # name -> (layout, source, checkpoints, host reads or 0: automatic), all
  # alive at once.
  plan = {}
  if not args.skip_dopamine:
    plan[DOPAMINE] = ('dopamine', gz_dir, 1, 0)
  if 'in_memory' in layouts:
    plan['in_memory (1 ckpt)'] = ('in_memory', gz_dir, 1, 0)
    if 10 * frame_bytes < psutil.virtual_memory().available / 3:
      plan['in_memory (10 ckpts)'] = (
          'in_memory', replay_copies.gz_with_copies(
              gz_dir, os.path.join(work, 'gz10'), 10), 10, 0)
  converted10 = os.path.join(work, 'converted10')
  if 'converted' in layouts:
    for k in (1, 10):
      plan[f'converted (compact, {k} ckpt{"s" if k > 1 else ""})'] = (
          'converted', converted10, k, 0)
    for n in read_counts:
      plan[f'converted (compact, 1 ckpt, {n} reads)'] = (
          'converted', converted10, 1, n)
  need = sum(resident_estimate(layout, k, frame_bytes)
             for layout, _, k, _ in plan.values())
  available = psutil.virtual_memory().available
  if need > available:
    if not args.workdir:
      shutil.rmtree(work)
    parser.exit(2, f'error: the {len(plan)} processes measured side by side '
                f'({", ".join(plan)}) need about {_gib(need):.1f} GiB, '
                f'{_gib(available):.1f} GiB is available; measure fewer at '
                'once (--layouts converted, --skip_dopamine).\n')
  if 'converted' in layouts:
    results.update(converted_copies(replay_copies.gz_with_copies(
        gz_dir, os.path.join(work, 'gz10'), 10), converted10))

  children = {}
  try:
    for name, (layout, source, k, reads) in plan.items():
      children[name] = Child(name, layout, source, k, reads, work)
      results[name] = children[name].request(None)
      print(f'  opened {name}: {results[name]["open_s"]:.1f} s, RSS '
            f'{_gib(results[name]["opened"]["settled_rss"]):.2f} GiB',
            flush=True)
    warmup = min(0.5, args.block_seconds / 4)
    print(f'interleaved: {len(children)} processes alive; each round times '
          f'each for {args.block_seconds:g} s in turn (after {warmup:g} s '
          'untimed), batches/s:', flush=True)
    blocks = interleave(children, args.seconds, args.block_seconds, warmup)
    for name, child_process in children.items():
      results[name].update(child_process.request({'finish': True}),
                           blocks=blocks[name])
      child_process.process.wait()
  finally:
    for child_process in children.values():
      child_process.kill()

  report(results, plan, gz_dir, args.block_seconds)
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(results, f, indent=1)
  if not args.workdir:
    shutil.rmtree(work)


def report(results: dict, names, gz_dir: str, block_seconds: float) -> None:
  """The table: per process, medians over blocks; ratios per round."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from batch_rl.data import pipeline  # pylint: disable=g-import-not-at-top
  print(f'\nmachine: {platform.processor() or platform.machine()}, '
        f'{os.cpu_count()} cores, load average '
        f'{os.getloadavg()[0]:.1f} (1 min) at the end, TF {tf.__version__};'
        f' batch {BATCH}, 84x84x{STACK_SIZE} uint8 states; automatic host '
        f'reads: {pipeline.default_read_parallel_calls()}; {gz_dir}')
  rounds = len(results[next(iter(names))]['blocks'])
  print(f'batches/s: median of {rounds} blocks of {block_seconds:g} s per '
        'process, all processes alive, blocks alternating; x dopamine-rl: '
        'median [min, max] over rounds of the ratio to dopamine-rl\'s block '
        'in the same round; per CPU s: batches per CPU second of the '
        'process, all threads (median; less sensitive to load). RSS: peak '
        '(VmHWM) and settled (VmRSS) at the end; anon = settled RssAnon '
        '(without mapped file pages)')
  width = max(32, max(map(len, names)) + 1)
  print(f'{"":{width}}{"open s":>8}{"batches/s":>11}{"x dopamine-rl":>22}'
        f'{"per CPU s":>11}{"peak GiB":>10}{"settled":>9}{"anon":>7}'
        f'{"frames GiB":>12}')
  dopamine = results.get(DOPAMINE)
  rates = lambda r, key: np.array([block[key] for block in r['blocks']])
  for name in names:
    r = results[name]
    ratio = '-'
    if dopamine and name != DOPAMINE:
      ratios = (rates(r, 'batches_per_s') /
                rates(dopamine, 'batches_per_s'))
      r['x_dopamine'] = {'median': float(np.median(ratios)),
                         'min': float(ratios.min()), 'max': float(ratios.max())}
      ratio = (f'{np.median(ratios):.2f} [{ratios.min():.2f}, '
               f'{ratios.max():.2f}]')
    for key in ('batches_per_s', 'batches_per_cpu_s'):
      r[key] = float(np.median(rates(r, key)))
    print(f'{name:{width}}{r["open_s"]:8.1f}{r["batches_per_s"]:11,.0f}'
          f'{ratio:>22}{r["batches_per_cpu_s"]:11,.0f}'
          f'{_gib(r["peak_rss"]):10.2f}{_gib(r["settled_rss"]):9.2f}'
          f'{_gib(r["anon_rss"]):7.2f}{_gib(r["frame_bytes"]):12.2f}')
  print(f'gz on disk per checkpoint: '
        f'{results["gz_bytes_per_checkpoint"] / 1e9:.2f} GB')
  if 'convert_s' in results:
    print(f'conversion per checkpoint: {results["convert_s"]:.0f} s, '
          f'{results["converted_bytes_per_checkpoint"] / 1e9:.2f} GB on disk '
          f'({results["converted_bytes_per_checkpoint"] / results["gz_bytes_per_checkpoint"]:.2f}x the gz)')


if __name__ == '__main__':
  main()
