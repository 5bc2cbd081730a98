"""curve.html: the sentence, the points and a picture of the metric against the training
rows on a log2 axis, in the run report's style (its templates, style.css and pictures)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from tunesmith import i18n
from tunesmith.curve.fit import CurveFit, sentence
from tunesmith.i18n import _
from tunesmith.report import fmt
from tunesmith.report.plots import any_script, to_base64
from tunesmith.report.render import render_html
from tunesmith.version import __version__


def _number(value: Any) -> str:
    return i18n.number(f"{value:.4f}") if fmt.is_number(value) else fmt.MISSING


@any_script
def curve_picture(curve: dict[str, Any]) -> str | None:
    """The scored points, the line in log2(rows), the power law where it converged, and
    the next doubling's expected score with its error bar."""
    points = [p for p in curve["points"] if fmt.is_number(p["value"]) and p["rows"]]
    if not points:
        return None
    metric, fit = curve["metric"], curve.get("fit")
    label = fmt.label(metric)
    rows = np.array([p["rows"] for p in points], dtype=float)
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.plot(rows, [p["value"] for p in points], "o-", color="#2f6fde", label=_("measured"))
    baselines = [(p["rows"], p["baseline"]) for p in points if fmt.is_number(p["baseline"])]
    if baselines:
        ax.plot(*zip(*baselines, strict=True), "s--", color="0.55", markersize=4,
                label=_("classical baseline"))  # fmt: skip
    if fit:
        wider = np.geomspace(rows.min(), rows.max() * 2, 50)
        if fit.get("power_law"):
            law = fit["power_law"]
            err = law["a"] * wider ** (-law["b"]) + law["c"]
            ax.plot(wider, 1 - err if fit["higher_is_better"] else err, ":", color="#137333",
                    label=_("saturating fit"))  # fmt: skip
        error = 2 * fit["gain_se"] if fit.get("gain_se") is not None else None
        ax.errorbar([rows.max() * 2], [fit["predicted"]], yerr=error, fmt="o", mfc="white",
                    color="#2f6fde", capsize=4, label=_("expected at twice the rows"))  # fmt: skip
    ax.set_xscale("log", base=2)
    ticks = [*rows.tolist(), *([rows.max() * 2] if fit else [])]
    ax.set_xticks(ticks, [i18n.number(f"{int(t):,}") for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel(_("training rows (log2 axis)"))
    ax.set_ylabel(_("{scope} {metric}").format(scope=_scope(curve["scope"]), metric=label))
    ax.legend(fontsize=8, frameon=False)
    return to_base64(fig)


def _scope(scope: str | None) -> str:
    return _("test") if scope == "test" else _("validation")


def curve_context(curve: dict[str, Any]) -> dict[str, Any]:
    fit = CurveFit(**curve["fit"]) if curve.get("fit") else None
    label = fmt.label(curve["metric"])
    rows = [
        {
            "fraction": i18n.number(f"{p['fraction']:g}"),
            "rows": i18n.number(f"{p['rows']:,}") if p["rows"] else fmt.MISSING,
            "value": _number(p["value"]),
            "baseline": _number(p["baseline"]),
            "seconds": i18n.number(f"{p['seconds']:.0f}"),
            "run": p["run"],
        }
        for p in curve["points"]
    ]
    notes = [
        _(
            "Each point is a full run folder trained with method {method} on a nested share "
            "of the training rows; the validation and test splits are the same for every "
            "point, so the points differ only in how much labelled data they learnt from."
        ).format(method=curve["method"])
    ]
    if fit is not None and fit.uncertainty_from == "binomial":
        notes.append(
            _(
                "The error is the test split's binomial noise of each score: an upper bound, "
                "as every point is scored on the same rows."
            )
        )
    elif fit is not None and fit.uncertainty_from == "residuals":
        notes.append(
            _(
                "The error is twice the standard error of the line's slope, and at least "
                "the test split's binomial noise halved (the points are scored on the same "
                "rows, so their errors are paired)."
            )
        )
    return {
        "title": curve.get("recipe") or curve["task"],
        "generated": i18n.date_time(datetime.now()),
        "version": __version__,
        "sentence": sentence(fit) if fit else _("No curve: fewer than two points were scored."),
        "metric": label,
        "scope": _scope(curve["scope"]),
        "model": curve["model"],
        "method": curve["method"],
        "rows": rows,
        "picture": curve_picture(curve),
        "notes": notes,
    }


def render_curve(curve: dict[str, Any]) -> str:
    return render_html(curve_context(curve), "curve.html.j2")
