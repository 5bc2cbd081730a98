"""Checkpoints: the trainable state (and optimizer, for --resume), written atomically.

Nothing here is read with pickle: a run folder may come from someone else (a shared drive, a
download), and unpickling runs whatever code the file names. Tensors go in safetensors
files and the structure around them (optimizer and scheduler settings) in JSON, both of
which only ever hold data."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.distributed.tensor import DTensor, distribute_tensor

from tunesmith.errors import UserError
from tunesmith.train.distributed import Distributed

CHECKPOINT_FORMAT = 1
"""Version of the optimizer files' JSON layout (`format` in optimizer.json)."""

RETRAIN = "train again without --resume (--overwrite replaces the run folder)"
"""What to do about a checkpoint that cannot be read: nothing in it can be trusted."""


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
    retries_used: int = 0
    """Times the forgetting guard rolled back and training went on (guards.forgetting)."""
    retry_l2_sp: float = 0.0
    """L2-SP strength a retry set (0: the recipe's train.l2_sp holds)."""


# --- nested state <-> (tensors, JSON skeleton), without pickle ----------------------------


def flatten_state(value: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested structure into its tensors and a JSON-able skeleton that names them.

    An optimizer's or scheduler's `state_dict()` is dicts, lists and tuples of tensors and
    plain values; torch.save would pickle it. Here the tensors are returned by name, for a
    safetensors file, and everything else becomes JSON that `unflatten_state` reads back
    exactly. In the skeleton every JSON value that is not an object is itself (None, bools,
    ints, strings, finite floats) and every object is one tagged node:
    `{"tensor": name}`, `{"float": "inf" | "-inf" | "nan"}` (JSON has no such numbers),
    `{"list": [...]}`, `{"tuple": [...]}` (Adam's betas) and `{"dict": [[key, value], ...]}`
    (pairs, since an optimizer's state is keyed by int and a JSON object only by string).

    Tensors are detached, moved to the CPU and made contiguous (safetensors needs that); a
    tensor that appears twice is stored once and is one tensor again when read. A sharded
    (FSDP) DTensor is stored as this process's shard: `load_checkpoint` lays it out again.
    Anything else (a function, an object) raises TypeError rather than being lost."""
    tensors: dict[str, torch.Tensor] = {}
    names: dict[int, str] = {}

    def encode(item: Any) -> Any:
        if isinstance(item, torch.Tensor):
            if id(item) not in names:
                names[id(item)] = name = str(len(tensors))
                local = item.to_local() if isinstance(item, DTensor) else item
                tensors[name] = local.detach().cpu().contiguous()
            return {"tensor": names[id(item)]}
        if isinstance(item, float) and not math.isfinite(item):
            return {"float": repr(item)}
        if item is None or isinstance(item, bool | int | float | str):
            return item
        if isinstance(item, tuple | list):
            return {type(item).__name__: [encode(v) for v in item]}
        if isinstance(item, dict):
            return {"dict": [[encode_key(k), encode(v)] for k, v in item.items()]}
        raise TypeError(f"cannot store a {type(item).__name__} in a checkpoint without pickle")

    def encode_key(key: Any) -> Any:
        if isinstance(key, torch.Tensor):
            raise TypeError("cannot store a dict keyed by tensors in a checkpoint")
        return encode(key)

    return tensors, encode(value)


def unflatten_state(tensors: dict[str, torch.Tensor], skeleton: Any) -> Any:
    """The structure that `flatten_state` split, from its tensors and skeleton.

    Reading only builds dicts, lists, tuples and numbers, so a hostile file can at worst
    be wrong: a skeleton that does not follow the layout raises ValueError."""

    def decode(node: Any) -> Any:
        if isinstance(node, list):
            raise ValueError("a bare JSON list (lists are written as {'list': [...]})")
        if not isinstance(node, dict):
            return node
        if len(node) != 1:
            raise ValueError(f"an entry with {len(node)} keys where one was expected")
        ((tag, body),) = node.items()
        if tag == "tensor":
            if body not in tensors:
                raise ValueError(f"tensor {body!r} is named but not stored")
            return tensors[body]
        if tag == "float" and body in ("inf", "-inf", "nan"):
            return float(body)
        if tag in ("list", "tuple", "dict") and isinstance(body, list):
            if tag == "list":
                return [decode(v) for v in body]
            if tag == "tuple":
                return tuple(decode(v) for v in body)
            return dict(_decode_pair(decode, pair) for pair in body)
        raise ValueError(f"an entry {tag!r} that is not part of the layout")

    return decode(skeleton)


def _decode_pair(decode: Any, pair: Any) -> tuple[Any, Any]:
    if not (isinstance(pair, list) and len(pair) == 2):
        raise ValueError("a dict entry that is not a [key, value] pair")
    return decode(pair[0]), decode(pair[1])


# --- weights --------------------------------------------------------------------------------


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


def load_weights(model: nn.Module, path: Path, advice: str = RETRAIN) -> None:
    """Under FSDP each process takes its own shard of every weight. A missing or damaged
    file, or weights that do not fit the model, raise UserError naming `path`, ending with
    `advice` (what the user can do about it)."""
    state = _read_tensors(path, advice)
    named = dict(model.named_parameters()) | dict(model.named_buffers())
    unknown = sorted(set(state) - set(named))
    if unknown:
        raise UserError(f"{path} does not fit the model: it holds {unknown[:3]}; {advice}")
    wrong = [n for n, t in state.items() if t.shape != named[n].shape]
    if wrong:
        name = wrong[0]
        raise UserError(
            f"{path} does not fit the model: {name} is {list(state[name].shape)} there and "
            f"{list(named[name].shape)} in the model; {advice}"
        )
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


def _read_tensors(path: Path, advice: str = RETRAIN) -> dict[str, torch.Tensor]:
    """A safetensors file, or UserError saying it is missing or damaged (e.g. truncated)."""
    if not path.is_file():
        raise UserError(f"{path} is missing: the checkpoint is incomplete; {advice}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise UserError(f"{path} is damaged ({error}); {advice}") from error


# --- the whole checkpoint: folder/last ------------------------------------------------------


def save_checkpoint(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: LoopState,
    cluster: Distributed | None = None,
) -> None:
    """Write folder/last atomically: a crash mid-write leaves the previous checkpoint intact.

    Process 0 writes the weights and the loop state. The optimizer state (with the
    scheduler's, the random generator's and the number of processes) is the same on every
    DDP process (process 0 writes it); under FSDP each process writes its own shard
    (`optimizer.safetensors` + `optimizer.json` for process 0, `optimizer.<rank>.*` for the
    others), so a sharded run resumes on as many processes as it ran on."""
    cluster = cluster or Distributed()
    tmp = folder / "last.tmp"
    if cluster.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    weights = trainable_state(model) if cluster.is_main or cluster.sharded else None
    cluster.barrier()
    if cluster.is_main or cluster.sharded:
        extra = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": torch.get_rng_state(),
            "world_size": cluster.world_size,
        }
        _write_state(tmp, _optimizer_stem(cluster.rank), extra)
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
    """Every process reads the checkpoint (on several machines: from shared storage).

    Nothing is unpickled. Every file is read before the model changes; a
    missing, damaged or unfitting file raises UserError naming it, and so does the pickled
    `optimizer.pt` of an older tunesmith, which is refused unread."""
    cluster = cluster or Distributed()
    last = folder / "last"
    refuse_pickled(folder)
    state = _read_loop_state(last / "state.json")
    stem = _optimizer_stem(cluster.rank if cluster.sharded else 0)
    if not (last / f"{stem}.json").is_file():  # e.g. more processes now than then
        stem = _optimizer_stem(0)
    extra = _read_state(last, stem)
    saved_world = extra.get("world_size", 1)
    if cluster.sharded and saved_world != cluster.world_size:
        raise UserError(
            f"--resume: {folder} holds a train.distributed: fsdp checkpoint of {saved_world} "
            f"processes; resume it with --nproc {saved_world}"
        )
    load_weights(model, last / "weights.safetensors")
    _restore(optimizer, scheduler, extra, last / f"{stem}.json")
    return state


def has_checkpoint(folder: Path) -> bool:
    return (folder / "last" / "state.json").is_file()


def _optimizer_stem(rank: int) -> str:
    return "optimizer" if rank == 0 else f"optimizer.{rank}"


def _write_state(folder: Path, stem: str, value: dict[str, Any]) -> None:
    """`value` as folder/<stem>.safetensors (its tensors) and folder/<stem>.json (the rest)."""
    tensors, skeleton = flatten_state(value)
    save_file(tensors, str(folder / f"{stem}.safetensors"))
    document = {"format": CHECKPOINT_FORMAT, "state": skeleton}
    (folder / f"{stem}.json").write_text(json.dumps(document, allow_nan=False))


def _read_state(folder: Path, stem: str) -> dict[str, Any]:
    """What `_write_state` wrote, or UserError naming the file that is missing or damaged."""
    path = folder / f"{stem}.json"
    document = _read_json(path)
    if not isinstance(document, dict) or "state" not in document:
        raise UserError(f"{path} is not a tunesmith checkpoint file; {RETRAIN}")
    if document.get("format") != CHECKPOINT_FORMAT:
        raise UserError(
            f"{path} is in checkpoint format {document.get('format')!r}, this tunesmith reads "
            f"format {CHECKPOINT_FORMAT}: resume with the tunesmith that wrote it, or {RETRAIN}"
        )
    tensors = _read_tensors(folder / f"{stem}.safetensors")
    try:
        value = unflatten_state(tensors, document["state"])
    except ValueError as error:
        raise UserError(f"{path} is damaged ({error}); {RETRAIN}") from error
    if not (isinstance(value, dict) and {"optimizer", "scheduler", "rng"} <= set(value)):
        raise UserError(f"{path} lacks the optimizer, scheduler or random state; {RETRAIN}")
    return value


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise UserError(f"{path} is missing: the checkpoint is incomplete; {RETRAIN}")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path} is damaged ({error}); {RETRAIN}") from error


def _read_loop_state(path: Path) -> LoopState:
    document = _read_json(path)
    try:
        return LoopState(**document)
    except TypeError as error:
        raise UserError(f"{path} is damaged ({error}); {RETRAIN}") from error


def refuse_pickled(folder: Path) -> None:
    """An older tunesmith pickled the optimizer state (`optimizer.pt`): unpickling a file
    from a run folder can run any code, so such a checkpoint is refused, never opened."""
    last = folder / "last"
    pickled = sorted(last.glob("optimizer*.pt"))
    if (last / "optimizer.json").is_file() or not pickled:
        return
    raise UserError(
        f"{pickled[0]} was written by an older tunesmith in a format that can run "
        f"code when loaded; it is not loaded. Delete {folder} and train again from scratch "
        "(without --resume; --overwrite replaces the run folder)"
    )


def _restore(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    extra: dict[str, Any],
    path: Path,
) -> None:
    """Load the optimizer, scheduler and random state; UserError if they do not fit."""
    try:
        optimizer.load_state_dict(_fit_to_parameters(optimizer, extra["optimizer"]))
        unknown = set(extra["scheduler"]) - set(scheduler.state_dict())
        if unknown:
            raise ValueError(f"the scheduler has no {sorted(unknown)[:3]}")
        scheduler.load_state_dict(extra["scheduler"])
        rng = extra["rng"]
        if not (isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8):
            raise ValueError("the random state is not a byte tensor")
        torch.set_rng_state(rng)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise UserError(f"{path} does not fit this run ({error}); {RETRAIN}") from error


def _fit_to_parameters(optimizer: torch.optim.Optimizer, saved: dict) -> dict:
    """Check that each saved moment (AdamW's) has its parameter's shape (else ValueError: the
    optimizer would fail at the next step, far from the cause), and under FSDP make each
    saved shard a DTensor laid out like its parameter, as the optimizer's own state was."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    keys = [k for group in saved["param_groups"] for k in group["params"]]
    for param, key in zip(params, keys, strict=False):  # load_state_dict checks the counts
        local = param.to_local() if isinstance(param, DTensor) else param
        entries = saved["state"].get(key, {})
        for name, value in entries.items():
            if not (isinstance(value, torch.Tensor) and value.dim() > 0):
                continue  # e.g. Adam's step count
            if value.shape != local.shape:
                raise ValueError(
                    f"the optimizer state {name} of parameter {key} is {list(value.shape)}, "
                    f"the parameter {list(local.shape)}"
                )
            if isinstance(param, DTensor):
                entries[name] = DTensor.from_local(
                    value.to(local.device),
                    param.device_mesh,
                    param.placements,
                    shape=param.shape,
                    stride=param.stride(),
                )
    return saved
