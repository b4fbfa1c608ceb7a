"""Discrete offline agents: networks, losses, one shared train step.

Importing the package registers DQN, C51, QR-DQN, multi-head (Ensemble-DQN,
REM), multi-network DQN and the behaviour-regularized agents (discrete CQL,
QR-CQL, REM+CQL, discrete BCQ, REM+BCQ, discrete BC) with
`registry.create_agent`.
"""

# Imported for their registration with the registry.
from batch_rl.agents import behaviour_cloning_agent
from batch_rl.agents import c51_agent
from batch_rl.agents import conservative_agents
from batch_rl.agents import constrained_agents
from batch_rl.agents import dqn_agent
from batch_rl.agents import multi_head_dqn_agent
from batch_rl.agents import multi_network_dqn_agent
from batch_rl.agents import quantile_agent
from batch_rl.agents.registry import create_agent
