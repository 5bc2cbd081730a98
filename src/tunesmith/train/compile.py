"""train.compile: torch.compile, one transformer block (or vision stage) at a time.

Compiling block by block ("regional compilation") traces one block and reuses the result
for every identical one, so a 30-layer model compiles about as fast as a 1-layer one; the
fused kernels (norms, activations, rotary embeddings, residual adds, adapter scaling) save
the memory passes that make up a third of a CPU step. Sequence lengths vary from batch to
batch, so the blocks are compiled for dynamic shapes. Compiled code is cached on disk
(~/.cache/tunesmith/inductor): only the first run of a model and method pays the compile
time (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import os

from torch import nn

from tunesmith.errors import UserError


def compile_blocks(model: nn.Module) -> int:
    """Compile every block of the model's layer stack in place; returns how many."""
    from tunesmith.models.resolve import cache_dir
    from tunesmith.models.structure import layer_stack

    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))
    try:
        blocks = layer_stack(model)
    except UserError as error:
        raise UserError(f"train.compile: {error}; set train.compile to false") from None
    for block in blocks:
        block.compile(dynamic=True)
    return len(blocks)
