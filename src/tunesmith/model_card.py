"""The README.md model card of an exported folder, in the Hugging Face format: YAML front
matter (license where known, base_model, library_name, pipeline_tag, tags), then what the
model is, its base model, data, method, test scores, preprocessing, the lines that load it
without tunesmith, its files and its intended use.

One generator for every task kind: the kind's own parts (pipeline_tag, the loading lines,
the preprocessing) come from its `TaskKind` and the `ExportDetails` its `export` returns;
the rest from the run folder's recipe.yaml and metrics.json.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from tunesmith.models.resolve import ModelOrigin
from tunesmith.run_folder import RunFolder
from tunesmith.tasks.registry import ExportDetails, TaskKind
from tunesmith.version import __version__

CARD_FILE = "README.md"
LOADER_HEADING = "## Load it without tunesmith"
"""The section whose first python block is the loader (tests run it as it is)."""
FOLDER_LINE = 'folder = "."  # this folder (or its Hub id once uploaded)'
MAX_LABELS_SHOWN = 30
ROWS = (
    ("fine_tuned", "fine-tuned (this model)"),
    ("base", "base"),
    ("baseline", "baseline"),
)
"""metrics.json entries in the results table, and how the table names them."""


def loader_code(card: str) -> str:
    """The python block of a card's loading section: what a user copies (tests run it)."""
    section = card.split(LOADER_HEADING, 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def write_model_card(
    folder: Path,
    run_folder: Path,
    recipe: Any,
    kind: TaskKind,
    details: ExportDetails,
    origin: ModelOrigin,
    adapter: bool,
    merged: bool = False,
    base_reference: str | None = None,
) -> Path:
    """Write `folder`/README.md for the export of `run_folder` (its recipe and metrics.json);
    `adapter`: the folder holds a PEFT adapter whose base is `base_reference` (what its
    adapter_config.json names); `merged`: an adapter was merged into the weights."""
    metrics = RunFolder(run_folder).read_json(RunFolder.METRICS)
    method = recipe.method.name
    front: dict[str, Any] = {}
    if origin.license:
        front["license"] = origin.license
    if origin.hub_id:
        front["base_model"] = origin.hub_id
    front["library_name"] = details.library_name
    front["pipeline_tag"] = kind.pipeline_tag
    front["tags"] = list(
        dict.fromkeys(["tunesmith", kind.name, method, *(["peft"] if adapter else [])])
    )
    sections = [
        "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n",
        _summary(kind, method, origin, adapter, merged, base_reference),
        _base_section(origin, adapter, base_reference),
        _data_section(recipe, metrics),
        _method_section(recipe, metrics, adapter),
        _results_section(kind, metrics),
        "## Preprocessing\n\n" + details.preprocessing + "\n",
        _loader_section(details, adapter, base_reference),
        _files_section(folder, details, adapter),
        _use_section(kind),
    ]
    path = folder / CARD_FILE
    path.write_text("\n".join(s for s in sections if s), encoding="utf-8")
    return path


def _summary(
    kind: TaskKind, method: str, origin: ModelOrigin, adapter: bool, merged: bool, base: str | None
) -> str:
    form = (
        f"a {method} adapter in PEFT format, to load on top of `{base or origin.name}`"
        if adapter
        else "a standalone transformers model"
        + (" (the adapter merged into the weights)" if merged else "")
    )
    return (
        f"# {origin.name} fine-tuned for {kind.name}\n\n"
        f"{kind.description[:1].upper() + kind.description[1:]}: `{origin.name}` fine-tuned "
        f"with {method} by tunesmith, exported as {form}. It loads without tunesmith (see "
        f"*Load it without tunesmith*).\n"
    )


def _base_section(origin: ModelOrigin, adapter: bool, base: str | None) -> str:
    lines = ["## Base model", ""]
    if origin.hub_id:
        lines.append(
            f"- Hugging Face Hub: [`{origin.hub_id}`](https://huggingface.co/{origin.hub_id})"
        )
    else:
        lines.append("- Not on the Hugging Face Hub")
    if origin.reference != origin.hub_id:
        where = origin.reference if origin.reference.startswith("builtin:") else origin.name
        lines.append(f"- Trained from: `{where}`")
    if origin.note:
        lines.append(f"- **Weights**: {origin.note}")
    if origin.license:
        lines.append(f"- Licence: {origin.license}")
    if adapter:
        lines.append(
            f"- The adapter's `adapter_config.json` names `{base}` as its base "
            "(`base_model_name_or_path`)"
            + (
                ""
                if origin.hub_id
                else "; that is a folder on the machine that trained it: copy the base "
                "model along, or point the loading lines at where it is"
            )
        )
    return "\n".join(lines) + "\n"


def _data_section(recipe: Any, metrics: dict) -> str:
    data = recipe.data
    splits = metrics.get("splits") or {}
    sources = {
        "train": data.train,
        "validation": data.validation,
        "test": data.test,
    }
    lines = ["## Training data", ""]
    for name in ("train", "validation", "test"):
        count = splits.get(name)
        source = sources[name]
        origin = (
            f"`{Path(str(source)).name}`"
            if source
            else f"held out from `{Path(str(data.train)).name}` (seed {recipe.train.seed})"
        )
        rows = f"{count} rows" if isinstance(count, int) else "rows"
        lines.append(f"- {name}: {rows}, {origin}")
    labels = metrics.get("labels") or []
    if labels:
        shown = ", ".join(f"`{label}`" for label in labels[:MAX_LABELS_SHOWN])
        hidden = len(labels) - MAX_LABELS_SHOWN
        more = f" and {hidden} more" if hidden > 0 else ""
        lines.append(f"- {len(labels)} labels: {shown}{more}")
    return "\n".join(lines) + "\n"


def _method_section(recipe: Any, metrics: dict, adapter: bool) -> str:
    settings = recipe.method.model_dump(exclude={"name"})
    shown = ", ".join(f"{key} {value}" for key, value in settings.items() if value is not None)
    train = recipe.train
    lines = [
        "## Training",
        "",
        f"- Method: {recipe.method.name}" + (f" ({shown})" if shown else ""),
        f"- {_number(train.epochs)} epochs planned, learning rate {train.learning_rate}, batch "
        f"size {train.batch_size}, seed {train.seed}, precision {metrics.get('precision', '?')}",
    ]
    if metrics.get("stop_reason"):
        best = metrics.get("best_step")
        lines.append(
            f"- Stopped: {metrics['stop_reason']}"
            + (f"; the weights are those of step {best}" if best is not None else "")
        )
    if isinstance(metrics.get("train_seconds"), (int, float)):
        lines.append(
            f"- Training took {metrics['train_seconds']:.1f} s on {metrics.get('device', '?')}"
        )
    return "\n".join(lines) + "\n"


def _results_section(kind: TaskKind, metrics: dict) -> str:
    columns = [name for name in kind.headline if _value(metrics.get("fine_tuned"), name)]
    if not columns:
        return ""
    lines = [
        "## Results on the held-out test split",
        "",
        "| model | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for key, label in ROWS:
        entry = metrics.get(key)
        if not isinstance(entry, dict):
            continue
        description = entry.get("description")
        name = f"{label}: {description}" if description and key != "fine_tuned" else label
        cells = [_value(entry, column) or "" for column in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    forgetting = metrics.get("forgetting")
    if isinstance(forgetting, dict) and isinstance(forgetting.get("increase"), (int, float)):
        lines += [
            "",
            f"Forgetting ({forgetting.get('measure', 'measure')} on "
            f"`{forgetting.get('reference')}`): {_number(forgetting.get('before'))} before, "
            f"{_number(forgetting.get('after'))} after training.",
        ]
    return "\n".join(lines) + "\n"


def _loader_section(details: ExportDetails, adapter: bool, base: str | None) -> str:
    setup = [FOLDER_LINE]
    if adapter:
        setup.append(f"base = {_python_string(base or '')}  # the base model the adapter goes on")
    code = "\n".join([*setup, details.inputs, "", details.loader.rstrip("\n")])
    return (
        f"{LOADER_HEADING}\n\n"
        f"Needs `pip install {' '.join(details.requires)}`. These lines give the predictions "
        "`tunesmith predict` gives (a test runs them on every task kind):\n\n"
        f"```python\n{code}\n```\n"
    )


def _files_section(folder: Path, details: ExportDetails, adapter: bool) -> str:
    described = dict(details.files)
    if adapter:
        described.setdefault("adapter_config.json", "the adapter's settings and its base model")
        described.setdefault("adapter_model.safetensors", "the adapter's weights")
    else:
        described.setdefault("config.json", "the architecture (and labels)")
        described.setdefault("model.safetensors", "the weights")
    described[CARD_FILE] = "this model card"
    present = {p.name for p in folder.iterdir()} | {CARD_FILE}
    lines = ["## Files", ""]
    for names, what in described.items():
        if any(name.strip() in present for name in names.split(",")):
            lines.append(f"- `{names}`: {what}")
    return "\n".join(lines) + "\n"


def _use_section(kind: TaskKind) -> str:
    inputs = "images" if kind.inputs == "image" else "texts"
    risk = (
        " Its answers can be wrong or invented; keep a person in the loop where they matter."
        if kind.generative
        else ""
    )
    return (
        "## Intended use and limits\n\n"
        f"For {kind.description}, on {inputs} like the training data above. The scores are "
        "from a test split of the same data: check the model on data from where it will be "
        "used before relying on it, and expect the training data's gaps and biases in its "
        f"predictions.{risk}\n\n"
        f"Written by tunesmith {__version__} (`tunesmith export`).\n"
    )


def _value(entry: Any, name: str) -> str | None:
    if not isinstance(entry, dict):
        return None
    value = entry.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return _number(value)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _python_string(text: str) -> str:
    """`text` as a Python string literal (JSON's quoting is valid Python)."""
    return json.dumps(text, ensure_ascii=False)
