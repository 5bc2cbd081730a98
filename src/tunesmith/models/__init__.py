"""Models: where weights come from (built-in packages, local folders, the local HF cache)."""
