"""Input pipeline at real scale, per layout: conversion, disk, RSS, batches/s.

  python benchmarks/pipeline.py --replay_dir DIR        # existing gz run
  python benchmarks/pipeline.py --capacity 1000000      # generates 2 ckpts
      [--workdir W] [--layouts in_memory,converted] [--seconds 10]
      [--skip_dopamine] [--json OUT.json]

Sources: `--replay_dir`, a Dopamine gz directory (e.g. written by
benchmarks/make_replay.py), or two checkpoints of `--capacity` real ALE
frames generated into the work directory (gzip level 1). Checkpoints 2..9
of the 10-checkpoint measurements are hard links of the available ones
(symbolic links across file systems), so RSS growth with the number of
checkpoints is measured without 10x the disk.

Each measurement runs in a fresh process (batch 32, 84x84x4 uint8 states,
update horizon 1) and reports seconds to open the store, batches/s of
`pipeline.transition_dataset(...)`'s stacks read in-graph as the runner
reads them, and peak / settled RSS:
  * dopamine-rl: `OutOfGraphReplayBuffer.load` and `sample_transition_batch`
    (about 7 GiB of RAM for a 1M checkpoint: run alone);
  * in_memory: gz checkpoints decompressed into RAM (1 checkpoint; 10 only
    where 10x the frames fit in a third of the available RAM);
  * converted: `convert`ed checkpoints (the compact layout: zstd frame
    blocks decoded per batch; conversion time and disk per checkpoint
    measured here), 1 and 10 checkpoints.
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
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top
import psutil  # pylint: disable=g-import-not-at-top

BATCH = 32
STACK_SIZE = 4
LAYOUTS = ('in_memory', 'converted')


def rss_bytes(field: str) -> int:
  """VmHWM (peak, not inherited from the parent) or VmRSS of this process."""
  with open('/proc/self/status') as f:
    return next(int(l.split()[1]) * 1024 for l in f if l.startswith(field))


def _gib(n: float) -> float:
  return n / 2**30


def child(layout: str, source: str, checkpoints: int, seconds: float) -> dict:
  """Fresh process: opens `checkpoints` of `source` as `layout`, reads."""
  if layout == 'dopamine':
    from dopamine.replay_memory import circular_replay_buffer  # pylint: disable=g-import-not-at-top
    from batch_rl.data import dopamine_replay  # pylint: disable=g-import-not-at-top
    start = time.perf_counter()
    suffix = dopamine_replay.list_checkpoints(source)[0]
    shape, _ = dopamine_replay.read_array_header(
        dopamine_replay.checkpoint_filename(
            source, dopamine_replay.STORE_PREFIX + 'observation', suffix))
    buffer = circular_replay_buffer.OutOfGraphReplayBuffer(
        shape[1:], STACK_SIZE, shape[0], BATCH)
    buffer.load(source, suffix)
    opened = time.perf_counter() - start
    step = buffer.sample_transition_batch
    count = 0
    for _ in range(20):
      step()
    begin = time.perf_counter()
    while time.perf_counter() - begin < seconds:
      step()
      count += 1
    rate = count / (time.perf_counter() - begin)
    frame_bytes = buffer._store['observation'].nbytes  # pylint: disable=protected-access
  else:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from batch_rl.agents import train_loop  # pylint: disable=g-import-not-at-top
    from batch_rl.data import converted  # pylint: disable=g-import-not-at-top
    from batch_rl.data import dopamine_replay  # pylint: disable=g-import-not-at-top
    from batch_rl.data import pipeline  # pylint: disable=g-import-not-at-top
    from batch_rl.data import transitions  # pylint: disable=g-import-not-at-top
    from batch_rl.data.replay_store import ReplayStore  # pylint: disable=g-import-not-at-top
    from batch_rl.data.selection import DataSelection  # pylint: disable=g-import-not-at-top
    selection = DataSelection(first_k=checkpoints)
    start = time.perf_counter()
    if layout == 'in_memory':
      store = ReplayStore.read_dopamine(source, selection.select_checkpoints(
          dopamine_replay.list_checkpoints(source)))
    else:
      store = converted.open_store(source, selection)
    opened = time.perf_counter() - start
    stacks = iter(pipeline.transition_dataset(
        store, BATCH, STACK_SIZE, elements=transitions.TRAINING_ELEMENTS))
    per_call = train_loop.whole_stacks(1024, stacks.element_spec)
    read_all = train_loop.make_train_steps(
        lambda batch: {'reward': batch['reward'][0]})
    read_all(stacks, tf.constant(per_call))  # Traces, fills buffers.
    count, begin = 0, time.perf_counter()
    while time.perf_counter() - begin < seconds:
      read_all(stacks, tf.constant(per_call))['reward'].numpy()
      count += per_call
    rate = count / (time.perf_counter() - begin)
    frame_bytes = int(np.prod(store.frame_shape)) * store.num_slots
  return {'open_s': opened, 'batches_per_s': rate,
          'peak_rss': rss_bytes('VmHWM:'), 'settled_rss': rss_bytes('VmRSS:'),
          'frame_bytes': frame_bytes}


def run_child(layout: str, source: str, checkpoints: int,
              seconds: float) -> dict:
  out = subprocess.run(
      [sys.executable, __file__, '--_child', layout, source, str(checkpoints),
       '--seconds', str(seconds)], capture_output=True, text=True)
  if out.returncode:
    raise RuntimeError(f'{layout} x{checkpoints} failed:\n{out.stderr[-3000:]}')
  result = json.loads(out.stdout.strip().splitlines()[-1])
  print(f'  {layout} x{checkpoints}: {result["batches_per_s"]:,.0f} batches/s,'
        f' open {result["open_s"]:.1f}s, peak RSS '
        f'{_gib(result["peak_rss"]):.2f} GiB', flush=True)
  return result


def link(src: str, dst: str) -> None:
  try:
    os.link(src, dst)
  except OSError:
    os.symlink(os.path.abspath(src), dst)


def gz_with_copies(gz_dir: str, out_dir: str, copies: int) -> str:
  """`out_dir` holding `copies` checkpoints: links of `gz_dir`'s, cycled."""
  from batch_rl.data import dopamine_replay  # pylint: disable=g-import-not-at-top
  available = dopamine_replay.list_checkpoints(gz_dir)
  os.makedirs(out_dir, exist_ok=True)
  for suffix in range(copies):
    source = available[suffix % len(available)]
    for name in os.listdir(gz_dir):
      if name.endswith(f'_ckpt.{source}.gz'):
        target = os.path.join(
            out_dir, name.replace(f'_ckpt.{source}.gz', f'_ckpt.{suffix}.gz'))
        if not os.path.exists(target):
          link(os.path.join(gz_dir, name), target)
  return out_dir


