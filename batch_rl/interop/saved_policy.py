"""An agent's evaluation policy as a SavedModel that needs only TensorFlow.

The export is a plain `tf.Module`, not TF-Agents' PolicySaver format:
loading it takes `tf.saved_model.load(path)` and nothing of batch_rl or
TF-Agents, and acting is one call on a batch of states,

  policy = tf.saved_model.load(path)
  actions = policy.action(states)

where PolicySaver's `action` wants a TimeStep (step_type, reward, discount,
observation) and a policy state that a stateless greedy policy does not
have. A TF-Agents user wraps it in one line if they want a TF-Agents policy
(docs/TF_AGENTS.md).

What `action` takes and gives:
  discrete agents   [B, *frame_shape, stack_size] stacked states, as the
                    replay's `state` holds them (K frames on the last axis,
                    the newest last, zeros before an episode's first frame)
                    -> [B] int32 greedy actions (argmax of the Q-values,
                    without the evaluation epsilon); `q_values` gives [B, A].
  continuous agents [B, observation_dim] float32 -> [B, action_dim] float32
                    in [-1, 1], the agent's `policy` (its evaluation policy).
The frame stack stays outside: a SavedModel function has no per-episode
state, and taking stacked states lets one call serve any number of
environments and reproduce the agent on logged states exactly.
"""

import tensorflow as tf


class SavedPolicy(tf.Module):
  """Holds the agent's variables and its greedy policy as tf.functions."""

  def __init__(self, agent):
    super().__init__(name='policy')
    if hasattr(agent, 'q_values'):
      state_spec = tf.TensorSpec(
          [None, *agent.observation_shape, agent.stack_size],
          agent.observation_dtype, name='state')
      self.q_values = tf.function(agent.q_values, input_signature=[state_spec])
      self.action = tf.function(agent.greedy_actions,
                                input_signature=[state_spec])
      functions = (self.q_values, self.action)
    else:
      state_spec = tf.TensorSpec([None, agent.observation_dim], tf.float32,
                                 name='state')
      self.action = tf.function(agent.policy, input_signature=[state_spec])
      functions = (self.action,)
    # Whatever the policy reads (networks, random generators), tracked so
    # that the SavedModel carries it.
    self.captured = list({id(v): v for f in functions
                          for v in f.get_concrete_function().variables
                          }.values())


def save(agent, out_dir: str) -> None:
  """Writes `agent`'s evaluation policy to `out_dir` as a SavedModel."""
  policy = SavedPolicy(agent)
  signatures = {'action': policy.action.get_concrete_function()}
  if hasattr(agent, 'q_values'):
    signatures['q_values'] = policy.q_values.get_concrete_function()
  tf.saved_model.save(policy, out_dir, signatures=signatures)
