"""Would more labelled data help: the headline metric against log2(training rows), a line
(the gain per doubling) and, from 3 points, a saturating power law err = a·n^(-b) + c; the
verdict (rising, flat or unclear) and the sentence that says it.

Pure numbers: no model, no files. The uncertainty of the gain is the line's own scatter
(3 points or more) or, from 2 points, the test split's binomial noise of each score (an
upper bound: every point is scored on the same test rows, so their errors are shared)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from tunesmith.evaluate.metrics import lower_is_better
from tunesmith.i18n import _
from tunesmith.report import fmt

SMALL_GAIN = 0.01
"""A doubling that adds less than this (a share; for a loss, this fraction of its value) is
not worth collecting for: the curve has flattened."""

Verdict = Literal["rising", "flat", "unclear"]


@dataclass
class CurveFit:
    metric: str
    higher_is_better: bool
    points: int
    rows: int
    """Training rows of the largest point."""
    value: float
    """The metric at the largest point."""
    gain_per_doubling: float
    """The line's slope in log2(rows), as an improvement (a loss's fall is positive)."""
    gain: float
    """The expected improvement of the next doubling: the power law's where it converged,
    else the line's."""
    gain_se: float | None
    """Standard error of `gain` (None: no way to tell)."""
    uncertainty_from: str | None
    """What gain_se comes from: the line's residuals, or the test split's binomial noise."""
    predicted: float
    """The metric expected at twice the rows."""
    power_law: dict[str, float] | None
    """err = a·n^(-b) + c (err: 1 - score, or the loss itself), and `limit`: the score it
    levels off at; None with fewer than 3 points or when the fit did not converge."""
    verdict: Verdict

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def small_gain(metric: str, value: float) -> float:
    return SMALL_GAIN * abs(value) if lower_is_better(metric) else SMALL_GAIN


def _binomial_se(value: float, examples: int | None) -> float | None:
    if not examples or examples < 1 or not 0 <= value <= 1:
        return None
    share = min(max(value, 1 / examples), 1 - 1 / examples)
    return math.sqrt(share * (1 - share) / examples)


def _slope_se(x: np.ndarray, y: np.ndarray, slope: float, intercept: float) -> float | None:
    """The line's slope error from its residuals (needs 3 points or more)."""
    if len(x) < 3:
        return None
    residual = y - (slope * x + intercept)
    spread = float(np.sum((x - x.mean()) ** 2))
    if spread <= 0:
        return None
    return math.sqrt(float(np.sum(residual**2)) / (len(x) - 2) / spread)


def _binomial_slope_se(x: np.ndarray, ses: list[float | None]) -> float | None:
    """The slope's error from each point's binomial noise (weighted least squares)."""
    if any(se is None or se <= 0 for se in ses):
        return None
    weights = np.array([1 / se**2 for se in ses if se])
    centre = float(np.sum(weights * x) / np.sum(weights))
    spread = float(np.sum(weights * (x - centre) ** 2))
    return math.sqrt(1 / spread) if spread > 0 else None


