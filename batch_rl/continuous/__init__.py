"""Continuous control: MuJoCo tasks, a replay logger, D4RL import, agents.

`CONTINUOUS_AGENTS` maps agent names to gin-configurable classes; importing
this package registers them in `batch_rl.agents.registry`, so
`python -m batch_rl.train --agent_name=td3 ...` runs them like any agent.
`make_continuous_environment` gives a task taking [-1, 1] actions and its
spec (the `mujoco:` family of `batch_rl.environments`).
"""

from batch_rl.agents import registry
from batch_rl.continuous.actor_critic import DDPGAgent
from batch_rl.continuous.actor_critic import EnsembleDDPGAgent
from batch_rl.continuous.actor_critic import EnsembleTD3Agent
from batch_rl.continuous.actor_critic import REMDDPGAgent
from batch_rl.continuous.actor_critic import REMTD3Agent
from batch_rl.continuous.actor_critic import TD3Agent
from batch_rl.continuous.actor_critic import TD3BCAgent
from batch_rl.continuous.agent import ContinuousAgent
from batch_rl.continuous.bc import BCAgent
from batch_rl.continuous.bcq import BCQAgent
from batch_rl.continuous.cql import CQLAgent
from batch_rl.continuous.environments import ContinuousEnvironmentSpec
from batch_rl.continuous.environments import make_continuous_environment

CONTINUOUS_AGENTS = {
    'ddpg': DDPGAgent,
    'td3': TD3Agent,
    'ensemble_ddpg': EnsembleDDPGAgent,
    'rem_ddpg': REMDDPGAgent,
    'ensemble_td3': EnsembleTD3Agent,
    'rem_td3': REMTD3Agent,
    'td3_bc': TD3BCAgent,
    'bcq': BCQAgent,
    'bc': BCAgent,
    'cql': CQLAgent,
}


for _name, _agent_class in CONTINUOUS_AGENTS.items():
  registry.register_agent(_name)(_agent_class)


def create_continuous_agent(agent_name: str,
                            spec: ContinuousEnvironmentSpec,
                            seed: int = 0, **kwargs) -> ContinuousAgent:
  """The agent called `agent_name`, built for `spec` (gin fills the rest)."""
  if agent_name not in CONTINUOUS_AGENTS:
    raise ValueError(f'Unknown continuous agent {agent_name!r}; valid: '
                     f'{", ".join(CONTINUOUS_AGENTS)}.')
  return registry.create_agent(agent_name, spec.num_actions,
                               spec.observation_shape, spec.observation_dtype,
                               spec.stack_size, seed=seed, **kwargs)
