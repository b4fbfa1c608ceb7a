r"""Fault-injection campaign: kills, bad inputs and a full disk.

  python scripts/fault_campaign.py [--kills=20] [--seed=0] [--work_dir=DIR]

1. Kills: a tiny offline DQN run on a random-policy CartPole replay is
   SIGKILLed `--kills` times, spread over the run (each at a random
   iteration of its share of the remaining ones), at a random moment of the
   iteration after it (0-1 times the median iteration's wall time in
   the uninterrupted run: in training, evaluation, a checkpoint write or
   the summaries) or, every third kill, while it writes a checkpoint, and
   resumed each time until it finishes. Checks:
   metrics.csv holds each iteration once, every kept checkpoint loads, the
   TensorBoard event files hold exactly one value per tag and iteration, and
   the metrics equal those of an uninterrupted run with the same seed.
2. Bad inputs: copies of the replay with one fault each (NaN reward,
   terminal=7, negative action, truncated observation gz, missing file) are
   given to `python -m batch_rl.data info` and `python -m batch_rl.train`.
3. Full disk: the checkpoint write of iteration 1 fails with ENOSPC.

Prints a summary table; exits 1 if a kill check or the disk-full check fails.

`python scripts/fault_campaign.py child [--module=train|log_data]
[--slow_write_at=N] [--fail_write_at=N] -- FLAGS` runs `python -m
batch_rl.train` (or `batch_rl.log_data`) with a fault injected (used here and
by tests/test_reliability.py and tests/test_baselines.py): a checkpoint write
of iteration N that prints `FAULT: writing iteration_N` and sleeps (to be
killed there), or one that fails with ENOSPC.
"""

import argparse
import errno
import gzip
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # This checkout's batch_rl, for the script too.
# pylint: disable=g-import-not-at-top,wrong-import-position
from batch_rl import storage
from batch_rl.run_directory import ITERATION
from batch_rl.run_directory import METRIC_COLUMNS
from batch_rl.run_directory import RunDirectory
from batch_rl.run_directory import WALL_TIME_S
from batch_rl.runner import run_state
# pylint: enable=g-import-not-at-top,wrong-import-position

SLOW_WRITE_MARK = 'FAULT: writing iteration_'
TINY_RUN_GIN_FILES = ['gin/classic/dqn.gin', 'gin/testing/tiny_run.gin']


def train_command(replay_dir, base_dir, *bindings, slow_write_at=None,
                  fail_write_at=None):
  """argv of a tiny DQN run through `child` (no fault if both are None)."""
  return child_command(
      'train', ['--agent_name=dqn', f'--replay_dir={replay_dir}',
                f'--base_dir={base_dir}',
                *[f'--gin_files={f}' for f in TINY_RUN_GIN_FILES],
                *[f'--gin_bindings={b}' for b in bindings]],
      slow_write_at, fail_write_at)


def child_command(module, argv, slow_write_at=None, fail_write_at=None):
  """argv of `python -m batch_rl.<module> argv` (train or log_data) through
  `child`, with the checkpoint write of iteration `slow_write_at` slowed
  down or that of `fail_write_at` failing."""
  faults = ([f'--slow_write_at={slow_write_at}'] if slow_write_at is not None
            else []) + ([f'--fail_write_at={fail_write_at}']
                        if fail_write_at is not None else [])
  return [sys.executable, os.path.join(REPO, 'scripts', 'fault_campaign.py'),
          'child', f'--module={module}', *faults, '--', *argv]


def _child(module, slow_write_at, fail_write_at, argv):
  """`python -m batch_rl.<module>` with the checkpoint write patched."""
  import importlib  # pylint: disable=g-import-not-at-top
  from batch_rl import cli  # pylint: disable=g-import-not-at-top
  from batch_rl.runner import runner  # pylint: disable=g-import-not-at-top
  entry_point = importlib.import_module(f'batch_rl.{module}')
  fsync_tree = run_state.fsync_tree

  def faulty_fsync_tree(root):
    # root: .../iteration_N.partial, the checkpoint being written.
    iteration = int(os.path.basename(root)[
        len(run_state.ITERATION_PREFIX):-len(storage.PARTIAL)])
    if iteration == fail_write_at:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC),
                    os.path.join(root, runner.BUNDLE_FILE))
    if iteration == slow_write_at:
      print(f'{SLOW_WRITE_MARK}{iteration}', flush=True)
      time.sleep(600)
    fsync_tree(root)

  run_state.fsync_tree = faulty_fsync_tree
  sys.argv = [f'batch_rl.{module}', *argv]
  cli.run(entry_point.main)


