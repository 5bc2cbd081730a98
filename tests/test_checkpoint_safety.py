"""Checkpoints hold no pickle: optimizer, scheduler and random state round-trip exactly through
safetensors + JSON, an old pickled `optimizer.pt` is refused unopened (a planted one runs no
code), and a damaged checkpoint is a UserError naming the file, not a traceback."""

import json
import math
import os
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.distributed.tensor import DTensor

from tunesmith.errors import UserError
from tunesmith.train.checkpoint import (
    LoopState,
    flatten_state,
    has_checkpoint,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    unflatten_state,
)


def tiny(seed: int = 0, out: int = 2):
    """A Linear layer, fused AdamW with two groups (as `make_optimizer`) and a warmup."""
    torch.manual_seed(seed)
    model = nn.Linear(4, out)
    optimizer = torch.optim.AdamW(
        [
            {"params": [model.weight], "weight_decay": 0.01},
            {"params": [model.bias], "weight_decay": 0.0},
        ],
        lr=1e-2,
        betas=(0.8, 0.95),
        fused=True,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 4))
    return model, optimizer, scheduler


def train(model, optimizer, scheduler, steps: int, start: int = 0) -> None:
    for step in range(start, start + steps):
        data = torch.Generator().manual_seed(step)
        x, y = torch.randn(8, 4, generator=data), torch.randn(8, 2, generator=data)
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()


def checkpoint(tmp_path: Path) -> Path:
    """A real checkpoint of `tiny()` after 2 steps, in tmp_path/checkpoints."""
    model, optimizer, scheduler = tiny()
    train(model, optimizer, scheduler, 2)
    folder = tmp_path / "checkpoints"
    save_checkpoint(folder, model, optimizer, scheduler, LoopState(step=2))
    return folder


def test_odd_values_round_trip():
    value = {
        0: {"betas": (0.9, 0.999), "t": torch.arange(3, dtype=torch.bfloat16)},
        "floats": [1.0, -0.0, 1e-300, float("inf"), float("-inf"), float("nan")],
        "plain": [None, True, False, 0, -7, 2**70, "text", "", [], (), {}],
        2.5: None,
        None: "none key",
        True: "bool key",
        (1, "a"): "tuple key",
        "empty": torch.zeros(0, 3),
        "scalar": torch.tensor(3.0),
    }
    value["again"] = value[0]["t"]  # the same tensor twice: stored once
    tensors, skeleton = flatten_state(value)
    assert len(tensors) == 3
    back = unflatten_state(tensors, json.loads(json.dumps(skeleton, allow_nan=False)))
    assert list(back) == list(value)
    assert back[0]["betas"] == (0.9, 0.999) and isinstance(back[0]["betas"], tuple)
    assert torch.equal(back[0]["t"], value[0]["t"]) and back[0]["t"].dtype == torch.bfloat16
    assert back["again"] is back[0]["t"]
    assert back["floats"][:5] == value["floats"][:5] and math.isnan(back["floats"][5])
    assert math.copysign(1.0, back["floats"][1]) == -1.0
    assert back["plain"] == value["plain"]
    assert [type(v) for v in back["plain"]] == [type(v) for v in value["plain"]]
    assert back[2.5] is None and back[None] == "none key" and back[True] == "bool key"
    assert back[(1, "a")] == "tuple key"
    assert back["empty"].shape == (0, 3) and back["scalar"].item() == 3.0


def test_what_json_cannot_hold_is_refused_not_lost():
    with pytest.raises(TypeError, match="function"):
        flatten_state({"lr_lambda": lambda s: s})
    with pytest.raises(ValueError, match="layout"):
        unflatten_state({}, {"pickle": "cos\nsystem\n"})
    with pytest.raises(ValueError, match="not stored"):
        unflatten_state({}, {"tensor": "0"})