def power_law(rows: Sequence[int], errors: Sequence[float]) -> dict[str, float] | None:
    """err = a·n^(-b) + c by scipy's curve_fit (a >= 0, 0 < b <= 3, 0 <= c <= the least
    error); None when it does not converge or gives no finite numbers."""
    from scipy.optimize import curve_fit

    n = np.asarray(rows, dtype=float)
    err = np.asarray(errors, dtype=float)
    if len(n) < 3 or np.any(err < 0):
        return None

    def model(size: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
        return a * size ** (-b) + c

    ceiling = max(float(err.min()), 1e-9)
    start = (max(err[0] - ceiling / 2, 1e-6) * n[0] ** 0.5, 0.5, ceiling / 2)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an exact fit of 3 points has no covariance
            params, _cov = curve_fit(
                model, n, err, p0=start, bounds=([0, 1e-3, 0], [np.inf, 3, ceiling]),
                maxfev=10000,
            )  # fmt: skip
    except (RuntimeError, ValueError):
        return None
    a, b, c = (float(p) for p in params)
    if not all(math.isfinite(p) for p in (a, b, c)):
        return None
    return {"a": a, "b": b, "c": c}


def fit_curve(
    rows: Sequence[int], values: Sequence[float], metric: str, examples: int | None = None
) -> CurveFit:
    """The fit of points (training rows, metric); `examples`: the scored split's rows (the
    binomial noise of a share metric). Needs 2 points or more, with different row counts."""
    if len(rows) < 2 or len(set(rows)) < 2:
        raise ValueError("a curve needs two points or more with different row counts")
    higher = not lower_is_better(metric)  # every other headline metric is a share in [0, 1]
    sign = 1.0 if higher else -1.0
    x = np.log2(np.asarray(rows, dtype=float))
    y = np.asarray(values, dtype=float)
    slope, intercept = (float(v) for v in np.polyfit(x, y, 1))
    line_gain = sign * slope
    residual_se = _slope_se(x, y, slope, intercept)
    binomial_se = _binomial_slope_se(x, [_binomial_se(v, examples) for v in values])
    gain_se, source = residual_se, "residuals" if residual_se is not None else None
    if gain_se is not None and binomial_se is not None:
        # 3 points leave the line one degree of freedom: its scatter alone can be ~0 by
        # chance; paired scores on the same test rows are about half as noisy as apart
        gain_se = max(gain_se, binomial_se / 2)
    elif binomial_se is not None:
        gain_se, source = binomial_se, "binomial"

    law = None
    errors = [1 - v for v in values] if higher else list(values)
    fitted = power_law(rows, errors) if len(rows) >= 3 else None
    gain = line_gain
    if fitted is not None:
        a, b, c = fitted["a"], fitted["b"], fitted["c"]
        law = {**fitted, "limit": 1 - c if higher else c}
        gain = a * rows[-1] ** (-b) * (1 - 2 ** (-b))  # err(n) - err(2n)
    predicted = y[-1] + sign * gain
    if higher:
        predicted = min(predicted, 1.0)
    value = float(y[-1])
    return CurveFit(
        metric=metric,
        higher_is_better=higher,
        points=len(rows),
        rows=int(rows[-1]),
        value=value,
        gain_per_doubling=line_gain,
        gain=float(gain),
        gain_se=gain_se,
        uncertainty_from=source,
        predicted=float(predicted),
        power_law=law,
        verdict=judge(gain, gain_se, small_gain(metric, value)),
    )


def judge(gain: float, se: float | None, small: float) -> Verdict:
    """rising: the next doubling adds more than `small`, clear of twice its error; flat: it
    adds no more than `small`, and no more than 4 x `small` even at the top of its error;
    else unclear."""
    spread = 2 * se if se is not None else 0.0
    if gain > small and gain > spread:
        return "rising"
    if gain <= small and gain + spread <= 4 * small:
        return "flat"
    return "unclear"


def levels_off(fit: CurveFit) -> bool:
    """The power law found a level short of perfect (its floor c above 0, its exponent
    inside its bounds): worth naming; else it is a straight line in disguise."""
    law = fit.power_law
    return law is not None and law["c"] > 1e-3 and 1e-3 * 1.01 < law["b"] < 3 * 0.99


def _number(value: float, metric: str) -> str:
    return f"{value:.3g}" if lower_is_better(metric) else f"{value:.2f}"


def _signed(value: float, metric: str) -> str:
    text = _number(abs(value), metric)
    return f"+{text}" if value >= 0 else f"−{text}"


def sentence(fit: CurveFit) -> str:
    """What the curve says, in the current language: the gain of doubling the labelled
    data and whether the curve still rises; never more than its points can carry."""
    name = fmt.label(fit.metric)
    change = fit.predicted - fit.value  # in the metric's own direction (a loss falls)
    numbers = {
        "gain": _signed(change, fit.metric),
        "metric": name,
        "now": _number(fit.value, fit.metric),
        "next": _number(fit.predicted, fit.metric),
        "error": _number(2 * fit.gain_se, fit.metric) if fit.gain_se is not None else "",
    }
    if fit.verdict == "rising":
        text = (
            _(
                "Doubling the labelled data would add about {gain} {metric} (from {now} to "
                "about {next}, give or take {error}); the curve is still rising."
            )
            if fit.gain_se is not None
            else _(
                "Doubling the labelled data would add about {gain} {metric} (from {now} to "
                "about {next}); the curve is still rising."
            )
        ).format(**numbers)
    elif fit.verdict == "flat":
        text = _(
            "Doubling the labelled data would change {metric} by about {gain} (from {now}); "
            "the curve has flattened: more data of the same kind is unlikely to help much; "
            "look at label quality or the model."
        ).format(**numbers)
    else:
        text = _(
            "Too noisy to tell: doubling the labelled data would change {metric} by about "
            "{gain} (from {now}), give or take {error}; a larger test split or more "
            "fractions would tell."
        ).format(**numbers)
    if levels_off(fit) and fit.verdict != "unclear":
        text += " " + _("The fitted curve levels off near {limit} {metric}.").format(
            limit=_number(fit.power_law["limit"], fit.metric), metric=name
        )
    if fit.points < 3:
        text += " " + _(
            "Measured at 2 points only: a rough guess; add a third fraction (e.g. "
            "--fractions 0.25,0.5,1) before acting on it."
        )
    return text
