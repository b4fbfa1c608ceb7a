"""Memory of the input pipeline while it is read: does it grow with batches?

  python benchmarks/pipeline_memory.py CONVERTED_DIR [--batches 2000]
      [--checkpoints 1] [--report_every 256] [--pause 0] [--prefetch 2]

Opens `--checkpoints` of a converted (compact) directory, as
`python -m batch_rl.data convert` writes it, and reads
`pipeline.transition_dataset`'s stacks (batch 32, 84x84x4 uint8 states)
in-graph as the runner reads them, printing this process's memory every
`--report_every` batches: peak and current RSS (VmHWM, VmRSS) and the
current RSS split into anonymous memory (RssAnon: what the process
allocated) and mapped file pages (RssFile: the compressed frame files, page
cache the kernel can drop). Anonymous memory that keeps growing with the
number of batches read is a leak or an unbounded buffer. `--pause S`
stops reading for S seconds after each report, as a training run does
while it evaluates: the pipeline fills its buffers meanwhile.
`--prefetch -1` puts back tf.data's AUTOTUNE prefetch depth (what the
pipeline used before `pipeline.PREFETCH_ELEMENTS`) for comparison.
"""

import argparse
import os
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pipeline as pipeline_benchmark  # pylint: disable=g-import-not-at-top
from batch_rl.data import pipeline  # pylint: disable=g-import-not-at-top
from process_memory import memory  # pylint: disable=g-import-not-at-top


def main():
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('converted_dir')
  parser.add_argument('--checkpoints', type=int, default=1)
  parser.add_argument('--batches', type=int, default=2000)
  parser.add_argument('--report_every', type=int, default=256)
  parser.add_argument('--pause', type=float, default=0.0)
  parser.add_argument('--prefetch', type=int,
                      default=pipeline.PREFETCH_ELEMENTS)
  args = parser.parse_args()
  pipeline.PREFETCH_ELEMENTS = args.prefetch
  gib = lambda n: n / 2**30
  start = time.perf_counter()
  read, batches, _ = pipeline_benchmark.open_sampler(
      'converted', args.converted_dir, args.checkpoints)
  print(f'opened in {time.perf_counter() - start:.1f} s; prefetch '
        f'{args.prefetch}; reads of {batches} batches; batches/s: since the '
        'last report, pauses excluded', flush=True)
  print(f'{"batches":>8}{"batches/s":>10}{"VmHWM GiB":>11}{"VmRSS":>7}'
        f'{"RssAnon":>9}{"RssFile":>9}')
  read_count, last_count, next_report = 0, 0, 0
  reading = time.perf_counter()
  while read_count <= args.batches:
    if read_count >= next_report:
      rate = (read_count - last_count) / (time.perf_counter() - reading)
      m = memory()
      print(f'{read_count:8d}{rate:10.0f}{gib(m["peak_rss"]):11.3f}'
            f'{gib(m["settled_rss"]):7.3f}{gib(m["anon_rss"]):9.3f}'
            f'{gib(m["file_rss"]):9.3f}', flush=True)
      next_report += args.report_every
      time.sleep(args.pause)
      last_count, reading = read_count, time.perf_counter()
    read()
    read_count += batches


if __name__ == '__main__':
  main()
