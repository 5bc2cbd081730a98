"""`Family`: what a task kind hands to `train` for one run (its model, its loop-facing task,
its cheaper contenders, how it saves), made by the kind's `prepare`. The loop, the methods
and the run folder are shared; `run.py` drives a family through this protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch
from rich.console import Console
from torch import nn

from tunesmith.evaluate.forgetting import Measure
from tunesmith.evaluate.slices import ExampleResults
from tunesmith.method_registry import Method
from tunesmith.recipe import Recipe
from tunesmith.train.task import TrainTask


class Family(Protocol):
    model: nn.Module
    task: TrainTask
    headline: tuple[str, ...]
    """Test metrics printed in the before/after table."""
    score_start: bool
    """The model before training is a fair candidate for the best weights (a pre-trained
    LLM, a probe-fitted head): training that only makes it worse is rolled back."""

    def describe(self, console: Console) -> None:
        """Print the data summary (sizes, truncation)."""
        ...

    def adapt_to(self, method: Method) -> None:
        """Adjust the task to the method (e.g. no packing with virtual tokens)."""
        ...

    def score_before(self, console: Console, split: str = "test") -> dict[str, dict]:
        """Metrics of the cheaper options ("base", "baseline") on `split`, before the method:
        test for `train`; validation for `tunesmith tune`, which never reads test while it
        searches."""
        ...

    def init_head(self, console: Console) -> None:
        """Start the head before training where the kind has a better start than random
        (image classification: LP-FT, from the frozen-feature probe); else nothing."""
        ...

    def score_after(self, model: nn.Module) -> dict:
        """Test metrics of the tuned model (the "fine_tuned" entry of metrics.json)."""
        ...

    def test_examples(self) -> ExampleResults | None:
        """The last `score_after`'s test results example by example, for metrics per slice
        (data.slice_columns, evaluate/slices.py); None where the kind has none."""
        ...

    def head_parameters(self) -> set[int]:
        """id() of freshly initialised parameters that learn at the head learning rate."""
        ...

    def finish(self, model: nn.Module, output: Path) -> dict[str, Any]:
        """Extra metrics.json entries once the tuned model was scored on test."""
        ...

    def forgetting_measure(self, reference: str) -> Measure:
        """How far the model drifts from the pre-trained one on reference data (see
        evaluate/forgetting.py); made from the model before the method is applied."""
        ...

    def save(self, model: nn.Module, output: Path, adapter: bool) -> Path:
        """Write adapter/ (PEFT format) or model/ into the run folder, with what inference
        needs (tokenizer, chat template, label names, image preprocessing)."""
        ...


def prepare(
    recipe: Recipe, device: torch.device, dtype: torch.dtype | None, console: Console
) -> Family:
    """Read the data and load model, tokenizer and task for the recipe's task kind."""
    from tunesmith.tasks.registry import get_task

    return get_task(recipe.task).prepare(recipe, device, dtype, console)
