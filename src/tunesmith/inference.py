"""`tunesmith eval` and `tunesmith predict` on a finished run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunesmith.data.tables import READERS, read_table
from tunesmith.data.text import (
    TextExamples,
    TextSplits,
    load_labelled_file,
    load_text_classification,
)
from tunesmith.errors import UserError
from tunesmith.run_folder import TrainedRun, load_run
from tunesmith.tasks.text_classification import TextClassificationTask
from tunesmith.train.device import resolve_device, resolve_precision


def _task(run: TrainedRun, splits: TextSplits) -> TextClassificationTask:
    device = resolve_device(run.recipe.train.device)
    run.model.to(device)
    return TextClassificationTask(
        splits,
        run.tokenizer,
        run.recipe.preprocess.max_length,
        device,
        resolve_precision(run.recipe.train.precision, device),
    )


def evaluate_run(folder: str | Path, data: str | None = None) -> dict:
    """Metrics of the trained model on `data`, or on the run's own test split."""
    run = load_run(folder)
    if data is None:
        splits = load_text_classification(run.recipe.data, run.recipe.train.seed)
        if splits.label_names != run.label_names:
            raise UserError(
                f"{run.recipe.data.train} no longer has the labels the run was trained on; "
                "give the file to score with --data"
            )
    else:
        empty = TextExamples([], [], [], "")
        test = load_labelled_file(data, run.recipe.data, run.label_names)
        splits = TextSplits(empty, empty, test, run.label_names)
    metrics = _task(run, splits).evaluate(run.model, "test", detailed=True)
    metrics["examples"] = len(splits.test)
    metrics["source"] = splits.test.source
    return metrics


def read_inputs(inputs: list[str], text_column: str) -> list[str]:
    """Each input is a file (one text per row or line) when such a file exists, else a text."""
    texts: list[str] = []
    for item in inputs:
        path = Path(item)
        if len(item) < 4096 and path.is_file():
            if path.suffix.lower() == ".txt":
                texts.extend(line for line in path.read_text().splitlines() if line.strip())
                continue
            if path.suffix.lower() not in READERS:
                raise UserError(
                    f"{path}: use .txt (one text per line), csv, jsonl, json or parquet"
                )
            frame = read_table(path, role="INPUT")
            if text_column not in frame.columns:
                raise UserError(
                    f"{path}: no column {text_column!r}; its columns are "
                    f"{', '.join(map(str, frame.columns))}. Pass --text-column NAME"
                )
            texts.extend(frame[text_column].fillna("").astype(str).tolist())
        else:
            texts.append(item)
    if not texts:
        raise UserError("predict: nothing to predict; give texts or files of texts")
    return texts


def predict_run(
    folder: str | Path, inputs: list[str], text_column: str | None = None
) -> list[dict]:
    """One prediction per text: label, its probability, and every label's probability."""
    run = load_run(folder)
    texts = read_inputs(inputs, text_column or run.recipe.data.text_column)
    empty = TextExamples([], [], [], "")
    task = _task(run, TextSplits(empty, empty, empty, run.label_names))
    probabilities = task.predict_proba(run.model, texts)
    names = run.label_names
    return [
        {
            "text": text,
            "label": names[int(np.argmax(row))],
            "score": float(row.max()),
            "probabilities": {name: float(p) for name, p in zip(names, row, strict=True)},
        }
        for text, row in zip(texts, probabilities, strict=True)
    ]
