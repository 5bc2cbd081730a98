"""METHODS: every fine-tuning method, registered once with its recipe keys.

A method is one file under `methods/`: a `MethodSettings` subclass (its `method:` keys, each
with a docstring that `tunesmith recipe keys` prints) and an apply function, tied together
by one `@register_method(Settings, ...)` call on the function. The recipe builds its
`method:` union from this table, so a new method's keys are validated, listed and
documented without editing `recipe.py`. `METHOD_MODULES` is the one line a new method adds
outside its file.

Method files are imported when the recipe is, so they import torch, peft and transformers
inside their apply functions, not at the top: reading a recipe stays fast.
"""

from __future__ import annotations

import importlib
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from tunesmith.strict_model import StrictModel

METHOD_MODULES = (
    "tunesmith.methods.full",
    "tunesmith.methods.lora",
    "tunesmith.methods.dora",
    "tunesmith.methods.ia3",
    "tunesmith.methods.prefix",
    "tunesmith.methods.prompt",
    "tunesmith.methods.ptuning",
    "tunesmith.methods.adapter",
    "tunesmith.methods.selective",
    "tunesmith.methods.linear_probe",
)
"""The modules that register a method, in the order methods are listed and compared."""


class MethodSettings(StrictModel):
    """A method's `method:` keys. Subclasses declare `name: Literal["their-name"]`."""

    default_learning_rate: ClassVar[float] = 2e-4
    """Used when `train.learning_rate` is not set."""


Apply = Callable[[Any, Any], Any]
"""(model, settings) -> the model to train, with only its trainable parameters unfrozen."""


@dataclass(frozen=True)
class Method:
    name: str
    settings: type[MethodSettings]
    """The pydantic class of its `method:` keys."""
    apply: Apply
    """(model, method settings) -> the model to train, only its trainable params unfrozen."""
    saves_adapter: bool
    """True: the run saves a PEFT adapter (adapter/); False: the whole model (model/)."""
    virtual_tokens: bool
    """True: the method prepends learned tokens to each row (prefix, prompt, p-tuning,
    LLaMA-Adapter), so causal-lm rows hold one example each instead of being packed."""
    mergeable: bool
    """True: `export --merge` can fold the trained weights into a plain model."""
    held_in_interpolation: tuple[str, ...] = ()
    """Name parts of trained weights that weight interpolation (the forgetting guard's
    rescue) keeps at their tuned value: one factor of a product whose other factor starts
    at zero (LoRA's A beside B), so that scaling the other scales the whole update."""


_METHODS: dict[str, Method] = {}


def register_method(
    settings: type[MethodSettings],
    *,
    saves_adapter: bool = False,
    virtual_tokens: bool = False,
    mergeable: bool = True,
    held_in_interpolation: tuple[str, ...] = (),
) -> Callable[[Apply], Apply]:
    """Register the decorated apply function with its settings class; the method's name is
    the settings' `name` literal."""
    name = method_name(settings)

    def decorator(apply: Apply) -> Apply:
        known = _METHODS.get(name)
        if known is not None and known.settings.__qualname__ != settings.__qualname__:
            raise ValueError(f"method {name!r} is registered twice ({known.settings})")
        _METHODS[name] = Method(
            name, settings, apply, saves_adapter, virtual_tokens, mergeable, held_in_interpolation
        )
        return apply

    return decorator


def method_name(settings: type[MethodSettings]) -> str:
    """The single value of the class's `name: Literal[...]` field."""
    field = settings.model_fields.get("name")
    values = typing.get_args(field.annotation) if field is not None else ()
    if field is None or typing.get_origin(field.annotation) is not Literal or len(values) != 1:
        raise TypeError(f"{settings.__name__} needs a field `name: Literal['its-name']`")
    return values[0]


def methods() -> dict[str, Method]:
    """Every registered method by name, in `METHOD_MODULES` order."""
    for module in METHOD_MODULES:
        importlib.import_module(module)
    order = {module: position for position, module in enumerate(METHOD_MODULES)}
    return dict(sorted(_METHODS.items(), key=lambda item: order.get(item[1].apply.__module__, 999)))


def get_method(name: str) -> Method:
    """The method registered as `name` (the recipe has validated it)."""
    return methods()[name]


def method_names() -> tuple[str, ...]:
    return tuple(methods())


def settings_union() -> Any:
    """The recipe's `method:` type: one of the registered settings classes, told apart by
    `name` (pydantic's discriminated union: an error names only the chosen method's keys)."""
    classes = tuple(method.settings for method in methods().values())
    return Annotated[typing.Union[classes], Field(discriminator="name")]  # noqa: UP007
