"""Small RL Unplugged Atari datasets made as TFDS makes the real ones.

For tests and benchmarks: episodes are written in RL Unplugged's tfrecord
format (gzip tf.Examples of whole episodes, PNG frames) and run through
TFDS's own `rlu_atari_checkpoints_ordered` and `rlu_atari` builder code
(features, episode conversion, splits); only the input location and shard
count are set here, and rlu_atari's Beam pipeline is replaced by its own
per-file generator (Apache Beam is not a dependency).

An episode is (frames [T, 84, 84] uint8, actions [T], rewards [T], ending):
ending 'terminal' marks RL Unplugged's discount 0 on the last step (TFDS
makes that step the terminal observation), 'truncated' leaves it 1.
"""

import io
import os
from typing import Sequence

import numpy as np
from PIL import Image
import tensorflow as tf
from tensorflow_datasets.rl_unplugged.rlu_atari import rlu_atari
from tensorflow_datasets.rl_unplugged.rlu_atari_checkpoints_ordered import rlu_atari_checkpoints_ordered


class OrderedBuilder(rlu_atari_checkpoints_ordered.RluAtariCheckpointsOrdered,
                     skip_registration=True):
  """TFDS's rlu_atari_checkpoints_ordered reading `_INPUT_FILE_PREFIX`."""
  name = 'rlu_atari_checkpoints_ordered'
  # No URL checksums to look up; TFDS finds them through importlib_resources,
  # which the pinned environment lacks (docs/RL_UNPLUGGED.md).
  code_path = None


class TrainSplitBuilder(rlu_atari.RluAtari, skip_registration=True):
  """TFDS's rlu_atari with its per-file generator in place of Beam."""
  name = 'rlu_atari'
  code_path = None

  def _generate_examples(self, paths):
    for path in paths['file_paths']:
      yield from self.generate_examples_one_file(path)


def _png(frame: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(frame).save(buffer, format='png')
  return buffer.getvalue()


def rlu_example(checkpoint: int, episode_id: int, episode) -> bytes:
  """One episode as a serialized RL Unplugged Atari tf.Example."""
  frames, actions, rewards, ending = episode
  discounts = np.ones(len(actions), np.float32)
  if ending == 'terminal':
    discounts[-1] = 0.
  feature = tf.train.Feature
  floats = lambda v: feature(float_list=tf.train.FloatList(value=v))
  ints = lambda v: feature(int64_list=tf.train.Int64List(value=v))
  return tf.train.Example(features=tf.train.Features(feature={
      'checkpoint_idx': ints([checkpoint]), 'episode_idx': ints([episode_id]),
      'episode_return': floats([np.sum(rewards)]),
      'clipped_episode_return': floats([np.sum(np.clip(rewards, -1, 1))]),
      'observations': feature(bytes_list=tf.train.BytesList(
          value=[_png(f) for f in frames])),
      'actions': ints(actions), 'unclipped_rewards': floats(rewards),
      'clipped_rewards': floats(np.clip(rewards, -1, 1)),
      'discounts': floats(discounts),
  })).SerializeToString()


def prepare(root: str, checkpoints: Sequence[Sequence], game: str = 'Pong',
            run: int = 1,
            builders=(OrderedBuilder, TrainSplitBuilder)) -> str:
  """Prepares `builders`' datasets of config {game}_run_{run} under
  ROOT/tensorflow_datasets from `checkpoints` (per checkpoint, its episodes
  in play order, one input shard each); returns that data dir."""
  prefix = os.path.join(root, 'rl_unplugged')
  os.makedirs(os.path.join(prefix, game), exist_ok=True)
  for c, episodes in enumerate(checkpoints):
    path = f'{prefix}/{game}/run_{run}-{c:05d}-of-{len(checkpoints):05d}'
    with tf.io.TFRecordWriter(path, 'GZIP') as writer:
      for episode_id, episode in enumerate(episodes):
        writer.write(rlu_example(c, episode_id, episode))
  data_dir = os.path.join(root, 'tensorflow_datasets')
  for builder_class in builders:
    builder_class._INPUT_FILE_PREFIX = prefix  # pylint: disable=protected-access
    builder_class._SHARDS = len(checkpoints)  # pylint: disable=protected-access
    builder_class(config=f'{game}_run_{run}',
                  data_dir=data_dir).download_and_prepare()
  return data_dir
