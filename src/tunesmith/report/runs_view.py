"""A RunComparison laid out: rich tables for the terminal (readable at 80 columns: runs are
columns, long names and values wrap) and compare.html, a page in the run report's style."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tunesmith import i18n
from tunesmith.i18n import _
from tunesmith.report import fmt
from tunesmith.report.render import render_html
from tunesmith.report.runs import Cell, Run, RunComparison, Section
from tunesmith.safe_files import write_text_atomically
from tunesmith.version import __version__

NUMERIC_SECTIONS = frozenset({"test", "validation", "cost"})
"""Sections whose values are numbers: right-aligned, as in the report's tables."""
BEST_MARK = " *"
LABEL_WIDTH = 26
"""The widest a row label gets before it folds, in the terminal (80 columns: room for three
runs beside it)."""
NAME_LIMIT = 24
"""The longest run name a column header shows whole."""
RUN_WIDTH = 10
"""The room the label column leaves each run's column at least."""


def describe(run: Run) -> str:
    """task · model · method, what a reader needs to place a run."""
    method = run.recipe.get("method")
    name = method.get("name") if isinstance(method, dict) else run.metrics.get("method")
    parts = (run.task, run.recipe.get("model") or run.metrics.get("model"), name)
    return " · ".join(str(part) for part in parts if part)


# --- terminal ---------------------------------------------------------------------------


def _cell_text(cell: Cell) -> Text:
    if cell.best:
        return Text(cell.text + BEST_MARK, style="bold green")
    return Text(cell.text, style="red" if cell.bad else "")


def shortened(name: str, limit: int = NAME_LIMIT) -> str:
    """A long run name cut in the middle for a column header ('runs/lr-…-sweep-3'); the list
    of runs above the tables gives it whole."""
    if len(name) <= limit:
        return name
    head = (limit - 1) // 2
    return f"{name[:head]}…{name[-(limit - 1 - head) :]}"


def empty_note(section: Section) -> str:
    """What a section without rows says instead."""
    if section.key == "recipe":
        return _("Every recipe key is the same in these runs.")
    return section.note


def marks(section: Section) -> str:
    """What a highlighted value is in this section ('' when nothing is highlighted)."""
    if not any(cell.best for row in section.rows for cell in row.cells):
        return ""
    return "cheapest run" if section.key == "cost" else "best run"


def marks_note(section: Section) -> str:
    """The page's note on what is highlighted, in the language being written."""
    if not marks(section):
        return ""
    if section.key == "cost":
        return _("Highlighted: the cheapest run per row.")
    return _("Highlighted: the best run per row.")


def _caption(section: Section) -> str:
    mark = f"* {marks(section)}" if marks(section) else ""
    return ". ".join(part for part in (mark, section.note) if part)


def section_table(section: Section, names: list[str], width: int = 80) -> Table:
    """One section as a table: a label column, then one column per run; `width`: the
    terminal's, which the label column leaves RUN_WIDTH per run of."""
    table = Table(
        title=section.title,
        title_justify="left",
        title_style="bold",
        caption=_caption(section) or None,
        caption_justify="left",
    )
    justify = "right" if section.key in NUMERIC_SECTIONS else "left"
    # dotted keys read badly folded: the label column takes its width first (up to
    # LABEL_WIDTH, leaving RUN_WIDTH to each run) and the runs share the rest, their values
    # folding (rich alone shares the width evenly, and a min_width alone overflows it)
    longest = max((len(row.label) for row in section.rows), default=0)
    borders = 3 * (len(names) + 1) + 1
    label_width = max(8, min(longest, LABEL_WIDTH, width - borders - RUN_WIDTH * len(names)))
    share = max(RUN_WIDTH // 2, (width - borders - label_width) // max(1, len(names)))
    table.add_column(
        "key" if section.key == "recipe" else "", overflow="fold", min_width=label_width
    )
    for name in names:
        table.add_column(Text(shortened(name)), justify=justify, overflow="fold", max_width=share)
    for row in section.rows:
        label = Text(row.label)
        if row.note:
            label.append(f" ({row.note})", style="dim")
        table.add_row(label, *(_cell_text(cell) for cell in row.cells))
    return table


def print_comparison(comparison: RunComparison, console: Console) -> None:
    """The runs, each section's table, then the conclusion (where the eye ends)."""
    console.print(Text("Runs compared", style="bold"))
    for run in comparison.runs:
        line = Text(f"  {run.name}: {describe(run)}")
        if str(run.path) != run.name:
            line.append(f" ({run.path})", style="dim")
        console.print(line)
    for section in comparison.sections:
        console.print()
        if section.rows:
            console.print(section_table(section, comparison.names, console.width))
        else:
            console.print(Text(section.title, style="bold"))
            console.print(Text(empty_note(section), style="dim"))
    if comparison.verdicts:
        console.print()
        console.print(Text("Fine-tune or RAG? (each run's verdict)", style="bold"))
        for name, sentence in comparison.verdicts:
            console.print(Text(f"  {name}: {sentence}"))
    console.print()
    for note in comparison.notes:
        console.print(Text(note, style="yellow"))
    console.print(Text(comparison.summary, style="bold"))


# --- HTML -------------------------------------------------------------------------------


def html_context(comparison: RunComparison) -> dict[str, Any]:
    return {
        "title": " vs ".join(comparison.names),
        "generated": i18n.date_time(datetime.now()),
        "version": __version__,
        "summary": comparison.summary,
        "notes": comparison.notes,
        "runs": [(run.name, str(run.path.resolve()), describe(run)) for run in comparison.runs],
        "names": comparison.names,
        "sections": [
            {
                "key": section.key,
                "title": section.title,
                "rows": section.rows,
                "note": section.note,
                "numeric": section.key in NUMERIC_SECTIONS,
                "marks": marks(section),
                "marks_note": marks_note(section),
                "empty": empty_note(section),
            }
            for section in comparison.sections
        ],
        "verdicts": comparison.verdicts,
        "missing": fmt.MISSING,
    }


def render_comparison(comparison: RunComparison) -> str:
    return render_html(html_context(comparison), "compare.html.j2")


def write_comparison(comparison: RunComparison, output: Path) -> Path:
    """Written to a temporary file and renamed: an existing file is whole before and after
    (the caller checked it may be replaced)."""
    return write_text_atomically(output, render_comparison(comparison))
