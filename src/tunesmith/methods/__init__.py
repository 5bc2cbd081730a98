"""Fine-tuning methods. Each module registers itself with `register`; see CONTRIBUTING."""

from tunesmith.methods import full, linear_probe, peft_methods, selective  # noqa: F401  (registers)
from tunesmith.methods.registry import METHODS, Method, count_parameters

__all__ = ["METHODS", "Method", "count_parameters", "get_method"]


def get_method(name: str) -> Method:
    return METHODS[name]
