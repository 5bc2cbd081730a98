"""`tunesmith eval` and `tunesmith predict` on a finished run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from tunesmith.data.causal import LMSplit, LMSplits, load_causal_lm, load_lm_file, read_prompts
from tunesmith.data.images import (
    IMAGE_SUFFIXES,
    ImageExamples,
    ImageSplits,
    load_image_classification,
    load_labelled_images,
    read_image_inputs,
)
from tunesmith.data.tables import READERS, read_table
from tunesmith.data.text import (
    TextExamples,
    TextSplits,
    load_labelled_file,
    load_text_classification,
)
from tunesmith.data.text_preprocess import TextPreprocessor
from tunesmith.errors import UserError
from tunesmith.run_folder import RunFolder
from tunesmith.safe_files import fingerprint
from tunesmith.tasks.causal_lm import CausalLMTask
from tunesmith.tasks.image_classification import ImageClassificationTask
from tunesmith.tasks.text_classification import TextClassificationTask
from tunesmith.train.device import resolve_device, resolve_precision
from tunesmith.trained_run import TrainedRun, load_run


def _placed(run: TrainedRun) -> tuple[torch.device, torch.dtype | None]:
    """Move the run's model to its device; (device, autocast dtype) as the recipe says."""
    device = resolve_device(run.recipe.train.device)
    run.model.to(device)
    return device, resolve_precision(run.recipe.train.precision, device)


def _check_same_labels(run: TrainedRun, label_names: list[str], what: str) -> None:
    if label_names != run.label_names:
        raise UserError(
            f"{run.recipe.data.train} no longer has the labels the run was trained on; "
            f"give the {what} to score with --data"
        )


def _task(run: TrainedRun, splits: TextSplits) -> TextClassificationTask:
    """The task with the run's own text preprocessing (from its recipe.yaml), so texts are
    prepared exactly as in training."""
    device, dtype = _placed(run)
    return TextClassificationTask(
        splits,
        run.tokenizer,
        run.recipe.preprocess.max_length,
        device,
        dtype,
        preprocessor=TextPreprocessor.from_config(run.recipe.preprocess),
    )


def _note_fallbacks(count: int, what: str) -> None:
    if count:
        Console(stderr=True).print(
            f"[yellow]{count} {what} hold nothing but stop words; they were kept normalised, "
            "with their stop words"
        )


def _lm_task(run: TrainedRun, splits: LMSplits) -> CausalLMTask:
    device, dtype = _placed(run)
    return CausalLMTask.from_recipe(splits, run.tokenizer, run.recipe, device, dtype)


def _evaluate_lm(run: TrainedRun, data: str | None) -> dict:
    if data is None:
        splits = load_causal_lm(run.recipe.data, run.recipe.train.seed)
    else:
        fmt = None if run.recipe.data.format == "auto" else run.recipe.data.format
        test = load_lm_file(data, run.recipe.data, role="--data", format=fmt)
        empty = LMSplit([], test.source)
        splits = LMSplits(empty, empty, test, format=_format_of(test))
    metrics = _lm_task(run, splits).evaluate(run.model, "test", detailed=True)
    metrics["examples"] = len(splits.test)
    metrics["source"] = splits.test.source
    return metrics


def _format_of(split: LMSplit) -> str:
    """'text' when the file holds raw text, else an instruction format (scored by generation)."""
    return "text" if split.examples and split.examples[0].messages is None else "chat"


def _image_task(run: TrainedRun, splits: ImageSplits) -> ImageClassificationTask:
    device, dtype = _placed(run)
    return ImageClassificationTask(splits, run.tokenizer, run.tokenizer, device, dtype)


def _evaluate_images(run: TrainedRun, data: str | None) -> dict:
    if data is None:
        splits = load_image_classification(run.recipe.data, run.recipe.train.seed)
        _check_same_labels(run, splits.label_names, "images")
    else:
        test = load_labelled_images(data, run.recipe.data, run.label_names)
        empty = ImageExamples([], [], [], "")
        splits = ImageSplits(empty, empty, test, run.label_names, [])
    metrics = _image_task(run, splits).evaluate(run.model, "test", detailed=True)
    metrics["examples"] = len(splits.test)
    metrics["source"] = splits.test.source
    return metrics


def _predict_images(run: TrainedRun, inputs: list[str]) -> list[dict]:
    paths = read_image_inputs(inputs, run.recipe.data)
    empty = ImageExamples([], [], [], "")
    task = _image_task(run, ImageSplits(empty, empty, empty, run.label_names, []))
    return _label_rows("image", paths, task.predict_proba(run.model, paths), run.label_names)


def _label_rows(key: str, items: list[str], probabilities: np.ndarray, names: list[str]) -> list:
    return [
        {
            key: item,
            "label": names[int(np.argmax(row))],
            "score": float(row.max()),
            "probabilities": {name: float(p) for name, p in zip(names, row, strict=True)},
        }
        for item, row in zip(items, probabilities, strict=True)
    ]


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


def evaluate_run(folder: str | Path, data: str | None = None) -> dict:
    """Metrics of the trained model on `data`, or on the run's own test split."""
    if data is None:
        check_data_unchanged(RunFolder(folder))
    run = load_run(folder)
    if run.recipe.task == "causal-lm":
        return _evaluate_lm(run, data)
    if run.recipe.task == "image-classification":
        return _evaluate_images(run, data)
    if data is None:
        splits = load_text_classification(run.recipe.data, run.recipe.train.seed)
        _check_same_labels(run, splits.label_names, "file")
    else:
        empty = TextExamples([], [], [], "")
        test = load_labelled_file(data, run.recipe.data, run.label_names)
        splits = TextSplits(empty, empty, test, run.label_names)
    task = _task(run, splits)
    metrics = task.evaluate(run.model, "test", detailed=True)
    metrics["examples"] = len(splits.test)
    metrics["source"] = splits.test.source
    metrics["stop_word_fallbacks"] = task.fallbacks["test"]
    _note_fallbacks(task.fallbacks["test"], "texts")
    return metrics


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
    folder: str | Path,
    inputs: list[str],
    text_column: str | None = None,
    max_new_tokens: int | None = None,
) -> list[dict]:
    """Classifier: one prediction per text (label, its probability, every label's
    probability). Causal LM: one generated response per prompt."""
    check_inputs_exist(inputs)
    run = load_run(folder)
    if run.recipe.task == "causal-lm":
        return _generate(run, inputs, max_new_tokens)
    if run.recipe.task == "image-classification":
        return _predict_images(run, inputs)
    texts = read_inputs(inputs, text_column or run.recipe.data.text_column)
    empty = TextExamples([], [], [], "")
    task = _task(run, TextSplits(empty, empty, empty, run.label_names))
    probabilities = task.predict_proba(run.model, texts)
    _note_fallbacks(task.fallbacks["predict"], "inputs")
    return _label_rows("text", texts, probabilities, run.label_names)


def _generate(run: TrainedRun, inputs: list[str], max_new_tokens: int | None) -> list[dict]:
    prompts = read_prompts(inputs, run.recipe.data)
    if max_new_tokens is not None:
        run.recipe.generation.max_new_tokens = max_new_tokens
    empty = LMSplit([], "")
    task = _lm_task(run, LMSplits(empty, empty, empty, format="chat"))
    answers = task.generate(run.model, prompts)
    return [
        {"prompt": messages[-1]["content"], "response": answer}
        for messages, answer in zip(prompts, answers, strict=True)
    ]
