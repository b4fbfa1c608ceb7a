"""Writes DQN-Replay-sized Dopamine replay checkpoints of real Atari frames.

  python benchmarks/make_replay.py OUT_DIR [--capacity 1000000]
      [--checkpoints 2] [--game Asterix] [--pool_steps 100000]
      [--gzip_level 9] [--seed 0]

The files are dopamine-rl's, byte for byte in layout: `np.save` arrays inside
gzip (`$store$_observation_ckpt.N.gz` [capacity, 84, 84] uint8, action
int32, reward float32, terminal uint8, add_count, invalid_range, and the
pickled `episode_end_indices` set), each checkpoint a full circular buffer
whose cursor went round (add_count > capacity), as a logging agent leaves it.

Frames are real: `--pool_steps` agent steps of ALE with Dopamine's settings
(sticky actions 0.25, frame skip 4, 84x84 grayscale max-pooled frames, the
full game as one episode, rewards clipped to [-1, 1]) under a uniformly
random policy. Those complete episodes are then laid end to end in a
shuffled order (each after the stack_size - 1 zero frames Dopamine pads an
episode start with) until the buffer is full, so a 1M checkpoint costs 100k steps of
emulation (about 40 s on an idle core) instead of 1M. gzip sees about 4 frames at a time
(its window is 32 KiB), so the repetition of whole episodes does not change
how the files compress. Dopamine writes gzip level 9 (about 36 MB/s of
Asterix frames, over 3 minutes per 1M checkpoint); level 6 writes them
about 7x faster and 3% larger, level 1 15x faster and 1.5x larger.
"""

import argparse
import os
import pickle
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from batch_rl.data import dopamine_replay  # pylint: disable=g-import-not-at-top

STACK_SIZE = 4  # Dopamine pads each episode start with STACK_SIZE - 1 frames.
UPDATE_HORIZON = 1  # The logging agent's; sets Dopamine's invalid_range.
MAX_EPISODE_STEPS = 27_000  # Dopamine's max_steps_per_episode for Atari.
FRAME_SHAPE = (84, 84)
WRITE_CHUNK = 50_000  # Frames gathered and compressed at a time (350 MB).


def record_pool(game: str, steps: int, seed: int) -> dict:
  """At least `steps` steps of complete random-policy episodes of `game`.

  Returns arrays (observation [P, 84, 84] uint8, action int32, reward
  float32, terminal uint8, episode_end bool) in the order Dopamine adds
  them, without padding; `episode_end` marks each episode's last step.
  """
  import gymnasium as gym  # pylint: disable=g-import-not-at-top
  import ale_py  # pylint: disable=g-import-not-at-top
  gym.register_envs(ale_py)
  env = gym.make(f'ALE/{game}-v5', frameskip=1,
                 repeat_action_probability=0.25, full_action_space=False,
                 max_episode_steps=MAX_EPISODE_STEPS * 4)
  env = gym.wrappers.AtariPreprocessing(
      env, noop_max=0, frame_skip=4, screen_size=FRAME_SHAPE[0],
      grayscale_obs=True, terminal_on_life_loss=False)
  rng = np.random.default_rng(seed)
  columns = {name: [] for name in
             ('observation', 'action', 'reward', 'terminal', 'episode_end')}
  observation, _ = env.reset(seed=seed)
  while True:
    action = int(rng.integers(env.action_space.n))
    next_observation, reward, terminal, truncated, _ = env.step(action)
    for name, value in (('observation', observation), ('action', action),
                        ('reward', np.clip(reward, -1, 1)),
                        ('terminal', terminal),
                        ('episode_end', terminal or truncated)):
      columns[name].append(value)
    observation = next_observation
    if terminal or truncated:
      if len(columns['action']) >= steps:
        break
      observation, _ = env.reset()
  env.close()
  return {
      'observation': np.stack(columns['observation']).astype(np.uint8),
      'action': np.array(columns['action'], np.int32),
      'reward': np.array(columns['reward'], np.float32),
      'terminal': np.array(columns['terminal'], np.uint8),
      'episode_end': np.array(columns['episode_end'], bool),
  }


def buffer_rows(pool: dict, capacity: int, add_count: int,
                rng: np.random.Generator) -> np.ndarray:
  """Per slot of a buffer after `add_count` adds: the pool row it holds.

  Episodes of the pool, in a shuffled order, each after STACK_SIZE - 1
  padding rows (row index len(pool), all zeros), are added to a circular
  buffer of `capacity` slots; the result is what each slot holds at the end.
  """
  padding = len(pool['action'])
  ends = np.flatnonzero(pool['episode_end'])
  episodes = [np.arange(start, end + 1)
              for start, end in zip(np.concatenate([[0], ends[:-1] + 1]), ends)]
  stream, length = [], 0
  while length < add_count:
    for e in rng.permutation(len(episodes)):
      rows = np.concatenate([np.full(STACK_SIZE - 1, padding), episodes[e]])
      stream.append(rows)
      length += len(rows)
      if length >= add_count:
        break
  newest = np.concatenate(stream)[:add_count][-capacity:]
  # Slot (cursor + i) % capacity holds the i-th oldest stored add.
  return np.roll(newest, add_count % capacity)