def write_replay(path, seed=0, checkpoints=2, capacity=2000):
  """A random-policy CartPole replay in Dopamine's layout (tests' fixture)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from dopamine.replay_memory import circular_replay_buffer  # pylint: disable=g-import-not-at-top
  from batch_rl.environments import factory  # pylint: disable=g-import-not-at-top
  os.makedirs(path, exist_ok=True)
  env, spec = factory.create_environment('classic:CartPole-v1')
  rng = np.random.default_rng(seed)
  for suffix in range(checkpoints):
    buffer = circular_replay_buffer.OutOfGraphReplayBuffer(
        spec.observation_shape, spec.stack_size, capacity, 32,
        observation_dtype=spec.observation_dtype)
    observation, _ = env.reset(seed=suffix)
    while buffer.add_count < capacity:
      action = int(rng.integers(spec.num_actions))
      next_observation, reward, terminated, truncated, _ = env.step(action)
      buffer.add(observation, action, reward, terminated,
                 episode_end=truncated)
      observation = (env.reset()[0] if terminated or truncated
                     else next_observation)
    buffer.save(path, suffix)


def _rewrite_element(replay_dir, element, change):
  """Applies change(array) to checkpoint 0's `element` gz file."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  path = os.path.join(replay_dir, f'$store$_{element}_ckpt.0.gz')
  with gzip.open(path) as f:
    array = np.load(f)
  change(array)
  with gzip.open(path, 'wb') as f:
    np.save(f, array)


