"""Command line for run logs: normalized scores, aggregates with CIs, plots.

  python -m batch_rl.analysis [report] --base_dirs=DIR [--base_dirs=DIR ...]
      --out=OUT [--reference=human|dqn|FILE.csv] [--protocol=best|final]
      [--bootstrap_reps=2000] [--confidence=0.95] [--seed=0]
      [--compare=X:Y ...]

  python -m batch_rl.analysis reference --dopamine_json=GAME.json [...]
      --out=dqn_scores.csv [--agent=DQN] [--protocol=best|final]

A base directory may be a study's output (python -m batch_rl.sweep): its
offline runs are read and normalized with the study's reference. `report`
also writes the per-game raw scores and the normalization constants as CSV.

`report` is the default command, so it may be left out. Offline policy
selection among a run's checkpoints is `python -m batch_rl.policy_selection`.
"""

from absl import flags

from batch_rl import cli
from batch_rl import command_line
from batch_rl.analysis import reference_scores
from batch_rl.analysis import report
from batch_rl.analysis import scores

_DEFAULT_COMMAND = 'report'
FLAGS = flags.FlagValues()
flags.DEFINE_multi_string(
    'base_dirs', [], 'report: directories searched recursively for runs '
    '(run_info.json + metrics.csv); repeat the flag for several.',
    flag_values=FLAGS)
flags.DEFINE_string('out', None, 'report: output directory for report.md '
                    'and PNGs; reference: the CSV '
                    'to write.', flag_values=FLAGS)
flags.DEFINE_string(
    'reference', None, "report: default a study's own reference "
    '(study.json), else "human". "human" (bundled Atari-57 random/human '
    'table), "dqn" (bundled online-DQN scores, the paper\'s normalization, '
    'for the games in batch_rl/analysis/data/atari_dqn_dopamine.csv) or a '
    'CSV with columns environment,random,<reference>.', flag_values=FLAGS)
flags.DEFINE_enum('protocol', report.ReportOptions.protocol,
                  scores.PROTOCOLS,
                  "report, reference: a run's score: best iteration (paper) "
                  'or final.', flag_values=FLAGS)
flags.DEFINE_integer('bootstrap_reps', report.ReportOptions.bootstrap_reps,
                     'report: bootstrap resamples.', lower_bound=1,
                     flag_values=FLAGS)
flags.DEFINE_float('confidence', report.ReportOptions.confidence,
                   'report: confidence of the intervals.', lower_bound=0.0,
                   upper_bound=1.0, flag_values=FLAGS)
flags.DEFINE_integer('seed', report.ReportOptions.seed, 'report: bootstrap '
                     'seed.', flag_values=FLAGS)
flags.DEFINE_multi_string(
    'compare', [], 'report: X:Y, two agent names: P(X > Y) within every data '
    'selection both ran on (repeat the flag; default: every pair of the '
    'all-data variants).', flag_values=FLAGS)
flags.DEFINE_multi_string('dopamine_json', [], "reference: Dopamine's "
                          'baseline files (baselines/atari/data/<game>.json), '
                          'one per game; repeat the flag.', flag_values=FLAGS)
flags.DEFINE_string('agent', reference_scores.AGENT, 'reference: the Agent '
                    'entries to read.', flag_values=FLAGS)


def _pairs(values) -> tuple[tuple[str, str], ...]:
  pairs = tuple(tuple(value.split(':')) for value in values)
  bad = [value for value, pair in zip(values, pairs)
         if len(pair) != 2 or not all(pair)]
  if bad:
    raise ValueError(f'--compare={bad[0]}: expected X:Y, two agent names '
                     '(e.g. --compare=rem_cql:rem).')
  return pairs


def _report():
  comparisons = _pairs(FLAGS.compare)
  command_line.require_flags('base_dirs', 'out', flag_values=FLAGS)
  options = report.ReportOptions(
      reference=FLAGS.reference, protocol=FLAGS.protocol,
      bootstrap_reps=FLAGS.bootstrap_reps, confidence=FLAGS.confidence,
      seed=FLAGS.seed, comparisons=comparisons)
  path = report.write_report(FLAGS.base_dirs, FLAGS.out, options)
  print(f'wrote {path}')


def _reference():
  command_line.require_flags('dopamine_json', 'out', flag_values=FLAGS)
  table = reference_scores.write_reference_csv(
      FLAGS.dopamine_json, FLAGS.out, FLAGS.agent, FLAGS.protocol)
  print(table.to_string(index=False))
  print(f'wrote {FLAGS.out}')


COMMANDS = {'report': _report, 'reference': _reference}


def _run(positional) -> int:
  command = positional[0] if positional else _DEFAULT_COMMAND
  if command not in COMMANDS or len(positional) > 1:
    raise ValueError(f'expected at most one command, one of '
                     f'{", ".join(COMMANDS)}; got {positional}.')
  COMMANDS[command]()
  return 0


def main(argv=None) -> int:
  return cli.main_with_flags(_run, FLAGS, __doc__, argv)


if __name__ == '__main__':
  cli.run_with_flags(_run, FLAGS, __doc__)