def test_resumed_optimizer_steps_bit_identically(tmp_path):
    """Optimizer and scheduler state through files and back: the next steps are the same,
    to the bit, as those of the optimizer that never stopped."""
    model, optimizer, scheduler = tiny()
    train(model, optimizer, scheduler, 3)
    tensors, skeleton = flatten_state(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    )
    assert isinstance(optimizer.state_dict()["state"][0]["exp_avg"], torch.Tensor)
    save_file(tensors, str(tmp_path / "state.safetensors"))
    (tmp_path / "state.json").write_text(json.dumps(skeleton, allow_nan=False))

    resumed, resumed_optimizer, resumed_scheduler = tiny(seed=1)
    resumed.load_state_dict(model.state_dict())
    saved = unflatten_state(
        load_file(str(tmp_path / "state.safetensors")),
        json.loads((tmp_path / "state.json").read_text()),
    )
    resumed_optimizer.load_state_dict(saved["optimizer"])
    resumed_scheduler.load_state_dict(saved["scheduler"])
    assert resumed_optimizer.param_groups[0]["betas"] == (0.8, 0.95)

    train(model, optimizer, scheduler, 3, start=3)
    train(resumed, resumed_optimizer, resumed_scheduler, 3, start=3)
    assert torch.equal(model.weight, resumed.weight) and torch.equal(model.bias, resumed.bias)
    assert scheduler.get_last_lr() == resumed_scheduler.get_last_lr()


def test_a_checkpoint_resumes_exactly_and_holds_no_pickle(tmp_path):
    model, optimizer, scheduler = tiny()
    train(model, optimizer, scheduler, 2)
    folder = tmp_path / "checkpoints"
    save_checkpoint(folder, model, optimizer, scheduler, LoopState(step=2, best_value=0.5))
    expected_random = torch.rand(5)
    names = sorted(p.name for p in (folder / "last").iterdir())
    assert names == [
        "optimizer.json",
        "optimizer.safetensors",
        "state.json",
        "weights.safetensors",
    ]
    assert has_checkpoint(folder) and not (folder / "last.tmp").exists()

    resumed, resumed_optimizer, resumed_scheduler = tiny(seed=1)
    state = load_checkpoint(folder, resumed, resumed_optimizer, resumed_scheduler)
    assert state == LoopState(step=2, best_value=0.5)
    assert torch.equal(torch.rand(5), expected_random)  # the random generator too
    train(model, optimizer, scheduler, 2, start=2)
    train(resumed, resumed_optimizer, resumed_scheduler, 2, start=2)
    assert torch.equal(model.weight, resumed.weight) and torch.equal(model.bias, resumed.bias)