def _truncate(path):
  os.truncate(path, os.path.getsize(path) // 2)


BAD_INPUTS = {
    'NaN reward': lambda d: _rewrite_element(
        d, 'reward', lambda a: a.__setitem__(5, float('nan'))),
    'terminal=7': lambda d: _rewrite_element(
        d, 'terminal', lambda a: a.__setitem__(5, 7)),
    'negative action': lambda d: _rewrite_element(
        d, 'action', lambda a: a.__setitem__(5, -1)),
    'truncated observation gz': lambda d: _truncate(
        os.path.join(d, '$store$_observation_ckpt.0.gz')),
    'missing reward file': lambda d: os.remove(
        os.path.join(d, '$store$_reward_ckpt.0.gz')),
}


def summary_values(tensorboard_dir):
  """{(tag, step): number of values} over a run's event files."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  counts = {}
  for name in sorted(os.listdir(tensorboard_dir)):
    try:
      for event in tf.compat.v1.train.summary_iterator(
          os.path.join(tensorboard_dir, name)):
        for value in event.summary.value:
          key = (value.tag, event.step)
          counts[key] = counts.get(key, 0) + 1
    except tf.errors.DataLossError:
      pass  # A record cut by a kill.
  return counts


def checkpoints_load(base_dir):
  """Every kept checkpoint's files read back (TF tensors, pickle, JSON)."""
  # pylint: disable=g-import-not-at-top
  import json
  import pickle
  import tensorflow as tf
  from batch_rl.agents import base
  from batch_rl.runner import runner
  # pylint: enable=g-import-not-at-top
  run_directory = RunDirectory(base_dir)
  checkpoints = run_directory.existing_checkpoints()
  if checkpoints is None:
    raise FileNotFoundError(f'{run_directory.checkpoints_path}: missing')
  iterations = checkpoints.iterations()
  for iteration in iterations:
    folder = checkpoints.path(iteration)
    reader = tf.train.load_checkpoint(
        base.checkpoint_prefix(folder, iteration))
    for key in reader.get_variable_to_shape_map():
      reader.get_tensor(key)
    with open(os.path.join(folder, runner.BUNDLE_FILE), 'rb') as f:
      pickle.load(f)
    with open(os.path.join(folder, runner.STATE_FILE)) as f:
      json.load(f)
  return iterations


def run_checks(base_dir, iterations, reference_rows=None):
  """Problems found in a finished run directory ([] if none)."""
  problems = []
  run_directory = RunDirectory(base_dir)
  rows = run_directory.read_metrics()
  if [int(r[ITERATION]) for r in rows] != list(range(iterations)):
    problems.append(f'metrics iterations {[r[ITERATION] for r in rows]}')
  try:
    checkpoints_load(base_dir)
  except Exception as e:  # pylint: disable=broad-except
    problems.append(f'checkpoint does not load: {e!r}')
  counts = summary_values(run_directory.tensorboard_path)
  tags = {tag for tag, _ in counts}
  for tag in sorted(tags):
    steps = sorted(step for t, step in counts if t == tag)
    if steps != list(range(iterations)):
      problems.append(f'tensorboard {tag}: steps {steps}')
  doubled = [key for key, n in counts.items() if n != 1]
  if doubled:
    problems.append(f'tensorboard values written twice: {doubled}')
  if reference_rows is not None:
    # Every column but the wall time, which differs from run to run.
    columns = [c for c in METRIC_COLUMNS if c != WALL_TIME_S]
    for row, reference in zip(rows, reference_rows):
      if any(row[c] != reference[c] for c in columns):
        problems.append(f'iteration {row[ITERATION]} differs from the '
                        f'uninterrupted run: {row} vs {reference}')
        break
  return problems


def wait_for_iteration(process, base_dir, iteration, timeout=600):
  """Waits until `process` has published `iteration` (metrics.csv row)."""
  deadline = time.time() + timeout
  run_directory = RunDirectory(base_dir)
  while time.time() < deadline and process.poll() is None:
    if run_directory.finished_iterations() > iteration:
      return
    time.sleep(0.01)


def _kill_campaign(replay_dir, work_dir, kills, iterations, rng):
  reference_dir = os.path.join(work_dir, 'uninterrupted')
  subprocess.run(train_command(replay_dir, reference_dir,
                               f'Runner.num_iterations={iterations}'),
                 cwd=REPO, capture_output=True, check=True)
  # Kills land within one iteration: a fixed 0-1 s would skip many of the
  # tiny run's iterations (tens of ms each) and run out of them early.
  reference_rows = RunDirectory(reference_dir).read_metrics()
  iteration_s = statistics.median(
      float(row[WALL_TIME_S]) for row in reference_rows[1:])
  base_dir = os.path.join(work_dir, 'killed')
  run = train_command(replay_dir, base_dir,
                      f'Runner.num_iterations={iterations}')
  log, during_write = [], 0
  for kill in range(kills):
    done = RunDirectory(base_dir).finished_iterations()
    if done >= iterations - 1:
      break  # Keep the last iteration for the final, uninterrupted resume.
    # Spread the kills over the run: each at a random iteration of its share.
    share = (iterations - 1 - done) // (kills - kill)
    at = done + rng.randrange(max(1, share))
    if kill % 3 == 2:
      process = subprocess.Popen(
          train_command(replay_dir, base_dir,
                        f'Runner.num_iterations={iterations}',
                        slow_write_at=at),
          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
          text=True)
      output = []
      for line in process.stdout:
        output.append(line)
        if line.startswith(SLOW_WRITE_MARK):
          break
      else:  # The child ended without reaching the write: say so.
        process.wait()
        log.append(f'no write of iteration_{at} reached (exit '
                   f'{process.returncode}: {"".join(output[-3:]).strip()})')
        continue
      where = f'during the write of iteration_{at}'
      during_write += 1
    else:
      process = subprocess.Popen(run, cwd=REPO, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
      wait_for_iteration(process, base_dir, at)
      delay = rng.uniform(0.0, 1.0) * iteration_s
      time.sleep(delay)
      where = f'{delay:.3f}s after iteration {at}'
    process.send_signal(signal.SIGKILL)
    process.wait()
    log.append(where)
  final = subprocess.run(run, cwd=REPO, capture_output=True, text=True,
                         check=False)
  problems = [] if final.returncode == 0 else [
      f'final resume exit {final.returncode}: {final.stderr[-500:]}']
  problems += run_checks(base_dir, iterations, reference_rows)
  damaged = [n for n in os.listdir(RunDirectory(base_dir).checkpoints_path)
             if run_state.DAMAGED_SUFFIX in n]
  return log, during_write, problems, damaged


def _bad_input_table(replay_dir, work_dir):
  rows = []
  for case, inject in BAD_INPUTS.items():
    bad = os.path.join(work_dir, case.replace(' ', '_').replace('=', ''))
    shutil.copytree(replay_dir, bad)
    inject(bad)
    for command in (
        [sys.executable, '-m', 'batch_rl.data', 'info', bad],
        train_command(bad, os.path.join(bad + '_run'),
                      'Runner.num_iterations=1')):
      result = subprocess.run(command, cwd=REPO, capture_output=True,
                              text=True, check=False)
      lines = [l for l in result.stderr.strip().splitlines()
               if l.startswith('error: ') or 'Traceback' in l]
      first = next((l for l in lines if l.startswith('error: ')),
                   'traceback' if lines else '(no error)')
      name = 'info' if 'batch_rl.data' in command else 'train'
      rows.append((case, name, result.returncode, first[:110]))
  return rows


def _disk_full(replay_dir, work_dir):
  base_dir = os.path.join(work_dir, 'disk_full')
  full = subprocess.run(
      train_command(replay_dir, base_dir, 'Runner.num_iterations=3',
                    fail_write_at=1), cwd=REPO, capture_output=True,
      text=True, check=False)
  errors = [l for l in full.stderr.splitlines() if l.startswith('error: ')]
  again = subprocess.run(
      train_command(replay_dir, base_dir, 'Runner.num_iterations=3'),
      cwd=REPO, capture_output=True, text=True, check=False)
  ok = (full.returncode == 2 and len(errors) == 1 and
        'Traceback' not in full.stderr and again.returncode == 0 and
        'Resuming' in again.stdout and not run_checks(base_dir, 3))
  return full.returncode, (errors or ['(none)'])[0], again.returncode, ok


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  sub = parser.add_subparsers(dest='command')
  child = sub.add_parser('child')
  child.add_argument('--module', choices=('train', 'log_data'),
                     default='train')
  child.add_argument('--slow_write_at', type=int)
  child.add_argument('--fail_write_at', type=int)
  child.add_argument('argv', nargs='*')
  parser.add_argument('--kills', type=int, default=20)
  parser.add_argument('--iterations', type=int, default=60)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--work_dir', default=None,
                      help='scratch folder (default: a temporary one)')
  args = parser.parse_args()
  if args.command == 'child':
    _child(args.module, args.slow_write_at, args.fail_write_at,
           args.argv)
    return 0
  work_dir = args.work_dir or tempfile.mkdtemp(prefix='fault_campaign_')
  os.makedirs(work_dir, exist_ok=True)
  start = time.time()
  replay_dir = os.path.join(work_dir, 'replay')
  write_replay(replay_dir)
  log, during_write, problems, damaged = _kill_campaign(
      replay_dir, work_dir, args.kills, args.iterations,
      random.Random(args.seed))
  print(f'\n## Kills ({len(log)} SIGKILLs, {during_write} during a '
        f'checkpoint write, {args.iterations} iterations)')
  print('kills: ' + ', '.join(log))
  print(f'checkpoints set aside as damaged: {damaged or "none"}')
  print('checks (each iteration once in metrics.csv, every checkpoint '
        'loads, one TensorBoard value per tag and iteration, metrics equal '
        f'to an uninterrupted run): {"PASS" if not problems else problems}')
  print('\n## Bad inputs\n')
  print('| case | command | exit | first error line |')
  print('|---|---|---|---|')
  for case, command, code, line in _bad_input_table(replay_dir, work_dir):
    print(f'| {case} | {command} | {code} | {line} |')
  code, line, again, ok = _disk_full(replay_dir, work_dir)
  print('\n## Full disk (ENOSPC in the checkpoint write of iteration 1)\n')
  print(f'exit {code}: {line}\nrerun: exit {again}; '
        f'{"PASS" if ok else "FAIL"}')
  print(f'\ncampaign took {time.time() - start:.0f}s; work dir {work_dir}')
  if not args.work_dir:
    shutil.rmtree(work_dir)
  return 0 if not problems and ok else 1


if __name__ == '__main__':
  sys.exit(main())
