"""Charts for the report, each returned as a base64 PNG so the HTML stays one self-contained file.

Figures are built with the object-oriented API on an Agg canvas rather than pyplot: nothing is
registered in pyplot's global figure list, the user's backend is left alone, and a figure is freed
as soon as it goes out of scope.

Text is drawn in any script: matplotlib's own DejaVu Sans first and, glyph by glyph, the CJK font
of the `japanize-matplotlib` package (IPAexGothic, installed by `make setup`) for what DejaVu
lacks (Japanese class names, a translated page's labels). Without that package pictures still
render, with a warning in the log, and such characters come out as boxes.
"""

from __future__ import annotations

import base64
import functools
import io
import logging
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import matplotlib
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tunesmith.i18n import N_, _
from tunesmith.report import fmt

_LOSS_NAMES = {"train_loss": N_("training"), "val_loss": N_("validation")}
_PERPLEXITY_NAMES = {"train_perplexity": N_("training"), "val_perplexity": N_("validation")}
_SERIES_NAMES = {**_LOSS_NAMES, **_PERPLEXITY_NAMES}
# Perplexity of an untuned model can start orders of magnitude above where it ends.
_LOG_SCALE_RATIO = 20.0
_MAX_ANNOTATED_LABELS = 20
# The CJK font: a registry package that ships the file (pinned in the Makefile, installed
# with --no-deps). It is never imported: importing it changes matplotlib's global settings.
CJK_FONT_PACKAGE = "japanize-matplotlib"
CJK_FONT_FILE = "ipaexg.ttf"
_LATIN_FONT = "DejaVu Sans"

log = logging.getLogger(__name__)
_P = ParamSpec("_P")
_R = TypeVar("_R")


def cjk_font_path() -> Path | None:
    """The CJK font file of CJK_FONT_PACKAGE, found through its installed files; None when the
    package is not installed."""
    try:
        files = metadata.distribution(CJK_FONT_PACKAGE).files or []
    except metadata.PackageNotFoundError:
        return None
    found = [file for file in files if file.name == CJK_FONT_FILE]
    path = Path(found[0].locate()) if found else None
    return path if path and path.is_file() else None


@functools.cache
def font_family() -> tuple[str, ...]:
    """The font.family every picture is drawn with: DejaVu Sans, then the CJK font, which
    matplotlib (>= 3.6) uses glyph by glyph for what DejaVu Sans lacks."""
    path = cjk_font_path()
    if path is None:
        log.warning(
            "No CJK font: Japanese, Chinese and Korean text in pictures will show as boxes; "
            "install it with `make setup` (pip install --no-deps %s).",
            CJK_FONT_PACKAGE,
        )
        return (_LATIN_FONT,)
    font_manager.fontManager.addfont(str(path))
    return (_LATIN_FONT, font_manager.FontProperties(fname=path).get_name())


