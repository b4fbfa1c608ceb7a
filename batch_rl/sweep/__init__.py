"""Studies on Ray: `python -m batch_rl.sweep STUDY_GIN --out=DIR`.

study.py plans a study's runs from its gin file (no TensorFlow, no Ray),
execution.py runs them as Ray tasks, progress.py prints the progress table,
storage.py is where output paths are made and read.
"""
