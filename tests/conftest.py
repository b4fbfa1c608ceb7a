"""Shared fixtures: replay data written by dopamine-rl's own buffer."""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import numpy as np  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top
from dopamine.replay_memory import circular_replay_buffer  # pylint: disable=g-import-not-at-top


def fill_dopamine_buffer(capacity, num_adds, stack_size=4, update_horizon=1,
                         gamma=0.99, frame_shape=(5, 4), seed=0,
                         terminal_prob=0.15, episode_end_prob=0.0,
                         short_episodes=False):
  """A dopamine-rl OutOfGraphReplayBuffer filled with random episodes.

  `short_episodes` makes every third episode end after 1 or 2 steps, shorter
  than the frame stack; `episode_end_prob` adds time-limit cuts (episode end
  without terminal, newer Dopamine's `episode_end_indices`).
  """
  rng = np.random.default_rng(seed)
  buffer = circular_replay_buffer.OutOfGraphReplayBuffer(
      frame_shape, stack_size, capacity, batch_size=8,
      update_horizon=update_horizon, gamma=gamma)
  episode, step = 0, 0
  for _ in range(num_adds):
    step += 1
    limit = rng.integers(1, 3) if short_episodes and episode % 3 == 0 else None
    terminal = (step == limit) or rng.random() < terminal_prob
    cut = not terminal and rng.random() < episode_end_prob
    buffer.add(rng.integers(1, 256, frame_shape, dtype=np.uint8),
               rng.integers(0, 6), rng.normal(), terminal, episode_end=cut)
    if terminal or cut:
      episode, step = episode + 1, 0
  return buffer


@pytest.fixture
def dopamine_buffer_factory():
  return fill_dopamine_buffer


# Start of the scripts of the two-replica tests (run in their own process:
# logical devices are fixed at TensorFlow's start): two CPU replicas and
# small Q-networks.
TWO_CPU_REPLICAS_PREAMBLE = '''
import functools
import gin
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from batch_rl.agents import networks, optimizers, registry
gin.bind_parameter('QHeadsNetwork.torso', networks.MLPTorso)
gin.bind_parameter('MLPTorso.hidden_units', (16,))
'''