def any_script(draw: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorate a function that builds and saves a figure, so its text is drawn with
    font_family(); matplotlib's global settings are left as they were."""

    @functools.wraps(draw)
    def drawn(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with matplotlib.rc_context({"font.family": list(font_family())}):
            return draw(*args, **kwargs)

    return drawn


def to_base64(fig: Figure) -> str:
    """A figure as the base64 PNG a page embeds (the report's, tune.html's and curve.html's
    pictures)."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    fig.clear()
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _plain(text: str) -> str:
    """Escape '$' so a label like '$5 plan' is not parsed as matplotlib mathtext."""
    return text.replace("$", r"\$")


def _legend(key: str) -> str:
    """'val_macro_f1' -> 'Macro-F1': the panel title already says these are validation scores."""
    return _plain(
        _(_SERIES_NAMES[key]) if key in _SERIES_NAMES else fmt.label(key.removeprefix("val_"))
    )


def _series(history: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) for rows where both are finite numbers; NaN/null points are dropped."""
    points = [
        (row["step"], row[key])
        for row in history
        if fmt.is_number(row.get("step")) and fmt.is_number(row.get(key))
    ]
    return [step for step, _ in points], [val for _, val in points]


def _draw(ax: Axes, history: Sequence[dict[str, Any]], keys: Sequence[str], title: str) -> None:
    for key in keys:
        steps, values = _series(history, key)
        ax.plot(steps, values, marker="o", markersize=3, linewidth=1.6, label=_legend(key))
    ax.set_title(_(title), fontsize=11)
    if set(keys) <= set(_PERPLEXITY_NAMES) and _spans_orders_of_magnitude(history, keys):
        ax.set_yscale("log")
    ax.set_xlabel(_("step"))
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def _spans_orders_of_magnitude(history: Sequence[dict[str, Any]], keys: Sequence[str]) -> bool:
    values = [val for key in keys for val in _series(history, key)[1]]
    return bool(values) and min(values) > 0 and max(values) / min(values) > _LOG_SCALE_RATIO


def _plotted(history: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[str]:
    """The keys with at least one point to draw."""
    return [key for key in keys if _series(history, key)[0]]


def _panels(history: Sequence[dict[str, Any]]) -> list[tuple[list[str], str]]:
    """Loss, perplexity (a causal LM's, on its own scale), the other validation metrics and
    the forgetting measure beside them; a panel with nothing to draw is left out, so any one
    of them is enough for a figure."""
    other_keys = sorted(
        {
            key
            for row in history
            for key in row
            if key.startswith("val_") and key not in _SERIES_NAMES
        }
    )
    forgetting = sorted(
        {key for row in history for key in row if key.startswith("forgetting_")}
        - {"forgetting_increase"}
    )
    candidates = (
        (_plotted(history, list(_LOSS_NAMES)), N_("Loss")),
        (_plotted(history, list(_PERPLEXITY_NAMES)), N_("Perplexity")),
        (_plotted(history, other_keys), N_("Validation metrics")),
        (_plotted(history, forgetting), N_("Forgetting (reference data)")),
    )
    return [(keys, title) for keys, title in candidates if keys]


_GUARD_ACTIONS = (
    ("rolled back", N_("rolled back"), "tab:orange"),
    ("stopped", N_("stopped"), "tab:red"),
)
"""The start of a history line's guard_action (train/loop.py), its legend label, colour."""
_RELATIVE_MEASURES = frozenset({"perplexity"})
"""Forgetting measures whose threshold is relative to the value before training."""


def _mark_guard(ax: Axes, history: Sequence[dict[str, Any]], forgetting: dict[str, Any]) -> None:
    """The forgetting guard on its panel: a vertical line at each step where it acted
    (guard_action), and its threshold on the measure's own scale when metrics.json has it."""
    labelled = set()
    for row in history:
        action, step = row.get("guard_action"), row.get("step")
        if not isinstance(action, str) or not fmt.is_number(step):
            continue
        name, colour = next(
            ((name, colour) for start, name, colour in _GUARD_ACTIONS if action.startswith(start)),
            (N_("guard action"), "tab:purple"),
        )
        label = _(name)
        ax.axvline(step, color=colour, linestyle=":", linewidth=1.6,
                   label=None if label in labelled else label)  # fmt: skip
        labelled.add(label)
    before, threshold = forgetting.get("before"), forgetting.get("threshold")
    if fmt.is_number(before) and fmt.is_number(threshold):
        relative = forgetting.get("measure") in _RELATIVE_MEASURES
        level = before * (1 + threshold) if relative else threshold
        ax.axhline(level, color="tab:red", linestyle="--", linewidth=1, alpha=0.6,
                   label=_("threshold"))  # fmt: skip


@any_script
def learning_curves(
    history: Sequence[dict[str, Any]], best_step: Any = None, forgetting: Any = None
) -> str | None:
    """Losses, perplexities and validation metrics side by side, so overfitting shows at a
    glance; None when the history has nothing to draw. `forgetting`: metrics.json's, for
    the guard's threshold on the forgetting panel."""
    panels = _panels(history)
    if not panels:
        return None
    fig = Figure(figsize=(4.8 * len(panels), 3.6), layout="constrained")
    for ax, (keys, title) in zip(
        fig.subplots(1, len(panels), squeeze=False)[0], panels, strict=True
    ):
        _draw(ax, history, keys, title)
        if fmt.is_number(best_step):
            ax.axvline(best_step, color="0.4", linestyle="--", linewidth=1, label=_("best step"))
        if all(key.startswith("forgetting_") for key in keys):
            _mark_guard(ax, history, forgetting if isinstance(forgetting, dict) else {})
        ax.legend(fontsize=8, frameon=False)
    return to_base64(fig)


def _is_square_matrix(matrix: Any) -> bool:
    return (
        isinstance(matrix, list)
        and len(matrix) > 0
        and all(isinstance(row, list) and len(row) == len(matrix) for row in matrix)
        and all(fmt.is_number(cell) for row in matrix for cell in row)
    )


def _annotate(ax: Axes, matrix: list[list[float]], shares: list[list[float]]) -> None:
    size = 9 if len(matrix) <= 10 else 7
    for i, row in enumerate(matrix):
        for j, cell in enumerate(row):
            colour = "white" if shares[i][j] > 0.6 else "black"
            ax.text(j, i, f"{cell:g}", ha="center", va="center", fontsize=size, color=colour)


@any_script
def confusion_matrix(matrix: Any, labels: Sequence[Any] | None = None) -> str | None:
    """Counts per (true, predicted) pair; colour is the share of each true class, so that
    small classes' mistakes stay visible next to big ones."""
    if not _is_square_matrix(matrix):
        return None
    n = len(matrix)
    names = [_plain(str(name)) for name in labels] if labels and len(labels) == n else None
    names = names or [str(i) for i in range(n)]
    shares = [[cell / (sum(row) or 1) for cell in row] for row in matrix]
    side = min(max(4.0, 0.35 * n + 2.5), 16.0)
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, shrink=0.8, label=_("share of true class"))
    tick_size = max(5, 10 - n // 6)
    ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=tick_size)
    ax.set_yticks(range(n), names, fontsize=tick_size)
    ax.set_xlabel(_("predicted"))
    ax.set_ylabel(_("true"))
    if n <= _MAX_ANNOTATED_LABELS:
        _annotate(ax, matrix, shares)
    return to_base64(fig)
