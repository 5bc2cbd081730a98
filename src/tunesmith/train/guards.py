"""Guards the training loop consults at every evaluation: forgetting (measured on reference
data) and overfitting (validation loss rising while training loss falls). Each adds its
numbers to the evaluation's history line and may end the run or bar an evaluation from
being the best one."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from rich.console import Console
from torch import nn

from tunesmith.evaluate.forgetting import Measure, increase
from tunesmith.recipe import ForgettingGuard, OverfittingGuard


@dataclass(frozen=True)
class Retry:
    """Go on training from the best weights under the threshold (the starting weights when
    there are none) instead of ending the run, with a mitigation against forgetting."""

    limit: int
    """How many retries a run may take (guards.forgetting.retries)."""
    lr_factor: float
    """The learning rate is multiplied by this (1: unchanged)."""
    l2_sp: float
    """L2-SP strength towards the starting weights from now on (0: none)."""
    start: dict[str, torch.Tensor]
    """The starting trainable weights by name: L2-SP's anchor, and the fallback."""
    on_taken: Callable[[], None] | None = None
    """Called when the loop takes the retry."""


@dataclass
class Decision:
    stop: str | None = None
    """Why the run must end now (None: go on)."""
    eligible: bool = True
    """False: these weights may not become the best (rollback past the threshold)."""
    retry: Retry | None = None
    """Instead of `stop`, while the run has retries left: roll back and go on."""


class Guard(Protocol):
    def observe(self, model: nn.Module, record: dict, console: Console) -> Decision: ...


DEFAULT_THRESHOLDS = {"perplexity": 0.10, "representation_drift": 0.5, "imagenet_disagreement": 0.5}
RETRY_L2_SP = 0.1
"""L2-SP strength of a retry's l2_sp mitigation when train.l2_sp is 0."""


class ForgettingMonitor:
    """Measures forgetting before training (`start`) and at every evaluation."""

    def __init__(self, measure: Measure, config: ForgettingGuard) -> None:
        self.measure = measure
        self.config = config
        self.threshold = config.max_increase or DEFAULT_THRESHOLDS[measure.name]
        self.before: float | None = None
        self.action_taken = "none"
        self._start_state: dict[str, torch.Tensor] | None = None
        self.crossed_state: dict[str, torch.Tensor] | None = None
        """The trainable weights whose measure ended the run past the threshold (stop or
        rollback): the tuned end of the rescue's interpolation."""
        self.last_increase: float | None = None

    def start(self, model: nn.Module) -> float:
        """Measure the pre-trained model (before the method is applied)."""
        self.before = self.measure(model)
        return self.before

    @property
    def acts(self) -> bool:
        """Stop or rollback: the guard changes what the run keeps (warn only tells)."""
        return self.config.action in ("stop", "rollback")

    @property
    def start_state(self) -> dict[str, torch.Tensor] | None:
        return self._start_state

    def keep_start(self, model: nn.Module) -> None:
        """With stop or rollback, remember the starting trainable weights (the model with
        its method applied): the fallback when no evaluation stays under the threshold, the
        start of the rescue's interpolation and L2-SP's anchor of a retry."""
        if self.acts:
            self._start_state = {
                n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad
            }

    def cadence(self, steps_per_epoch: int, eval_every: int) -> int | None:
        """Steps between measurements when they are more frequent than the evaluations
        (guards.forgetting.every), else None."""
        every = self.config.every
        if every == "auto":
            every = max(1, math.ceil(steps_per_epoch / 4)) if self.acts else eval_every
        return every if every < eval_every else None

    def observe(self, model: nn.Module, record: dict, console: Console) -> Decision:
        value = self.before if record.get("step") == 0 else self.measure(model)
        change = increase(self.measure, self.before, value)
        record[f"forgetting_{self.measure.name}"] = value
        record["forgetting_increase"] = change
        self.last_increase = change
        if not (change > self.threshold):
            return Decision()
        what = (
            f"forgetting: {self.measure.name} on the reference went from {self.before:.4g} to "
            f"{value:.4g} ({_change(self.measure.relative, change)}), past "
            f"guards.forgetting.max_increase={self.threshold:g}"
        )
        action = self.config.action
        if action == "warn":
            if self.action_taken == "none":
                console.print(f"[yellow]{what}; training goes on (action: warn)")
            self.action_taken = "warned"
            return Decision()
        self.action_taken = "stopped" if action == "stop" else "rolled_back"
        kept = (
            "the best weights so far are kept"
            if action == "stop"
            else "the best weights under the threshold are restored"
        )
        self.crossed_state = {
            n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad
        }
        return Decision(
            stop=f"{what}: stopped ({kept})",
            eligible=action != "rollback",
            retry=self._retry() if action == "rollback" else None,
        )

    def _retry(self) -> Retry | None:
        config = self.config
        if not config.retries or self._start_state is None:
            return None
        return Retry(
            limit=config.retries,
            lr_factor=config.retry_lr_factor if "lower_lr" in config.mitigation else 1.0,
            l2_sp=RETRY_L2_SP if "l2_sp" in config.mitigation else 0.0,
            start=self._start_state,
            on_taken=self.continued,
        )

    def continued(self) -> None:
        """The loop took the retry: training goes on, the crossing is no longer the end."""
        self.action_taken = "rolled_back_and_continued"
        self.crossed_state = None

    @property
    def ended_past_threshold(self) -> bool:
        """The run ended because its weights went past the threshold (stop or rollback)."""
        return self.crossed_state is not None

    def finish(self, model: nn.Module, restored_best: bool) -> bool:
        """After the loop: a rollback with no evaluation under the threshold goes back to
        the starting weights. Whether it did."""
        if self.action_taken == "rolled_back" and not restored_best and self._start_state:
            model.load_state_dict(self._start_state, strict=False)
            return True
        return False

    def summary(self, model: nn.Module, reference: str, measured: float | None = None) -> dict:
        """Before and after; `measured`: the kept weights' value, already measured at their
        evaluation (else measured now)."""
        after = self.measure(model) if measured is None else measured
        return {
            "reference": reference,
            "measure": self.measure.name,
            "before": self.before,
            "after": after,
            "increase": increase(self.measure, self.before, after),
            "threshold": self.threshold,
            "action": self.config.action,
            "action_taken": self.action_taken,
        }


