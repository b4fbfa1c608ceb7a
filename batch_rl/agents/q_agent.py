"""The training machinery every discrete agent shares.

`QAgent` adds to `base.Agent` the online and target Q-networks, the
distributed train step and target-network updates; it explores with
`exploration.EpsilonGreedy` unless given another piece. A subclass only says
what its network outputs per action and what its loss is:

  _create_network(name)        -> Keras model, state -> [B, A, D]
  _q_values(outputs)           -> [B, A] values to act greedily on
  _per_example_loss(batch, step_inputs) -> [B]
  _sample_step_inputs()        -> dict of per-step random draws (REM's alpha)
  _greedy_from_outputs(outputs) -> [B] actions acted on (argmax of _q_values)
and may use `_bootstrap_discount(batch)` and `_greedy_outputs(outputs)`.
"""

import abc

import tensorflow as tf

from batch_rl.agents import base
from batch_rl.agents import exploration as exploration_lib
from batch_rl.agents import losses
from batch_rl.agents import networks


class QAgent(base.Agent, abc.ABC):
  """Base class of the discrete agents: Q-networks and their train step."""

  ACTION_ARGUMENT = 'num_actions'

  def __init__(self,
               num_actions: int,
               observation_shape,
               observation_dtype,
               stack_size: int,
               num_outputs: int,
               optimizer_fn,
               gamma: float = 0.99,
               update_horizon: int = 1,
               target_update_period: int = 2000,
               exploration=None,
               reward_clip=1.0,
               strategy=None,
               jit_compile: bool = False,
               seed=None):
    """Builds online and target networks and the optimizer.

    Args:
      num_actions: number of discrete actions.
      observation_shape: shape of one frame as stored in the replay, e.g.
        (84, 84) for Atari, (10, 10, C) for MinAtar, (obs_dim,) for classic.
      observation_dtype: dtype of the stored frames (np or tf dtype).
      stack_size: frames stacked on the last axis to form a state.
      num_outputs: D, outputs per action of `_create_network`'s network.
      optimizer_fn: zero-argument factory of a Keras optimizer, called inside
        the strategy's scope (see `optimizers`).
      gamma: discount factor.
      update_horizon: n of the n-step returns in the batches; the bootstrap
        discount is gamma ** n on non-terminal transitions.
      target_update_period: gradient steps between target-network copies
        (Dopamine's 8000 agent steps / update_period 4 = 2000).
      exploration: how to act in training and eval mode; None:
        `EpsilonGreedy()` (its parameters from gin).
      reward_clip: train on rewards clipped to [-reward_clip, reward_clip]
        (Dopamine clips the n-step return to [-1, 1]); None to keep them.
      strategy: `tf.distribute.Strategy` for the train step; the current
        (by default the default) strategy if None.
      jit_compile: XLA-compile the loss and gradient computation.
      seed: seeds the network initializers, per-step random draws and
        exploration (see `base.Agent`).
    """
    self.num_actions = num_actions
    self.num_outputs = num_outputs
    self.target_update_period = target_update_period
    self.reward_clip = reward_clip
    super().__init__(base.DiscreteActions(num_actions), observation_shape,
                     observation_dtype, stack_size,
                     exploration or exploration_lib.EpsilonGreedy(),
                     gamma=gamma, update_horizon=update_horizon, seed=seed,
                     strategy=strategy)
    with self._strategy.scope():
      self.online_network = self._create_network(name='online')
      self.target_network = self._create_network(name='target')
      dummy_state = tf.zeros(self.state_shape, self.observation_dtype)
      self.online_network(dummy_state)
      self.target_network(dummy_state)
      self.optimizer = optimizer_fn()
      # Slots now rather than at the first step, so restores are immediate.
      self.optimizer.build(self.online_network.trainable_variables)
    self._gradient_step_counter = self.optimizer.iterations
    self._sync_target_network()
    self._loss_and_gradients = tf.function(
        self._loss_and_gradients_fn, jit_compile=True) if jit_compile else (
            self._loss_and_gradients_fn)

  # ---- What subclasses define. ----

  def _create_network(self, name: str):
    """A network mapping states to [B, num_actions, num_outputs]."""
    return networks.QHeadsNetwork(self.num_actions, self.num_outputs,
                                  seeds=self._seeds, name=name)

  def _q_values(self, outputs):
    """[B, A]: the values acted on greedily; the mean over the D outputs."""
    return tf.reduce_mean(outputs, axis=-1)

  @abc.abstractmethod
  def _per_example_loss(self, batch, step_inputs):
    """[B] loss of each transition; online and target networks in reach."""

  def _sample_step_inputs(self):
    """Random draws shared by all replicas of one train step."""
    return {}

  # ---- Shared helpers for the losses. ----

  def _bootstrap_discount(self, batch):
    """[B] gamma ** n, zero where a terminal occurs within the n steps."""
    return self.cumulative_gamma * (1. - tf.cast(batch['terminal'], tf.float32))

  def _greedy_from_outputs(self, outputs):
    """[B] int32 greedy actions: of highest `_q_values` unless overridden.

    What the agent acts on and what `_greedy_outputs` bootstraps from; an
    agent that restricts its actions (discrete BCQ) overrides this.
    """
    return tf.argmax(self._q_values(outputs), axis=1, output_type=tf.int32)

  def _greedy_outputs(self, outputs):
    """[B, D] outputs at the action of `_greedy_actions`."""
    return losses.select_actions(outputs, self._greedy_from_outputs(outputs))

  def _clip_rewards(self, batch):
    if self.reward_clip is None:
      return batch
    return dict(batch, reward=tf.clip_by_value(
        batch['reward'], -self.reward_clip, self.reward_clip))

  # ---- Evaluation. ----

  def q_values(self, states):
    """[B, A] Q-values of the online network on stacked states."""
    return self._q_values(self.online_network(states))

  def _greedy_actions(self, states):
    return self._greedy_from_outputs(self.online_network(states))

  def _td_error(self, batch):
    """y - Q(s, a), y = clip(r) + gamma^n (1 - terminal) Q_target(s', a*).

    Q is `_q_values` (the mean over heads, or the expectation of the return
    distribution) and a* the target network's greedy action per
    `_greedy_outputs`, so every discrete agent is scored on the same scale.
    """
    batch = self._clip_rewards(batch)
    greedy_next = self._greedy_outputs(self.target_network(
        batch['next_state']))
    next_values = self._q_values(greedy_next[:, None, :])[:, 0]
    target = losses.bellman_target(batch['reward'],
                                   self._bootstrap_discount(batch),
                                   next_values)
    return target - losses.select_actions(self.q_values(batch['state']),
                                          batch['action'])

  # ---- Training. ----

  def _loss_and_gradients_fn(self, batch, step_inputs):
    variables = self.online_network.trainable_variables
    with tf.GradientTape() as tape:
      per_example = self._per_example_loss(batch, step_inputs)
      # Scaled by 1 / (global batch size): gradients are summed over replicas.
      loss = tf.nn.compute_average_loss(per_example)
    return loss, tape.gradient(loss, variables)

  def _replica_train_step(self, batch, step_inputs):
    loss, gradients = self._loss_and_gradients(self._clip_rewards(batch),
                                               step_inputs)
    self.optimizer.apply_gradients(
        zip(gradients, self.online_network.trainable_variables))
    return loss

  def _sync_target_network(self):
    for target, online in zip(self.target_network.variables,
                              self.online_network.variables):
      target.assign(online)

  def _train_ops(self, batch) -> dict:
    step_inputs = self._sample_step_inputs()
    replica_losses = self._strategy.run(self._replica_train_step,
                                        args=(batch, step_inputs))
    loss = self._strategy.reduce(
        tf.distribute.ReduceOp.SUM, replica_losses, axis=None)
    if self.optimizer.iterations % self.target_update_period == 0:
      self._sync_target_network()
    return {'loss': loss}

  def _trackables(self) -> dict:
    return dict(online_network=self.online_network,
                target_network=self.target_network, optimizer=self.optimizer)
