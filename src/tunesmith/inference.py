"""`tunesmith eval` and `tunesmith predict` on a finished run: the checks every kind shares,
then the run's task kind scores or predicts (tasks/<kind>/kind.py)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from tunesmith.data.images import IMAGE_SUFFIXES
from tunesmith.data.tables import READERS
from tunesmith.errors import UserError
from tunesmith.run_folder import RunFolder
from tunesmith.safe_files import fingerprint
from tunesmith.tasks.registry import get_task
from tunesmith.trained_run import load_run


def check_data_unchanged(folder: RunFolder) -> None:
    """The run's own test split is only its test split while its data files are as they were
    at training time (a stratified split of a grown file holds other rows): compare each
    file's SHA-256 with the one metrics.json recorded."""
    folder.require_finished()
    recorded = folder.read_json(RunFolder.METRICS).get("data_fingerprints")
    if not recorded:
        Console(stderr=True).print(
            "[yellow]This run recorded no fingerprints of its data (trained by an older "
            "tunesmith): its test split is rebuilt from the data files as they are now"
        )
        return
    for split, entry in recorded.items():
        if fingerprint(entry["path"]) != entry["sha256"]:
            raise UserError(
                f"eval: {entry['path']} ({split} data) changed or is gone since {folder} was "
                "trained, so its test split would hold other rows; score a file with "
                "--data FILE instead"
            )


def evaluate_run(
    folder: str | Path, data: str | None = None, compare: list[str] | None = None
) -> dict:
    """Metrics of the trained model on `data`, or on the run's own test split; with
    `compare`, the contenders named there beside it (few-shot, rag, fine-tuned+rag, base)."""
    if data is None:
        check_data_unchanged(RunFolder(folder))
    run = load_run(folder)
    kind = get_task(run.recipe.task)
    if compare is None:
        return kind.evaluate_run(run, data)
    unknown = [name for name in compare if name not in kind.contenders]
    if unknown:
        offered = ", ".join(kind.contenders) or "none"
        raise UserError(
            f"--compare: {', '.join(unknown)} is not a contender of {run.recipe.task} "
            f"(it offers: {offered})"
        )
    return kind.compare_run(run, data, compare)


INPUT_FILE_SUFFIXES = frozenset({".txt", *READERS, *IMAGE_SUFFIXES})


def check_inputs_exist(inputs: list[str]) -> None:
    """An input named like a file (data/new.csv, photo.jpg) that does not exist is a typo in a
    path, not a text to classify: say so instead of predicting on the path's letters."""
    for item in inputs:
        path = Path(item).expanduser()
        named_like_file = len(item) < 4096 and not any(c.isspace() for c in item)
        if named_like_file and path.suffix.lower() in INPUT_FILE_SUFFIXES and not path.exists():
            raise UserError(
                f"INPUT {item}: no such file (from {Path.cwd()}); check the path. To predict "
                "on this text as it is, write it in a .txt file and give that file"
            )


def predict_run(
    folder: str | Path,
    inputs: list[str],
    text_column: str | None = None,
    max_new_tokens: int | None = None,
    retrieval: bool | None = None,
) -> list[dict]:
    """Classifier: one prediction per text or image (label, its probability, every label's
    probability). Causal LM: one generated response per prompt; with `retrieval` (None: when
    the run's verdict chose fine-tuned+rag) each prompt is led by retrieved passages, which
    are returned with the answer."""
    check_inputs_exist(inputs)
    run = load_run(folder)
    kind = get_task(run.recipe.task)
    chosen = (RunFolder(folder).read_json(RunFolder.METRICS).get("verdict") or {}).get(
        "cheapest_within_noise"
    )
    if retrieval is None:
        retrieval = chosen == "fine-tuned+rag"
    if retrieval:
        if "fine-tuned+rag" not in kind.contenders:
            raise UserError(f"--rag: {run.recipe.task} runs answer without retrieval")
        return kind.answer_with_retrieval(run, inputs, max_new_tokens)
    return kind.predict_run(run, inputs, text_column, max_new_tokens)
