"""CQL(H) for continuous actions (Kumar et al., 2020), on top of SAC.

SAC with twin critics and a learned temperature, plus the conservative
penalty on each critic: a logsumexp of Q over uniform and policy actions
(importance-weighted by their densities) minus Q at the data actions. As in
the authors' MuJoCo settings: deterministic backup (no entropy term in the
target), weight 5, 10 sampled actions per proposal, no Lagrange tuning.
"""

from typing import Optional, Sequence

import gin
import numpy as np
import tensorflow as tf

from batch_rl.continuous import losses
from batch_rl.continuous import networks
from batch_rl.continuous.agent import adam
from batch_rl.continuous.agent import ContinuousAgent
from batch_rl.continuous.agent import gradient_step
from batch_rl.continuous.agent import soft_update
from batch_rl.continuous.agent import Transitions


@gin.configurable
class CQLAgent(ContinuousAgent):
  """Conservative Q-learning with a SAC actor.

  Args:
    action_dim, observation_shape: as in ContinuousAgent.
    hidden_sizes: hidden layers of the policy and of each critic.
    policy_learning_rate: Adam rate of the policy and the temperature.
    critic_learning_rate: Adam rate of the critics.
    tau: target critic update rate.
    cql_weight: weight of the conservative penalty.
    num_sampled_actions: actions per proposal (uniform, pi(.|s), pi(.|s')).
    temperature: temperature of the penalty's logsumexp.
    target_entropy: SAC's entropy target; None means -action_dim.
    **kwargs: ContinuousAgent's arguments.
  """

  def __init__(self, action_dim: int, observation_shape: Sequence[int],
               hidden_sizes: Sequence[int] = (256, 256, 256),
               policy_learning_rate: float = 1e-4,
               critic_learning_rate: float = 3e-4,
               tau: float = 0.005,
               cql_weight: float = 5.0,
               num_sampled_actions: int = 10,
               temperature: float = 1.0,
               target_entropy: Optional[float] = None,
               **kwargs):
    super().__init__(action_dim, observation_shape, **kwargs)
    self.tau = tau
    self.cql_weight = cql_weight
    self.num_sampled_actions = num_sampled_actions
    self.temperature = temperature
    self.target_entropy = (-float(self.action_dim) if target_entropy is None
                           else target_entropy)

    def make_critics():
      return networks.CriticEnsemble(2, hidden_sizes, self._seeds)

    self.actor = networks.built(
        networks.TanhGaussianActor(self.action_dim, hidden_sizes, self._seeds),
        self.observation_dim)
    self.critics, self.target_critics = networks.online_and_target(
        make_critics, self.observation_dim, self.action_dim)
    self.log_alpha = tf.Variable(0.0, name='log_alpha')
    self.actor_optimizer = adam(policy_learning_rate,
                                self.actor.trainable_variables)
    self.alpha_optimizer = adam(policy_learning_rate, [self.log_alpha])
    self.critic_optimizer = adam(critic_learning_rate,
                                 self.critics.trainable_variables)

  def policy(self, states):
    return self.actor.mode(states)

  def _next_state_value(self, next_states):
    """min_k Q'_k(s', a'), a' the policy's mode in place of a sample."""
    return losses.soft_clipped_double_q(
        self.target_critics(next_states, self.actor.mode(next_states)))

  def _trackables(self) -> dict:
    return dict(actor=self.actor, critics=self.critics,
                target_critics=self.target_critics, log_alpha=self.log_alpha,
                actor_optimizer=self.actor_optimizer,
                alpha_optimizer=self.alpha_optimizer,
                critic_optimizer=self.critic_optimizer)

  def _sample_policy(self, states):
    noise = self._generator.normal([tf.shape(states)[0], self.action_dim])
    return self.actor.sample(states, noise)

  def _proposals(self, states, next_states):
    """N actions per state from U(-1, 1), pi(.|s) and pi(.|s'), with log mu.

    Returns actions [B * 3N, A] ordered state-major, log-densities [B, 3N].
    """
    n = self.num_sampled_actions
    batch = tf.shape(states)[0]
    uniform = self._generator.uniform([batch * n, self.action_dim], -1., 1.)
    uniform_log_density = tf.fill(
        [batch, n], tf.constant(self.action_dim * np.log(0.5), tf.float32))
    current, current_log_prob = self._sample_policy(
        tf.repeat(states, n, axis=0))
    following, following_log_prob = self._sample_policy(
        tf.repeat(next_states, n, axis=0))
    actions = tf.concat([
        tf.reshape(a, [batch, n, self.action_dim])
        for a in (uniform, current, following)], axis=1)
    log_densities = tf.concat(
        [uniform_log_density, tf.reshape(current_log_prob, [batch, n]),
         tf.reshape(following_log_prob, [batch, n])], axis=1)
    return (tf.stop_gradient(tf.reshape(actions, [-1, self.action_dim])),
            tf.stop_gradient(log_densities))

  def _train(self, t: Transitions):
    next_actions, _ = self._sample_policy(t.next_state)
    targets = losses.td_target(
        t.reward, t.terminal,
        losses.soft_clipped_double_q(
            self.target_critics(t.next_state, next_actions)),
        self.cumulative_gamma)
    proposals, log_densities = self._proposals(t.state, t.next_state)
    samples = 3 * self.num_sampled_actions
    critic_variables = self.critics.trainable_variables
    with tf.GradientTape() as tape:
      data_q = self.critics(t.state, t.action)
      sampled_q = tf.reshape(
          self.critics(tf.repeat(t.state, samples, axis=0), proposals),
          [self.critics.num_critics, -1, samples])
      td_loss = losses.critic_loss(data_q, targets)
      penalty = tf.add_n([
          losses.cql_penalty(data_q[k], sampled_q[k], log_densities,
                             self.temperature)
          for k in range(self.critics.num_critics)])
      critic_loss = td_loss + self.cql_weight * penalty
    gradient_step(self.critic_optimizer, tape, critic_loss, critic_variables)

    alpha = tf.exp(self.log_alpha)
    actor_variables = self.actor.trainable_variables
    with tf.GradientTape() as tape:
      actions, log_prob = self._sample_policy(t.state)
      q = tf.reduce_min(self.critics(t.state, actions), axis=0)
      actor_loss = tf.reduce_mean(alpha * log_prob - q)
    gradient_step(self.actor_optimizer, tape, actor_loss, actor_variables)
    with tf.GradientTape() as tape:
      alpha_loss = -tf.reduce_mean(
          self.log_alpha * tf.stop_gradient(log_prob + self.target_entropy))
    gradient_step(self.alpha_optimizer, tape, alpha_loss, [self.log_alpha])
    soft_update(self.target_critics, self.critics, self.tau)
    return {'loss': critic_loss, 'td_loss': td_loss, 'cql_penalty': penalty,
            'actor_loss': actor_loss, 'alpha': alpha}
