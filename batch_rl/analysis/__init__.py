"""Analysis of run logs: normalized scores, aggregate metrics with bootstrap
confidence intervals, plots and a markdown report.

`report` reads only run logs (run_info.json, metrics.csv), never TensorFlow,
so that `python -m batch_rl.analysis` starts fast; offline model selection
(`model_selection.py`, the `select` command) restores agent checkpoints and
imports TensorFlow only when it runs.
"""
