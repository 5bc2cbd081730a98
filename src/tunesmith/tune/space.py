"""The search space of `tunesmith tune`: the recipe's `tune:` section (or the task kind's
default, `TaskKind.search`), checked whole before any work, and turned into one recipe per
trial.

A key is a dotted recipe key (`model`, `method.name`, `method.r`, `train.learning_rate`).
Its value is a list of candidates (an Optuna categorical) or a range (an Optuna float or
int distribution). A search over `method.name` is a conditional space, as Optuna's
define-by-run API draws it: `method.name` is drawn first, and a method key the chosen
method lacks (`method.r` for `full`) is not drawn at all in that trial, so the sampler
never learns from a value that was not used.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tunesmith.errors import UserError
from tunesmith.method_registry import get_method, method_names
from tunesmith.recipe import Recipe, TuneRange, TuneValue, load_recipe
from tunesmith.tasks.registry import get_task

if TYPE_CHECKING:
    import optuna

SEARCHABLE = ("model", "method", "train", "preprocess")
"""Sections a search may change; data, guards and the output are the study's, not a trial's."""
FIRST = ("model", "method.name")
"""Drawn before the rest: the keys of the other dimensions depend on them."""
FULL_SPACE_TRIALS = 8
"""From this many trials (or FULL_SPACE_SECONDS of budget), the default space also searches
LoRA's rank and the epochs; below it, the method and the learning rate alone."""
FULL_SPACE_SECONDS = 20 * 60


@dataclass(frozen=True)
class Dimension:
    """One key of the space."""

    key: str
    choices: tuple[Any, ...] | None = None
    bounds: TuneRange | None = None

    @property
    def param(self) -> str:
        """The name Optuna knows it by (a relative learning rate is a factor, not a rate)."""
        return f"{self.key}/default" if self.bounds and self.bounds.relative else self.key

    @property
    def whole(self) -> bool:
        return self.bounds is not None and self.bounds.whole and not self.bounds.relative

    def draw(self, trial: optuna.Trial) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.param, list(self.choices))
        bounds = self.bounds
        if self.whole:
            step = int(bounds.step or 1)
            return trial.suggest_int(self.param, int(bounds.low), int(bounds.high), step=step)
        return trial.suggest_float(
            self.param, bounds.low, bounds.high, log=bounds.log, step=bounds.step
        )

    def contains(self, value: Any) -> bool:
        """Whether the sampler could draw `value` for this dimension."""
        if self.choices is not None:
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.whole and value != int(value):
            return False
        return self.bounds.low <= value <= self.bounds.high

    def endpoints(self) -> list[Any]:
        """The values whose recipes must be valid before the search starts."""
        if self.choices is not None:
            return list(self.choices)
        if self.whole:
            return [int(self.bounds.low), int(self.bounds.high)]
        return [self.bounds.low, self.bounds.high]

    def describe(self) -> str:
        if self.choices is not None:
            return f"{self.key}: {', '.join(str(c) for c in self.choices)}"
        b = self.bounds
        what = "x the method's default" if b.relative else ""
        scale = ", log" if b.log else (f", step {b.step:g}" if b.step else "")
        return f"{self.key}: {b.low:g} to {b.high:g}{what}{scale}"

    def to_json(self) -> Any:
        if self.choices is not None:
            return list(self.choices)
        return self.bounds.model_dump(exclude_defaults=True)


