"""The warning before training (and in `tunesmith estimate`) when a setting invites
catastrophic forgetting: a method that updates the pre-trained weights at a learning rate
well above its default, or on little data. It names the cheaper alternatives and what the
forgetting benchmark measured for them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tunesmith.method_registry import get_method

if TYPE_CHECKING:
    from tunesmith.recipe import Recipe
    from tunesmith.tasks.registry import TaskKind

UPDATES_PRETRAINED = ("full", "selective")
"""Methods that change the pre-trained weights themselves (full: all of them; selective:
its last layers). The adapters (LoRA, DoRA, IA3, prefix, prompt, p-tuning, LLaMA-Adapter)
leave them as they were; linear-probe trains only the new head."""

HIGH_LEARNING_RATE = 3.0
"""A learning rate at least this many times the method's default is high."""

LITTLE_DATA = 1000
"""Fewer training examples than this is little data (as for the overfitting warning)."""


@dataclass(frozen=True)
class Measured:
    """One run of the forgetting benchmark."""

    run: str
    """What was trained, in words."""
    increase: float
    """The reference perplexity's relative increase (0.4: +40%)."""
    change: str = ""
    """The recipe change that turns the warned-about setting into this run ("": none)."""


BENCHMARK = (
    "benchmarks/forgetting.py: builtin:smollm2 adapted to licence texts "
    "(examples/licences-domain.yaml)"
)
"""Where the figures of `MEASURED` come from."""

MEASURED: dict[str, Measured] = {
    "full": Measured("full fine-tuning at lr 1e-3 for 2 epochs", 0.65),
    "lora": Measured("LoRA r16 at its default lr", -0.062, "method.name: lora"),
    "replay": Measured("full fine-tuning at lr 3e-4 with 30% replay", -0.216, "train.replay: 0.3"),
}
"""Increase of general-text (builtin:general-en) perplexity measured by
`benchmarks/forgetting.py` on builtin:smollm2 adapted to licence texts
(examples/licences-domain.yaml), by the alternative it measures: `full` is the setting
warned about, `lora` and `replay` the cheaper alternatives. Rerun the benchmark and update
these figures together with the README's table."""


def forgetting_risk(
    method: str,
    learning_rate: float,
    examples: int,
    epochs: float,
    kind: TaskKind,
    guard_action: str | None,
    replay: float = 0.0,
) -> str | None:
    """A warning sentence when training `method` at `learning_rate` on `examples` training
    examples for `epochs` invites catastrophic forgetting, else None.

    Only methods that update the pre-trained weights are flagged, when the learning rate
    is at least `HIGH_LEARNING_RATE` times the method's default or there are fewer than
    `LITTLE_DATA` examples. The warning names the alternatives that apply to `kind`
    (LoRA where the kind offers it, the default learning rate when the rate is above it,
    replay for generative kinds not replaying yet) with their measured effect, and the
    forgetting guard as `guard_action` (guards.forgetting.action; None: off) leaves it."""
    if method not in UPDATES_PRETRAINED:
        return None
    default = get_method(method).settings.default_learning_rate
    high = learning_rate >= HIGH_LEARNING_RATE * default
    little = examples < LITTLE_DATA
    if not (high or little):
        return None
    causes = [f"{method} fine-tuning updates the pre-trained weights"]
    if high:
        times = learning_rate / default
        causes.append(f"at learning rate {_rate(learning_rate)} ({times:.0f}x its default)")
    if little:
        causes.append(f"on {examples:,} training examples for {epochs:g} epochs")
    applies = {"lora": "lora" in kind.methods, "replay": kind.generative and not replay}
    alternatives = [_alternative("lora")] if applies["lora"] else []
    if learning_rate > default:
        alternatives.append(f"train.learning_rate: {_rate(default)} (the method's default)")
    alternatives += [_alternative("replay")] if applies["replay"] else []
    return (
        "Forgetting risk: "
        + " ".join(causes)
        + ", so the model may lose what it knew before"
        + (f" ({_effect('full')})" if high else "")
        + "."
        + (" Cheaper alternatives: " + "; ".join(alternatives) + "." if alternatives else "")
        + f" Figures measured by {BENCHMARK}. "
        + _guard(guard_action)
    )


def recipe_forgetting_risk(recipe: Recipe, examples: int, epochs: float) -> str | None:
    """`forgetting_risk` for a recipe with `examples` training examples and `epochs`
    planned epochs (what `train` and `estimate` warn about)."""
    from tunesmith.tasks.registry import get_task

    guard = recipe.guards.forgetting
    return forgetting_risk(
        recipe.method.name,
        recipe.learning_rate,
        examples,
        epochs,
        get_task(recipe.task),
        guard.action if guard is not None else None,
        recipe.train.replay,
    )


def _effect(key: str) -> str:
    measured = MEASURED[key]
    return f"measured {measured.increase:+.0%} reference perplexity for {measured.run}"


def _alternative(key: str) -> str:
    return f"{MEASURED[key].change} ({_effect(key)})"


def _rate(value: float) -> str:
    """3e-4, not 0.0003: how learning rates are written in recipes and the README."""
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _guard(action: str | None) -> str:
    rollback = "weight interpolation keeps the forgetting under its threshold"
    if action == "rollback":
        return f"guards.forgetting.action is rollback: its {rollback}."
    advice = f"guards.forgetting.action: rollback, whose {rollback}"
    if action is None:
        return (
            "guards.forgetting is off, so nothing measures the forgetting: turn it on with "
            f"{advice}."
        )
    return f"The forgetting guard only {'stops' if action == 'stop' else 'warns'}: set {advice}."
