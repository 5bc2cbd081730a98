"""Shared by the peft-backed methods: wrap a model, with a message the user can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunesmith.errors import UserError

if TYPE_CHECKING:
    from peft import PeftConfig
    from torch import nn


def wrap(model: nn.Module, peft_config: PeftConfig) -> nn.Module:
    """`get_peft_model`, with a `UserError` naming the key to change when peft refuses."""
    from peft import get_peft_model

    try:
        return get_peft_model(model, peft_config)
    except (ValueError, TypeError, AttributeError) as error:
        name = peft_config.peft_type.value.lower()
        raise UserError(
            f"method: {name} cannot wrap {type(model).__name__}: "
            f"{str(error).splitlines()[0]}; set method.target_modules to module names of the "
            "model, or choose another method"
        ) from None
