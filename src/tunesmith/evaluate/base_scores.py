"""The base model's test scores and answers, kept between runs.

Generating the base model's answers is often the longest phase of a short LLM run (an
untuned model writes until the token budget ends), and it gives the same result every time
the same model answers the same prompts with the same settings. So the result is stored in
the cache folder (`$TUNESMITH_CACHE/base-scores/`, JSON only, never a pickle), keyed by
everything it depends on: the model folder's files (names, sizes, modification times), the
scored rows and prompts, generation settings, precision, device, and library versions.
A second run, or a search trial, on the same split reads it back in milliseconds.
`TUNESMITH_BASE_CACHE=0` turns it off.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunesmith.models.resolve import cache_dir
from tunesmith.safe_files import write_text_atomically
from tunesmith.version import __version__

Scores = tuple[dict, list[str]]
"""(metrics, generated answers)."""


def cached_base_scores(
    model_folder: Path, inputs: dict[str, Any], compute: Callable[[], Scores]
) -> tuple[Scores, bool]:
    """(metrics and answers, whether they came from the cache). `inputs`: everything
    besides the model that decides the result, JSON-serialisable."""
    if os.environ.get("TUNESMITH_BASE_CACHE", "1") == "0":
        return compute(), False
    path = cache_dir() / "base-scores" / f"{_key(model_folder, inputs)}.json"
    stored = _read(path)
    if stored is not None:
        return stored, True
    metrics, answers = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(path, json.dumps({"metrics": metrics, "answers": answers}))
    except OSError:  # a read-only cache is no reason to fail a run
        pass
    return (metrics, answers), False


def _key(model_folder: Path, inputs: dict[str, Any]) -> str:
    import torch
    import transformers

    digest = hashlib.sha256()
    folder = Path(model_folder).resolve()
    digest.update(str(folder).encode())
    for item in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = item.stat()
        digest.update(f"{item.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    versions = {"tunesmith": __version__, "torch": torch.__version__}
    versions["transformers"] = transformers.__version__
    digest.update(json.dumps([versions, inputs], sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]


def _read(path: Path) -> Scores | None:
    """The stored scores; None when absent or unreadable (then they are computed again)."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        metrics, answers = stored["metrics"], stored["answers"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(metrics, dict) or not isinstance(answers, list):
        return None
    return metrics, [str(a) for a in answers]
