"""Checkpoints: the trainable state (and optimizer, for --resume), written atomically."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn


@dataclass
class LoopState:
    """Everything besides tensors that a resumed run needs to continue where it stopped."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_value: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    train_seconds: float = 0.0
    samples_seen: int = 0
    tokens_seen: int = 0
    best_loss: float | None = None
    """Best validation loss so far: while it improves, patience is not used up."""
    stop_reason: str | None = None


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters that train, plus buffers (e.g. batch-norm statistics): what changes."""
    state = {n: p for n, p in model.named_parameters() if p.requires_grad}
    state.update(dict(model.named_buffers()))
    return {name: t.detach().to("cpu", copy=True).contiguous() for name, t in state.items()}


def save_weights(model: nn.Module, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    save_file(trainable_state(model), str(tmp))
    tmp.replace(path)


def load_weights(model: nn.Module, path: Path) -> None:
    state = load_file(str(path))
    missing = set(state) - set(dict(model.named_parameters())) - set(dict(model.named_buffers()))
    if missing:
        raise RuntimeError(f"checkpoint {path} does not fit the model: {sorted(missing)[:3]}")
    model.load_state_dict(state, strict=False)


def save_checkpoint(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: LoopState,
) -> None:
    """Write folder/last atomically: a crash mid-write leaves the previous checkpoint intact."""
    tmp = folder / "last.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(trainable_state(model), str(tmp / "weights.safetensors"))
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": torch.get_rng_state(),
        },
        tmp / "optimizer.pt",
    )
    (tmp / "state.json").write_text(json.dumps(asdict(state), indent=1))
    last = folder / "last"
    shutil.rmtree(last, ignore_errors=True)
    tmp.replace(last)


def load_checkpoint(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> LoopState:
    last = folder / "last"
    load_weights(model, last / "weights.safetensors")
    extra = torch.load(last / "optimizer.pt", weights_only=False)
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    torch.set_rng_state(extra["rng"])
    return LoopState(**json.loads((last / "state.json").read_text()))


def has_checkpoint(folder: Path) -> bool:
    return (folder / "last" / "state.json").is_file()
