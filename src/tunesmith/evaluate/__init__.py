"""Evaluation: metrics, and the cheaper options a fine-tuned model must beat."""
