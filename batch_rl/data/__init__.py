"""Data layer: replay formats on disk and tf.data pipelines of transitions."""
