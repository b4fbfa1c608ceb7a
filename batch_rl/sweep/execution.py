"""Runs a plan on Ray: one task per run, dependencies as object refs.

Each run is a Ray task with declared resources that starts its command in a
subprocess, its output appended to `<log_dir>/<run name>.log`, seeing
the GPUs Ray assigned to the task (none for a task that holds none). The
subprocess dies with its worker (PR_SET_PDEATHSIG: SIGTERM), so a worker
that Ray stops or that is killed takes its run with it, and Ray's retry of
the task resumes the run from its last checkpoint. A run killed by a signal
is retried the same way; a run that exits with an error fails for good, and
so do the runs that need it, while the others go on.
"""

import dataclasses
import functools
import os
import shlex
import socket
import subprocess
import sys
import time
from typing import Callable, Optional, Sequence

import ray

from batch_rl import processes
from batch_rl.run_directory import RunDirectory
from batch_rl.sweep import progress
from batch_rl.sweep import study as study_lib

LOG_TAIL_LINES = 20
VISIBLE_GPUS = 'CUDA_VISIBLE_DEVICES'


@dataclasses.dataclass(frozen=True)
class Resources:
  """Ray resources of one logging or offline run (staging takes 1 CPU)."""
  num_cpus: float = 1.0
  num_gpus: float = 0.0


class RunFailed(Exception):
  """A run exited with an error; retrying would fail the same way."""

  def __init__(self, name: str, message: str, log_tail: str):
    super().__init__(name, message, log_tail)
    self.name, self.message, self.log_tail = name, message, log_tail

  def __str__(self):
    return f'{self.name}: {self.message}'


class RunInterrupted(Exception):
  """A run's process was killed by a signal; Ray retries the task."""


def log_path(log_dir: str, run_name: str) -> str:
  return os.path.join(log_dir, run_name.replace('/', '__') + '.log')


def log_tail(path: str) -> str:
  if not os.path.isfile(path):
    return '(no log)\n'
  with open(path, errors='replace') as f:
    return ''.join(f.readlines()[-LOG_TAIL_LINES:])


def _package_root() -> str:
  """The directory holding the batch_rl package this process runs."""
  return os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))


def child_environment() -> dict:
  """The run's environment: this batch_rl first on the path, and TensorFlow
  taking GPU memory as it needs it (runs may share a GPU), unless set."""
  env = dict(os.environ)
  env.setdefault('TF_FORCE_GPU_ALLOW_GROWTH', 'true')
  env['PYTHONPATH'] = os.pathsep.join(
      p for p in (_package_root(), env.get('PYTHONPATH')) if p)
  return env


@ray.remote(num_cpus=0)
class Tracker:
  """Which runs have started, so that the driver can tell running from
  pending (a task that waits for resources has not started)."""

  def __init__(self):
    self._started = {}

  def started(self, name: str) -> None:
    self._started[name] = time.time()

  def snapshot(self) -> dict:
    return dict(self._started)


def execute_run(run: study_lib.Run, log_file: str, tracker, *requirements
                ) -> dict:
  """The body of a run's task: runs (or resumes) it, raises if it fails."""
  del requirements  # Finished runs this one reads; Ray waited for them.
  tracker.started.remote(run.name)
  if study_lib.is_finished(run):  # A retry after the run had finished.
    return {'name': run.name, 'duration_s': 0.0}
  command = (sys.executable,) + tuple(run.command[1:])
  gpu_ids = [str(i) for i in ray.get_gpu_ids()]
  env = child_environment()
  if not gpu_ids:
    # Ray sets CUDA_VISIBLE_DEVICES only for a task that holds GPUs; a run
    # that holds none must not see the node's GPUs (TensorFlow would
    # compute and take memory on them).
    env[VISIBLE_GPUS] = ''
  os.makedirs(os.path.dirname(log_file), exist_ok=True)
  start = time.time()
  with open(log_file, 'a') as log:
    log.write(f'# {time.strftime("%Y-%m-%d %H:%M:%S")} worker pid '
              f'{os.getpid()} on {socket.gethostname()}, GPUs '
              f'{",".join(gpu_ids) or "none"}\n'
              f'$ {shlex.join(command)}\n')
    log.flush()
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, env=env, preexec_fn=processes.die_with_parent)
    code = process.wait()
  if code < 0:
    raise RunInterrupted(f'{run.name}: killed by signal {-code}')
  if code != 0:
    raise RunFailed(run.name, f'exited with status {code}',
                    log_tail(log_file))
  if run.num_iterations is not None and not study_lib.is_finished(run):
    raise RunFailed(
        run.name, f'exited normally after '
        f'{RunDirectory(run.run_dir).finished_iterations()} of '
        f'{run.num_iterations} iterations', log_tail(log_file))
  return {'name': run.name, 'duration_s': time.time() - start}


@dataclasses.dataclass
class Outcome:
  """What happened to the runs of one execution."""
  finished: list[str]
  skipped: list[str]
  failed: dict[str, str]  # name -> report (reason and log tail)