def _write_array(path: str, shape, dtype, chunks, level: int) -> None:
  """Writes what `np.save(f, array)` writes into gzip, from row chunks."""
  with dopamine_replay.gzip_written_atomically(path, level) as f:
    np.lib.format.write_array_header_1_0(f, {
        'descr': np.lib.format.dtype_to_descr(np.dtype(dtype)),
        'fortran_order': False, 'shape': tuple(shape)})
    for chunk in chunks:
      f.write(np.ascontiguousarray(chunk, dtype=dtype).data)


def write_checkpoint(out_dir: str, suffix: int, pool: dict, capacity: int,
                     add_count: int, rng: np.random.Generator,
                     level: int) -> None:
  """Writes checkpoint `suffix` of `pool`'s episodes (see buffer_rows)."""
  rows = buffer_rows(pool, capacity, add_count, rng)

  def column(name):
    padded = np.concatenate([pool[name], np.zeros(1, pool[name].dtype)])
    return padded[rows]

  frames = np.concatenate(
      [pool['observation'], np.zeros((1, *FRAME_SHAPE), np.uint8)])
  path = lambda name: dopamine_replay.checkpoint_filename(out_dir, name, suffix)
  _write_array(dopamine_replay.store_filename(out_dir, 'observation', suffix),
               (capacity, *FRAME_SHAPE),
               np.uint8, (frames[rows[i:i + WRITE_CHUNK]]
                          for i in range(0, capacity, WRITE_CHUNK)), level)
  for name in ('action', 'reward', 'terminal'):
    values = column(name)
    _write_array(dopamine_replay.store_filename(out_dir, name, suffix),
                 values.shape, values.dtype, [values], level)
  cursor = add_count % capacity
  invalid_range = np.array(
      [(cursor - UPDATE_HORIZON + i) % capacity
       for i in range(STACK_SIZE + UPDATE_HORIZON)])
  for name, value in (('add_count', np.array(add_count)),
                      ('invalid_range', invalid_range)):
    _write_array(path(name), value.shape, value.dtype, [value], level)
  with dopamine_replay.gzip_written_atomically(
      path('episode_end_indices'), level) as f:
    pickle.dump({int(i) for i in np.flatnonzero(column('episode_end'))}, f)


def main(argv=None):
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('out_dir')
  parser.add_argument('--capacity', type=int, default=1_000_000)
  parser.add_argument('--checkpoints', type=int, default=2)
  parser.add_argument('--first_suffix', type=int, default=0)
  parser.add_argument('--game', default='Asterix')
  parser.add_argument('--pool_steps', type=int, default=100_000)
  parser.add_argument('--gzip_level', type=int, default=9)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args(argv)
  for name in ('capacity', 'checkpoints', 'pool_steps'):
    if getattr(args, name) < 1:
      parser.exit(2, f'error: --{name}={getattr(args, name)}: must be at '
                  'least 1.\n')
  if not 1 <= args.gzip_level <= 9:
    parser.exit(2, f'error: --gzip_level={args.gzip_level}: must be 1..9.\n')
  os.makedirs(args.out_dir, exist_ok=True)
  start = time.perf_counter()
  pool = record_pool(args.game, args.pool_steps, args.seed)
  print(f'recorded {len(pool["action"])} steps of {args.game} '
        f'({int(pool["episode_end"].sum())} episodes, '
        f'{int(np.count_nonzero(pool["reward"]))} rewards) in '
        f'{time.perf_counter() - start:.0f}s', flush=True)
  rng = np.random.default_rng(args.seed)
  for suffix in range(args.first_suffix,
                      args.first_suffix + args.checkpoints):
    start = time.perf_counter()
    # As a logging run leaves checkpoint N: full, cursor anywhere.
    add_count = (suffix + 1) * args.capacity + int(rng.integers(args.capacity))
    write_checkpoint(args.out_dir, suffix, pool, args.capacity, add_count,
                     rng, args.gzip_level)
    size = sum(os.path.getsize(os.path.join(args.out_dir, n))
               for n in os.listdir(args.out_dir) if f'_ckpt.{suffix}.gz' in n)
    print(f'checkpoint {suffix}: {args.capacity} transitions, '
          f'{size / 1e6:.0f} MB of gzip level {args.gzip_level}, '
          f'{time.perf_counter() - start:.0f}s', flush=True)


if __name__ == '__main__':
  main()
