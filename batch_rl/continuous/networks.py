"""MLP actors, critics and the BCQ behaviour model (tf.keras).

Layers start as PyTorch's `nn.Linear` does (weights ~ U(+-1/sqrt(fan_in))),
the initialisation the reference TD3/BCQ/TD3+BC code was tuned with; every
initializer gets its own seed from the agent's seed stream so that two agents
built with one seed are identical.
"""

from typing import Sequence

import numpy as np
import tensorflow as tf

from batch_rl.agents.seeds import SeedStream

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SAC's bounds on the policy log-std.


def mlp(hidden_sizes: Sequence[int], output_size: int, seeds: SeedStream,
        output_activation=None) -> tf.keras.Sequential:
  """ReLU MLP with a linear (or `output_activation`) output layer."""
  def dense(units, activation):
    return tf.keras.layers.Dense(
        units, activation,
        kernel_initializer=tf.keras.initializers.VarianceScaling(
            1 / 3, 'fan_in', 'uniform', seed=seeds()))
  return tf.keras.Sequential(
      [dense(units, 'relu') for units in hidden_sizes] +
      [dense(output_size, output_activation)])


def built(model: tf.keras.Model, *input_sizes: int) -> tf.keras.Model:
  """Creates `model`'s variables by calling it on zero inputs."""
  model(*[tf.zeros([1, size]) for size in input_sizes])
  return model


def copy_of(model: tf.keras.Model, factory, *input_sizes: int):
  """A new model from `factory()` holding `model`'s current weights."""
  target = built(factory(), *input_sizes)
  target.set_weights(model.get_weights())
  return target


def online_and_target(factory, *input_sizes: int):
  """A network from `factory()` and its target network, equal at the start."""
  online = built(factory(), *input_sizes)
  return online, copy_of(online, factory, *input_sizes)


class DeterministicActor(tf.keras.Model):
  """pi(s) in [-1, 1]^action_dim."""

  def __init__(self, action_dim: int, hidden_sizes: Sequence[int],
               seeds: SeedStream):
    super().__init__()
    self.net = mlp(hidden_sizes, action_dim, seeds, 'tanh')

  def call(self, state):
    return self.net(state)


class EnsembleDense(tf.keras.layers.Layer):
  """K dense layers applied side by side: [B, in] or [K, B, in] -> [K, B, out].

  One batched matmul replaces K small ones; each member starts as `mlp`'s
  layers do.
  """

  def __init__(self, num_members: int, units: int, activation, seed: int):
    super().__init__()
    self.num_members = num_members
    self.units = units
    self.activation = tf.keras.activations.get(activation)
    self._seed = seed

  def build(self, input_shape):
    fan_in = int(input_shape[-1])
    limit = 1.0 / np.sqrt(fan_in)
    self.kernel = self.add_weight(
        'kernel', [self.num_members, fan_in, self.units],
        initializer=tf.keras.initializers.RandomUniform(-limit, limit,
                                                        self._seed))
    self.bias = self.add_weight('bias', [self.num_members, 1, self.units],
                                initializer='zeros')

  def call(self, inputs):
    equation = 'bi,kio->kbo' if inputs.shape.rank == 2 else 'kbi,kio->kbo'
    return self.activation(tf.einsum(equation, inputs, self.kernel) +
                           self.bias)


class CriticEnsemble(tf.keras.Model):
  """K independent Q(s, a) MLPs, evaluated together; returns [K, B]."""

  def __init__(self, num_critics: int, hidden_sizes: Sequence[int],
               seeds: SeedStream):
    super().__init__()
    self.num_critics = num_critics
    self.dense_layers = [EnsembleDense(num_critics, units, 'relu', seeds())
                    for units in hidden_sizes]
    self.dense_layers.append(EnsembleDense(num_critics, 1, None, seeds()))

  def call(self, state, action):
    x = tf.concat([state, action], axis=-1)
    for layer in self.dense_layers:
      x = layer(x)
    return x[..., 0]


class PerturbationActor(tf.keras.Model):
  """BCQ's xi(s, a): a perturbation direction in [-1, 1]^action_dim."""

  def __init__(self, action_dim: int, hidden_sizes: Sequence[int],
               seeds: SeedStream):
    super().__init__()
    self.net = mlp(hidden_sizes, action_dim, seeds, 'tanh')

  def call(self, state, action):
    return self.net(tf.concat([state, action], axis=-1))


class BehaviourVAE(tf.keras.Model):
  """BCQ's conditional VAE of the behaviour policy, p(a | s) via z ~ N(0, I).

  The encoder's log-std is clipped to [-4, 15] and the decoder squashes with
  tanh, as in the BCQ reference code.
  """

  def __init__(self, action_dim: int, latent_dim: int,
               hidden_sizes: Sequence[int], seeds: SeedStream):
    super().__init__()
    self.latent_dim = latent_dim
    self.encoder = mlp(hidden_sizes, 2 * latent_dim, seeds)
    self.decoder = mlp(hidden_sizes, action_dim, seeds, 'tanh')

  def encode(self, state, action):
    mean, log_std = tf.split(
        self.encoder(tf.concat([state, action], axis=-1)), 2, axis=-1)
    return mean, tf.exp(tf.clip_by_value(log_std, -4.0, 15.0))

  def decode(self, state, latent):
    return self.decoder(tf.concat([state, latent], axis=-1))

  def call(self, state, action, noise):
    """Reconstruction, mean and std for `noise` ~ N(0, I) [B, latent]."""
    mean, std = self.encode(state, action)
    return self.decode(state, mean + std * noise), mean, std


class TanhGaussianActor(tf.keras.Model):
  """SAC's policy: a = tanh(u), u ~ N(mu(s), sigma(s)^2)."""

  def __init__(self, action_dim: int, hidden_sizes: Sequence[int],
               seeds: SeedStream):
    super().__init__()
    self.net = mlp(hidden_sizes, 2 * action_dim, seeds)

  def call(self, state):
    mean, log_std = tf.split(self.net(state), 2, axis=-1)
    return mean, tf.clip_by_value(log_std, LOG_STD_MIN, LOG_STD_MAX)

  def sample(self, state, noise):
    """Actions and their log-densities for `noise` ~ N(0, I) [B, action_dim]."""
    mean, log_std = self(state)
    pre_tanh = mean + tf.exp(log_std) * noise
    action = tf.tanh(pre_tanh)
    gaussian_log_prob = tf.reduce_sum(
        -0.5 * tf.square(noise) - log_std - 0.5 * np.log(2 * np.pi), axis=-1)
    # Change of variables through tanh, as in SAC's appendix C.
    log_prob = gaussian_log_prob - tf.reduce_sum(
        tf.math.log(1.0 - tf.square(action) + 1e-6), axis=-1)
    return action, log_prob

  def mode(self, state):
    return tf.tanh(self(state)[0])
