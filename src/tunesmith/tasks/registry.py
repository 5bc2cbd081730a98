"""TASKS: every task kind tunesmith trains, registered once, as peft registers a method.

A task kind is a folder under `tasks/` (`tasks/text_classification/`, ...). Its
`__init__.py` calls `register(TaskKind(...))` with what the shared code needs to know about
it (its default model, the metrics early stopping may watch, which preprocessing keys apply)
and names its implementation module, which is imported only when the kind is used. The
implementation module provides the functions of `TaskImplementation`.

Shared code (run, inference, export, the recipe, the report) asks the registry and never
names a task kind; `KIND_PACKAGES` is the one line a new kind adds outside its folder.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    import torch
    from rich.console import Console

    from tunesmith.recipe import Recipe

KIND_PACKAGES = (
    "tunesmith.tasks.text_classification",
    "tunesmith.tasks.causal_lm",
    "tunesmith.tasks.image_classification",
    "tunesmith.tasks.seq2seq",
    "tunesmith.tasks.multi_label_classification",
)
"""The packages that register a task kind (imported on the first look-up)."""


class TaskImplementation(Protocol):
    """What a kind's implementation module provides (module-level functions)."""

    def prepare(
        self, recipe: Recipe, device: torch.device, dtype: torch.dtype | None, console: Console
    ) -> Any:
        """Read and check the data, load model and tokenizer, build the loop's task: a
        `Family` (see tasks/family.py)."""
        ...

    def load_run(self, folder: Path, recipe: Recipe, device: torch.device | None) -> Any:
        """The trained model of a finished run folder: a `TrainedRun`."""
        ...

    def evaluate_run(self, run: Any, data: str | None) -> dict:
        """Metrics on the run's own test split (data None) or on a labelled file."""
        ...

    def compare_run(self, run: Any, data: str | None, compare: list[str]) -> dict:
        """Kinds with contenders: `compare`'s contenders beside the tuned model on the test
        split or `data` (contenders, verdict, retrieval, as metrics.json has them)."""
        ...

    def answer_with_retrieval(
        self, run: Any, inputs: list[str], max_new_tokens: int | None
    ) -> list[dict]:
        """Kinds with contenders: answers with the run's retrieval, and their passages."""
        ...

    def predict_run(
        self, run: Any, inputs: list[str], text_column: str | None, max_new_tokens: int | None
    ) -> list[dict]:
        """One prediction per input (text, file row, image, prompt)."""
        ...

    def serving_model(self, run: Any, retrieval: bool | None) -> Any:
        """What `tunesmith serve` calls: a `GenerativeModel` or a `LabelModel` (see
        tasks/serving.py); `retrieval` (kinds with contenders; None: as the run's verdict
        chose) leads each prompt with retrieved passages."""
        ...

    def export(self, model: Any, run: Any, folder: Path) -> ExportDetails:
        """Write the model into `folder` so it loads without tunesmith: a transformers model
        (an adapter already merged), or, where `model` is still a peft model, its adapter in
        PEFT format; and say what the model card should tell about it."""
        ...

    def check_data(self, recipe: Recipe, console: Console, label_issues: bool | None) -> Any:
        """The data-quality checks that fit this kind: a `QualityReport` (data/quality)."""
        ...


@dataclass(frozen=True)
class AutoEpochs:
    """How `train.epochs: auto` sizes a run of a kind: enough epochs for about
    `target_steps` optimizer steps, at least `fewest` and at most `most`; early stopping
    ends it sooner once validation stops improving."""

    target_steps: int = 300
    fewest: int = 3
    most: int = 30


@dataclass(frozen=True)
class SearchDefaults:
    """`tunesmith tune`'s space for a kind when the recipe has no `tune:` section: plain
    data, turned into the space by tunesmith/tune/space.py (fewer keys for small budgets)."""

    methods: tuple[str, ...] = ("lora", "full")
    """method.name candidates (each must be in the kind's `methods`)."""
    learning_rate_factor: tuple[float, float] = (0.3, 3.0)
    """train.learning_rate: a log range of multiples of each method's default rate."""
    lora_r: tuple[int, ...] = (4, 8, 16)
    """method.r candidates, for the methods that have a rank (lora, dora)."""
    epochs: tuple[int, int] | None = (3, 12)
    """train.epochs: a range of whole epochs (early stopping ends a run sooner); None:
    the recipe's."""


