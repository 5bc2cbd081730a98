"""Shared by the methods that prepend learned virtual tokens (prefix, prompt, p-tuning)."""

from __future__ import annotations

from pydantic import Field

from tunesmith.method_registry import MethodSettings


class VirtualTokensSettings(MethodSettings):
    num_virtual_tokens: int = Field(20, ge=1, le=1024)
    """Learned virtual tokens prepended to every example."""
