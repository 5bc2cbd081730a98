"""A run killed (SIGKILL, even while it writes a checkpoint) or stopped with Ctrl-C resumes to
the same weights as a run that was never interrupted; Ctrl-C says how to resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tunesmith.cli import main

KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import tunesmith.train.checkpoint as checkpoint
    from tunesmith.cli import main

    when, sig = sys.argv[1], getattr(signal, sys.argv[2])
    # Ctrl-C as a terminal delivers it: a process started in the background by a shell
    # without job control inherits SIGINT ignored, and Python then never raises
    # KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.default_int_handler)
    saves = {"n": 0}
    real_checkpoint, real_save_file = checkpoint.save_checkpoint, checkpoint.save_file

    def after_second_checkpoint(*args, **kwargs):
        real_checkpoint(*args, **kwargs)
        saves["n"] += 1
        if when == "after" and saves["n"] == 2:
            os.kill(os.getpid(), sig)

    def half_written(tensors, path, *args, **kwargs):
        real_save_file(tensors, path, *args, **kwargs)
        # the third checkpoint's weights are in last.tmp, not yet renamed to last
        if when == "during" and saves["n"] == 2 and "last.tmp" in str(path):
            os.kill(os.getpid(), sig)

    checkpoint.save_checkpoint = after_second_checkpoint
    checkpoint.save_file = half_written
    import tunesmith.train.loop as loop
    loop.save_checkpoint = after_second_checkpoint
    sys.exit(main(sys.argv[3:]))
    """
)


@pytest.fixture
def recipe_file(tiny_recipe, tmp_path) -> Path:
    tiny_recipe["train"] |= {"epochs": 3, "eval_every": 4, "early_stopping": None}
    tiny_recipe["guards"] = {"data_quality": "off"}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    return path


def interrupted(recipe: Path, output: Path, when: str, sig: str) -> subprocess.CompletedProcess:
    argv = ["train", str(recipe), "--output", str(output)]
    return subprocess.run(
        [sys.executable, "-c", KILLER, when, sig, *argv],
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK")},
    )


def adapter(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "adapter" / "adapter_model.safetensors"))


@pytest.mark.parametrize("when", ["after", "during"])
def test_sigkill_then_resume_ends_on_the_same_weights(when, recipe_file, tmp_path):
    straight = tmp_path / "straight"
    assert main(["train", str(recipe_file), "--output", str(straight)]) == 0

    killed = tmp_path / "killed"
    result = interrupted(recipe_file, killed, when, "SIGKILL")
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    assert (killed / "checkpoints" / "last" / "state.json").is_file()
    assert not (killed / "metrics.json").exists()

    assert main(["train", str(recipe_file), "--output", str(killed), "--resume"]) == 0
    ours, theirs = adapter(killed), adapter(straight)
    assert ours.keys() == theirs.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], atol=1e-6, rtol=0)


def test_ctrl_c_says_how_to_resume_and_keeps_the_checkpoint(recipe_file, tmp_path):
    output = tmp_path / "stopped"
    result = interrupted(recipe_file, output, "after", "SIGINT")
    said = result.stdout + result.stderr
    assert result.returncode == 130, said[-2000:]
    assert "Traceback" not in said
    assert "--resume" in said and str(output) in said
    assert (output / "checkpoints" / "last" / "state.json").is_file()
    assert main(["train", str(recipe_file), "--output", str(output), "--resume"]) == 0
    assert (output / "metrics.json").is_file()
