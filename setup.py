"""batch_rl: offline (batch) reinforcement learning for TensorFlow 2."""

import setuptools

# One mutually compatible set, checked on Python 3.11 (see docs/DESIGN.md).
# Moving TensorFlow forward is a change of these pins, not of the code.
INSTALL_REQUIRES = [
    'tensorflow==2.15.1',
    'tf-keras==2.15.1',
    'tensorflow-probability==0.23.0',
    'tf-agents==0.19.0',
    'dm-reverb==0.14.0',
    'rlds==0.1.8',
    'tensorflow-datasets==4.9.10',
    'tensorflow-metadata==1.17.1',
    'protobuf==4.25.9',
    'dopamine-rl==4.0.9',
    'jax==0.4.34',
    'jaxlib==0.4.34',
    'flax==0.10.4',
    'gin-config==0.5.0',
    'absl-py==2.5.1',
    'gymnasium==1.3.0',
    'ale-py==0.12.1',
    'mujoco==4.0.0',
    'minatar==1.0.15',
    'imageio==2.38.1',
    'numpy==1.26.4',
    'h5py==3.16.0',
    'tqdm==4.70.1',
    'matplotlib==3.11.2',
    'pandas==3.0.6',
    'isal==1.9.1',
    'zstandard==0.25.0',
    'ray==2.60.0',
    # tensorflow-datasets pulls the newest pyarrow, which needs NumPy 2 and
    # breaks Ray's import under the pinned NumPy 1.26.
    'pyarrow==18.1.0',
]

setuptools.setup(
    name='batch_rl',
    version='0.1.0',
    description='Offline RL on the DQN Replay Dataset and MuJoCo, TensorFlow 2.',
    packages=setuptools.find_packages(include=['batch_rl', 'batch_rl.*']),
    python_requires='>=3.10,<3.12',
    install_requires=INSTALL_REQUIRES,
    package_data={
        'batch_rl.analysis': ['data/*.csv'],
        'batch_rl.experiments': ['data/*/*'],
    },
    extras_require={
        'dev': ['pytest==9.2.0', 'psutil==7.2.2', 'rliable==1.2.0'],
    },
)
