r"""Ray's overhead per run of a study: N trivial runs through the study's
executor vs the same commands run directly, one after another.

  python benchmarks/sweep_overhead.py [--runs 50] [--out /tmp/overhead]

Each trivial run is a Python process that writes a one-iteration
metrics.csv (what the executor checks). Both sides run one command at a
time (a local Ray instance with 1 CPU), so the difference is what Ray and
the executor add per run: scheduling, the task's worker, the log file, the
progress tracking. Ray's start-up is measured apart.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from batch_rl.sweep import execution  # pylint: disable=g-import-not-at-top
from batch_rl.sweep import study as study_lib  # pylint: disable=g-import-not-at-top

WRITE_METRICS = ("import os, sys; os.makedirs(sys.argv[1], exist_ok=True); "
                 "open(os.path.join(sys.argv[1], 'metrics.csv'), 'w')"
                 ".write('iteration\\n0\\n')")


def trivial_runs(out: str, count: int) -> list[study_lib.Run]:
  runs = []
  for i in range(count):
    run_dir = os.path.join(out, f'run_{i}')
    runs.append(study_lib.Run(f'run_{i}', study_lib.OFFLINE,
                              ('python', '-c', WRITE_METRICS, run_dir),
                              run_dir, num_iterations=1))
  return runs


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--runs', type=int, default=50)
  parser.add_argument('--out', default='/tmp/sweep_overhead')
  args = parser.parse_args()
  shutil.rmtree(args.out, ignore_errors=True)

  direct = trivial_runs(os.path.join(args.out, 'direct'), args.runs)
  start = time.time()
  for run in direct:
    subprocess.run((sys.executable,) + run.command[1:], check=True)
  direct_s = time.time() - start

  start = time.time()
  execution.init_ray(None, num_cpus=1, num_gpus=0, dashboard=False)
  init_s = time.time() - start
  on_ray = trivial_runs(os.path.join(args.out, 'ray'), args.runs)
  start = time.time()
  outcome = execution.execute(on_ray, os.path.join(args.out, 'logs'),
                              progress_every_s=1e9, printer=lambda _: None)
  ray_s = time.time() - start
  assert len(outcome.finished) == args.runs, outcome
  print(f'{args.runs} trivial runs: directly {direct_s:.1f} s '
        f'({direct_s / args.runs:.3f} s each), on Ray {ray_s:.1f} s '
        f'({ray_s / args.runs:.3f} s each); Ray adds '
        f'{(ray_s - direct_s) / args.runs:.3f} s per run, and '
        f'{init_s:.1f} s to start a local instance once.')


if __name__ == '__main__':
  main()
