"""Command line for replay data.

  python -m batch_rl.data info REPLAY_DIR [--stack_size=4 --update_horizon=1]
      [--verify] [--tfds_data_dir=DIR]    (REPLAY_DIR may be a TFDS name:
      tfds:rlu_atari_checkpoints_ordered/Pong_run_1)
  python -m batch_rl.data convert REPLAY_DIR OUT_DIR [--checkpoints=0,1,...]
      [--workers=N]
  python -m batch_rl.data export-rlds REPLAY_DIR OUT_DIR [--checkpoints=...]
      [--stack_size=4]

info: JSON summary of a replay directory; convert: gz checkpoints -> the
compact random-access layout (bounded RAM); export-rlds: Dopamine replay ->
RLDS.
"""

import json
import os

from absl import flags

from batch_rl import cli

FLAGS = flags.FlagValues()
flags.DEFINE_integer('stack_size', 4, 'Frames per state (info, export-rlds).',
                     flag_values=FLAGS)
flags.DEFINE_integer('update_horizon', 1, 'n of the n-step transitions '
                     'counted by info.', flag_values=FLAGS)
flags.DEFINE_integer('workers', os.cpu_count() or 1, 'convert: checkpoints '
                     'converted at once, one process each (each holds under '
                     '1 GiB).', lower_bound=1, flag_values=FLAGS)
flags.DEFINE_bool('verify', False, 'info: first read every byte of a gz '
                  "directory's arrays (gzip CRC and length, finite values), "
                  'with a progress bar.', flag_values=FLAGS)
flags.DEFINE_string('tfds_data_dir', None, "info: TFDS's data directory for "
                    'a tfds: name (default: TFDS\'s own).', flag_values=FLAGS)
flags.DEFINE_list('checkpoints', None, 'Checkpoint suffixes, e.g. 0,3 '
                  '(convert, export-rlds; default: all).', flag_values=FLAGS)


def _checkpoints():
  if FLAGS.checkpoints is None:
    return None
  try:
    return [int(c) for c in FLAGS.checkpoints]
  except ValueError:
    raise ValueError(f'--checkpoints={",".join(FLAGS.checkpoints)}: expected '
                     'integer suffixes, e.g. --checkpoints=0,3.') from None


def _info(replay_dir):
  from batch_rl.data import summary  # pylint: disable=g-import-not-at-top
  if FLAGS.verify:
    summary.verify(replay_dir)
  print(json.dumps(
      summary.summarize(replay_dir, FLAGS.stack_size, FLAGS.update_horizon,
                        FLAGS.tfds_data_dir), indent=2))


def _convert(replay_dir, out_dir):
  from batch_rl.data import converted  # pylint: disable=g-import-not-at-top
  done = converted.convert(replay_dir, out_dir, _checkpoints(),
                           workers=FLAGS.workers)
  print(f'converted checkpoints {done} into {out_dir}')


def _export_rlds(replay_dir, out_dir):
  from batch_rl.data import rlds_io  # pylint: disable=g-import-not-at-top
  path = rlds_io.export_to_rlds(replay_dir, out_dir, _checkpoints(),
                                FLAGS.stack_size)
  print(f'wrote RLDS dataset; read it with tfds.builder_from_directory('
        f'{str(path)!r})')


COMMANDS = {'info': (_info, 'REPLAY_DIR'),
            'convert': (_convert, 'REPLAY_DIR OUT_DIR'),
            'export-rlds': (_export_rlds, 'REPLAY_DIR OUT_DIR')}


def _run(positional) -> int:
  if not positional or positional[0] not in COMMANDS:
    raise ValueError(f'expected a command, one of {", ".join(COMMANDS)}; '
                     f'got {positional[:1] or "none"}.')
  command, *args = positional
  run, usage = COMMANDS[command]
  if len(args) != len(usage.split()):
    raise ValueError(f'{command} takes {usage}, got {len(args)} arguments.')
  run(*args)
  return 0


def main(argv=None) -> int:
  return cli.main_with_flags(_run, FLAGS, __doc__, argv)


if __name__ == '__main__':
  cli.run_with_flags(_run, FLAGS, __doc__)
