"""BCQ (Fujimoto, Meger & Precup, 2019), continuous version.

A conditional VAE models the behaviour policy; a perturbation network moves
its samples by at most phi * max_action; the policy picks, among N perturbed
samples, the action with the highest Q_1. Critic targets take the soft
clipped double Q, lam * min + (1 - lam) * max, maximised over 10 samples.
"""

from typing import Optional, Sequence

import gin
import tensorflow as tf

from batch_rl.continuous import losses
from batch_rl.continuous import networks
from batch_rl.continuous.agent import adam
from batch_rl.continuous.agent import ContinuousAgent
from batch_rl.continuous.agent import gradient_step
from batch_rl.continuous.agent import soft_update
from batch_rl.continuous.agent import Transitions

LATENT_CLIP = 0.5  # Decoding draws z ~ N(0, I) clipped to [-0.5, 0.5].


@gin.configurable
class BCQAgent(ContinuousAgent):
  """Batch-Constrained deep Q-learning, as in the authors' reference code.

  Args:
    action_dim, observation_shape: as in ContinuousAgent.
    actor_hidden_sizes, critic_hidden_sizes, vae_hidden_sizes: MLP layers.
    latent_dim: VAE latent size; None means 2 * action_dim.
    actor_learning_rate, critic_learning_rate, vae_learning_rate: Adam.
    tau: target network update rate.
    lam: weight of the minimum in the soft clipped double Q.
    phi: perturbation bound, |xi| <= phi * max_action.
    kl_weight: weight of the VAE's KL term.
    num_target_samples: sampled actions per next state in the TD target.
    num_policy_samples: sampled actions per state when acting.
    **kwargs: ContinuousAgent's arguments.
  """

  def __init__(self, action_dim: int, observation_shape: Sequence[int],
               actor_hidden_sizes: Sequence[int] = (400, 300),
               critic_hidden_sizes: Sequence[int] = (400, 300),
               vae_hidden_sizes: Sequence[int] = (750, 750),
               latent_dim: Optional[int] = None,
               actor_learning_rate: float = 1e-3,
               critic_learning_rate: float = 1e-3,
               vae_learning_rate: float = 1e-3,
               tau: float = 0.005,
               lam: float = 0.75,
               phi: float = 0.05,
               kl_weight: float = 0.5,
               num_target_samples: int = 10,
               num_policy_samples: int = 100,
               **kwargs):
    super().__init__(action_dim, observation_shape, **kwargs)
    self.latent_dim = latent_dim or 2 * self.action_dim
    self.tau, self.lam, self.phi = tau, lam, phi
    self.kl_weight = kl_weight
    self.num_target_samples = num_target_samples
    self.num_policy_samples = num_policy_samples

    def make_actor():
      return networks.PerturbationActor(self.action_dim, actor_hidden_sizes,
                                        self._seeds)

    def make_critics():
      return networks.CriticEnsemble(2, critic_hidden_sizes, self._seeds)

    self.vae = networks.BehaviourVAE(self.action_dim, self.latent_dim,
                                     vae_hidden_sizes, self._seeds)
    networks.built(self.vae, self.observation_dim, self.action_dim,
                   self.latent_dim)
    self.actor, self.target_actor = networks.online_and_target(
        make_actor, self.observation_dim, self.action_dim)
    self.critics, self.target_critics = networks.online_and_target(
        make_critics, self.observation_dim, self.action_dim)
    self.actor_optimizer = adam(actor_learning_rate,
                                self.actor.trainable_variables)
    self.critic_optimizer = adam(critic_learning_rate,
                                 self.critics.trainable_variables)
    self.vae_optimizer = adam(vae_learning_rate, self.vae.trainable_variables)

  def _trackables(self) -> dict:
    return dict(vae=self.vae, actor=self.actor, critics=self.critics,
                target_actor=self.target_actor,
                target_critics=self.target_critics,
                actor_optimizer=self.actor_optimizer,
                critic_optimizer=self.critic_optimizer,
                vae_optimizer=self.vae_optimizer)

  def _sample_behaviour_actions(self, states):
    latent = tf.clip_by_value(
        self._generator.normal([tf.shape(states)[0], self.latent_dim]),
        -LATENT_CLIP, LATENT_CLIP)
    return self.vae.decode(states, latent)

  def _perturbed(self, actor, states, actions):
    return losses.perturb_actions(actions, actor(states, actions), self.phi)

  def _best_of_samples(self, states, num_samples, actor, critics, reduce_q):
    """Per state, the best of `num_samples` perturbed VAE samples.

    Returns (actions [B, A], values [B]) where the value of a sample is
    `reduce_q` of the critics' [K, B * N] values.
    """
    repeated = tf.repeat(states, num_samples, axis=0)
    actions = self._perturbed(actor, repeated,
                              self._sample_behaviour_actions(repeated))
    values = tf.reshape(reduce_q(critics(repeated, actions)),
                        [-1, num_samples])
    best = tf.argmax(values, axis=1, output_type=tf.int32)
    actions = tf.reshape(actions, [-1, num_samples, self.action_dim])
    return (tf.gather(actions, best, batch_dims=1),
            tf.gather(values, best, batch_dims=1))

  def policy(self, states):
    actions, _ = self._best_of_samples(states, self.num_policy_samples,
                                       self.actor, self.critics,
                                       lambda q: q[0])
    return actions

  def _next_state_value(self, next_states):
    """The soft clipped double Q at one perturbed action per state: the
    VAE's decoding of the latent mean (0) in place of 10 samples."""
    latent = tf.zeros([tf.shape(next_states)[0], self.latent_dim])
    actions = self._perturbed(self.target_actor, next_states,
                              self.vae.decode(next_states, latent))
    return losses.soft_clipped_double_q(
        self.target_critics(next_states, actions), self.lam)

  def _train(self, t: Transitions):
    vae_variables = self.vae.trainable_variables
    with tf.GradientTape() as tape:
      reconstruction, mean, std = self.vae(
          t.state, t.action, self._generator.normal(
              [tf.shape(t.state)[0], self.latent_dim]))
      vae_loss = losses.vae_loss(t.action, reconstruction, mean, std,
                                 self.kl_weight)
    gradient_step(self.vae_optimizer, tape, vae_loss, vae_variables)

    _, next_q = self._best_of_samples(
        t.next_state, self.num_target_samples, self.target_actor,
        self.target_critics,
        lambda q: losses.soft_clipped_double_q(q, self.lam))
    targets = losses.td_target(t.reward, t.terminal, next_q,
                               self.cumulative_gamma)
    critic_variables = self.critics.trainable_variables
    with tf.GradientTape() as tape:
      critic_loss = losses.critic_loss(self.critics(t.state, t.action),
                                       targets)
    gradient_step(self.critic_optimizer, tape, critic_loss, critic_variables)

    actor_variables = self.actor.trainable_variables
    behaviour_actions = self._sample_behaviour_actions(t.state)
    with tf.GradientTape() as tape:
      actor_loss = -tf.reduce_mean(self.critics(
          t.state, self._perturbed(self.actor, t.state, behaviour_actions))[0])
    gradient_step(self.actor_optimizer, tape, actor_loss, actor_variables)
    soft_update(self.target_critics, self.critics, self.tau)
    soft_update(self.target_actor, self.actor, self.tau)
    return {'loss': critic_loss, 'critic_loss': critic_loss,
            'actor_loss': actor_loss, 'vae_loss': vae_loss}
