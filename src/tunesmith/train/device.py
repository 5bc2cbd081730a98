"""Where to train and in which precision."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import torch


def resolve_device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            from tunesmith.errors import UserError

            raise UserError("train.device: cuda, but no CUDA device is visible; use cpu or auto")
        return torch.device("cuda")
    return torch.device("cpu")


def resolve_precision(choice: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32.

    auto: bf16 on a GPU that supports it; on a CPU only when it multiplies bf16 matrices
    faster than fp32 (AMX or AVX512-BF16). Without those, bf16 is emulated and several times
    slower, so a measurement decides, not a guess.
    """
    if choice == "fp32":
        return None
    if choice == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_bf16_speedup() > 1.3 else None


@functools.cache
def cpu_bf16_speedup(size: int = 512, repeats: int = 4, trials: int = 5) -> float:
    """How many times faster a bf16 matmul runs than an fp32 one on this CPU (about 0.2 s).

    0 when the CPU reports no bf16 instructions (amx_bf16, avx512_bf16): there bf16 is
    emulated, and a timing taken while other work loads the machine must not decide. Each
    dtype keeps its best of several trials, since a busy machine only ever slows a trial.
    """
    if not _cpu_has_bf16_instructions():
        return 0.0
    best = {}
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(size, size).to(dtype)
        b = torch.randn(size, size).to(dtype)
        a @ b  # warm up the kernel
        times = []
        for _ in range(trials):
            start = time.perf_counter()
            for _ in range(repeats):
                a @ b
            times.append(time.perf_counter() - start)
        best[dtype] = min(times)
    return best[torch.float32] / best[torch.bfloat16]


def _cpu_has_bf16_instructions() -> bool:
    """From /proc/cpuinfo's flags; where that file does not exist, assume yes (and measure)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True
    return any(flag in flags.split() for flag in ("amx_bf16", "avx512_bf16"))


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def reset_peak_memory() -> None:
    """Start `peak_memory_mb` over from the memory held now: for several runs in one process
    (the trials of `tunesmith tune`), each run's own peak. Linux resets VmHWM through
    clear_refs; elsewhere the peak stays the process's."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def peak_memory_mb(device: torch.device) -> float:
    """CUDA peak allocation on a GPU, else the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:  # this program's own peak; ru_maxrss would include the parent's RSS at fork time
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
