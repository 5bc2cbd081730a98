"""Several processes train like one: `tunesmith train --nproc 2` (DDP over gloo) follows the
single-process loss trajectory at the same global batch, process 0 alone writes the run
folder, and a sharded (FSDP) run does the same."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tunesmith.train.distributed import Distributed

pytestmark = pytest.mark.distributed


def run_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK")}
    return subprocess.run(
        [sys.executable, "-m", "tunesmith", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


def history(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]


@pytest.fixture
def recipe_path(tiny_llm_recipe, tmp_path):
    recipe = {
        **tiny_llm_recipe,
        # 120 rows, global batch 8: 9 steps an epoch, evaluated every 3 steps
        "train": {**tiny_llm_recipe["train"], "eval_every": 3, "early_stopping": None},
        "guards": {"data_quality": "off", "forgetting": None, "overfitting": None},
        "generation": {"max_new_tokens": 4, "max_examples": 2, "samples": 0},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def assert_same_trajectory(single: list[dict], several: list[dict]) -> None:
    assert [r["step"] for r in single] == [r["step"] for r in several]
    assert len(single) >= 3
    for a, b in zip(single, several, strict=True):
        for key in ("train_loss", "val_loss"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=2e-3), (a["step"], key)


def test_two_processes_follow_the_single_process_trajectory(recipe_path, tmp_path):
    one = run_cli("train", str(recipe_path), "--output", str(tmp_path / "one"), cwd=tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    two = run_cli(
        "train", str(recipe_path), "--nproc", "2", "--output", str(tmp_path / "two"), cwd=tmp_path
    )
    assert two.returncode == 0, two.stderr[-3000:]
    assert_same_trajectory(history(tmp_path / "one"), history(tmp_path / "two"))
    assert "2 processes (ddp)" in two.stdout
    assert two.stdout.count("Run folder:") == 1  # process 0 alone prints and writes
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    single = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert metrics["fine_tuned"]["loss"] == pytest.approx(single["fine_tuned"]["loss"], rel=2e-3)
    assert (tmp_path / "two" / "adapter" / "adapter_config.json").is_file()


def test_sharded_run_follows_the_single_process_trajectory(recipe_path, tmp_path):
    one = run_cli("train", str(recipe_path), "--output", str(tmp_path / "one"), cwd=tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    fsdp = run_cli(
        "train", str(recipe_path), "--nproc", "2", "--set", "train.distributed=fsdp",
        "--output", str(tmp_path / "fsdp"), cwd=tmp_path,
    )  # fmt: skip
    assert fsdp.returncode == 0, fsdp.stderr[-3000:]
    assert_same_trajectory(history(tmp_path / "one"), history(tmp_path / "fsdp"))
    assert (tmp_path / "fsdp" / "adapter" / "adapter_config.json").is_file()


def test_a_failed_gate_stops_every_process_with_its_exit_code(recipe_path, tmp_path):
    recipe = yaml.safe_load(recipe_path.read_text())
    rows = Path(recipe["data"]["train"]).read_text().splitlines()
    (tmp_path / "dup.jsonl").write_text("\n".join(rows + rows[:30]) + "\n")  # leaked copies
    recipe["data"]["train"] = str(tmp_path / "dup.jsonl")
    recipe["guards"]["data_quality"] = "error"
    recipe_path.write_text(yaml.safe_dump(recipe))
    done = run_cli(
        "train", str(recipe_path), "--nproc", "2", "--output", str(tmp_path / "gate"), cwd=tmp_path
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert not (tmp_path / "gate").exists()


def test_bad_nproc_is_a_usage_error(recipe_path, tmp_path):
    done = run_cli("train", str(recipe_path), "--nproc", "0", cwd=tmp_path)
    assert done.returncode == 2


def test_a_batch_is_shared_by_striding():
    ranks = [Distributed(rank=r, world_size=3) for r in range(3)]
    batch = [9, 8, 7, 6, 5, 4, 3]
    parts = [cluster.shard(batch) for cluster in ranks]
    assert parts == [[9, 6, 3], [8, 5], [7, 4]]
    assert sorted(row for part in parts for row in part) == sorted(batch)
    assert Distributed(rank=1, world_size=4).shard([1, 2]) == [2]
    assert Distributed(rank=3, world_size=4).shard([1, 2]) == []


def test_two_processes_resume_like_one(recipe_path, tmp_path):
    """3 steps, checkpoint, then --resume to 6 steps: the same on 1 and on 2 processes."""
    histories = []
    for name, nproc in (("one", "1"), ("two", "2")):
        out = str(tmp_path / name)
        first = run_cli(
            "train", str(recipe_path), "--nproc", nproc, "--output", out,
            "--set", "train.max_steps=3", "--set", "train.keep_checkpoints=true", cwd=tmp_path,
        )  # fmt: skip
        assert first.returncode == 0, first.stderr[-3000:]
        again = run_cli(
            "train", str(recipe_path), "--nproc", nproc, "--output", out, "--resume",
            "--set", "train.max_steps=6", cwd=tmp_path,
        )  # fmt: skip
        assert again.returncode == 0, again.stderr[-3000:]
        assert "Resuming at step 3" in again.stdout
        histories.append(history(tmp_path / name))
    assert [r["step"] for r in histories[0]] == [0, 3, 6]
    assert_same_trajectory(histories[0], histories[1])


@pytest.mark.parametrize("kind", ["text", "image"])
def test_classifiers_train_on_two_processes(kind, tiny_recipe, tiny_image_recipe, tmp_path):
    """A LoRA text classifier (its head saved with the adapter) and an image classifier
    whose head process 0 fits alone (LP-FT), then shares with the other process."""
    recipe = dict(tiny_recipe if kind == "text" else tiny_image_recipe)
    recipe["guards"] = {"data_quality": "off", "forgetting": None}
    recipe["train"] = {**recipe["train"], "epochs": 1}
    path = tmp_path / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    done = run_cli(
        "train", str(path), "--nproc", "2", "--output", str(tmp_path / kind), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / kind / "metrics.json").read_text())
    # batch_size is the global batch: one epoch takes as many steps as on one process
    assert metrics["steps"] == math.ceil(metrics["splits"]["train"] / 8)
    assert math.isfinite(metrics["fine_tuned"]["loss"])
    assert history(tmp_path / kind)[-1]["step"] == metrics["steps"]
    assert done.stdout.count("Run folder:") == 1
