"""Settings of the libraries tunesmith drives, applied once per process (the CLI, the
estimate's dry-run process)."""

from __future__ import annotations

import warnings


def quiet_libraries() -> None:
    """Library chatter (expected 'newly initialized' heads, download bars) hides our output."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="peft")
