r"""Runs a study (gin) on Ray: every run a task, resumable, on one machine or a
cluster.

  python -m batch_rl.sweep gin/studies/minatar_replication.gin \
      --out=runs/replication [--dry_run] [--address=auto] \
      [--cpus_per_run=1 --gpus_per_run=0.25] [--num_cpus=N] \
      [--data_root=DIR] [--gin_bindings="Study.seeds=[0]"]

Rerunning the command skips finished runs and resumes interrupted ones from
their checkpoints. Each run's output is appended to <run_logs>/<run>.log.
When the runs are done, the report of `python -m batch_rl.analysis` on the
study is written to <out>/report/ (--noreport to leave it out).
See docs/STUDIES.md.
"""

import json
import shlex
import signal
import sys

from absl import flags
import gin

from batch_rl import cli
from batch_rl import command_line
from batch_rl import storage
from batch_rl.run_directory import RunDirectory
from batch_rl.study_directory import StudyDirectory
from batch_rl.sweep import study as study_lib

flags.DEFINE_string('data_root', None, 'Replaces {data_root} in '
                    'Study.replay_dir (overrides Study.data_root).')
flags.DEFINE_string('run_logs', None, 'Where each run\'s output goes '
                    '(default <out>/logs; required for URL outputs).')
flags.DEFINE_string('address', None, 'A running Ray cluster to join, e.g. '
                    '"auto" or "10.0.0.1:6379"; default: a local Ray '
                    'instance.')
flags.DEFINE_integer('num_cpus', None, 'CPUs of the local Ray instance '
                     '(default: all).')
flags.DEFINE_integer('num_gpus', None, 'GPUs of the local Ray instance '
                     '(default: all).')
flags.DEFINE_float('cpus_per_run', 1.0, 'Ray CPUs each logging or offline '
                   'run holds.')
flags.DEFINE_float('gpus_per_run', 0.0, 'Ray GPUs each logging or offline '
                   'run holds; 0.25 packs four runs on a GPU.')
flags.DEFINE_integer('max_retries', 3, 'Retries of a run whose process or '
                     'worker was killed.')
flags.DEFINE_float('progress_every', 30.0, 'Seconds between progress '
                   'tables (one is printed whenever a run ends too).')
flags.DEFINE_bool('dry_run', False, 'Print the plan (runs, status, '
                  'commands, resources) and exit without starting Ray.')
flags.DEFINE_bool('report', True, 'Write the analysis report to '
                  '<out>/report/ when the runs are done.')
flags.DEFINE_bool('dashboard', False, 'Start Ray\'s dashboard with the '
                  'local instance.')
FLAGS = flags.FLAGS


def load_study(study_file: str, bindings) -> study_lib.Study:
  """Parses the study file and bindings; returns the Study they bind.

  The configuration is cleared afterwards: the driver configures nothing
  else, and the report imports gin-configurable modules.
  """
  command_line.load_gin_configs([study_file], bindings)
  try:
    return study_lib.Study()
  finally:
    gin.clear_config()


def _status(run: study_lib.Run) -> str:
  if run.kind == study_lib.STAGING:
    return 'prepares the data'
  done = RunDirectory(run.run_dir).finished_iterations()
  if done >= run.num_iterations:
    return 'finished'
  if done:
    return f'resumes after iteration {done - 1} of {run.num_iterations}'
  return f'new, {run.num_iterations} iterations'


def print_plan(runs, cpus: float, gpus: float) -> None:
  """Every run with its status, resources, dependencies and command."""
  for i, run in enumerate(runs, 1):
    resources = ('1 CPU' if run.kind == study_lib.STAGING
                 else f'{cpus:g} CPU, {gpus:g} GPU')
    after = f', after {", ".join(run.requires)}' if run.requires else ''
    print(f'[{i}/{len(runs)}] {run.name}: {_status(run)} ({resources}'
          f'{after})\n  {shlex.join(run.command)}')
  todo = [r for r in runs
          if r.kind != study_lib.STAGING and not study_lib.is_finished(r)]
  print(f'{len(todo)} of {sum(r.kind != study_lib.STAGING for r in runs)} '
        'runs to do.')


def _report(out: str) -> None:
  from batch_rl.analysis import report  # pylint: disable=g-import-not-at-top
  path = report.write_report([out], storage.join(out, 'report'),
                             report.ReportOptions(reference=None))
  print(f'wrote {path}')


