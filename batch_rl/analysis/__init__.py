"""Analysis of run logs: normalized scores, aggregate metrics with bootstrap
confidence intervals, plots and a markdown report.

Reads only run logs (run_info.json, metrics.csv), never TensorFlow, so that
`python -m batch_rl.analysis` starts fast.
"""
