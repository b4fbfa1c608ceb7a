"""The training machinery every discrete agent shares.

`QAgent` owns acting (frame stack, epsilon-greedy), the distributed train
step, target-network updates and checkpoints. A subclass only says what its
network outputs per action and what its loss is:

  _create_network(name)        -> Keras model, state -> [B, A, D]
  _q_values(outputs)           -> [B, A] values to act greedily on
  _per_example_loss(batch, step_inputs) -> [B]
  _sample_step_inputs()        -> dict of per-step random draws (REM's alpha)
  _greedy_actions(outputs)     -> [B] actions acted on (argmax of _q_values)
"""

import abc
import os

import numpy as np
import tensorflow as tf

from batch_rl.agents import losses
from batch_rl.agents import networks
from batch_rl.agents import train_loop

# Keys of a transition batch (docs/DESIGN.md) that the train step reads.
TRAIN_BATCH_KEYS = ('state', 'action', 'reward', 'next_state', 'terminal')
CHECKPOINT_PREFIX = 'tf_ckpt'


def linearly_decaying_epsilon(decay_period, step, warmup_steps, epsilon):
  """1 for `warmup_steps`, then linearly down to `epsilon` over `decay_period`.

  Dopamine's Nature DQN schedule, with the same argument order.
  """
  steps_left = decay_period + warmup_steps - step
  bonus = (1.0 - epsilon) * steps_left / decay_period
  return epsilon + float(np.clip(bonus, 0.0, 1.0 - epsilon))


def checkpoint_prefix(checkpoint_dir: str, iteration: int) -> str:
  """Path prefix of the agent's TF checkpoint files for `iteration`."""
  return os.path.join(checkpoint_dir, f'{CHECKPOINT_PREFIX}-{iteration}')