class OverfittingMonitor:
    """Stops when validation loss rose and training loss fell for `patience` evaluations
    in a row; the loop then restores the best-validation weights."""

    def __init__(self, config: OverfittingGuard) -> None:
        self.config = config
        self.previous: dict | None = None
        self.streak = 0
        self.detected_at: int | None = None

    def observe(self, model: nn.Module, record: dict, console: Console) -> Decision:
        if record.get("guard_check"):  # patience counts evaluations, not the guards' checks
            return Decision()
        previous, self.previous = self.previous, record
        if previous is None or "train_loss" not in record or "train_loss" not in previous:
            return Decision()
        rising = record["val_loss"] > previous["val_loss"]
        falling = record["train_loss"] < previous["train_loss"]
        self.streak = self.streak + 1 if rising and falling else 0
        record["overfitting_streak"] = self.streak
        if self.streak < self.config.patience:
            return Decision()
        what = (
            f"overfitting: validation loss rose for {self.streak} evaluations in a row "
            f"(to {record['val_loss']:.4f}) while training loss fell (to "
            f"{record['train_loss']:.4f})"
        )
        if self.detected_at is None:
            self.detected_at = record["step"]
        if self.config.action == "warn":
            if self.streak == self.config.patience:
                console.print(f"[yellow]{what}; training goes on (action: warn)")
            return Decision()
        return Decision(stop=f"{what}: stopped, the best-validation weights are restored")


def overfitting_risk(examples: int, epochs: float, trainable: int) -> str | None:
    """A warning before training when the setting invites overfitting."""
    if examples >= 1000 or epochs < 10:
        return None
    per_example = trainable / max(examples, 1)
    return (
        f"{examples} training examples for {epochs:g} epochs"
        + (f", {per_example:,.0f} trainable weights per example" if per_example > 1000 else "")
        + ": the model may learn them by heart. The overfitting guard stops the run when "
        "validation loss rises while training loss falls"
    )


def _change(relative: bool, change: float) -> str:
    if math.isnan(change):
        return "n/a"
    return f"{change:+.1%}" if relative else f"{change:.3f}"
