"""Checkpoints: the trainable state (and optimizer, for --resume), written atomically."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.distributed.tensor import DTensor, distribute_tensor

from tunesmith.train.distributed import Distributed


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
    """Parameters that train, plus buffers (e.g. batch-norm statistics): what changes.
    On a CPU these are the live tensors, not copies (a copy of a fully fine-tuned model at
    every checkpoint raised the peak memory): write them before the next optimizer step.
    Sharded (FSDP) tensors are gathered whole: every process must call this together."""
    state = {n: p for n, p in model.named_parameters() if p.requires_grad}
    state.update(dict(model.named_buffers()))
    return {name: _whole(t).detach().cpu().contiguous() for name, t in state.items()}


def _whole(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def save_weights(model: nn.Module, path: Path, cluster: Distributed | None = None) -> None:
    """Process 0 writes; under FSDP the others help gather the weights."""
    cluster = cluster or Distributed()
    if not (cluster.is_main or cluster.sharded):
        return
    state = trainable_state(model)
    if cluster.is_main:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file(state, str(tmp))
        tmp.replace(path)


def load_weights(model: nn.Module, path: Path) -> None:
    """Under FSDP each process takes its own shard of every weight."""
    state = load_file(str(path))
    named = dict(model.named_parameters()) | dict(model.named_buffers())
    missing = set(state) - set(named)
    if missing:
        raise RuntimeError(f"checkpoint {path} does not fit the model: {sorted(missing)[:3]}")
    if not any(isinstance(t, DTensor) for t in named.values()):
        model.load_state_dict(state, strict=False)
        return
    with torch.no_grad():  # sharded: each process keeps its own shard of the whole
        for name, whole in state.items():
            target = named[name]
            if isinstance(target, DTensor):
                whole = distribute_tensor(
                    whole.to(target.dtype), target.device_mesh, target.placements
                )
            target.copy_(whole)


def save_checkpoint(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: LoopState,
    cluster: Distributed | None = None,
) -> None:
    """Write folder/last atomically: a crash mid-write leaves the previous checkpoint intact.

    Process 0 writes the weights and the loop state. The optimizer state is the same on
    every DDP process (process 0 writes it); under FSDP each process writes its own shard
    (`optimizer.pt` for process 0, `optimizer.<rank>.pt` for the others), so a sharded run
    resumes on as many processes as it ran on."""
    cluster = cluster or Distributed()
    tmp = folder / "last.tmp"
    if cluster.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    weights = trainable_state(model) if cluster.is_main or cluster.sharded else None
    cluster.barrier()
    if cluster.is_main or cluster.sharded:
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state(),
                "world_size": cluster.world_size,
            },
            tmp / _optimizer_file(cluster.rank),
        )
    cluster.barrier()
    if cluster.is_main:
        save_file(weights, str(tmp / "weights.safetensors"))
        (tmp / "state.json").write_text(json.dumps(asdict(state), indent=1))
        last = folder / "last"
        shutil.rmtree(last, ignore_errors=True)
        tmp.replace(last)
    cluster.barrier()


def load_checkpoint(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    cluster: Distributed | None = None,
) -> LoopState:
    """Every process reads the checkpoint (on several machines: from shared storage)."""
    cluster = cluster or Distributed()
    last = folder / "last"
    load_weights(model, last / "weights.safetensors")
    own = last / _optimizer_file(cluster.rank if cluster.sharded else 0)
    extra = torch.load(own if own.is_file() else last / "optimizer.pt", weights_only=False)
    saved_world = extra.get("world_size", 1)
    if cluster.sharded and saved_world != cluster.world_size:
        from tunesmith.errors import UserError

        raise UserError(
            f"--resume: {folder} holds a train.distributed: fsdp checkpoint of {saved_world} "
            f"processes; resume it with --nproc {saved_world}"
        )
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    torch.set_rng_state(extra["rng"])
    return LoopState(**json.loads((last / "state.json").read_text()))


def _optimizer_file(rank: int) -> str:
    return "optimizer.pt" if rank == 0 else f"optimizer.{rank}.pt"


def has_checkpoint(folder: Path) -> bool:
    return (folder / "last" / "state.json").is_file()
