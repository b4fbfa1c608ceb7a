"""Q-networks: a torso per input kind, a head of D outputs per action.

A torso maps a stacked state to features; gin picks it with
`QHeadsNetwork.torso = @NatureDQNTorso` (Atari, the default), `@MinAtarTorso`
or `@MLPTorso` (classic control). Every network returns [B, A, D]: D = 1 for
DQN, atoms for C51, quantiles for QR-DQN, heads for Ensemble-DQN/REM.
Given the agent's `seeds.SeedStream`, every layer's initializer gets its own
seed from it, so the initial weights follow the agent's seed; without one
they follow TensorFlow's global seed.
"""

import math

import gin
import tensorflow as tf


def _kernel_initializer(seeds):
  # The initializer of the offline release's multi-head and quantile networks
  # (and Dopamine's Rainbow network), used here for every layer.
  return tf.keras.initializers.VarianceScaling(
      scale=1.0 / math.sqrt(3.0), mode='fan_in', distribution='uniform',
      seed=seeds() if seeds else None)


def _dense(units, seeds, activation='relu'):
  return tf.keras.layers.Dense(
      units, activation=activation,
      kernel_initializer=_kernel_initializer(seeds))


def _conv(filters, kernel_size, strides, padding, seeds):
  return tf.keras.layers.Conv2D(
      filters, kernel_size, strides=strides, padding=padding,
      activation='relu', kernel_initializer=_kernel_initializer(seeds))


class _Torso(tf.keras.layers.Layer):
  """Preprocesses a stacked state, then applies its blocks in order."""

  def __init__(self, blocks, name: str):
    super().__init__(name=name)
    self._blocks = blocks

  def preprocess(self, state):
    return tf.cast(state, tf.float32)

  def call(self, state):
    net = self.preprocess(state)
    for block in self._blocks:
      net = block(net)
    return net


@gin.configurable
class NatureDQNTorso(_Torso):
  """Nature DQN torso on [B, 84, 84, stack] uint8 frames scaled by 1/255.

  Padding is 'same', as in Dopamine's and the batch_rl release's networks.
  """

  def __init__(self, hidden_units: int = 512, seeds=None,
               name: str = 'nature_dqn_torso'):
    super().__init__([
        _conv(32, 8, 4, 'same', seeds),
        _conv(64, 4, 2, 'same', seeds),
        _conv(64, 3, 1, 'same', seeds),
        tf.keras.layers.Flatten(),
        _dense(hidden_units, seeds),
    ], name=name)

  def preprocess(self, state):
    return tf.cast(state, tf.float32) / 255.


@gin.configurable
class MinAtarTorso(_Torso):
  """MinAtar torso (Young & Tian, 2019) on [B, 10, 10, C, stack] 0/1 states.

  Convolution without padding, as in MinAtar's reference network; the channel
  and stack axes are merged into C * stack input channels.
  """

  def __init__(self, filters: int = 16, hidden_units: int = 128, seeds=None,
               name: str = 'minatar_torso'):
    super().__init__([
        _conv(filters, 3, 1, 'valid', seeds),
        tf.keras.layers.Flatten(),
        _dense(hidden_units, seeds),
    ], name=name)

  def preprocess(self, state):
    height, width = state.shape[1], state.shape[2]
    channels = math.prod(state.shape[3:])
    return tf.reshape(tf.cast(state, tf.float32),
                      [-1, height, width, channels])


@gin.configurable
class MLPTorso(_Torso):
  """Fully connected torso on [B, obs_dim, stack] float vectors (flattened)."""

  def __init__(self, hidden_units=(512, 512), seeds=None,
               name: str = 'mlp_torso'):
    super().__init__([tf.keras.layers.Flatten()] +
                     [_dense(units, seeds) for units in hidden_units],
                     name=name)


@gin.configurable
class QHeadsNetwork(tf.keras.Model):
  """A torso and one linear layer of `num_outputs` values per action.

  `torso` is called with the keyword `seeds` (a `SeedStream` or None).
  """

  def __init__(self, num_actions: int, num_outputs: int,
               torso=NatureDQNTorso, seeds=None,
               name: str = 'q_heads_network'):
    super().__init__(name=name)
    self.num_actions = num_actions
    self.num_outputs = num_outputs
    self._torso = torso(seeds=seeds)
    self._head = _dense(num_actions * num_outputs, seeds, activation=None)

  def call(self, state):
    outputs = self._head(self._torso(state))
    return tf.reshape(outputs, [-1, self.num_actions, self.num_outputs])


@gin.configurable
class EnsembleQNetwork(tf.keras.Model):
  """K independent single-output Q-networks, stacked into [B, A, K]."""

  def __init__(self, num_actions: int, num_networks: int, seeds=None,
               name: str = 'ensemble_q_network'):
    super().__init__(name=name)
    self.num_actions = num_actions
    self.num_networks = num_networks
    self._networks = [
        QHeadsNetwork(num_actions, 1, seeds=seeds, name=f'{name}_{i}')
        for i in range(num_networks)
    ]

  def call(self, state):
    return tf.concat([network(state) for network in self._networks], axis=-1)