def check_resources(resources: Resources) -> None:
  """Raises StudyError when no live node of the connected Ray cluster has
  the CPUs and GPUs of a run (Ray would keep every run pending)."""
  nodes = [node['Resources'] for node in ray.nodes() if node['Alive']]
  wanted = {'CPU': ('cpus_per_run', resources.num_cpus),
            'GPU': ('gpus_per_run', resources.num_gpus)}
  fits = {key: [node.get(key, 0) >= amount for node in nodes]
          for key, (_, amount) in wanted.items()}
  if any(map(all, zip(*fits.values()))):
    return
  # The flags no node meets; both if each is met by a node, not one node.
  short = [key for key in wanted if not any(fits[key])] or list(wanted)
  flags = ' '.join(f'--{wanted[key][0]}={wanted[key][1]:g}' for key in short)

  def amounts(combine):
    return ' and '.join(
        f'{combine(node.get(key, 0) for node in nodes):g} {key}s'
        for key in ('CPU', 'GPU'))
  raise study_lib.StudyError(
      f'{flags}: no node of the Ray cluster can hold a run (it has '
      f'{amounts(sum)}, its largest node {amounts(max)}); ask for less, or '
      'give Ray more (--num_cpus, --num_gpus; `ray start --num-gpus=N` on a '
      'cluster\'s node).')


def _failure_report(run: study_lib.Run, error: Exception, log_file: str
                    ) -> str:
  cause = getattr(error, 'cause', error)
  if isinstance(cause, RunFailed):
    if cause.name != run.name:
      return f'not run: {cause.name} failed ({cause.message}).'
    return f'{cause.message}; {log_file} ends:\n{cause.log_tail}'
  return (f'{type(cause).__name__}: {str(cause).strip().splitlines()[-1]}; '
          f'{log_file} ends:\n{log_tail(log_file)}')


def execute(runs: Sequence[study_lib.Run], log_dir: str,
            resources: Resources = Resources(), max_retries: int = 3,
            progress_every_s: float = 30.0,
            printer: Callable[[str], None] = functools.partial(
                print, flush=True)) -> Outcome:
  """Runs the unfinished runs of `runs` on the connected Ray instance.

  Finished runs are skipped; a staging run is needed only by unfinished
  runs. Prints a progress table every `progress_every_s` seconds and when
  a run ends. Raises StudyError if no node can hold a run.
  """
  check_resources(resources)
  by_name = {run.name: run for run in runs}
  to_start = study_lib.runs_to_start(runs)
  started = {run.name for run in to_start}
  skipped = [run.name for run in runs
             if run.name not in started and run.kind != study_lib.STAGING]
  tracker = Tracker.remote()
  task = ray.remote(execute_run)
  refs = {}
  for run in to_start:  # Every run comes after the runs it needs.
    options = dict(num_cpus=resources.num_cpus, num_gpus=resources.num_gpus)
    if run.kind == study_lib.STAGING:
      options = dict(num_cpus=1, num_gpus=0)
    refs[run.name] = task.options(
        name=run.name, max_retries=max_retries,
        retry_exceptions=[RunInterrupted], **options).remote(
            run, log_path(log_dir, run.name), tracker,
            *[refs[r] for r in run.requires if r in refs])
  board = progress.Board({name: by_name[name].kind for name in refs},
                         skipped={n: by_name[n].kind for n in skipped})
  printer(board.table())
  finished, failed = [], {}
  waiting = {ref: name for name, ref in refs.items()}
  last_print = time.time()
  while waiting:
    done, _ = ray.wait(list(waiting), num_returns=1, timeout=1.0)
    board.started(ray.get(tracker.snapshot.remote()))
    changed = False
    for ref in done:
      name = waiting.pop(ref)
      changed = True
      try:
        result = ray.get(ref)
        finished.append(name)
        board.finished(name, result['duration_s'])
      except Exception as e:  # pylint: disable=broad-except
        failed[name] = _failure_report(by_name[name], e,
                                       log_path(log_dir, name))
        board.failed(name)
    if changed or time.time() - last_print >= progress_every_s:
      printer(board.table())
      last_print = time.time()
  ray.kill(tracker)
  return Outcome(finished, skipped, failed)


def failure_summary(outcome: Outcome) -> str:
  """The failed runs, each with its reason and its log's last lines."""
  lines = [f'{len(outcome.failed)} run(s) failed:']
  for name, report in outcome.failed.items():
    lines.append(f'- {name}: {report}')
  return '\n'.join(lines)


def init_ray(address: Optional[str], num_cpus: Optional[int],
             num_gpus: Optional[int], dashboard: bool) -> None:
  """Joins the cluster at `address`, or starts a local Ray instance.

  Workers find this batch_rl on their path (on a cluster, the path must
  exist on every node: the same checkout or installation everywhere).
  """
  runtime_env = {
      'env_vars': {'PYTHONPATH': child_environment()['PYTHONPATH']}}
  if address:
    ray.init(address=address, log_to_driver=False, runtime_env=runtime_env)
  else:
    ray.init(num_cpus=num_cpus, num_gpus=num_gpus,
             include_dashboard=dashboard, log_to_driver=False,
             runtime_env=runtime_env)
