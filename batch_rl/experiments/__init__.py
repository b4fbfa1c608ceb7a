"""Complete experiments built from the layers: the embedded default."""