@dataclass(frozen=True)
class Space:
    dimensions: tuple[Dimension, ...]
    source: str
    """"the recipe's tune: section" or "the default space of <kind>"."""

    def draw(self, trial: optuna.Trial, base: dict[str, Any]) -> dict[str, Any]:
        """The recipe values of one trial, drawn by `trial`: key -> value as applied."""
        values: dict[str, Any] = {}
        method = base["method"]["name"]
        for dimension in self.dimensions:
            if not applies(dimension.key, method):
                continue
            value = dimension.draw(trial)
            if dimension.bounds is not None and dimension.bounds.relative:
                value = float(f"{value * default_rate(method):.3g}")
            values[dimension.key] = value
            if dimension.key == "method.name":
                method = value
        return values

    def recipe_point(self, base: dict[str, Any]) -> dict[str, Any]:
        """Optuna's parameters for the recipe as it is written (its method, its learning
        rate, ...), for the dimensions where that value lies in the space. Enqueued as the
        first trial of a new study, so the search always measures the recipe it was given
        and never ends below it on validation."""
        params: dict[str, Any] = {}
        method = base["method"]["name"]
        for dimension in self.dimensions:
            if not applies(dimension.key, method):
                continue
            value = _lookup(base, dimension.key)
            if dimension.key == "train.learning_rate":
                rate = value if value is not None else default_rate(method)
                relative = dimension.bounds is not None and dimension.bounds.relative
                value = rate / default_rate(method) if relative else rate
            if value is not None and dimension.contains(value):
                params[dimension.param] = value
        return params

    def describe(self) -> str:
        return "; ".join(d.describe() for d in self.dimensions)

    def to_json(self) -> dict[str, Any]:
        return {d.key: d.to_json() for d in self.dimensions}


def _lookup(mapping: dict[str, Any], key: str) -> Any:
    """A dotted key's value in a recipe mapping; None where it is not set."""
    value: Any = mapping
    for part in key.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def default_rate(method: str) -> float:
    return get_method(method).settings.default_learning_rate


def method_keys(method: str) -> set[str]:
    return set(get_method(method).settings.model_fields) - {"name"}


def applies(key: str, method: str) -> bool:
    """A method key (method.r) applies only to the methods that have it."""
    if not key.startswith("method.") or key == "method.name":
        return True
    return key.removeprefix("method.") in method_keys(method)


