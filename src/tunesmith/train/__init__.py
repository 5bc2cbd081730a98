"""The one training loop and its parts (device, precision, batching, schedule, checkpoints)."""
