"""`tunesmith compare`: two tiny runs side by side in the terminal and in compare.html, the
refusals (missing, unfinished or repeated folders, an --output that exists), and `--version`."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tunesmith.cli import main
from tunesmith.report import fmt
from tunesmith.report.runs import (
    Run,
    build_comparison,
    flatten,
    proportion_noise,
    summary,
    unique_names,
)

from .browser import FLAGS, chromium_or_skip
from .conftest import make_rows

RUNS = {
    # two keys differ: the method (and so its own keys) and the learning rate
    "lora-run": {"method": {"name": "lora", "r": 4}, "learning_rate": 5e-3},
    "full-run": {"method": {"name": "full"}, "learning_rate": 1e-2},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir) -> list[Path]:
    """Two finished tiny runs (seconds each), shared: tests copy them to damage them."""
    folder = tmp_path_factory.mktemp("compare")
    data = folder / "topics.csv"
    pd.DataFrame(make_rows(40)).to_csv(data, index=False)
    paths = []
    for name, keys in RUNS.items():
        recipe = {
            "model": str(tiny_model_dir),
            "data": {"train": str(data)},
            "method": keys["method"],
            "train": {
                "epochs": 2,
                "batch_size": 8,
                "learning_rate": keys["learning_rate"],
                "precision": "fp32",
            },
            "guards": {"data_quality": "warn"},
        }
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(recipe))
        output = folder / name
        assert main(["train", str(path), "--output", str(output)]) == 0
        paths.append(output)
    return paths


def metrics_of(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


class Page(HTMLParser):
    """The tables of a page (class -> rows of (classes, text) cells), and whether every
    element that was opened was closed in order."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[tuple[set[str], str]]]] = {}
        self.stack: list[str] = []
        self.balanced = True
        self.texts: list[str] = []
        self._table: list | None = None
        self._cell: tuple[set[str], list[str]] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        self.stack.append(tag)
        classes = set((dict(attrs).get("class") or "").split())
        if tag == "table":
            self._table = self.tables.setdefault(" ".join(sorted(classes)), [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = (classes, [])

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack.pop() != tag:
            self.balanced = False
        if tag in ("td", "th") and self._cell is not None and self._table:
            classes, parts = self._cell
            self._table[-1].append((classes, "".join(parts).strip()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        self.texts.append(data)
        if self._cell is not None:
            self._cell[1].append(data)

    def rows(self, table: str) -> dict[str, list[tuple[set[str], str]]]:
        """A table's body rows by their label (the first cell), less the label."""
        found = next(rows for name, rows in self.tables.items() if table in name.split())
        return {row[0][1]: row[1:] for row in found[1:] if row}


def compare_output(capsys, *argv: str) -> tuple[int, str]:
    code = main(["compare", *argv])
    out = capsys.readouterr()
    return code, out.out + out.err


# --- the terminal -------------------------------------------------------------------------


def test_the_terminal_names_the_keys_that_differ_and_counts_the_rest(runs, capsys):
    code, out = compare_output(capsys, *map(str, runs))
    assert code == 0, out
    for key in ("method.name", "method.r", "train.learning_rate", "lora", "full"):
        assert key in out
    for same in ("train.batch_size", "train.epochs", "data.train", "output_dir", "guards."):
        assert same not in out  # the same in both runs (or where each run went)
    flats = [flatten(yaml.safe_load((run / "recipe.yaml").read_text())) for run in runs]
    keys = (set(flats[0]) | set(flats[1])) - {"output_dir"}
    differing = {key for key in keys if flats[0].get(key) != flats[1].get(key)}
    assert f"{len(keys - differing)} keys are the same in every run" in out
    assert all(len(line) <= 80 for line in out.splitlines() if "│" in line or "┃" in line)
    for section in ("Test metrics", "Cost", "Guards", "Forgetting", "Data-quality gate"):
        assert section in out


def test_the_summary_names_the_best_run_by_the_headline_metric(runs, capsys):
    code, out = compare_output(capsys, *map(str, runs))
    assert code == 0
    scores = {run.name: metrics_of(run)["fine_tuned"]["macro_f1"] for run in runs}
    if len(set(scores.values())) == 1:
        assert "tie on test macro-F1" in out
    else:
        best = max(scores, key=scores.get)
        assert f"Best by test macro-F1: {best}, {fmt.number(scores[best])}" in out


# --- the page -------------------------------------------------------------------------------


def test_the_page_holds_both_runs_metrics_and_marks_the_best(runs, tmp_path, capsys):
    output = tmp_path / "compare.html"
    code, out = compare_output(capsys, *map(str, runs), "--output", str(output))
    assert code == 0, out
    assert str(output) in out
    page = Page(output.read_text(encoding="utf-8"))
    assert page.balanced and not page.stack
    header = next(rows for name, rows in page.tables.items() if "test" in name.split())[0]
    assert [text for _, text in header[1:]] == [run.name for run in runs]
    test = page.rows("test")
    for name, label in (("accuracy", "Accuracy"), ("macro_f1", "Macro-F1headline")):
        values = [metrics_of(run)["fine_tuned"][name] for run in runs]
        cells = test[label]
        assert [text for _, text in cells] == [fmt.number(v) for v in values]
        best = [("best" in classes) for classes, _ in cells]
        if len(set(values)) == 1:
            assert not any(best)
        else:
            assert best == [v == max(values) for v in values]
    loss = [metrics_of(run)["fine_tuned"]["loss"] for run in runs]
    assert [("best" in c) for c, _ in test["Losslower is better"]] == [v == min(loss) for v in loss]
    recipe = page.rows("recipe")
    assert {"method.name", "train.learning_rate"} <= set(recipe)
    assert [text for _, text in recipe["method.name"]] == ["lora", "full"]
    assert [text for _, text in recipe["train.learning_rate"]] == ["0.005", "0.01"]
    cost = page.rows("cost")
    seconds = [metrics_of(run)["train_seconds"] for run in runs]
    assert [text for _, text in cost["Training time"]] == [f"{fmt.quantity(s)} s" for s in seconds]
    assert "Forgetting action taken" in page.rows("guards")
    assert 'class="scroll"' in output.read_text(encoding="utf-8")  # wide tables scroll


def test_tune_trials_compare_on_validation(runs, tmp_path, capsys):
    """A tune's trial folders hold no test scores: the best run is named by validation."""
    trials = []
    for number, run in enumerate(runs):
        trial = tmp_path / "tune" / "trials" / f"{number:04d}"
        shutil.copytree(run, trial)
        metrics = metrics_of(trial)
        for key in ("fine_tuned", "base", "baseline"):
            metrics.pop(key, None)
        (trial / "metrics.json").write_text(json.dumps(metrics))
        trials.append(trial)
    code, out = compare_output(capsys, *map(str, trials))
    assert code == 0, out
    assert "No run was scored on test" in out
    scores = [metrics_of(trial)["validation"]["macro_f1"] for trial in trials]
    if scores[0] != scores[1]:
        best = trials[scores.index(max(scores))].name
        assert f"Best by validation macro-F1: {best}" in out


LAYOUT = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [];
  for (const element of document.querySelectorAll("body *")) {
    if (element.closest(".scroll") && !element.classList.contains("scroll")) continue;
    const box = element.getBoundingClientRect();
    if (box.right > width + 1 || box.left < -1) wide.push(element.tagName + element.className);
  }
  return {page: document.documentElement.scrollWidth, width, wide};
}"""


def test_the_page_fits_a_desktop_and_a_phone(runs, tmp_path, capsys):
    """No element is wider than the window at 1280 and 390 px: wide tables scroll inside
    their own box (.scroll), long run names and paths wrap."""
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    long_name = tmp_path / "lora-run-with-a-long-name-from-the-learning-rate-sweep-number-3"
    shutil.copytree(runs[0], long_name)
    output = tmp_path / "compare.html"
    code, out = compare_output(capsys, *map(str, runs), str(long_name), "--output", str(output))
    assert code == 0, out
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=FLAGS)
        try:
            for width in (1280, 390):
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.goto(output.as_uri())
                layout = page.evaluate(LAYOUT)
                assert layout["wide"] == [] and layout["page"] <= width, (width, layout)
                page.close()
        finally:
            browser.close()


# --- refusals -----------------------------------------------------------------------------


def test_an_unfinished_run_is_refused_by_name(runs, tmp_path, capsys):
    broken = tmp_path / "broken-run"
    shutil.copytree(runs[0], broken)
    (broken / "metrics.json").unlink()
    code, out = compare_output(capsys, str(runs[1]), str(broken))
    assert code == 2
    assert str(broken) in out and "metrics.json" in out and "Traceback" not in out


def test_a_missing_folder_is_refused_by_name(runs, tmp_path, capsys):
    missing = tmp_path / "no-such-run"
    code, out = compare_output(capsys, str(runs[0]), str(missing))
    assert code == 2
    assert str(missing) in out and "no such folder" in out


def test_the_same_run_twice_is_refused(runs, capsys):
    again = runs[0].parent / ".." / runs[0].parent.name / runs[0].name  # the same, spelt apart
    code, out = compare_output(capsys, str(runs[0]), str(runs[1]), str(again))
    assert code == 2
    assert "named twice" in out


def test_one_run_is_not_a_comparison(runs, capsys):
    code, out = compare_output(capsys, str(runs[0]))
    assert code == 2
    assert "two or more" in out


def test_an_existing_output_is_replaced_only_with_force(runs, tmp_path, capsys):
    output = tmp_path / "compare.html"
    output.write_text("my notes")
    code, out = compare_output(capsys, *map(str, runs), "--output", str(output))
    assert code == 2
    assert "--force" in out
    assert output.read_text() == "my notes"
    code, out = compare_output(capsys, *map(str, runs), "--output", str(output), "--force")
    assert code == 0, out
    assert output.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_the_output_is_never_inside_a_run_nor_another_kind_of_file(runs, capsys):
    inside = runs[0] / "compare.html"
    code, out = compare_output(capsys, *map(str, runs), "--output", str(inside))
    assert code == 2 and "input" in out
    assert not inside.exists()
    code, out = compare_output(capsys, *map(str, runs), "--output", str(runs[0].parent / "c.csv"))
    assert code == 2 and ".html" in out


# --- the data model, without training -------------------------------------------------------


def fake_run(name: str, task: str, fine_tuned: dict, **recipe) -> Run:
    metrics = {
        "task": task,
        "fine_tuned": fine_tuned,
        "splits": {"test": 100},
        "early_stopping_metric": "accuracy",
    }
    return Run(Path("/runs") / name, name, {"task": task, **recipe}, metrics, {}, None)


def test_different_task_kinds_show_dashes_and_name_no_best():
    runs = [
        fake_run("classifier", "text-classification", {"accuracy": 0.9, "loss": 0.3}),
        fake_run("llm", "causal-lm", {"perplexity": 12.0, "loss": 2.5}),
    ]
    comparison = build_comparison(runs)
    test = next(section for section in comparison.sections if section.key == "test")
    rows = {row.label: row.cells for row in test.rows}
    assert [cell.text for cell in rows["Accuracy"]] == ["0.900", fmt.MISSING]
    assert [cell.text for cell in rows["Perplexity"]] == [fmt.MISSING, "12.000"]
    assert not any(cell.best for row in test.rows for cell in row.cells)
    assert "different task kinds" in comparison.summary
    assert any("different task kinds" in note for note in comparison.notes)


def test_noise_is_judged_for_shares_of_examples():
    assert proportion_noise(0.5, 0.5, 100) == pytest.approx(1.96 * (0.5 / 100) ** 0.5)
    close = [
        fake_run("a", "text-classification", {"accuracy": 0.80}),
        fake_run("b", "text-classification", {"accuracy": 0.78}),
    ]
    assert "within the noise of 100 test examples" in summary(close, "accuracy", "test")
    apart = [
        fake_run("a", "text-classification", {"accuracy": 0.95}),
        fake_run("b", "text-classification", {"accuracy": 0.60}),
    ]
    text = summary(apart, "accuracy", "test")
    assert text.startswith("Best by test accuracy: a, 0.950 against 0.600 for b (+0.350).")
    assert "beyond the noise of 100 test examples" in text
    lower = [
        fake_run("a", "text-classification", {"loss": 0.5}),
        fake_run("b", "text-classification", {"loss": 0.4}),
    ]
    text = summary(lower, "loss", "test")
    assert text.startswith("Best by test loss (lower is better): b, 0.400")
    assert "no per-example scores" in text


def test_paths_into_each_run_folder_are_not_differences():
    runs = [
        fake_run(n, "text-classification", {"accuracy": 0.5}, resume_from=f"/runs/{n}/checkpoints")
        for n in ("a", "b")
    ]
    recipe = next(section for section in build_comparison(runs).sections if section.key == "recipe")
    assert recipe.rows == []


def test_run_names_are_told_apart_by_their_parents():
    names = unique_names([Path("/t/tune-a/best"), Path("/t/tune-b/best"), Path("/t/other")])
    assert names == ["tune-a/best", "tune-b/best", "t/other"]
    assert re.fullmatch(r"\w+", unique_names([Path("/x/a"), Path("/x/b")])[0])


# --- --version ------------------------------------------------------------------------------


def test_version_prints_the_package_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"tunesmith {version('tunesmith')}\n"