def with_values(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The recipe mapping `base` with `values` (dotted keys) set. A new method.name keeps
    the recipe's method keys that the new method has (lora's r and alpha for dora) and drops
    the others (full has no r)."""
    raw = copy.deepcopy(base)
    for key, value in sorted(values.items(), key=lambda item: item[0] != "method.name"):
        if key == "method.name":
            kept = method_keys(value) if value in method_names() else set()
            raw["method"] = {"name": value} | {
                k: v for k, v in raw.get("method", {}).items() if k in kept
            }
            continue
        node = raw
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return raw


def base_mapping(recipe: Recipe) -> dict[str, Any]:
    """The resolved recipe (as a run folder's recipe.yaml holds it) without its tune: and
    output_dir: every trial starts from it. Its method section keeps only the keys the
    recipe set, so a trial of another method gets that method's own defaults (lora's
    target_modules "all-linear" is no value for ia3's)."""
    import yaml

    raw = yaml.safe_load(recipe.to_yaml())
    raw.pop("tune", None)
    raw.pop("output_dir", None)
    chosen = recipe.method.model_fields_set | {"name"}
    raw["method"] = {k: v for k, v in raw["method"].items() if k in chosen}
    return raw


def build_space(recipe: Recipe, trials: int | None, budget_s: float | None) -> Space:
    """The recipe's tune: section, or the task kind's default space sized to the budget;
    every key and every candidate checked (all problems at once), before any work."""
    if recipe.tune:
        space = Space(_dimensions(recipe.tune), "the recipe's tune: section")
    else:
        full = (trials or 0) >= FULL_SPACE_TRIALS or (budget_s or 0) >= FULL_SPACE_SECONDS
        space = Space(
            _dimensions(default_space(recipe, full)), f"the default space of {recipe.task}"
        )
    check_space(space, base_mapping(recipe))
    return space


def default_space(recipe: Recipe, full: bool) -> dict[str, TuneValue]:
    """TaskKind.search as a tune: section: the methods and a log range of multiples of each
    method's default learning rate; with `full`, also LoRA's rank and the epochs."""
    kind = get_task(recipe.task)
    defaults = kind.search
    candidates = [m for m in defaults.methods if m in kind.methods] or [recipe.method.name]
    low, high = defaults.learning_rate_factor
    space: dict[str, TuneValue] = {
        "method.name": candidates,
        "train.learning_rate": TuneRange(low=low, high=high, log=True, relative=True),
    }
    if full:
        if any("r" in method_keys(m) for m in candidates):
            space["method.r"] = list(defaults.lora_r)
        if defaults.epochs is not None:
            space["train.epochs"] = TuneRange(low=defaults.epochs[0], high=defaults.epochs[1])
    return space


def _dimensions(section: dict[str, TuneValue]) -> tuple[Dimension, ...]:
    dimensions = [
        Dimension(key, choices=tuple(value))
        if isinstance(value, list)
        else Dimension(key, bounds=value)
        for key, value in section.items()
    ]
    return tuple(sorted(dimensions, key=lambda d: FIRST.index(d.key) if d.key in FIRST else 9))


def check_space(space: Space, base: dict[str, Any]) -> None:
    """Every key is a recipe key a search may change, and every candidate (each end of a
    range) makes a valid recipe with every method it applies to; a UserError lists each
    problem with its key and the fix."""
    problems: list[str] = []
    methods = _searched_methods(space, base)
    for dimension in space.dimensions:
        problems += _key_problems(dimension, methods)
    if not problems:
        for dimension in space.dimensions:
            problems += _value_problems(dimension, base, methods)
    if problems:
        count = len(problems)
        lines = "\n".join(f"  - {p}" for p in problems)
        raise UserError(f"{count} problem{'s' if count > 1 else ''} in the search space:\n{lines}")


def _searched_methods(space: Space, base: dict[str, Any]) -> list[str]:
    for dimension in space.dimensions:
        if dimension.key == "method.name" and dimension.choices is not None:
            return [str(m) for m in dimension.choices]
    return [base["method"]["name"]]


def _key_problems(dimension: Dimension, methods: list[str]) -> list[str]:
    key, where = dimension.key, f"tune.{dimension.key}"
    root = key.split(".")[0]
    if root not in SEARCHABLE:
        return [
            f"{where}: {root} is not searched (a search changes model, method.*, train.* "
            "and preprocess.* keys); remove it from tune:"
        ]
    if key in ("method", "train", "preprocess"):
        return [f"{where}: name one key of the section, e.g. tune.{key}.<key>"]
    if key == "method.name" and dimension.choices is None:
        return [f"{where}: list the methods to try, e.g. [lora, full]"]
    if key == "model" and dimension.choices is None:
        return [f"{where}: list the models to try, e.g. [builtin:minilm, ./my-model]"]
    unknown = [m for m in methods if m not in method_names()]
    if key == "method.name" and unknown:
        return [f"{where}: unknown method {unknown[0]!r}; choose among {', '.join(method_names())}"]
    if key.startswith("method.") and key != "method.name":
        field = key.removeprefix("method.")
        if not any(field in method_keys(m) for m in methods if m in method_names()):
            return [
                f"{where}: none of the methods searched ({', '.join(methods)}) has a key "
                f"{field!r}; remove it or search a method that has it"
            ]
    bounds = dimension.bounds
    if bounds is not None and bounds.relative and key != "train.learning_rate":
        return [f"{where}: relative applies to train.learning_rate only; remove it"]
    return []


def _value_problems(dimension: Dimension, base: dict[str, Any], methods: list[str]) -> list[str]:
    """Each candidate applied to the recipe with each method it applies to, validated as a
    recipe is; `model` candidates must also be found."""
    from tunesmith.models.resolve import resolve_model

    problems = []
    key = dimension.key
    targets = [m for m in methods if applies(key, m)] if key != "method.name" else [None]
    for value in dimension.endpoints():
        if dimension.bounds is not None and dimension.bounds.relative:
            value = value * default_rate(methods[0])
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"tune.{key}: {value} is not a number")
            continue
        for method in targets:
            values = {key: value} if method is None else {"method.name": method, key: value}
            try:
                load_recipe(with_values(base, values))
                if key == "model":
                    resolve_model(str(value))
            except UserError as error:
                detail = " ".join(str(error).split("\n")[1:]).strip(" -") or str(error)
                used = f" with method {method}" if method and key.startswith("method.") else ""
                problems.append(
                    f"tune.{key}: {value!r}{used} makes an invalid recipe ({detail}); "
                    "change or remove that candidate"
                )
                break
    return problems
