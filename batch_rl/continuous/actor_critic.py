"""Deterministic actor-critic agents: DDPG, TD3, their critic ensembles, TD3+BC.

They share one training step (`DDPGAgent`) and differ only in settings:
  * how the K target critics form the TD target (losses.TARGET_COMBINATIONS),
  * target policy smoothing noise and the actor's update delay (TD3),
  * which critic value the actor ascends (Q_1, or the mean over critics),
so TD3 and the ensembles are registered names with presets (`VARIANTS`), not
classes; TD3+BC changes the actor loss and is a subclass.
"""

from typing import Sequence

import gin
import tensorflow as tf

from batch_rl.continuous import losses
from batch_rl.continuous import networks
from batch_rl.continuous.agent import adam
from batch_rl.continuous.agent import ContinuousAgent
from batch_rl.continuous.agent import gradient_step
from batch_rl.continuous.agent import soft_update
from batch_rl.continuous.agent import Transitions

FIRST_CRITIC = 'first'
MEAN_OF_CRITICS = 'mean'

# TD3 (Fujimoto et al., 2018): clipped double Q, smoothing, delayed actor.
TD3_SETTINGS = dict(num_critics=2, target_combination=losses.MINIMUM,
                    policy_noise=0.2, noise_clip=0.5, policy_delay=2)
# K = 4 critics whose mean the actor ascends.
_ENSEMBLE = dict(num_critics=4, actor_objective=MEAN_OF_CRITICS)
# Registered name -> DDPGAgent settings.
VARIANTS = {
    'ddpg': {},
    'td3': TD3_SETTINGS,
    # Each critic regresses on its own target (Ensemble-DQN).
    'ensemble_ddpg': _ENSEMBLE,
    # The critics share a target from a random convex combination (REM).
    'rem_ddpg': dict(_ENSEMBLE, target_combination=losses.REM),
    # The target is the minimum over all K.
    'ensemble_td3': dict(TD3_SETTINGS, **_ENSEMBLE),
    # REM's random convex combination in place of clipped double Q.
    'rem_td3': dict(TD3_SETTINGS, target_combination=losses.REM, **_ENSEMBLE),
}


