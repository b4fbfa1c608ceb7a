"""RL Unplugged conversion benchmark: decode rate, time, RAM, disk.

  python benchmarks/rlu_conversion.py [--steps 50000] [--game Seaquest]

Plays `--steps` agent steps of an Atari game with a uniform random policy
(the Atari protocol of docs/ENVIRONMENTS.md; episodes longer than
`--max_episode_steps` are truncated), writes them in RL Unplugged's tfrecord
format and prepares them with TFDS's own rlu_atari_checkpoints_ordered
builder (`tests/rlu_builders.py`), then, in a fresh process, converts
the split as `--replay_dir=tfds:...` does and prints JSON: the rate of
reading and decoding frames alone, conversion steps/s, wall and CPU seconds
(both passes), the extrapolation to a 1M-step checkpoint,
peak RSS, the TFDS split's and the compact cache's size, and the time to
open the converted cache again.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # pylint: disable=g-import-not-at-top

import replay_copies  # pylint: disable=g-import-not-at-top

SEED = 0  # Of the random policy and the environment.


def play(game: str, steps: int, max_episode_steps: int):
  """Episodes (frames, actions, rewards, ending) of a random policy."""
  from batch_rl.environments import create_environment  # pylint: disable=g-import-not-at-top
  env, spec = create_environment(f'atari:{game}')
  rng = np.random.default_rng(SEED)
  episodes, total = [], 0
  observation, _ = env.reset(seed=SEED)
  while total < steps:
    frames, actions, rewards = [observation], [], []
    while True:
      action = int(rng.integers(spec.num_actions))
      observation, reward, terminated, truncated, _ = env.step(action)
      actions.append(action)
      rewards.append(reward)
      total += 1
      if terminated:  # RL Unplugged: a last step holding the terminal frame.
        frames.append(observation)
        actions.append(0)
        rewards.append(0.)
        ending = 'terminal'
        break
      if truncated or len(actions) == max_episode_steps or total >= steps:
        ending = 'truncated'
        break
      frames.append(observation)
    episodes.append((np.stack(frames), np.array(actions),
                     np.array(rewards, np.float32), ending))
    observation, _ = env.reset()
  return episodes


def measure(data_dir: str, cache_dir: str) -> dict:
  """Runs in a fresh process: conversion, then a second open."""
  from batch_rl.data import rlu  # pylint: disable=g-import-not-at-top
  from batch_rl.data.selection import DataSelection  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from batch_rl.data import rlds_io  # pylint: disable=g-import-not-at-top
  options = rlu.TFDSReplayOptions(data_dir=data_dir, cache_dir=cache_dir)
  name = 'tfds:rlu_atari_checkpoints_ordered/Pong_run_1'
  builder = tfds.builder_from_directory(rlu.resolve(name, data_dir))
  cpu, start = time.process_time(), time.perf_counter()
  decoded = sum(len(chunk['observation']) for chunk in rlds_io.step_chunks(
      builder, 'checkpoint_00'))
  decode = {'decode_frames_per_s': round(
                decoded / (time.perf_counter() - start)),
            'decode_frames_per_cpu_s': round(
                decoded / (time.process_time() - cpu))}
  cpu, start = time.process_time(), time.perf_counter()
  cache, _ = rlu.convert(name, 4, options=options, progress=False)
  wall, cpu = time.perf_counter() - start, time.process_time() - cpu
  start = time.perf_counter()
  store = rlu.open_store(name, DataSelection(), 4, options)
  reopen = time.perf_counter() - start
  return {**decode, 'convert_wall_s': round(wall, 1), 'convert_cpu_s': round(cpu, 1),
          'reopen_s': round(reopen, 2), 'slots': store.num_slots,
          'cache_bytes': replay_copies.du(cache),
          'peak_rss_mib': round(resource.getrusage(
              resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--steps', type=int, default=50_000)
  parser.add_argument('--game', default='Seaquest')
  parser.add_argument('--max_episode_steps', type=int, default=2_000)
  parser.add_argument('--measure', nargs=2, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.measure:
    print(json.dumps(measure(*args.measure)))
    return
  sys.path.insert(0, os.path.join(REPO, 'tests'))
  import rlu_builders  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as root:
    start = time.perf_counter()
    episodes = play(args.game, args.steps, args.max_episode_steps)
    play_s = time.perf_counter() - start
    data_dir = rlu_builders.prepare(root, [episodes], game='Pong',
                                    builders=(rlu_builders.OrderedBuilder,))
    result = json.loads(subprocess.run(
        [sys.executable, __file__, '--measure', data_dir,
         os.path.join(root, 'cache')], check=True, capture_output=True,
        text=True).stdout.splitlines()[-1])
    steps = sum(len(e[1]) for e in episodes)
    per_million = 1e6 / steps
    result.update({
        'game': args.game, 'steps': steps, 'episodes': len(episodes),
        'truncated_episodes': sum(e[3] == 'truncated' for e in episodes),
        'play_s': round(play_s, 1),
        'tfds_split_bytes': replay_copies.du(
            os.path.join(data_dir, 'rlu_atari_checkpoints_ordered')),
        'frame_bytes': steps * 84 * 84,
        'convert_steps_per_s': round(steps / result['convert_wall_s']),
        'convert_wall_s_per_1M_steps': round(
            result['convert_wall_s'] * per_million),
        'convert_cpu_s_per_1M_steps': round(
            result['convert_cpu_s'] * per_million),
        'cpus': os.cpu_count(), 'load_average': os.getloadavg()[0],
        'machine': platform.processor() or platform.machine()})
    print(json.dumps(result, indent=2))


if __name__ == '__main__':
  main()
