"""Environment makers: ALE (paper protocol), MinAtar and classic control.

Every environment follows the gymnasium API and emits single frames; agents
stack `EnvironmentSpec.stack_size` of them, as Dopamine's do.
"""

from batch_rl.environments.environment_spec import EnvironmentSpec
from batch_rl.environments.factory import create_environment