class QAgent(train_loop.MultiStepTraining, abc.ABC):
  """Base class of the discrete agents: acting, train step, checkpoints."""

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
               epsilon_fn=linearly_decaying_epsilon,
               epsilon_train: float = 0.01,
               epsilon_eval: float = 0.001,
               epsilon_decay_period: int = 250000,
               min_replay_history: int = 20000,
               reward_clip=1.0,
               eval_mode: bool = False,
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
      epsilon_fn: schedule (decay_period, step, warmup_steps, epsilon) -> eps
        for acting in training mode.
      epsilon_train: final epsilon of the schedule.
      epsilon_eval: epsilon in eval mode.
      epsilon_decay_period: agent steps over which epsilon decays.
      min_replay_history: agent steps at epsilon 1 before the decay starts.
      reward_clip: train on rewards clipped to [-reward_clip, reward_clip]
        (Dopamine clips the n-step return to [-1, 1]); None to keep them.
      eval_mode: whether the agent acts with `epsilon_eval`.
      strategy: `tf.distribute.Strategy` for the train step; the current
        (by default the default) strategy if None.
      jit_compile: XLA-compile the loss and gradient computation.
      seed: seeds epsilon-greedy draws and per-step random draws; the network
        initialization follows TensorFlow's global seed.
    """
    self.num_actions = num_actions
    self.observation_shape = tuple(observation_shape)
    self.observation_dtype = tf.as_dtype(observation_dtype)
    self.stack_size = stack_size
    self.num_outputs = num_outputs
    self.gamma = gamma
    self.update_horizon = update_horizon
    self.cumulative_gamma = gamma**update_horizon
    self.target_update_period = target_update_period
    self.epsilon_fn = epsilon_fn
    self.epsilon_train = epsilon_train
    self.epsilon_eval = epsilon_eval
    self.epsilon_decay_period = epsilon_decay_period
    self.min_replay_history = min_replay_history
    self.reward_clip = reward_clip
    self.eval_mode = eval_mode
    # Agent steps taken in training mode, as Dopamine counts them for epsilon.
    self.training_steps = 0
    self._rng = np.random.default_rng(seed)
    # Per-step draws happen in the cross-replica context, outside the
    # strategy's scope, so every replica sees the same draw.
    self._step_generator = (
        tf.random.Generator.from_seed(seed) if seed is not None else
        tf.random.Generator.from_non_deterministic_state())

    self.state_shape = (1,) + self.observation_shape + (stack_size,)
    self.state = np.zeros(self.state_shape,
                          self.observation_dtype.as_numpy_dtype)

    self._strategy = strategy or tf.distribute.get_strategy()
    with self._strategy.scope():
      self.online_network = self._create_network(name='online')
      self.target_network = self._create_network(name='target')
      dummy_state = tf.zeros(self.state_shape, self.observation_dtype)
      self.online_network(dummy_state)
      self.target_network(dummy_state)
      self.optimizer = optimizer_fn()
      # Slots now rather than at the first step, so restores are immediate.
      self.optimizer.build(self.online_network.trainable_variables)
    self._sync_target_network()

    self._checkpoint = tf.train.Checkpoint(
        online_network=self.online_network,
        target_network=self.target_network,
        optimizer=self.optimizer,
        step_generator=self._step_generator)
    self._loss_and_gradients = tf.function(
        self._loss_and_gradients_fn, jit_compile=True) if jit_compile else (
            self._loss_and_gradients_fn)
    self._train_step = tf.function(self.train_ops, reduce_retracing=True)
    self._greedy_action = tf.function(self._greedy_action_fn)

  # ---- What subclasses define. ----

  def _create_network(self, name: str):
    """A network mapping states to [B, num_actions, num_outputs]."""
    return networks.QHeadsNetwork(self.num_actions, self.num_outputs,
                                  name=name)

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

  def _greedy_actions(self, outputs):
    """[B] int32 greedy actions: of highest `_q_values` unless overridden.

    What the agent acts on and what `_greedy_outputs` bootstraps from; an
    agent that restricts its actions (discrete BCQ) overrides this.
    """
    return tf.argmax(self._q_values(outputs), axis=1, output_type=tf.int32)

  def _greedy_outputs(self, outputs):
    """[B, D] outputs at the action of `_greedy_actions`."""
    return losses.select_actions(outputs, self._greedy_actions(outputs))

  # ---- Acting. ----

  def q_values(self, states):
    """[B, A] Q-values of the online network on stacked states."""
    return self._q_values(self.online_network(states))

  def _greedy_action_fn(self, state):
    return self._greedy_actions(self.online_network(state))[0]

  def _epsilon(self) -> float:
    if self.eval_mode:
      return self.epsilon_eval
    return self.epsilon_fn(self.epsilon_decay_period, self.training_steps,
                           self.min_replay_history, self.epsilon_train)

  def _select_action(self) -> int:
    if self._rng.random() <= self._epsilon():
      return int(self._rng.integers(self.num_actions))
    return int(self._greedy_action(self.state))

  def _record_observation(self, observation):
    observation = np.asarray(observation)
    if observation.shape != self.observation_shape:
      raise ValueError(
          f'observation has shape {observation.shape}; this agent was built '
          f'for frames of shape {self.observation_shape}.')
    # The newest frame goes last, as in Dopamine's state stacking.
    self.state = np.roll(self.state, -1, axis=-1)
    self.state[0, ..., -1] = observation

  def _count_training_step(self):
    if not self.eval_mode:
      self.training_steps += 1

  def begin_episode(self, observation) -> int:
    """Resets the frame stack, records the first frame and acts."""
    self.state = np.zeros_like(self.state)
    self._record_observation(observation)
    self._count_training_step()
    return self._select_action()

  def step(self, reward, observation) -> int:
    """Records the next frame and acts; offline agents ignore the reward."""
    del reward
    self._record_observation(observation)
    self._count_training_step()
    return self._select_action()

  def end_episode(self, reward, terminal: bool = True):
    """Ends an episode; offline agents learn only from logged data."""
    del reward, terminal

  # ---- Training. ----

  def _loss_and_gradients_fn(self, batch, step_inputs):
    variables = self.online_network.trainable_variables
    with tf.GradientTape() as tape:
      per_example = self._per_example_loss(batch, step_inputs)
      # Scaled by 1 / (global batch size): gradients are summed over replicas.
      loss = tf.nn.compute_average_loss(per_example)
    return loss, tape.gradient(loss, variables)

  def _replica_train_step(self, batch, step_inputs):
    if self.reward_clip is not None:
      batch = dict(batch, reward=tf.clip_by_value(
          batch['reward'], -self.reward_clip, self.reward_clip))
    loss, gradients = self._loss_and_gradients(batch, step_inputs)
    self.optimizer.apply_gradients(
        zip(gradients, self.online_network.trainable_variables))
    return loss

  def _sync_target_network(self):
    for target, online in zip(self.target_network.variables,
                              self.online_network.variables):
      target.assign(online)

  def _check_batch(self, batch):
    missing = [key for key in TRAIN_BATCH_KEYS if key not in batch]
    if missing:
      raise ValueError(
          f'train_step batch lacks keys {missing}; expected at least '
          f'{list(TRAIN_BATCH_KEYS)} (docs/DESIGN.md).')
    expected = self.state_shape[1:]
    for key in ('state', 'next_state'):
      # A distributed batch holds one tensor per replica.
      shape = tuple(
          self._strategy.experimental_local_results(batch[key])[0].shape[1:])
      if shape != expected:
        raise ValueError(
            f"train_step batch['{key}'] has shape [B, {shape}]; this agent "
            f'expects [B, {expected}] (frame shape + stack_size).')

  def train_ops(self, batch) -> dict:
    """The ops of one gradient step on `batch`, for use in a tf.function."""
    self._check_batch(batch)
    step_inputs = self._sample_step_inputs()
    replica_losses = self._strategy.run(
        self._replica_train_step,
        args=({key: batch[key] for key in TRAIN_BATCH_KEYS}, step_inputs))
    loss = self._strategy.reduce(
        tf.distribute.ReduceOp.SUM, replica_losses, axis=None)
    if self.optimizer.iterations % self.target_update_period == 0:
      self._sync_target_network()
    return {'loss': loss}

  def train_step(self, batch) -> dict:
    """One gradient step on a transition batch (dict of docs/DESIGN.md).

    The batch is a dict of tensors or arrays, or of per-replica values from
    `strategy.experimental_distribute_dataset`.

    Returns:
      {'loss': scalar tensor}, the loss averaged over the global batch; not
      converted to a float here, so the caller decides when to wait for it.
    """
    return self._train_step(
        {key: value for key, value in batch.items() if key in TRAIN_BATCH_KEYS})

  @property
  def gradient_steps(self) -> int:
    """Gradient steps taken so far (restored from checkpoints)."""
    return int(self.optimizer.iterations.numpy())

  # ---- Checkpoints. ----

  def bundle_and_checkpoint(self, checkpoint_dir: str, iteration: int) -> dict:
    """Writes networks, optimizer and RNG to `tf_ckpt-<iteration>` files.

    Returns:
      The Python state to pickle alongside (as Dopamine's agents return it).
    """
    tf.io.gfile.makedirs(checkpoint_dir)
    self._checkpoint.write(checkpoint_prefix(checkpoint_dir, iteration))
    return {'state': self.state.copy(), 'training_steps': self.training_steps}

  def unbundle(self, checkpoint_dir: str, iteration: int, bundle) -> bool:
    """Restores what `bundle_and_checkpoint` saved; False if there is none."""
    prefix = checkpoint_prefix(checkpoint_dir, iteration)
    if not tf.io.gfile.exists(prefix + '.index'):
      return False
    try:
      self._checkpoint.read(prefix).assert_existing_objects_matched()
    except (AssertionError, ValueError) as error:
      raise ValueError(
          f'{prefix} is not a checkpoint of this {type(self).__name__} '
          f'(its networks or optimizer differ): {error}') from error
    if bundle is not None:
      self.state = bundle['state'].copy()
      self.training_steps = bundle['training_steps']
    return True