@gin.configurable
class DDPGAgent(ContinuousAgent):
  """DDPG as the TD3 paper's re-tuned "OurDDPG" (Fujimoto et al., 2018).

  The defaults are those of the authors' current OurDDPG.py: 256-256 MLPs,
  Adam 3e-4 for actor and critic, tau 0.005, actor update every step.

  Args:
    action_dim, observation_shape: as in ContinuousAgent.
    hidden_sizes: hidden layers of the actor and of each critic.
    actor_learning_rate, critic_learning_rate: Adam learning rates.
    tau: target networks track theta' <- tau theta + (1 - tau) theta'.
    num_critics: K.
    target_combination: how the K target critics give TD targets.
    actor_objective: FIRST_CRITIC (ascend Q_1) or MEAN_OF_CRITICS.
    policy_noise, noise_clip: target policy smoothing, clip(N(0, sigma^2),
      -c, c) added to the target actor's actions (0 disables it).
    policy_delay: critic steps per actor and target update.
    **kwargs: ContinuousAgent's arguments (gamma, seed, ...).
  """

  def __init__(self, action_dim: int, observation_shape: Sequence[int],
               hidden_sizes: Sequence[int] = (256, 256),
               actor_learning_rate: float = 3e-4,
               critic_learning_rate: float = 3e-4,
               tau: float = 0.005,
               num_critics: int = 1,
               target_combination: str = losses.INDEPENDENT,
               actor_objective: str = FIRST_CRITIC,
               policy_noise: float = 0.0,
               noise_clip: float = 0.0,
               policy_delay: int = 1,
               **kwargs):
    super().__init__(action_dim, observation_shape, **kwargs)
    name = type(self).__name__
    if target_combination not in losses.TARGET_COMBINATIONS:
      raise ValueError(
          f'{name}.target_combination={target_combination!r}; valid: '
          f'{", ".join(losses.TARGET_COMBINATIONS)}.')
    if actor_objective not in (FIRST_CRITIC, MEAN_OF_CRITICS):
      raise ValueError(f'{name}.actor_objective={actor_objective!r}; valid: '
                       f'{FIRST_CRITIC!r}, {MEAN_OF_CRITICS!r}.')
    if target_combination != losses.INDEPENDENT and num_critics < 2:
      raise ValueError(
          f'{name}.target_combination={target_combination!r} needs '
          f'{name}.num_critics >= 2, got {num_critics}.')
    self.num_critics = num_critics
    self.target_combination = target_combination
    self.actor_objective = actor_objective
    self.tau = tau
    self.policy_noise = policy_noise
    self.noise_clip = noise_clip
    self.policy_delay = policy_delay

    def make_actor():
      return networks.DeterministicActor(self.action_dim, hidden_sizes,
                                         self._seeds)

    def make_critics():
      return networks.CriticEnsemble(num_critics, hidden_sizes, self._seeds)

    self.actor, self.target_actor = networks.online_and_target(
        make_actor, self.observation_dim)
    self.critics, self.target_critics = networks.online_and_target(
        make_critics, self.observation_dim, self.action_dim)
    self.actor_optimizer = adam(actor_learning_rate,
                                self.actor.trainable_variables)
    self.critic_optimizer = adam(critic_learning_rate,
                                 self.critics.trainable_variables)
    # Keeps 'actor_loss' in every step's report when the actor is delayed.
    self._last_actor_loss = tf.Variable(0.0, trainable=False)

  def policy(self, states):
    return self.actor(states)

  def _trackables(self) -> dict:
    return dict(actor=self.actor, critics=self.critics,
                target_actor=self.target_actor,
                target_critics=self.target_critics,
                actor_optimizer=self.actor_optimizer,
                critic_optimizer=self.critic_optimizer,
                last_actor_loss=self._last_actor_loss)

  def _target_actions(self, next_states):
    actions = self.target_actor(next_states)
    if self.policy_noise > 0:
      noise = tf.clip_by_value(
          self.policy_noise * self._generator.normal(tf.shape(actions)),
          -self.noise_clip, self.noise_clip)
      actions = tf.clip_by_value(actions + noise, -1.0, 1.0)
    return actions

  def _critic_targets(self, t: Transitions):
    target_q_values = self.target_critics(t.next_state,
                                          self._target_actions(t.next_state))
    weights = (losses.random_convex_combination(self.num_critics,
                                                self._generator)
               if self.target_combination == losses.REM else None)
    next_q = losses.combine_target_critics(target_q_values,
                                           self.target_combination, weights)
    return losses.td_target(t.reward, t.terminal, next_q,
                            self.cumulative_gamma)

  def _next_state_value(self, next_states):
    """The target critics combined at the target actor's unsmoothed actions;
    REM's mixture is their mean."""
    uniform = tf.fill([self.num_critics], 1.0 / self.num_critics)
    return losses.combine_target_critics(
        self.target_critics(next_states, self.target_actor(next_states)),
        self.target_combination, uniform)

  def _actor_loss(self, q_values, policy_actions, data_actions):
    """-mean Q(s, pi(s)); q_values [B] per the actor objective."""
    del policy_actions, data_actions
    return -tf.reduce_mean(q_values)

  def _update_actor(self, t: Transitions):
    """An actor step, then the target networks follow."""
    variables = self.actor.trainable_variables
    with tf.GradientTape() as tape:
      policy_actions = self.actor(t.state)
      q_values = self.critics(t.state, policy_actions)
      q_values = (q_values[0] if self.actor_objective == FIRST_CRITIC else
                  tf.reduce_mean(q_values, axis=0))
      actor_loss = self._actor_loss(q_values, policy_actions, t.action)
    gradient_step(self.actor_optimizer, tape, actor_loss, variables)
    self._last_actor_loss.assign(actor_loss)
    soft_update(self.target_critics, self.critics, self.tau)
    soft_update(self.target_actor, self.actor, self.tau)

  def _train(self, t: Transitions):
    targets = self._critic_targets(t)
    critic_variables = self.critics.trainable_variables
    with tf.GradientTape() as tape:
      critic_loss = losses.critic_loss(self.critics(t.state, t.action),
                                       targets)
    gradient_step(self.critic_optimizer, tape, critic_loss, critic_variables)

    # Steps 0, d, 2d, ... update the actor; a tensor condition, so one graph
    # serves both kinds of step.
    if self._gradient_step_counter % self.policy_delay == 0:
      self._update_actor(t)
    return {'loss': critic_loss, 'critic_loss': critic_loss,
            'actor_loss': self._last_actor_loss.read_value()}


@gin.configurable
class TD3BCAgent(DDPGAgent):
  """TD3+BC (Fujimoto & Gu, 2021): TD3 whose actor also clones the data.

  Registered as `td3_bc` with TD3_SETTINGS.

  The paper's state normalisation needs dataset statistics and is left to
  the data (it reports a small effect); alpha = 2.5 weighs Q against BC.
  """

  def __init__(self, action_dim: int, observation_shape: Sequence[int],
               alpha: float = 2.5, **kwargs):
    super().__init__(action_dim, observation_shape, **kwargs)
    self.alpha = alpha

  def _actor_loss(self, q_values, policy_actions, data_actions):
    return losses.td3_bc_actor_loss(q_values, policy_actions, data_actions,
                                    self.alpha)
