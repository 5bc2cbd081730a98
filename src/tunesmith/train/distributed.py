"""Several processes, one run: data parallel training through torch.distributed.

`tunesmith train RECIPE --nproc N` starts N processes on this machine (`launch_local`);
`torchrun --nnodes M --nproc-per-node N ... -m tunesmith train RECIPE` spreads them over
machines. Either way every process reads the same recipe and data, and `Distributed` says
which part of each batch is its own:

- `train.batch_size` is the global batch: each optimizer step splits every batch between
  the processes, so a recipe trains the same way on 1 or 8 processes (same steps, same
  learning-rate schedule) and only runs faster;
- the loss of a step is divided by the items of the whole global batch (summed across
  processes), and DDP averages gradients, so the gradient equals the single-process one;
- process 0 alone writes the run folder, prints, evaluates (under DDP) and checkpoints; the
  others follow its decisions (early stop, guards), broadcast after every evaluation;
- `train.distributed: fsdp` shards weights, gradients and optimizer state over the
  processes (PyTorch's FSDP2) for models too big for one device; every process then takes
  part in evaluations, since each holds only a shard.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from tunesmith.errors import GateFailed, UserError

T = TypeVar("T")


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    strategy: str = "ddp"
    """ddp (a full copy of the model per process) or fsdp (sharded)."""

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.enabled and self.strategy == "fsdp"

    @classmethod
    def from_environment(cls, strategy: str = "ddp", device_type: str = "cpu") -> Distributed:
        """Join the process group torchrun (or `launch_local`) describes in the environment;
        a single process when WORLD_SIZE is absent or 1."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise UserError(
                f"WORLD_SIZE={world_size} but {', '.join(missing)} unset: launch several "
                "processes with `tunesmith train RECIPE --nproc N` or with torchrun"
            )
        if not dist.is_initialized():
            backend = "nccl" if device_type == "cuda" else "gloo"
            dist.init_process_group(backend)
        return cls(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
            strategy=strategy,
        )

    # -- the data ---------------------------------------------------------------------

    def shard(self, indices: Sequence[int]) -> list[int]:
        """This process's part of a global batch: every world_size-th row, so that on a
        length-sorted batch every process gets rows of about the same lengths."""
        return list(indices[self.rank :: self.world_size])

    def all_sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums over the processes (the values themselves with one process)."""
        if not self.enabled:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def on_main(self, work: Callable[[], T]) -> T | None:
        """`work()` on process 0 only (None elsewhere); a user error or a failed gate there
        is raised on every process, so none waits for the others forever."""
        if not self.enabled:
            return work()
        failure: tuple[type, str] | None = None
        result = None
        if self.is_main:
            try:
                result = work()
            except (UserError, GateFailed) as error:
                failure = (type(error), str(error))
        failure = self.broadcast(failure)
        if failure is not None:
            kind, message = failure
            raise kind(message)
        return result

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """Process 0's `value`, on every process."""
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    # -- the model --------------------------------------------------------------------

    def wrap(self, step: nn.Module, device: torch.device) -> nn.Module:
        """The module every process calls forward/backward on: DDP (gradients averaged
        during backward) or FSDP2 (each decoder layer sharded, then the whole)."""
        if not self.enabled:
            return step
        if self.strategy == "fsdp":
            from torch.distributed.fsdp import fully_shard

            from tunesmith.models.structure import layer_stack

            # process 0's weights everywhere (e.g. the head it fitted alone), as DDP does
            for tensor in step.state_dict().values():
                dist.broadcast(tensor, src=0)
            for layer in layer_stack(step.model):
                fully_shard(layer)
            return fully_shard(step)
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index or 0] if device.type == "cuda" else None
        return DistributedDataParallel(step, device_ids=ids)

    @contextmanager
    def no_sync(self, wrapped: nn.Module, last: bool) -> Iterator[None]:
        """Skip the gradient exchange on every micro-batch of a step but its last."""
        if last or not self.enabled:
            yield
        elif self.strategy == "fsdp":
            wrapped.set_requires_gradient_sync(False)
            try:
                yield
            finally:
                wrapped.set_requires_gradient_sync(True)
        else:
            with wrapped.no_sync():
                yield

    @contextmanager
    def gathered(self, wrapped: nn.Module) -> Iterator[None]:
        """Under FSDP, the whole model's weights gathered on every process (an evaluation
        calls parts of the model that the training step's hooks would otherwise gather)."""
        if not self.sharded:
            yield
            return
        # FSDP sets itself up on the root's first forward; an evaluation before any
        # training step calls the layers first, which it refuses: set it up now
        wrapped._get_fsdp_state()._lazy_init()
        wrapped.unshard()
        try:
            yield
        finally:
            wrapped.reshard()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            # every process arrives before any tears down: gloo aborts a process whose
            # peer destroyed the group while it was still writing its files
            dist.barrier()
            dist.destroy_process_group()


class TrainStep(nn.Module):
    """The loss of a batch as a module: DDP and FSDP hook the call of their wrapped module,
    and a task's loss may call parts of the model (decoder, output layer) on their own."""

    def __init__(self, model: nn.Module, loss_sum) -> None:
        super().__init__()
        self.model = model
        self.loss_sum = loss_sum

    def forward(self, batch) -> torch.Tensor:
        if batch is None:  # no rows for this process in this micro-batch: a zero loss that
            # still reaches every trained weight, so the gradient exchange runs as everywhere
            return sum(p.sum() * 0 for p in self.model.parameters() if p.requires_grad)
        return self.loss_sum(self.model, batch)


# -- launching processes on this machine ----------------------------------------------------


def launch_local(nproc: int, argv: list[str], device_type: str = "cpu") -> int:
    """Run `python -m tunesmith ARGV` in `nproc` processes joined in one process group; the
    exit code is that of the first process to fail (the others are then stopped), else 0.
    On a CPU the cores are divided between the processes; on GPUs each process takes one."""
    if nproc < 1:
        raise UserError("--nproc must be at least 1")
    if device_type == "cuda" and nproc > torch.cuda.device_count():
        raise UserError(
            f"--nproc {nproc}: only {torch.cuda.device_count()} CUDA devices are visible"
        )
    threads = max(1, (os.cpu_count() or 1) // nproc)
    port = _free_port()
    processes = []
    for rank in range(nproc):
        env = {
            **os.environ,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(nproc),
            "LOCAL_WORLD_SIZE": str(nproc),
        }
        if device_type != "cuda":
            env["OMP_NUM_THREADS"] = str(threads)
        processes.append(subprocess.Popen([sys.executable, "-m", "tunesmith", *argv], env=env))
    codes: list[int | None] = [None] * nproc
    first_failure = 0
    try:
        while any(code is None for code in codes):
            for i, process in enumerate(processes):
                if codes[i] is None:
                    codes[i] = process.poll()
                    if codes[i] and not first_failure:
                        first_failure = codes[i]
            if first_failure:  # one process gave up: the others would wait for it forever
                for i, process in enumerate(processes):
                    if codes[i] is None:
                        process.send_signal(signal.SIGTERM)
                        codes[i] = process.wait()
            time.sleep(0.1)
    except KeyboardInterrupt:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            process.wait()
        return 130
    return first_failure


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
