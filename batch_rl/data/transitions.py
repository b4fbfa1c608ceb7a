"""Dopamine's transition semantics: which slots are valid, and what a sample is.

A transition at slot i of a circular buffer of capacity C is built from the
window of slots i-(K-1) .. i+N (K = stack_size, N = update_horizon), taken
modulo C:
  state       frames i-K+1 .. i, stacked on the last axis
  length      L = N, or 1 + the offset of the first terminal in i .. i+N-1
  reward      sum_{j<L} gamma^j r_{i+j}
  next_state  frames i+L-K+1 .. i+L
  terminal    whether a terminal occurs in i .. i+N-1
Episode starts hold K-1 zero padding frames, so a valid stack never mixes
episodes. `valid_mask` is computed once in numpy; the per-batch math is
TensorFlow ops on windows, shared by every storage backend.
"""

import math

import numpy as np
import tensorflow as tf

TRANSITION_ELEMENTS = ('state', 'action', 'reward', 'next_state',
                       'next_action', 'next_reward', 'terminal', 'indices')
# What offline training reads; fewer tensors per batch to hand over.
TRAINING_ELEMENTS = ('state', 'action', 'reward', 'next_state', 'terminal')


def valid_mask(arrays, stack_size: int, update_horizon: int) -> np.ndarray:
  """Boolean mask of slots Dopamine's `is_valid_transition` accepts."""
  capacity, cursor = arrays.capacity, arrays.cursor
  slots = np.arange(capacity)
  valid = np.ones(capacity, dtype=bool)
  if not arrays.is_full:
    valid &= (slots < cursor - update_horizon) & (slots >= stack_size - 1)
  valid[arrays.invalid_range] = False
  terminal = np.asarray(arrays.terminal).astype(bool)
  for back in range(1, stack_size):  # No terminal inside the state's stack.
    valid &= ~np.roll(terminal, back)
  if arrays.episode_end_indices is not None and len(
      arrays.episode_end_indices):
    # An episode cut (time limit) without a terminal ends n-step trajectories.
    cut = np.zeros(capacity, dtype=bool)
    cut[arrays.episode_end_indices] = True
    cut &= ~terminal
    for ahead in range(update_horizon):
      valid &= ~np.roll(cut, -ahead)
  return valid


def window_offsets(stack_size: int, update_horizon: int) -> np.ndarray:
  """Offsets of the slots a transition reads, relative to its index."""
  return np.arange(-(stack_size - 1), update_horizon + 1)


def discount_vector(gamma: float, update_horizon: int) -> np.ndarray:
  """<gamma^0, ..., gamma^{N-1}> in float32, computed as Dopamine does."""
  return np.array([math.pow(gamma, n) for n in range(update_horizon)],
                  dtype=np.float32)


def transitions_from_windows(windows, indices, stack_size: int,
                             update_horizon: int, gamma: float):
  """Builds a batch of transitions from slot windows (TensorFlow ops).

  Args:
    windows: dict with 'observation' [B, W, *frame], 'action' [B, W],
      'reward' [B, W], 'terminal' [B, W] read at `window_offsets` (W = K+N).
    indices: [B] slot index of each transition within its checkpoint.
    stack_size, update_horizon, gamma: as in Dopamine.

  Returns:
    dict keyed by TRANSITION_ELEMENTS with Dopamine's dtypes.
  """
  k, n = stack_size, update_horizon
  trajectory_terminal = tf.cast(windows['terminal'][:, k - 1:k - 1 + n],
                                tf.bool)
  is_terminal = tf.reduce_any(trajectory_terminal, axis=1)
  first_terminal = tf.argmax(tf.cast(trajectory_terminal, tf.int32), axis=1,
                             output_type=tf.int32)
  length = tf.where(is_terminal, first_terminal + 1, n)
  rewards = tf.cast(windows['reward'][:, k - 1:k - 1 + n], tf.float32)
  discounts = discount_vector(gamma, n)
  discounted_return = tf.zeros_like(rewards[:, 0])
  for j in range(n):  # Left to right, in numpy's summation order.
    discounted_return += tf.where(j < length, discounts[j] * rewards[:, j], 0.)

  # States stack window frames on a new last axis. Stacking the K frames
  # (static slices when N = 1) costs about 0.6x a transpose of the whole
  # window followed by two slices (XLA on CPU, uint8 Atari frames).
  frames = windows['observation']
  state = tf.stack([frames[:, j] for j in range(k)], axis=-1)
  if n == 1:
    next_state = tf.stack([frames[:, j] for j in range(1, k + 1)], axis=-1)
  else:
    positions = length[:, None] + tf.range(k)[None, :]
    next_frames = tf.gather(frames, positions, axis=1, batch_dims=1)
    next_state = tf.stack([next_frames[:, j] for j in range(k)], axis=-1)
  next_slot = (k - 1 + length)[:, None]
  return {
      'state': state,
      'action': windows['action'][:, k - 1],
      'reward': discounted_return,
      'next_state': next_state,
      'next_action': tf.gather(
          windows['action'], next_slot, batch_dims=1)[:, 0],
      'next_reward': tf.gather(
          windows['reward'], next_slot, batch_dims=1)[:, 0],
      'terminal': tf.cast(is_terminal, windows['terminal'].dtype),
      'indices': tf.cast(indices, tf.int32),
  }


def gather_from_arrays(arrays, indices: np.ndarray, stack_size: int,
                       update_horizon: int, gamma: float):
  """Eager, numpy-in numpy-out transitions of one checkpoint's arrays."""
  slots = (indices[:, None] + window_offsets(stack_size, update_horizon)) % (
      arrays.capacity)
  windows = {
      name: tf.constant(np.asarray(getattr(arrays, name))[slots])
      for name in ('observation', 'action', 'reward', 'terminal')
  }
  batch = transitions_from_windows(windows, indices, stack_size,
                                   update_horizon, gamma)
  return {name: value.numpy() for name, value in batch.items()}
