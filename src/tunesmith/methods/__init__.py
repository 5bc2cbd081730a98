"""Fine-tuning methods, one file each: its recipe keys and its apply function, registered
with one `register_method` call (`tunesmith/method_registry.py`; see CONTRIBUTING)."""

from tunesmith.method_registry import Method, get_method, methods
from tunesmith.methods.freezing import count_parameters

__all__ = ["Method", "count_parameters", "get_method", "methods"]