def run_study(argv) -> int:
  if len(argv) != 2:
    raise study_lib.StudyError(
        'expected one study file, e.g. python -m batch_rl.sweep '
        f'gin/studies/minatar_replication.gin --out=DIR; got {argv[1:]}.')
  if FLAGS.out is None:
    raise study_lib.StudyError('missing flag --out (the study\'s output).')
  bindings = list(FLAGS.gin_bindings)
  if FLAGS.data_root is not None:
    bindings.append(f'Study.data_root={json.dumps(FLAGS.data_root)}')
  if FLAGS.cpus_per_run <= 0 or FLAGS.gpus_per_run < 0:
    raise study_lib.StudyError(
        f'--cpus_per_run={FLAGS.cpus_per_run:g} --gpus_per_run='
        f'{FLAGS.gpus_per_run:g}: expected a positive CPU share and a '
        'non-negative GPU share.')
  if FLAGS.gpus_per_run > 1 and not FLAGS.gpus_per_run.is_integer():
    raise study_lib.StudyError(
        f'--gpus_per_run={FLAGS.gpus_per_run:g}: Ray shares a GPU between '
        'runs (a value up to 1, e.g. 0.25) or gives a run whole GPUs (2, '
        '3, ...), not both.')
  study = load_study(argv[1], bindings)
  runs = study_lib.plan(study, FLAGS.out)
  if FLAGS.dry_run:
    print_plan(runs, FLAGS.cpus_per_run, FLAGS.gpus_per_run)
    return 0
  log_dir = FLAGS.run_logs
  if log_dir is None:
    if storage.is_url(FLAGS.out):
      raise study_lib.StudyError(
          f'--out={FLAGS.out} is a URL: pass --run_logs, a directory on a '
          'filesystem every worker can write to.')
    log_dir = storage.join(storage.absolute(FLAGS.out), 'logs')
  description = StudyDirectory(FLAGS.out)
  previous = None
  if description.exists():
    try:
      previous = description.read()
    except ValueError as e:
      raise study_lib.StudyError(
          f'{e} The sweep adds its runs to it: repair it, or remove it to '
          'describe only the runs of this command.') from e
  description.write(study_lib.describe(study, runs, previous))
  if not study_lib.runs_to_start(runs):
    print(f'All {sum(r.kind != study_lib.STAGING for r in runs)} runs of the '
          'study are finished.')
  else:
    # Ray loads here only, so that --dry_run and --help answer at once.
    from batch_rl.sweep import execution  # pylint: disable=g-import-not-at-top
    execution.init_ray(FLAGS.address, FLAGS.num_cpus, FLAGS.num_gpus,
                       FLAGS.dashboard)
    # Ray's own SIGTERM handler dumps a stack; a scheduler's SIGTERM stops
    # the driver as Ctrl-C does, with the resume hint.
    signal.signal(signal.SIGTERM, _interrupt)
    outcome = execution.execute(
        runs, log_dir,
        execution.Resources(FLAGS.cpus_per_run, FLAGS.gpus_per_run),
        FLAGS.max_retries, FLAGS.progress_every)
    print(f'{len(outcome.finished)} run(s) done, {len(outcome.skipped)} '
          f'finished before, {len(outcome.failed)} failed.')
    if outcome.failed:
      print(execution.failure_summary(outcome), file=sys.stderr)
      return 1
  if FLAGS.report:
    _report(FLAGS.out)
  return 0


# The signal that stopped the driver (Ray may re-raise a KeyboardInterrupt
# of its own, so the number is kept here rather than on the exception).
_stopped_by = signal.SIGINT


def _interrupt(signum, frame):
  del frame
  global _stopped_by
  _stopped_by = signum
  raise KeyboardInterrupt


def main(argv) -> int:
  """run_study with batch_rl's error convention (cli.call); a Ctrl-C or a
  SIGTERM once Ray is up exits with 128 + the signal number."""
  try:
    return cli.call(run_study, argv)
  except KeyboardInterrupt:  # Ctrl-C, or SIGTERM once Ray is up.
    # Ray ends this driver's tasks with it (their workers exit, and every
    # run process with its worker); finished runs are kept.
    print('interrupted: rerun the same command to resume the study.',
          file=sys.stderr)
    return 128 + _stopped_by


if __name__ == '__main__':
  cli.run_app(main)
