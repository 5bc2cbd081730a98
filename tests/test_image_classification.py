"""image-classification end to end on a tiny ResNet: every method, LP-FT head, the pixel and
frozen-feature anchors, predict, eval, export, and bad images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tunesmith.cli import main
from tunesmith.evaluate.baselines import fit_linear_probe
from tunesmith.models.vision import VisionClassifier
from tunesmith.recipe import load_recipe
from tunesmith.run import train


@pytest.mark.parametrize("method", ["full", "linear-probe", "selective", "lora"])
def test_every_method_trains_and_saves(tiny_image_recipe: dict, method: str) -> None:
    tiny_image_recipe["method"] = {"name": method}
    metrics = train(load_recipe(tiny_image_recipe))
    output = Path(tiny_image_recipe["output_dir"])
    assert metrics["labels"] == ["blue", "green", "red"]
    assert {"base", "baseline", "fine_tuned"} <= set(metrics)
    assert "pixels" in metrics["baseline"]["description"]
    assert metrics["head_init"] == "probe"
    # the colour gives the label away: the probe-initialised head starts near perfect
    assert metrics["fine_tuned"]["accuracy"] >= 0.8
    saved = output / ("adapter" if method == "lora" else "model")
    assert (saved / "preprocess.json").is_file()
    assert json.loads((saved / "preprocess.json").read_text())["augment"] is False


def test_probe_head_reproduces_the_probe(tiny_resnet_dir: Path) -> None:
    """LP-FT starts from the logistic regression: same probabilities, before any step."""
    from tunesmith.models.vision import load_vision_classifier

    model = load_vision_classifier(tiny_resnet_dir, ["a", "b", "c"], "transformers").eval()
    rng = np.random.default_rng(0)
    pixels = {s: torch.tensor(rng.normal(size=(24, 3, 32, 32)), dtype=torch.float32) for s in "tv"}
    with torch.no_grad():
        features = {s: model.features(x).numpy() for s, x in pixels.items()}
    labels = {s: [i % 3 for i in range(24)] for s in "tv"}
    features["train"], features["validation"] = features.pop("t"), features.pop("v")
    labels["train"], labels["validation"] = labels.pop("t"), labels.pop("v")
    probe = fit_linear_probe(features, labels)
    weight, bias = probe.head_weights(3)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.tensor(weight))
        model.classifier.bias.copy_(torch.tensor(bias))
        ours = torch.softmax(model(pixel_values=pixels["v"]).logits, -1).numpy()
    theirs = probe.model.predict_proba(probe.scaler.transform(features["validation"]))
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_random_head_option(tiny_image_recipe: dict) -> None:
    tiny_image_recipe["train"]["head_init"] = "random"
    assert train(load_recipe(tiny_image_recipe))["head_init"] == "random"


@pytest.fixture
def image_run(tiny_image_recipe: dict) -> Path:
    tiny_image_recipe["method"] = {"name": "lora"}
    train(load_recipe(tiny_image_recipe))
    return Path(tiny_image_recipe["output_dir"])


def test_predict_eval_and_export(image_run: Path, tmp_path: Path, capsys) -> None:
    images = Path(yaml.safe_load((image_run / "recipe.yaml").read_text())["data"]["train"])
    out = tmp_path / "predictions.jsonl"
    red = images / "red"
    assert main(["predict", str(image_run), str(red), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 12 and sum(r["label"] == "red" for r in rows) >= 10
    capsys.readouterr()
    assert main(["eval", str(image_run), "--data", str(images), "--json"]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{") :])["accuracy"] >= 0.8

    exported = tmp_path / "exported"
    assert main(["export", str(image_run), "--merge", "--output", str(exported)]) == 0
    merged = VisionClassifier.load(exported).eval()
    pixels = torch.randn(2, 3, 32, 32)
    from tunesmith.trained_run import load_run

    adapted = load_run(image_run).model
    with torch.no_grad():
        torch.testing.assert_close(
            merged(pixel_values=pixels).logits,
            adapted(pixel_values=pixels).logits,
            rtol=1e-4,
            atol=1e-4,
        )


# --- bad input: a clear message and exit code 2 -------------------------------------------


def _train_exit(recipe: dict, tmp_path: Path, capsys) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    output = tmp_path / "not-written"
    assert main(["train", str(path), "--output", str(output)]) == 2
    assert not output.exists()
    return capsys.readouterr().err


def test_corrupt_image(tiny_image_recipe: dict, tmp_path: Path, capsys) -> None:
    bad = Path(tiny_image_recipe["data"]["train"]) / "red" / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    err = _train_exit(tiny_image_recipe, tmp_path, capsys)
    assert "broken.png" in err and "skip_bad" in err and "Traceback" not in err


def test_one_class(tiny_image_recipe: dict, tmp_path: Path, capsys) -> None:
    root = tmp_path / "one"
    (root / "cats").mkdir(parents=True)
    from PIL import Image

    for i in range(4):
        Image.new("RGB", (8, 8), (i, i, i)).save(root / "cats" / f"{i}.png")
    tiny_image_recipe["data"]["train"] = str(root)
    assert "at least two classes" in _train_exit(tiny_image_recipe, tmp_path, capsys)


def test_table_pointing_at_missing_files(tiny_image_recipe: dict, tmp_path: Path, capsys):
    table = tmp_path / "images.csv"
    table.write_text("image,label\nnowhere/a.png,red\nnowhere/b.png,blue\n")
    tiny_image_recipe["data"]["train"] = str(table)
    err = _train_exit(tiny_image_recipe, tmp_path, capsys)
    assert "a.png" in err and "not found" in err


@pytest.mark.parametrize("mode", ["frozen", "update"])
def test_batchnorm_statistics_frozen_or_updated(tiny_image_recipe: dict, mode: str) -> None:
    from rich.console import Console

    from tunesmith.methods import get_method
    from tunesmith.tasks.family import prepare

    tiny_image_recipe["train"]["batchnorm"] = mode
    recipe = load_recipe(tiny_image_recipe)
    family = prepare(recipe, torch.device("cpu"), None, Console(quiet=True))
    family.adapt_to(get_method("full"))
    norms = [m for m in family.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [m.running_mean.clone() for m in norms]
    family.model.train()
    family.model(**family.task.batch("train", list(range(8))).inputs)
    changed = any(not torch.equal(m.running_mean, b) for m, b in zip(norms, before, strict=True))
    assert changed == (mode == "update")


def test_batchnorm_update_is_refused_for_text(tiny_recipe: dict) -> None:
    from tunesmith.errors import UserError

    tiny_recipe["train"]["batchnorm"] = "update"
    with pytest.raises(UserError, match="batchnorm"):
        load_recipe(tiny_recipe)