def du(path: str) -> int:
  """Bytes of the files under `path` (each hard link counted once)."""
  seen, total = set(), 0
  for root, _, files in os.walk(path):
    for name in files:
      stat = os.lstat(os.path.join(root, name))
      if stat.st_ino not in seen:
        seen.add(stat.st_ino)
        total += stat.st_size
  return total


def main():
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--replay_dir')
  parser.add_argument('--capacity', type=int, default=100_000)
  parser.add_argument('--game', default='Asterix')
  parser.add_argument('--workdir')
  parser.add_argument('--layouts', default=','.join(LAYOUTS))
  parser.add_argument('--seconds', type=float, default=10.0)
  parser.add_argument('--skip_dopamine', action='store_true')
  parser.add_argument('--json')
  parser.add_argument('--_child', nargs=3, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args._child:
    layout, source, checkpoints = args._child
    print(json.dumps(child(layout, source, int(checkpoints), args.seconds)))
    return
  layouts = args.layouts.split(',')
  unknown = set(layouts) - set(LAYOUTS)
  if unknown:
    parser.exit(2, f'error: --layouts: unknown {sorted(unknown)}; valid: '
                f'{",".join(LAYOUTS)}.\n')

  from batch_rl.data import converted  # pylint: disable=g-import-not-at-top
  from batch_rl.data import dopamine_replay  # pylint: disable=g-import-not-at-top
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
  gz_bytes = du(gz_dir) / len(suffixes)
  results = {'gz_bytes_per_checkpoint': gz_bytes}
  print(f'source {gz_dir}: {len(suffixes)} checkpoints, '
        f'{gz_bytes / 1e6:,.0f} MB of gz each', flush=True)

  if not args.skip_dopamine:
    results['dopamine'] = run_child('dopamine', gz_dir, 1, args.seconds)
  if 'in_memory' in layouts:
    results['in_memory'] = {1: run_child('in_memory', gz_dir, 1, args.seconds)}
    frames = results['in_memory'][1]['frame_bytes']
    if 10 * frames < psutil.virtual_memory().available / 3:
      results['in_memory'][10] = run_child(
          'in_memory', gz_with_copies(gz_dir, os.path.join(work, 'gz10'), 10),
          10, args.seconds)
  if 'converted' in layouts:
    converted10 = os.path.join(work, 'converted10')
    shutil.rmtree(converted10, ignore_errors=True)
    gz10 = gz_with_copies(gz_dir, os.path.join(work, 'gz10'), 10)
    start = time.perf_counter()
    converted.convert(gz10, converted10, [0], progress=False)
    results['convert_s'] = time.perf_counter() - start
    results['converted_bytes_per_checkpoint'] = du(
        os.path.join(converted10, 'ckpt_0'))
    converted.convert(gz10, converted10, [1], progress=False)
    for suffix in range(2, 10):  # Links of checkpoints 0 and 1.
      os.makedirs(os.path.join(converted10, f'ckpt_{suffix}'))
      for name in os.listdir(os.path.join(converted10, f'ckpt_{suffix % 2}')):
        link(os.path.join(converted10, f'ckpt_{suffix % 2}', name),
             os.path.join(converted10, f'ckpt_{suffix}', name))
    with open(os.path.join(converted10, converted.MANIFEST)) as f:
      manifest = json.load(f)
    with open(os.path.join(converted10, converted.MANIFEST), 'w') as f:
      json.dump({**manifest, 'checkpoints': list(range(10))}, f)
    results['converted'] = {k: run_child('converted', converted10, k, args.seconds)
                         for k in (1, 10)}

  report(results, gz_dir)
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(results, f, indent=1)
  if not args.workdir:
    shutil.rmtree(work)


def report(results: dict, gz_dir: str) -> None:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  print(f'\nmachine: {platform.processor() or platform.machine()}, '
        f'{os.cpu_count()} cores, load average '
        f'{os.getloadavg()[0]:.1f}, TF {tf.__version__}; batch {BATCH}, '
        f'84x84x{STACK_SIZE} uint8 states; {gz_dir}')
  dopamine = results.get('dopamine')
  header = (f'{"":34}{"open s":>8}{"batches/s":>11}{"x dopamine":>11}'
            f'{"peak GiB":>10}{"settled":>9}{"frames GiB":>11}')
  print(header)

  def row(name, r):
    ratio = (f'{r["batches_per_s"] / dopamine["batches_per_s"]:.2f}'
             if dopamine else '-')
    print(f'{name:34}{r["open_s"]:8.1f}{r["batches_per_s"]:11,.0f}'
          f'{ratio:>11}{_gib(r["peak_rss"]):10.2f}'
          f'{_gib(r["settled_rss"]):9.2f}{_gib(r["frame_bytes"]):11.2f}')

  if dopamine:
    row('dopamine-rl (1 ckpt)', dopamine)
  for layout in LAYOUTS:
    for k, r in sorted(results.get(layout, {}).items()):
      row(f'{layout} ({k} ckpt{"s" if k > 1 else ""})', r)
  print(f'gz on disk per checkpoint: '
        f'{results["gz_bytes_per_checkpoint"] / 1e9:.2f} GB')
  if 'convert_s' in results:
    print(f'conversion per checkpoint: {results["convert_s"]:.0f} s, '
          f'{results["converted_bytes_per_checkpoint"] / 1e9:.2f} GB on disk '
          f'({results["converted_bytes_per_checkpoint"] / results["gz_bytes_per_checkpoint"]:.2f}x the gz)')


if __name__ == '__main__':
  main()
