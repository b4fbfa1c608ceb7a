"""Command line for run logs: normalized scores, aggregates with CIs, plots.

  python -m batch_rl.analysis [report] --base_dirs DIR [DIR ...] --out OUT
      [--reference human|dqn|FILE.csv] [--protocol best|final]
      [--bootstrap_reps 2000] [--confidence 0.95] [--seed 0]

  python -m batch_rl.analysis select --base_dirs RUN [RUN ...] --out OUT
      [--fqe_steps 5000] [--holdout_fraction F] [--seed S] [--replay_dir D]

  python -m batch_rl.analysis reference --dopamine_json GAME.json [...]
      --out dqn_scores.csv [--agent DQN] [--protocol best|final]

A base directory may be a study's output (python -m batch_rl.sweep): its
offline runs are read and normalized with the study's reference. `report`
also writes the per-game raw scores and the normalization constants as CSV.

`report` is the default command, so it may be left out. `select` scores every
saved checkpoint offline (held-out TD error, FQE); it alone loads TensorFlow.
"""

import argparse
import dataclasses
import sys

from batch_rl.analysis import reference_scores
from batch_rl.analysis import report
from batch_rl.analysis import scores
from batch_rl.analysis.errors import AnalysisError

_DEFAULT_COMMAND = 'report'


def _report(args):
  options = report.ReportOptions(
      reference=args.reference, protocol=args.protocol,
      bootstrap_reps=args.bootstrap_reps, confidence=args.confidence,
      seed=args.seed)
  path = report.write_report(args.base_dirs, args.out, options)
  print(f'wrote {path}')


def _select(args):
  # TensorFlow loads here only, so that `report` starts in about a second.
  from batch_rl.analysis import model_selection  # pylint: disable=g-import-not-at-top
  given = {field.name: getattr(args, field.name)
           for field in dataclasses.fields(model_selection.SelectionOptions)
           if getattr(args, field.name) is not None}
  path, rows = model_selection.write_selection(
      args.base_dirs, args.out, model_selection.SelectionOptions(**given))
  print(model_selection.summary(rows))
  print(f'wrote {path}')


def _reference(args):
  table = reference_scores.write_reference_csv(
      args.dopamine_json, args.out, args.agent, args.protocol)
  print(table.to_string(index=False))
  print(f'wrote {args.out}')


def _add_reference_parser(commands) -> None:
  reference = commands.add_parser(
      'reference', help="a --reference CSV from Dopamine's published "
      'baseline curves (baselines/atari/data/<game>.json)')
  reference.set_defaults(run=_reference)
  reference.add_argument('--dopamine_json', nargs='+', required=True,
                         help='Dopamine baseline files, one per game, named '
                         '<game>.json')
  reference.add_argument('--out', required=True, help='the CSV to write')
  reference.add_argument('--agent', default='DQN',
                         help='the Agent entries to read (default DQN)')
  reference.add_argument('--protocol', choices=scores.PROTOCOLS,
                         default='best',
                         help="each run's score: best iteration or final")


def _add_select_parser(commands) -> None:
  """Adds `select`; options left out take SelectionOptions' defaults.

  The defaults are not read here: that would import TensorFlow.
  """
  select = commands.add_parser(
      'select', help='offline model selection: held-out TD error and FQE '
      'per saved checkpoint, ranked against the online returns')
  select.set_defaults(run=_select)
  select.add_argument('--base_dirs', nargs='+', required=True,
                      help='run directories (searched recursively) with '
                      'run_info.json, metrics.csv and checkpoints/iteration_N')
  select.add_argument('--out', required=True,
                      help='output directory for selection.csv')
  select.add_argument('--holdout_fraction', type=float,
                      help="held-out fraction of the valid transitions "
                      "(default: the run's DataSelection.holdout_fraction, "
                      'else 0.1)')
  select.add_argument('--seed', type=int,
                      help="seed of the held-out set and of FQE (default: the "
                      "run's DataSelection.seed)")
  select.add_argument('--max_heldout', type=int,
                      help='score at most this many held-out transitions '
                      '(default 10000)')
  select.add_argument('--td_loss', choices=('huber', 'mse'),
                      help='per-transition TD error (default huber)')
  select.add_argument('--fqe_steps', type=int,
                      help='FQE gradient steps per checkpoint (default 5000)')
  select.add_argument('--fqe_batch_size', type=int, help='default 64')
  select.add_argument('--fqe_learning_rate', type=float, help='default 3e-4')
  select.add_argument('--fqe_target_update_period', type=int,
                      help='default 100')
  select.add_argument('--replay_dir',
                      help="the runs' data, if it moved since training "
                      '(default: replay_dir of run_info.json)')


def _parser() -> tuple[argparse.ArgumentParser, dict]:
  """The parser and its subcommand parsers by name (add new commands here)."""
  parser = argparse.ArgumentParser(prog='python -m batch_rl.analysis',
                                   description=__doc__.split('\n')[0])
  commands = parser.add_subparsers(dest='command', required=True)
  report_parser = commands.add_parser(
      'report', help='report.md with tables and PNG plots (default command)')
  report_parser.set_defaults(run=_report)
  report_parser.add_argument('--base_dirs', nargs='+', required=True,
                             help='directories searched recursively for runs '
                             '(run_info.json + metrics.csv), or a study\'s '
                             'output (study.json)')
  report_parser.add_argument('--out', required=True,
                             help='output directory for report.md and PNGs')
  report_parser.add_argument(
      '--reference', default=None,
      help='default: a study\'s own reference (study.json), else "human". '
      '"human" (bundled Atari-57 random/human table), "dqn" (bundled '
      'online-DQN scores, the paper\'s normalization, for the games in '
      'batch_rl/analysis/data/atari_dqn_dopamine.csv) or a CSV with columns '
      'environment,random,<reference>')
  report_parser.add_argument('--protocol', choices=scores.PROTOCOLS,
                             default='best',
                             help='run score: best iteration (paper) or final')
  report_parser.add_argument('--bootstrap_reps', type=int, default=2000)
  report_parser.add_argument('--confidence', type=float, default=0.95)
  report_parser.add_argument('--seed', type=int, default=0,
                             help='bootstrap seed')
  _add_select_parser(commands)
  _add_reference_parser(commands)
  return parser, commands.choices


def main(argv=None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  parser, commands = _parser()
  if not argv or (argv[0] not in commands and argv[0] not in ('-h', '--help')):
    argv.insert(0, _DEFAULT_COMMAND)
  args = parser.parse_args(argv)
  try:
    args.run(args)
  except (AnalysisError, ValueError, OSError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  return 0


if __name__ == '__main__':
  sys.exit(main())