class Planted:
    """What an attacker would put in a run folder: unpickling it runs a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_planted_pickle_is_refused_unopened(tmp_path):
    folder = checkpoint(tmp_path)
    last = folder / "last"
    for name in ("optimizer.json", "optimizer.safetensors"):
        (last / name).unlink()  # as an older tunesmith left it: optimizer.pt only
    marker = tmp_path / "code-ran"
    torch.save({"optimizer": Planted(marker)}, last / "optimizer.pt")
    model, optimizer, scheduler = tiny(seed=1)
    before = model.weight.detach().clone()

    with pytest.raises(UserError, match=r"older tunesmith.*can run code.*not loaded"):
        load_checkpoint(folder, model, optimizer, scheduler)
    assert not marker.exists()
    assert torch.equal(model.weight, before)  # refused before anything was loaded

    torch.load(last / "optimizer.pt", weights_only=False)  # the payload is live: the test
    assert marker.exists()  # above would have caught a loader that unpickles it


def corrupt(last: Path, name: str, how: str) -> None:
    path = last / name
    if how == "missing":
        path.unlink()
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "bad json":
        path.write_text(path.read_text()[:-7])
    elif how == "bad layout":
        document = json.loads(path.read_text())
        document["state"] = {"dict": [["optimizer", {"object": "os.system"}]]}
        path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("name", "how"),
    [
        ("optimizer.safetensors", "missing"),
        ("optimizer.safetensors", "truncated"),
        ("optimizer.json", "missing"),
        ("optimizer.json", "bad json"),
        ("optimizer.json", "bad layout"),
        ("weights.safetensors", "missing"),
        ("weights.safetensors", "truncated"),
        ("state.json", "bad json"),
    ],
)
def test_a_damaged_checkpoint_is_a_user_error(tmp_path, name, how):
    folder = checkpoint(tmp_path)
    corrupt(folder / "last", name, how)
    with pytest.raises(UserError, match=rf"{re.escape(name)}.*without --resume"):
        load_checkpoint(folder, *tiny(seed=1))


def test_weights_that_do_not_fit_are_a_user_error(tmp_path):
    folder = checkpoint(tmp_path)
    with pytest.raises(UserError, match=r"weights\.safetensors does not fit the model"):
        load_checkpoint(folder, *tiny(seed=1, out=3))
    save_file({"other.weight": torch.zeros(2)}, str(tmp_path / "best.safetensors"))
    with pytest.raises(UserError, match=r"best\.safetensors does not fit the model"):
        load_weights(nn.Linear(4, 2), tmp_path / "best.safetensors")


def test_optimizer_state_that_does_not_fit_is_a_user_error(tmp_path):
    folder = checkpoint(tmp_path)
    model, _, scheduler = tiny(seed=1)
    other = torch.optim.AdamW([model.weight, model.bias])  # one group where two were saved
    with pytest.raises(UserError, match=r"optimizer\.json does not fit this run"):
        load_checkpoint(folder, model, other, scheduler)


def sharded_worker(rank: int, port: int, folder: Path, phase: str) -> None:
    """One of two FSDP processes: `straight` trains 4 steps; `first` trains 2 and
    checkpoints; `resume` loads that checkpoint and trains the last 2."""
    import os

    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    from tunesmith.train.checkpoint import trainable_state
    from tunesmith.train.distributed import Distributed

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    cluster = Distributed(rank=rank, world_size=2, strategy="fsdp")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))  # 3 rows: shards of 2 and 1
    fully_shard(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, foreach=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 4))
    checkpoints = folder / "checkpoints"
    if phase == "resume":
        assert load_checkpoint(checkpoints, model, optimizer, scheduler, cluster).step == 2
        assert isinstance(next(iter(optimizer.state.values()))["exp_avg"], DTensor)
    start, steps = {"straight": (0, 4), "first": (0, 2), "resume": (2, 2)}[phase]
    train(model, optimizer, scheduler, steps, start)
    if phase == "first":
        save_checkpoint(checkpoints, model, optimizer, scheduler, LoopState(step=2), cluster)
    weights = trainable_state(model)
    if rank == 0:
        save_file(weights, str(folder / f"{phase}.safetensors"))
    cluster.close()


@pytest.mark.distributed
def test_a_sharded_checkpoint_resumes_exactly(tmp_path):
    """Under FSDP each process writes and reads back its own shard of the optimizer state."""
    import torch.multiprocessing as mp

    from tunesmith.train.distributed import _free_port

    for phase in ("straight", "first", "resume"):
        try:
            mp.spawn(sharded_worker, args=(_free_port(), tmp_path, phase), nprocs=2)
        except mp.ProcessExitedException as error:
            # gloo now and then aborts a process while the group starts (SIGABRT, no Python
            # frame; about one run in twenty under load): each phase is idempotent, so run
            # it once more. Any other failure, or a second abort, fails the test.
            if error.signal_name != "SIGABRT":
                raise
            mp.spawn(sharded_worker, args=(_free_port(), tmp_path, phase), nprocs=2)
    last = sorted(p.name for p in (tmp_path / "checkpoints" / "last").iterdir())
    assert "optimizer.1.safetensors" in last and "optimizer.1.json" in last
    straight = load_file(str(tmp_path / "straight.safetensors"))
    resumed = load_file(str(tmp_path / "resume.safetensors"))
    for name, tensor in straight.items():
        assert torch.equal(tensor, resumed[name]), name
