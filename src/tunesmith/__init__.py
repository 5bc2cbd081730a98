"""tunesmith: fine-tune pre-trained models on your own data, guarded against classic failures."""

__version__ = "0.1.0"
