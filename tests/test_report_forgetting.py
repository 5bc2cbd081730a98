"""The forgetting guard's rescue on the page: the report says which interpolation
coefficient was kept and what it cost on validation, with every point the bisection tried
(English and Japanese); the curve marks the guard's actions and its threshold; the terminal
line and `tunesmith compare` name the coefficient."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from matplotlib.figure import Figure

from tests.test_report import _full_metrics, _section, _write_run
from tunesmith.cli import main
from tunesmith.report import fmt, plots, render_report
from tunesmith.report.runs import Run, forgetting_cells
from tunesmith.run import describe_forgetting

ROW = re.compile(r"<tr>\s*(.*?)\s*</tr>", re.S)
CELL = re.compile(r"<td[^>]*>(.*?)</td>", re.S)


def rescue_rows(section: str) -> list[list[str]]:
    """The cells of the rescue's table (after its <h3>), row by row."""
    table = section[section.index("<h3>") :]
    table = table[table.index("<tbody>") : table.index("</tbody>")]
    return [CELL.findall(row) for row in ROW.findall(table)]


def test_a_rescued_run_names_the_kept_coefficient_in_english_and_japanese(
    overshooting: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe, run = tmp_path / "recipe.yaml", tmp_path / "run"
    recipe.write_text(yaml.safe_dump(overshooting))
    assert main(["train", str(recipe), "--output", str(run)]) == 0
    forgetting = json.loads((run / "metrics.json").read_text())["forgetting"]
    rescue = forgetting["rescue"]
    chosen = rescue["chosen"]
    assert chosen["source"] == "interpolation" and 0 < chosen["coefficient"] < 1
    coefficient = fmt.quantity(chosen["coefficient"])
    # the terminal line says it too
    printed = capsys.readouterr().out
    assert f"interpolation kept {chosen['coefficient']:.3g} of the tuned change" in printed

    english = _section((run / "report.html").read_text(encoding="utf-8"), "Forgetting")
    assert f"Weight interpolation kept {coefficient} of the tuned change" in english
    assert "(threshold +5%)" in english and "before training" in english
    tuned_loss = fmt.number(rescue["tuned"]["validation"]["loss"])
    assert f"against {tuned_loss} for the tuned weights past the threshold" in english
    assert "Rescue" not in english.split("<h3>")[0]  # no raw dict among the key-value rows
    rows = rescue_rows(english)
    # the starting weights, each bisection point, the tuned weights
    assert len(rows) == len(rescue["candidates"]) + 2
    assert rows[0][0] == "0" and rows[-1][0] == "1"
    kept = [row for row in rows if "kept" in row[3]]
    assert len(kept) == 1 and kept[0][0] == coefficient
    assert kept[0][2] == fmt.number(chosen["validation"]["loss"])
    assert kept[0][1] == f"{chosen['increase']:+.1%}"
    over = [c for c in rescue["candidates"] if c["increase"] > 0.05]
    assert english.count('class="num bad"') == len(over) + 1  # and the tuned weights

    assert main(["report", str(run), "--lang", "ja"]) == 0
    japanese = _section((run / "report.ja.html").read_text(encoding="utf-8"), "忘却 (破滅的忘却)")
    assert f"ファインチューニングによる変化のうち {coefficient} を残しました" in japanese
    assert "重みの補間による救済" in japanese and '<th class="num">係数</th>' in japanese
    assert "Weight interpolation" not in japanese and "kept" not in japanese
    assert len(rescue_rows(japanese)) == len(rows)

    compared = Run(run, "run", overshooting, {"forgetting": forgetting}, {}, None)
    cells = forgetting_cells(compared)
    assert cells is not None and f"rolled_back, rescued at {coefficient}" in cells[1].text


def _rescued_metrics(measure: str, chosen: str | None) -> dict[str, Any]:
    """metrics.json of a run whose rescue kept a checkpoint, an interpolation or nothing."""
    points = [
        {"source": "interpolation", "coefficient": a, "measure": m, "increase": m,
         "validation": {"accuracy": acc}}
        for a, m, acc in ((0.5, 0.04, 0.81), (0.75, 0.09, 0.84), (0.625, 0.06, 0.83))
    ]  # fmt: skip
    checkpoint = {"source": "checkpoint", "coefficient": None, "measure": 0.03,
                  "increase": 0.03, "validation": {"accuracy": 0.86}}  # fmt: skip
    kept = {"checkpoint": checkpoint, "interpolation": points[0], None: None}[chosen]
    tuned = {"source": "interpolation", "coefficient": 1.0, "measure": 0.2, "increase": 0.2,
             "validation": {"accuracy": 0.9}}  # fmt: skip
    metrics = copy.deepcopy(_full_metrics())
    metrics["forgetting"] = {
        "reference": "builtin:general-en", "measure": measure, "before": 0.0, "after": 0.03,
        "increase": 0.03, "threshold": 0.05, "action": "stop", "action_taken": "stopped",
        "retries_used": 2, "rescue": {"method": "interpolation", "metric": "accuracy",
        "chosen": kept, "tuned": tuned, "candidates": points, "seconds": 1.5},
    }  # fmt: skip
    return metrics


def test_the_best_checkpoint_staying_reads_in_plain_numbers(tmp_path: Path) -> None:
    """representation_drift's increase is the measure itself: no percentages; the history
    has no step 0, so there is no 'before training' row."""
    _write_run(tmp_path, _rescued_metrics("representation_drift", "checkpoint"), [])
    section = _section(render_report(tmp_path, "en"), "Forgetting")
    assert "the best checkpoint stays (forgetting 0.030, threshold 0.05;" in section
    assert "against 0.900 for the tuned weights" in section
    assert "%" not in section.split("<h3>")[1]
    assert "Retries used (rolled back, then training went on)</th><td>2<" in section
    rows = rescue_rows(section)
    assert [row[0] for row in rows] == ["0.5", "0.625", "0.75", "1", fmt.MISSING]
    assert rows[-1][3] == "kept: the best checkpoint" and rows[-1][2] == "0.860"
    japanese = _section(render_report(tmp_path, "ja"), "忘却 (破滅的忘却)")
    assert "最良のチェックポイントをそのまま使います" in japanese
    assert "採用: 最良のチェックポイント" in japanese


def test_a_rescue_that_found_nothing_says_so(tmp_path: Path) -> None:
    metrics = _rescued_metrics("perplexity", None)
    metrics["forgetting"]["retries_used"] = 0
    _write_run(tmp_path, metrics, [])
    section = _section(render_report(tmp_path, "en"), "Forgetting")
    assert "found no weights under the threshold (+5%) in 3 tries" in section
    assert "Retries used" not in section
    assert len(rescue_rows(section)) == 4 and not any(
        "kept" in row[3] for row in rescue_rows(section)
    )
    cells = forgetting_cells(Run(tmp_path, "run", {}, metrics, {}, None))
    assert cells is not None and "rescued" not in cells[1].text
    assert "interpolation kept" not in describe_forgetting(metrics["forgetting"])


def test_the_forgetting_panel_marks_the_guard_and_its_threshold() -> None:
    history = [
        {"step": 0, "forgetting_perplexity": 50.0},
        {"step": 2, "forgetting_perplexity": 52.0, "guard_check": True},
        {"step": 4, "forgetting_perplexity": 80.0,
         "guard_action": "rolled back to step 2; training goes on (retry 1 of 1)"},
        {"step": 6, "forgetting_perplexity": 51.0},
        {"step": 8, "forgetting_perplexity": 70.0,
         "guard_action": "stopped (the best weights under the threshold are restored)"},
    ]  # fmt: skip
    forgetting = {"measure": "perplexity", "before": 50.0, "threshold": 0.1}
    ax = Figure().subplots()
    plots._mark_guard(ax, history, forgetting)
    labels = {line.get_label(): line for line in ax.get_lines()}
    assert {"rolled back", "stopped", "threshold"} <= set(labels)
    assert list(labels["rolled back"].get_xdata()) == [4, 4]
    assert list(labels["stopped"].get_xdata()) == [8, 8]
    assert labels["threshold"].get_ydata()[0] == pytest.approx(55.0)  # +10% of 50
    drift = Figure().subplots()
    plots._mark_guard(drift, [], {"measure": "representation_drift", "before": 0.0,
                                  "threshold": 0.2})  # fmt: skip
    assert drift.get_lines()[0].get_ydata()[0] == pytest.approx(0.2)
    assert plots.learning_curves(history, 6, forgetting)  # the whole figure draws
