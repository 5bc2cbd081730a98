"""`tunesmith recipe keys [TASK]`: every recipe key with its type, default and doc.

Read from the pydantic schema in recipe.py, whose field docstrings are the docs
(`use_attribute_docstrings`), so the listing cannot drift from what the recipe accepts.
Method keys come from each method's config class and name the methods they apply to; with a
task kind, only the keys that apply to it are listed, with that kind's defaults.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from dataclasses import asdict, dataclass, replace
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from rich.console import Console
from rich.text import Text

from tunesmith.method_registry import methods as registered_methods
from tunesmith.recipe import (
    CLASSIFIER_TEXT_KEYS,
    IMAGE_PREPROCESS_KEYS,
    TEXT_PREPROCESS_KEYS,
    Recipe,
    TuneRange,
)
from tunesmith.tasks.registry import TaskKind, get_task, task_kinds


@dataclass(frozen=True)
class RecipeKey:
    key: str
    """Dotted path, as `--set` takes it: train.learning_rate."""
    type: str
    """Readable type with bounds: `int in [1, 1024]`, `float > 0 | auto`, `mapping | null`."""
    default: Any
    """JSON value of the default (for a section: its keys' defaults); None when required."""
    required: bool
    doc: str
    """The field's docstring (a section's: its class docstring first); lines are paragraphs."""
    section: bool = False
    """A mapping whose keys follow (train, guards.forgetting, ...)."""
    methods: tuple[str, ...] = ()
    """For method.* keys: the method.name values the key applies to."""


def recipe_keys(task: str | None = None) -> list[RecipeKey]:
    """Every recipe key, in schema order; with `task`, only those that apply to that kind
    (an unknown task is a UserError naming the known ones)."""
    kind = get_task(task) if task is not None else None
    keys: list[RecipeKey] = []
    for name, info in Recipe.model_fields.items():
        if name == "method":
            keys += _method_keys(info, kind)
        elif name == "task":  # a str checked against the registry: name the kinds
            keys.append(replace(_field_keys(name, info)[0], type=" | ".join(task_kinds())))
        elif name == "tune":  # KEY: any recipe key; its range's own keys below it
            keys += _field_keys(name, info)
            keys += [
                _field_keys(f"tune.KEY.{part}", field)[0]
                for part, field in TuneRange.model_fields.items()
            ]
        else:
            keys += _field_keys(name, info)
    if kind is None:
        return keys
    defaults = _task_defaults(kind)
    return [_for_task(key, kind, defaults) for key in keys if _applies(key, kind)]


# --- the schema ---------------------------------------------------------------------------


def _field_keys(path: str, info: FieldInfo) -> list[RecipeKey]:
    section = _model_in(info.annotation)
    doc = _doc(info.description)
    if section is not None:
        doc = "\n".join(part for part in (_doc(section.__dict__.get("__doc__")), doc) if part)
    key = RecipeKey(
        key=path,
        type=_type_name(info.annotation, _bounds(info.metadata)),
        default=None if info.is_required() else _json(info.get_default(call_default_factory=True)),
        required=info.is_required(),
        doc=doc,
        section=section is not None,
    )
    if section is None:
        return [key]
    children = [
        child
        for name, field in section.model_fields.items()
        for child in _field_keys(f"{path}.{name}", field)
    ]
    return [key, *children]


def _method_keys(info: FieldInfo, kind: TaskKind | None) -> list[RecipeKey]:
    """method.name (the methods, each with its description), then each method's own keys,
    one row per distinct (type, default, doc) with the methods it applies to."""
    names = [name for name in registered_methods() if kind is None or name in kind.methods]
    default = info.get_default(call_default_factory=True)
    default_method = default.name
    lines = [
        "The fine-tuning method; each method.* key below names the methods it applies to. "
        "Default learning rate: the method's own unless train.learning_rate is set."
    ]
    for name in names:
        config = registered_methods()[name].settings
        rate = getattr(config, "default_learning_rate", None)
        lines.append(
            f"{name}: {_doc(config.__dict__.get('__doc__'))} (learning rate {_show(rate)})"
        )
    keys = [
        RecipeKey("method", "mapping", _json(default), False, "", section=True),
        RecipeKey(
            "method.name",
            " | ".join(names),
            default_method if default_method in names else None,
            False,
            "\n".join(lines),
        ),
    ]
    # field name -> {(type, default, doc): methods}, in the order the fields first appear
    rows: dict[str, dict[tuple[str, str, str], list[str]]] = {}
    for name in names:
        for field, field_info in registered_methods()[name].settings.model_fields.items():
            if field != "name":
                row = _field_keys(f"method.{field}", field_info)[0]
                variant = (row.type, json.dumps(row.default), row.doc)
                rows.setdefault(field, {}).setdefault(variant, []).append(name)
    for field, variants in rows.items():
        for (type_, default, doc), methods in variants.items():
            keys.append(
                RecipeKey(
                    f"method.{field}",
                    type_,
                    json.loads(default),
                    False,
                    doc,
                    methods=tuple(methods),
                )
            )
    return keys


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The config class of a section (`EarlyStopping | None` -> EarlyStopping), else None."""
    candidates = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _bounds(metadata: list[Any]) -> str:
    """`ge=1, le=1024` -> " in [1, 1024]"; `gt=0` -> " > 0"."""
    found: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, FieldInfo):
            found.update(_bound_values(item.metadata))
        else:
            found.update(_bound_values([item]))
    low = ("[", found["ge"]) if "ge" in found else ("(", found["gt"]) if "gt" in found else None
    high = ("]", found["le"]) if "le" in found else (")", found["lt"]) if "lt" in found else None
    if low and high:
        return f" in {low[0]}{low[1]:g}, {high[1]:g}{high[0]}"
    if low:
        return f" {'>=' if low[0] == '[' else '>'} {low[1]:g}"
    if high:
        return f" {'<=' if high[0] == ']' else '<'} {high[1]:g}"
    return ""


def _bound_values(metadata: list[Any]) -> dict[str, Any]:
    return {
        name: getattr(item, name)
        for item in metadata
        for name in ("ge", "gt", "le", "lt")
        if getattr(item, name, None) is not None
    }


def _type_name(annotation: Any, bounds: str = "") -> str:
    """A readable type; `bounds` is shown after the numeric members."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *metadata = typing.get_args(annotation)
        return _type_name(base, bounds or _bounds(metadata))
    if _is_union(annotation):
        return " | ".join(_type_name(arg, bounds) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return " | ".join(_show(value) for value in typing.get_args(annotation))
    if origin is not None:
        inner = ", ".join(_type_name(arg) for arg in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', origin)}[{inner}]"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    if annotation in (int, float):
        return annotation.__name__ + bounds
    return getattr(annotation, "__name__", str(annotation))


def _doc(text: str | None) -> str:
    """One paragraph: the docstring's source line breaks are not meant as breaks."""
    return " ".join(inspect.cleandoc(text).split()) if text else ""


def _json(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return json.loads(json.dumps(value, default=str))


# --- one task kind ------------------------------------------------------------------------


def _applies(key: RecipeKey, kind: TaskKind) -> bool:
    """The registry says which keys fit a kind: its inputs (text or image preprocess keys),
    whether it writes answers (generation, replay; classifier-only text keys refused) and
    its methods."""
    section, _, name = key.key.partition(".")
    if section == "preprocess" and name:
        if kind.inputs == "image":
            return name in IMAGE_PREPROCESS_KEYS
        return name in TEXT_PREPROCESS_KEYS and not (
            kind.generative and name in CLASSIFIER_TEXT_KEYS
        )
    if section == "generation" or key.key == "train.replay":
        return kind.generative
    if key.methods:
        return any(method in kind.methods for method in key.methods)
    return True


def _task_defaults(kind: TaskKind) -> dict[str, Any]:
    """The kind's resolved defaults (model, max_length, unicode, early-stopping metric ...):
    those of a minimal recipe for it, as recipe validation fills them in."""
    method = "lora" if "lora" in kind.methods else kind.methods[0]
    recipe = Recipe.model_validate(
        {"task": kind.name, "data": {"train": "train.csv"}, "method": {"name": method}}
    )
    return _flatten(recipe.model_dump(mode="json"))


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in values.items():
        flat[prefix + name] = value
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{name}."))
    return flat


def _for_task(key: RecipeKey, kind: TaskKind, defaults: dict[str, Any]) -> RecipeKey:
    changes: dict[str, Any] = {}
    if key.methods:
        changes["methods"] = tuple(m for m in key.methods if m in kind.methods)
    elif key.key == "train.early_stopping.metric":
        changes["type"] = " | ".join(kind.metrics)
    if key.key not in ("task", "method") and not key.key.startswith("method.") and not key.required:
        changes["default"] = defaults.get(key.key, key.default)
    return replace(key, **changes)


# --- output -------------------------------------------------------------------------------


def print_keys(
    task: str | None = None, as_json: bool = False, console: Console | None = None
) -> None:
    """Print the keys: one block per key (readable at 80 columns), or JSON."""
    keys = recipe_keys(task)
    if as_json:
        payload = {"task": task, "keys": [_as_json(key) for key in keys]}
        print(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    console = console or Console(highlight=False)
    if task is None:
        intro = (
            f"Recipe keys of every task kind ({', '.join(task_kinds())}); "
            "`tunesmith recipe keys TASK` lists those of one kind, with its defaults."
        )
    else:
        intro = f"Recipe keys that apply to {task}, with its defaults."
    _print_wrapped(console, Text(intro), "")
    previous = ""
    for key in keys:
        starts_section = key.section and "." not in key.key
        leaves_section = "." in previous and key.key.split(".")[0] != previous.split(".")[0]
        if starts_section or leaves_section:
            console.print()  # a blank line around each top-level section
        _print_wrapped(console, _head(key), "")
        for paragraph in key.doc.splitlines():
            _print_wrapped(console, Text(paragraph), "    ")
        previous = key.key


def _print_wrapped(console: Console, text: Text, indent: str) -> None:
    """Wrapped to the console's width (80 when not a terminal), without trailing spaces."""
    for line in text.wrap(console, max(console.width - len(indent), 20)):
        line.rstrip()
        console.print(Text.assemble(indent, line), soft_wrap=True)


def _as_json(key: RecipeKey) -> dict[str, Any]:
    data = asdict(key)
    data["methods"] = list(key.methods)
    return data


def _head(key: RecipeKey) -> Text:
    head = Text.assemble((key.key, "bold cyan"), ": ", (key.type, "green"))
    if key.required:
        head.append("  (required)", style="bold")
    elif not isinstance(key.default, dict):
        head.append(" = ")
        head.append(_show(key.default), style="yellow")
    if key.methods:
        head.append(f"  [{', '.join(key.methods)}]", style="magenta")
    return head


def _show(value: Any) -> str:
    """A value as it would be written in YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, float):
        return f"{value:g}".replace("e-0", "e-")  # 5e-05 -> 5e-5
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
