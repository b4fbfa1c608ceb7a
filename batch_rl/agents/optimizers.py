"""Optimizer factories for the agents' `optimizer_fn` (gin: `@adam_optimizer`).

Agents call the factory inside their distribution strategy's scope, so the
optimizer's variables are created where the strategy wants them.

The original release ran TF1 optimizers. Keras 2's Adam is the same update as
`tf.compat.v1.train.AdamOptimizer` (epsilon added after the bias-corrected
step size). Keras 2's RMSprop puts epsilon inside the square root as TF1's
`RMSPropOptimizer` does, but starts its mean square at 0 where TF1 starts it
at 1, which damps TF1's first updates; `TF1RMSprop` starts it at 1 and so
reproduces TF1's centered RMSProp update for update.
"""

import gin
import tensorflow as tf


class TF1RMSprop(tf.keras.optimizers.RMSprop):
  """Keras RMSprop whose mean-square accumulator starts at 1, as in TF1."""

  def add_variable_from_reference(self, model_variable, variable_name,
                                  shape=None, initial_value=None):
    if variable_name == 'velocity':
      initial_value = tf.ones(model_variable.shape, model_variable.dtype)
    return super().add_variable_from_reference(
        model_variable, variable_name, shape=shape,
        initial_value=initial_value)


@gin.configurable
def adam_optimizer(learning_rate: float, epsilon: float):
  """Adam with the release's (learning_rate, epsilon); betas 0.9, 0.999."""
  return tf.keras.optimizers.Adam(learning_rate=learning_rate, epsilon=epsilon)


@gin.configurable
def centered_rmsprop_optimizer(learning_rate: float = 2.5e-4,
                               rho: float = 0.95,
                               momentum: float = 0.0,
                               epsilon: float = 1e-5):
  """TF1's centered RMSProp; the defaults are Nature DQN's (Dopamine's)."""
  return TF1RMSprop(learning_rate=learning_rate, rho=rho, momentum=momentum,
                    epsilon=epsilon, centered=True)
