"""Data: read tables, split them, and turn them into task examples."""
