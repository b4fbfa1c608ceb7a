"""Studies on Ray: `python -m batch_rl.sweep STUDY_GIN --out=DIR`.

study.py plans a study's runs from its gin file (no TensorFlow, no Ray),
execution.py runs them as Ray tasks, progress.py prints the progress table;
output paths (local or tf.io.gfile URLs) are made and read by
batch_rl/storage.py, as the runs' own files are.
"""
