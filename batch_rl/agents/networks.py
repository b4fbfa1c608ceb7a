"""Q-networks: a torso per input kind, a head of D outputs per action.

A torso maps a stacked state to features; gin picks it with
`QHeadsNetwork.torso = @NatureDQNTorso` (Atari, the default), `@MinAtarTorso`
or `@MLPTorso` (classic control). Every network returns [B, A, D]: D = 1 for
DQN, atoms for C51, quantiles for QR-DQN, heads for Ensemble-DQN/REM.
"""

import math

import gin
import tensorflow as tf


def _kernel_initializer():
  # The initializer of the offline release's multi-head and quantile networks
  # (and Dopamine's Rainbow network), used here for every layer.
  return tf.keras.initializers.VarianceScaling(
      scale=1.0 / math.sqrt(3.0), mode='fan_in', distribution='uniform')


def _dense(units, activation='relu'):
  return tf.keras.layers.Dense(
      units, activation=activation, kernel_initializer=_kernel_initializer())


def _conv(filters, kernel_size, strides, padding):
  return tf.keras.layers.Conv2D(
      filters, kernel_size, strides=strides, padding=padding,
      activation='relu', kernel_initializer=_kernel_initializer())


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

  def __init__(self, hidden_units: int = 512, name: str = 'nature_dqn_torso'):
    super().__init__([
        _conv(32, 8, 4, 'same'),
        _conv(64, 4, 2, 'same'),
        _conv(64, 3, 1, 'same'),
        tf.keras.layers.Flatten(),
        _dense(hidden_units),
    ], name=name)

  def preprocess(self, state):
    return tf.cast(state, tf.float32) / 255.


@gin.configurable
class MinAtarTorso(_Torso):
  """MinAtar torso (Young & Tian, 2019) on [B, 10, 10, C, stack] 0/1 states.

  Convolution without padding, as in MinAtar's reference network; the channel
  and stack axes are merged into C * stack input channels.
  """

  def __init__(self, filters: int = 16, hidden_units: int = 128,
               name: str = 'minatar_torso'):
    super().__init__([
        _conv(filters, 3, 1, 'valid'),
        tf.keras.layers.Flatten(),
        _dense(hidden_units),
    ], name=name)

  def preprocess(self, state):
    height, width = state.shape[1], state.shape[2]
    channels = math.prod(state.shape[3:])
    return tf.reshape(tf.cast(state, tf.float32),
                      [-1, height, width, channels])


@gin.configurable
class MLPTorso(_Torso):
  """Fully connected torso on [B, obs_dim, stack] float vectors (flattened)."""

  def __init__(self, hidden_units=(512, 512), name: str = 'mlp_torso'):
    super().__init__([tf.keras.layers.Flatten()] +
                     [_dense(units) for units in hidden_units], name=name)


@gin.configurable
class QHeadsNetwork(tf.keras.Model):
  """A torso and one linear layer of `num_outputs` values per action."""

  def __init__(self, num_actions: int, num_outputs: int,
               torso=NatureDQNTorso, name: str = 'q_heads_network'):
    super().__init__(name=name)
    self.num_actions = num_actions
    self.num_outputs = num_outputs
    self._torso = torso()
    self._head = _dense(num_actions * num_outputs, activation=None)

  def call(self, state):
    outputs = self._head(self._torso(state))
    return tf.reshape(outputs, [-1, self.num_actions, self.num_outputs])


@gin.configurable
class EnsembleQNetwork(tf.keras.Model):
  """K independent single-output Q-networks, stacked into [B, A, K]."""

  def __init__(self, num_actions: int, num_networks: int,
               name: str = 'ensemble_q_network'):
    super().__init__(name=name)
    self.num_actions = num_actions
    self.num_networks = num_networks
    self._networks = [
        QHeadsNetwork(num_actions, 1, name=f'{name}_{i}')
        for i in range(num_networks)
    ]

  def call(self, state):
    return tf.concat([network(state) for network in self._networks], axis=-1)
