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
