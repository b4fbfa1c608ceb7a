"""batch_rl: offline reinforcement learning on logged replay data (TF 2).

Layers, each a subpackage, imports flowing one way:
data -> agents -> runner -> analysis (plus environments, baselines, continuous).
"""

import os

# TensorFlow's C++ start-up chatter (CUDA plugin registration) hides our own
# output; users who want it can set the variable themselves.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
