"""One self-contained HTML report per run folder, readable by someone who did not run it."""

from __future__ import annotations

from pathlib import Path

from tunesmith.report.render import build_context, render_html
from tunesmith.run_folder import RunFolder
from tunesmith.safe_files import write_text_atomically

__all__ = ["write_report"]


def write_report(run_dir: str | Path) -> Path:
    """Write `run_dir/report.html` from the files the run left there and return its path.

    Only metrics.json is required (a UserError otherwise); every other file is optional and its
    section is left out when it is missing, so a partial run still gets a report.
    """
    run_dir = Path(run_dir)
    path = run_dir / RunFolder.REPORT
    write_text_atomically(path, render_html(build_context(run_dir)))
    return path
