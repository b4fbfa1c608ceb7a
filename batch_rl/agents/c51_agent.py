"""C51 (Bellemare et al., 2017): a categorical return distribution."""

import functools

import gin
import tensorflow as tf

from batch_rl.agents import losses
from batch_rl.agents import optimizers
from batch_rl.agents import q_agent
from batch_rl.agents import registry


@registry.register_agent('c51')
@gin.configurable
class C51Agent(q_agent.QAgent):
  """C51 as Dopamine's RainbowAgent with uniform replay and 1-step returns.

  Outputs are logits over atoms z_i in [-vmax, vmax]; Q(s, a) = sum_i p_i z_i.
  The loss is the cross-entropy from the projection of
  r + gamma^n (1 - terminal) z onto the atoms, weighted by the target
  network's probabilities at argmax_a' Q_target(s', a').
  """

  def __init__(self, num_actions, observation_shape, observation_dtype,
               stack_size, num_atoms: int = 51, vmax: float = 10.,
               optimizer_fn=functools.partial(
                   optimizers.adam_optimizer, learning_rate=2.5e-4,
                   epsilon=3.125e-4),
               **kwargs):
    """See `QAgent`; `num_atoms` atoms are spread evenly on [-vmax, vmax]."""
    self.num_atoms = num_atoms
    self.support = tf.linspace(-float(vmax), float(vmax), num_atoms)
    super().__init__(num_actions, observation_shape, observation_dtype,
                     stack_size, num_outputs=num_atoms,
                     optimizer_fn=optimizer_fn, **kwargs)

  def _q_values(self, outputs):
    return tf.reduce_sum(tf.nn.softmax(outputs) * self.support, axis=-1)

  def _per_example_loss(self, batch, step_inputs):
    del step_inputs
    next_probabilities = tf.nn.softmax(
        self._greedy_outputs(self.target_network(batch['next_state'])))
    target_support = losses.bellman_target(
        batch['reward'], self._bootstrap_discount(batch),
        tf.broadcast_to(self.support, tf.shape(next_probabilities)))
    target = losses.project_distribution(target_support, next_probabilities,
                                         self.support)
    chosen_logits = losses.select_actions(
        self.online_network(batch['state']), batch['action'])
    return tf.nn.softmax_cross_entropy_with_logits(
        labels=tf.stop_gradient(target), logits=chosen_logits)
