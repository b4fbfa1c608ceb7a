"""Command line for replay data.

  python -m batch_rl.data info REPLAY_DIR [--stack_size 4 --update_horizon 1]
  python -m batch_rl.data convert REPLAY_DIR OUT_DIR [--checkpoints 0 1 ...]
      [--workers N]
  python -m batch_rl.data export-rlds REPLAY_DIR OUT_DIR [--checkpoints ...]
"""

import argparse
import json
import os
import sys

from batch_rl.data.errors import ReplayDataError


def _info(args):
  from batch_rl.data import summary  # pylint: disable=g-import-not-at-top
  print(json.dumps(
      summary.summarize(args.replay_dir, args.stack_size,
                        args.update_horizon), indent=2))


def _convert(args):
  from batch_rl.data import converted  # pylint: disable=g-import-not-at-top
  done = converted.convert(args.replay_dir, args.out_dir, args.checkpoints,
                           workers=args.workers)
  print(f'converted checkpoints {done} into {args.out_dir}')


def _export_rlds(args):
  from batch_rl.data import rlds_io  # pylint: disable=g-import-not-at-top
  path = rlds_io.export_to_rlds(args.replay_dir, args.out_dir,
                                args.checkpoints, args.stack_size)
  print(f'wrote RLDS dataset; read it with tfds.builder_from_directory('
        f'{str(path)!r})')


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m batch_rl.data',
                                   description=__doc__.split('\n')[0])
  commands = parser.add_subparsers(dest='command', required=True)
  info = commands.add_parser('info', help='JSON summary of a replay directory')
  info.add_argument('replay_dir')
  info.set_defaults(run=_info)
  convert = commands.add_parser(
      'convert', help='gz checkpoints -> compact random-access layout')
  convert.add_argument(
      '--workers', type=int, default=os.cpu_count() or 1,
      help='checkpoints converted at once, one process each (default: one '
      'per core; each holds under 1 GiB)')
  convert.set_defaults(run=_convert)
  export = commands.add_parser('export-rlds', help='Dopamine replay -> RLDS')
  export.set_defaults(run=_export_rlds)
  for sub in (convert, export):
    sub.add_argument('replay_dir')
    sub.add_argument('out_dir')
    sub.add_argument('--checkpoints', type=int, nargs='+', default=None,
                     help='checkpoint suffixes (default: all)')
  for sub in (info, export):
    sub.add_argument('--stack_size', type=int, default=4)
  info.add_argument('--update_horizon', type=int, default=1)
  args = parser.parse_args(argv)
  try:
    args.run(args)
  except (ReplayDataError, ValueError, OSError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  return 0


if __name__ == '__main__':
  sys.exit(main())
