"""`tunesmith export`: a model folder that loads without tunesmith, with a README.md model
card (Hugging Face format) saying what it is and how to load it.

- `--merge` (or a run that saved a whole model): a standalone transformers model, the adapter
  folded into the weights; tokenizer (with the run's text normalisation folded into it) and
  chat template included, or the image processor for an image model.
- an adapter run without `--merge`: the adapter in PEFT format, its `adapter_config.json`
  naming a portable base model (the Hub id of a built-in, never a cache or site-packages
  path), and the tokenizer. Adapters of virtual tokens (prefix, prompt, p-tuning) can only be
  exported so.

The export is written to a staging folder beside `output` and moved into place whole; it is
never inside the run folder and never replaces a non-empty folder.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from tunesmith.errors import UserError
from tunesmith.methods import get_method
from tunesmith.model_card import write_model_card
from tunesmith.models.resolve import ModelOrigin, model_origin
from tunesmith.safe_files import check_writable_folder, is_inside
from tunesmith.tasks.registry import get_task
from tunesmith.trained_run import load_run

ADAPTER_CONFIG = "adapter_config.json"


def export_run(folder: str | Path, output: str | Path, merge: bool = False) -> Path:
    """Write the run's model to `output` with its model card: merged into a standalone model
    with `merge` (or when the run saved a whole model), else the adapter in PEFT format."""
    output = Path(output)
    if is_inside(output, folder) or is_inside(folder, output):
        raise UserError(
            f"--output {output}: the export may not be inside the run folder {folder} (or hold "
            "it); choose a new folder beside it"
        )
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise UserError(f"--output {output} already exists and is not empty; choose a new folder")
    check_writable_folder(output, "--output")
    run = load_run(folder)
    kind = get_task(run.recipe.task)
    model = run.model
    adapter = merged = False
    if run.is_adapter:
        method = get_method(run.recipe.method.name)
        if merge and not method.mergeable:
            raise UserError(
                f"export --merge: a {method.name} adapter cannot be merged: its learned virtual "
                "tokens are not weights of the base model. Drop --merge to export the adapter "
                "(PEFT format) with its base model named"
            )
        if merge:
            model, merged = model.merge_and_unload(), True
        else:
            adapter = True
    origin = model_origin(run.recipe.model)
    staging = Path(
        tempfile.mkdtemp(prefix=".export-", dir=output.parent if output.parent.exists() else None)
    )
    try:
        details = kind.export(model, run, staging)
        base = point_at_portable_base(staging, origin) if adapter else None
        write_model_card(
            staging, run.folder, run.recipe, kind, details, origin, adapter, merged, base
        )
        if output.exists():
            output.rmdir()
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output


def point_at_portable_base(folder: Path, origin: ModelOrigin) -> str:
    """Name the base model by its Hub id in the exported adapter_config.json (peft writes the
    folder it was loaded from: tunesmith's cache or site-packages for a built-in); a base with
    no Hub id keeps its folder. Returns the name written. The run folder's own adapter is left
    as it is: tunesmith loads its base from the recipe."""
    path = folder / ADAPTER_CONFIG
    config = json.loads(path.read_text(encoding="utf-8"))
    if origin.hub_id:
        config["base_model_name_or_path"] = origin.hub_id
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return str(config.get("base_model_name_or_path") or origin.reference)
