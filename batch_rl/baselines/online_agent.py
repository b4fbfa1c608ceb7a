"""Online training around any agent: Dopamine's DQN loop of store and train.

`OnlineAgent` wraps an agent of the docs/DESIGN.md interface. In training
mode it stores each transition (frame before the action, action, reward,
terminal) in its replay and, once the replay holds more than
`min_replay_history` slots, takes one gradient step every `update_period`
agent steps on a batch sampled uniformly from it; this is what
`dopamine.agents.dqn.dqn_agent.DQNAgent` does in `begin_episode`, `step` and
`end_episode`. In eval mode it only acts. Its checkpoints hold the wrapped
agent's and the replay's (`replay.save`), so a run resumes with the
experience it had.

The replay is Dopamine's `LoggedReplayBuffer` (discrete agents) or
`continuous.replay_writer.LoggedEpisodeReplay`; both take
`add(observation, action, reward, terminal, episode_end=False)`,
`truncate_episode(final_observation)` after a cut episode's last add,
`sample_batch()`, `add_count`, `save`/`load(checkpoint_dir, iteration)`,
`log_final_buffer()` and `replay_capacity`.
"""

import gin
import numpy as np


@gin.configurable(denylist=['agent', 'replay'])
class OnlineAgent:
  """An agent that learns from the replay of its own experience."""

  def __init__(self, agent, replay, update_period: int = 4,
               min_replay_history: int = 20_000):
    self.agent = agent
    self.replay = replay
    self.update_period = update_period
    self.min_replay_history = min_replay_history
    # Agent steps in training mode (Dopamine's `training_steps`), named as
    # the wrapped agent names them.
    self.acting_steps = 0
    self.gradient_steps = 0
    self._losses = []  # Since the last `pop_losses`.
    self._observation = None
    self._action = None

  @property
  def eval_mode(self) -> bool:
    return self.agent.eval_mode

  @eval_mode.setter
  def eval_mode(self, value: bool):
    self.agent.eval_mode = value

  def _train_periodically(self):
    if (self.replay.add_count > self.min_replay_history and
        self.acting_steps % self.update_period == 0):
      metrics = self.agent.train_step(self.replay.sample_batch())
      self._losses.append(metrics['loss'])
      self.gradient_steps += 1
    self.acting_steps += 1

  def _act(self, observation, action):
    self._observation = observation
    self._action = action
    return action

  def begin_episode(self, observation) -> int:
    if not self.eval_mode:
      self._train_periodically()
    return self._act(observation, self.agent.begin_episode(observation))

  def step(self, reward, observation) -> int:
    if not self.eval_mode:
      self.replay.add(self._observation, self._action, reward, False)
      self._train_periodically()
    return self._act(observation, self.agent.step(reward, observation))

  def end_episode(self, reward, terminal: bool = True, observation=None):
    """Stores the last transition; `terminal=False` marks a time-limit cut,
    whose final `observation` goes to the replay (`truncate_episode`)."""
    if not self.eval_mode:
      self.replay.add(self._observation, self._action, reward, terminal,
                      episode_end=True)
      if not terminal:
        self.replay.truncate_episode(observation)
    self.agent.end_episode(reward, terminal, observation)

  def pop_losses(self) -> np.ndarray:
    """The losses of the gradient steps since the last call."""
    losses, self._losses = np.array(self._losses, dtype=np.float64), []
    return losses

  def bundle_and_checkpoint(self, checkpoint_dir: str, iteration: int) -> dict:
    bundle = self.agent.bundle_and_checkpoint(checkpoint_dir, iteration)
    self.replay.save(checkpoint_dir, iteration)
    return {'agent': bundle, 'acting_steps': self.acting_steps,
            'gradient_steps': self.gradient_steps}

  def unbundle(self, checkpoint_dir: str, iteration: int, bundle) -> bool:
    if not self.agent.unbundle(checkpoint_dir, iteration, bundle['agent']):
      return False
    self.replay.load(checkpoint_dir, iteration)
    self.acting_steps = bundle['acting_steps']
    self.gradient_steps = bundle['gradient_steps']
    return True
