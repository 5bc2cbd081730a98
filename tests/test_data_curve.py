"""`tunesmith data curve`: nested shares of the training rows with fixed held-out splits, a
3-point curve end to end on the tiny BERT, the refusals before any work, and the fit's
verdict and sentence on synthetic points."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tunesmith.cli import main
from tunesmith.curve.fit import fit_curve, sentence
from tunesmith.curve.page import render_curve
from tunesmith.data.quality.content import too_small_findings
from tunesmith.data.quality.items import SplitItems
from tunesmith.data.split import subset_size, train_subset
from tunesmith.data.text import load_text_classification
from tunesmith.i18n import language
from tunesmith.recipe import load_recipe


@pytest.fixture
def curve_recipe(tiny_recipe: dict, tmp_path: Path) -> Path:
    recipe = dict(tiny_recipe, guards={"label_issues": False})
    recipe.pop("output_dir")
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")) if folder.exists() else []


# --- data.train_fraction: nested shares, the same held-out splits ------------------------


def test_train_subset_is_stratified_nested_and_keeps_every_class() -> None:
    labels = ["a"] * 40 + ["b"] * 12 + ["c"] * 3
    shares = {f: set(train_subset(labels, f, seed=3).tolist()) for f in (0.1, 0.25, 0.5, 1)}
    assert shares[0.1] < shares[0.25] < shares[0.5] < shares[1] == set(range(55))
    kept = [labels[i] for i in sorted(shares[0.25])]
    assert (kept.count("a"), kept.count("b"), kept.count("c")) == (10, 3, 1)
    assert subset_size(3, 0.1) == 1  # a class never vanishes
    assert shares[0.25] != set(train_subset(labels, 0.25, seed=4).tolist())


def test_train_fraction_keeps_validation_and_test_and_nests_train(tiny_recipe: dict) -> None:
    splits = {}
    for fraction in (0.25, 0.5, 1.0):
        recipe = load_recipe(tiny_recipe, [f"data.train_fraction={fraction}"])
        splits[fraction] = load_text_classification(recipe.data, recipe.train.seed)
    rows = {f: set(s.train.rows) for f, s in splits.items()}
    assert rows[0.25] < rows[0.5] < rows[1.0]
    assert [len(rows[f]) for f in (0.25, 0.5, 1.0)] == [21, 42, 84]
    for name in ("validation", "test"):
        assert splits[0.25].split(name).rows == splits[1.0].split(name).rows


# --- the command end to end ------------------------------------------------------------------


def test_a_curve_of_three_points(curve_recipe: Path, tmp_path: Path, capsys) -> None:
    output = tmp_path / "curve"
    assert main(["data", "curve", str(curve_recipe), "--output", str(output)]) == 0
    curve = json.loads((output / "curve.json").read_text(encoding="utf-8"))
    assert [p["fraction"] for p in curve["points"]] == [0.25, 0.5, 1.0]
    assert [p["rows"] for p in curve["points"]] == [21, 42, 84]
    assert curve["method"] == "linear-probe"  # the cheapest method that fits the kind
    assert curve["metric"] == "macro_f1" and curve["scope"] == "test"
    assert {p["examples"] for p in curve["points"]} == {24}  # one test split for all
    assert all(isinstance(p["value"], float) for p in curve["points"])
    assert curve["fit"]["points"] == 3 and curve["sentence"].startswith(("Doubling", "Too noisy"))
    for point in curve["points"]:
        saved = yaml.safe_load((Path(point["run"]) / "recipe.yaml").read_text(encoding="utf-8"))
        assert saved["data"]["train_fraction"] == point["fraction"]
        assert saved["method"]["name"] == "linear-probe"
        assert (Path(point["run"]) / "metrics.json").is_file()
    assert sorted(p.name for p in output.iterdir()) == [
        ".tunesmith-curve", "curve.html", "curve.json",
        "fraction-0.25", "fraction-0.5", "fraction-1",
    ]  # fmt: skip
    page = (output / "curve.html").read_text(encoding="utf-8")
    assert "Would more data help?" in page and "data:image/png;base64," in page
    out = " ".join(capsys.readouterr().out.split())
    assert curve["sentence"].split(";")[0] in out

    # again into the same folder: refused without --overwrite, replaced with it
    again = ["data", "curve", str(curve_recipe), "--output", str(output), "--method", "lora"]
    before = {p: p.stat().st_mtime_ns for p in files_under(output) if p.is_file()}
    assert main(again) == 2
    assert {p: p.stat().st_mtime_ns for p in files_under(output) if p.is_file()} == before
    capsys.readouterr()
    assert main([*again, "--overwrite", "--fractions", "0.5,1", "--json"]) == 0
    curve = json.loads((output / "curve.json").read_text(encoding="utf-8"))
    assert json.loads(capsys.readouterr().out) == curve  # the training talk goes to stderr
    assert curve["method"] == "lora" and [p["rows"] for p in curve["points"]] == [42, 84]
    assert "2 points only" in curve["sentence"]
    assert not (output / "fraction-0.25").exists()  # the old point's run folder went


@pytest.mark.parametrize(
    ("fractions", "says"),
    [
        ("0.5,0.25", "ascending"),
        ("0.5,0.5", "ascending"),
        ("0,1", "above 0"),
        ("0.5,1.5", "at most 1"),
        ("1", "at least two points"),
        ("half,1", "shares of the training rows"),
        ("0.02,1", "start at 0.08"),  # 28 rows a class: 0.02 keeps 1
    ],
)
def test_refusals_exit_2_and_write_nothing(curve_recipe, tmp_path, capsys, fractions, says):
    output = tmp_path / "curve"
    argv = ["data", "curve", str(curve_recipe), "--output", str(output), "--fractions", fractions]
    assert main(argv) == 2
    assert says in " ".join(capsys.readouterr().err.split())
    assert not output.exists()


def test_other_refusals_exit_2_and_write_nothing(curve_recipe, tmp_path, capsys) -> None:
    output = tmp_path / "taken"
    output.mkdir()
    (output / "notes.txt").write_text("mine", encoding="utf-8")
    assert main(["data", "curve", str(curve_recipe), "--output", str(output)]) == 2
    assert "already holds files" in capsys.readouterr().err
    argv = ["data", "curve", str(curve_recipe), "--output", str(output), "--overwrite"]
    assert main(argv) == 2
    assert "not a curve folder" in capsys.readouterr().err
    assert [p.name for p in output.iterdir()] == ["notes.txt"]
    fresh = tmp_path / "fresh"
    argv = ["data", "curve", str(curve_recipe), "--output", str(fresh), "--method", "nope"]
    assert main(argv) == 2
    assert "--method 'nope'" in capsys.readouterr().err
    assert not fresh.exists()


# --- the fit ---------------------------------------------------------------------------------


def test_a_rising_curve_says_what_doubling_adds() -> None:
    fit = fit_curve([100, 200, 400], [0.62, 0.71, 0.80], "macro_f1", examples=400)
    assert fit.verdict == "rising"
    assert fit.gain_per_doubling == pytest.approx(0.09)  # the line in log2(rows)
    assert 0.03 < fit.gain < 0.09  # the saturating power law: each doubling adds less
    said = sentence(fit)
    assert said.startswith("Doubling the labelled data would add about +0.")
    assert "from 0.80 to about 0.8" in said and "the curve is still rising" in said


def test_a_flat_curve_points_at_labels_or_the_model() -> None:
    fit = fit_curve([100, 200, 400], [0.801, 0.804, 0.805], "macro_f1", examples=1000)
    assert fit.verdict == "flat"
    said = sentence(fit)
    assert "the curve has flattened" in said and "label quality or the model" in said
    assert "still rising" not in said


def test_two_points_or_noise_are_not_over_claimed() -> None:
    two = sentence(fit_curve([100, 400], [0.6, 0.8], "macro_f1", examples=200))
    assert "2 points only" in two
    noisy = fit_curve([50, 100, 200], [0.5, 0.8, 0.6], "macro_f1", examples=30)
    assert noisy.verdict == "unclear" and sentence(noisy).startswith("Too noisy to tell")


def test_a_loss_improves_downwards() -> None:
    fit = fit_curve([100, 200, 400], [2.4, 2.0, 1.6], "loss")
    assert fit.higher_is_better is False and fit.gain_per_doubling == pytest.approx(0.4)
    assert fit.predicted < 1.6 and fit.verdict == "rising"


def test_the_page_is_written_in_the_recipes_language() -> None:
    fit = fit_curve([100, 200, 400], [0.62, 0.71, 0.80], "macro_f1", examples=400)
    point = {"fraction": 1.0, "rows": 400, "value": 0.8, "baseline": None, "seconds": 3.0}
    curve = {
        "recipe": "r.yaml", "task": "text-classification", "model": "m", "method": "lp",
        "metric": "macro_f1", "scope": "test", "fit": fit.as_dict(),
        "points": [{**point, "run": "c/fraction-1"}],
    }  # fmt: skip
    with language("ja"):
        page = render_curve(curve)
    assert "データを増やすと" in page and "Would more data help?" not in page


def test_the_too_small_warning_points_to_the_curve() -> None:
    train = SplitItems(name="train", file="t.csv", rows=list(range(50)))
    (finding,) = too_small_findings(train, "full", "row", "collect more", "use lora")
    assert finding.severity == "warning" and "tunesmith data curve RECIPE" in finding.fix
