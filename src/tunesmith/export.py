"""`tunesmith export`: a standalone transformers model folder, loadable without tunesmith
or peft (the adapter merged into the base weights, tokenizer and chat template included)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tunesmith.errors import UserError
from tunesmith.methods import get_method
from tunesmith.safe_files import check_writable_folder, is_inside
from tunesmith.tasks.registry import get_task
from tunesmith.trained_run import load_run


def export_run(folder: str | Path, output: str | Path, merge: bool = False) -> Path:
    """Write the run's model to `output`; an adapter run needs `merge` (folded into weights)."""
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
    model = run.model
    if run.is_adapter:
        method = get_method(run.recipe.method.name)
        if not method.mergeable:
            raise UserError(
                f"export: a {method.name} adapter cannot be merged: its learned virtual tokens "
                f"are not weights of the base model. Load {run.recipe.model} and "
                f"{Path(folder) / 'adapter'} with peft (PeftModel.from_pretrained) instead"
            )
        if not merge:
            raise UserError(
                f"export: {folder} holds a {method.name} adapter; add --merge to fold it into "
                f"the base weights (or use {Path(folder) / 'adapter'}, PEFT format, as it is)"
            )
        model = model.merge_and_unload()
    staging = Path(
        tempfile.mkdtemp(prefix=".export-", dir=output.parent if output.parent.exists() else None)
    )
    try:
        get_task(run.recipe.task).export(model, run, staging)
        if output.exists():
            output.rmdir()
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output
