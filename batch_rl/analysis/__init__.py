"""Analysis of run logs: normalized scores, aggregate metrics with bootstrap
confidence intervals, plots and a markdown report.

It reads only run logs (run_info.json, metrics.csv), never TensorFlow, agents
or experiments, so that `python -m batch_rl.analysis` starts fast. Offline
policy selection, which restores agent checkpoints, is
`batch_rl.policy_selection`.
"""