@dataclass(frozen=True)
class ExportDetails:
    """What a kind's `export` wrote, for the exported folder's model card (model_card.py)."""

    loader: str
    """Python lines that load the folder and predict without tunesmith (tested verbatim). They
    read `folder` (the export) and, for an adapter, `base` (its base model), and the inputs
    named by `inputs`; they leave the predictions in `probabilities` (classifiers) or `answers`
    (generative kinds)."""
    inputs: str
    """The loader's first line: the example inputs (`texts = [...]`, `images = [...]`, ...)."""
    preprocessing: str
    """What happens to an input before the model sees it, and where that lives in the folder."""
    files: dict[str, str]
    """The kind's own files in the folder (name -> what it holds)."""
    adapter: bool = False
    """The folder holds an adapter (PEFT format) rather than a whole model."""
    image_packages: bool = False
    """The loader also reads images (numpy and Pillow)."""

    @property
    def library_name(self) -> str:
        """The card's `library_name`: transformers, or peft for an adapter."""
        return "peft" if self.adapter else "transformers"

    @property
    def requires(self) -> tuple[str, ...]:
        """The packages the loader imports."""
        images = ("numpy", "pillow") if self.image_packages else ()
        return ("torch", "transformers", *(("peft",) if self.adapter else ()), *images)


@dataclass(frozen=True)
class TaskKind:
    """A task kind as the shared code sees it; the rest lives in its folder."""

    name: str
    implementation: str
    """Module with the `TaskImplementation` functions, imported on first use."""
    default_model: str
    metrics: tuple[str, ...]
    """Validation metrics early stopping may watch; the first is the default."""
    headline: tuple[str, ...]
    """Test metrics shown side by side (train's table, eval)."""
    inputs: Literal["text", "image"]
    """Which preprocess keys apply (text: max_length, unicode, ...; image: image_size, ...)."""
    methods: tuple[str, ...] = ("full", "lora", "dora", "ia3", "selective")
    """Fine-tuning methods (method.name) that fit this kind."""
    generative: bool = False
    """Writes answers: generation settings apply, replay of reference text is possible, and
    classifier-only text preprocessing (lowercase, stop words) is refused."""
    default_max_length: int | Literal["auto"] | None = None
    """preprocess.max_length when the recipe does not set it; "auto" also allows
    max_length: auto (resolved from the training texts by the kind, data/lengths.py)."""
    default_unicode: Literal["nfkc", "none"] | None = None
    description: str = ""
    auto_epochs: AutoEpochs = AutoEpochs()
    relative_min_delta: float = 0.0
    """Default of train.early_stopping.relative_min_delta for this kind."""
    search: SearchDefaults = SearchDefaults()
    """`tunesmith tune`'s default space for this kind (the recipe's `tune:` replaces it)."""
    contenders: tuple[str, ...] = ()
    """The options `compare` may score beside the fine-tune (and its default): base,
    few-shot, rag, fine-tuned, fine-tuned+rag; () for a kind without them."""
    pipeline_tag: str = ""
    """The Hugging Face pipeline an exported model serves (text-classification,
    text-generation, ...): the model card's `pipeline_tag`."""

    def load(self) -> ModuleType:
        return importlib.import_module(self.implementation)

    def __getattr__(self, name: str) -> Any:
        """kind.prepare(...), kind.load_run(...): the implementation's functions."""
        if name.startswith("_") or name not in TaskImplementation.__dict__:
            raise AttributeError(name)
        return getattr(self.load(), name)


TASKS: dict[str, TaskKind] = {}


def register(kind: TaskKind) -> TaskKind:
    if kind.name in TASKS and TASKS[kind.name] != kind:
        raise ValueError(f"task kind {kind.name!r} is registered twice")
    TASKS[kind.name] = kind
    return kind


def task_kinds() -> dict[str, TaskKind]:
    """Every registered kind, by name, in KIND_PACKAGES order whatever order the packages
    were first imported in (messages and listings that name the kinds stay the same)."""
    for package in KIND_PACKAGES:
        importlib.import_module(package)

    def place(kind: TaskKind) -> int:
        home = next((p for p in KIND_PACKAGES if kind.implementation.startswith(p + ".")), None)
        return KIND_PACKAGES.index(home) if home else len(KIND_PACKAGES)

    return {kind.name: kind for kind in sorted(TASKS.values(), key=place)}


def get_task(name: str) -> TaskKind:
    kinds = task_kinds()
    if name not in kinds:
        from tunesmith.errors import UserError

        raise UserError(f"task {name!r}: unknown; choose one of {', '.join(kinds)}")
    return kinds[name]
