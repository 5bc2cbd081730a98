"""What a data check found: `Finding`s with a severity, gathered in a `QualityReport` that is
written as quality.json and printed as a table."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tunesmith.run_folder import RunFolder

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")
SHOWN_ROWS = 8
"""Rows named in a printed message; quality.json always lists all of them."""


@dataclass
class Finding:
    """One problem (or fact) about the data.

    `rows` are 0-based row numbers in `file` as read (the header not counted); `split` is the
    split they belong to after splitting (train, validation or test), or "all" for a finding
    about the label set. `details` holds per-row facts (e.g. the duplicate's partner row, the
    suggested label) and `fix` says what to do."""

    check: str
    severity: Severity
    split: str
    rows: list[int]
    message: str
    fix: str = ""
    file: str | None = None
    details: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.details:
            del data["details"]
        return data


@dataclass
class QualityReport:
    findings: list[Finding]
    summary: dict[str, Any]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def to_dict(self) -> dict[str, Any]:
        counts = Counter(f.severity for f in self.findings)
        summary = {
            **self.summary,
            "errors": counts["error"],
            "warnings": counts["warning"],
            "infos": counts["info"],
        }
        return {"findings": [f.to_dict() for f in self.sorted()], "summary": summary}

    def sorted(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: SEVERITIES.index(f.severity))

    def write(self, folder: Path) -> Path:
        """quality.json in `folder` (written whole: a temporary file, then renamed)."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / RunFolder.QUALITY
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False))
        partial.replace(path)
        return path

    def print_brief(self, console: Console) -> None:
        """One line per finding (for `train`, where the full table would bury the run)."""
        if not self.findings:
            console.print("Data check: no problems found")
            return
        colours = {"error": "bold red", "warning": "yellow", "info": "dim"}
        for finding in self.sorted():
            colour = colours[finding.severity]
            console.print(
                f"  [{colour}]{finding.severity}[/] {escape(_headline(finding))}", highlight=False
            )

    def print(self, console: Console) -> None:
        if not self.findings:
            console.print("[green]Data check: no problems found")
            return
        table = Table(title="Data check", show_lines=True)
        table.add_column("severity")
        table.add_column("check")
        table.add_column("split")
        table.add_column("finding", overflow="fold")
        colours = {"error": "bold red", "warning": "yellow", "info": "dim"}
        for finding in self.sorted():
            # messages quote labels and texts, e.g. a label "[urgent]": markup must not eat them
            text = escape(finding.message)
            if finding.fix:
                text += f"\n[dim]fix: {escape(finding.fix)}[/]"
            table.add_row(
                f"[{colours[finding.severity]}]{finding.severity}[/]",
                escape(finding.check),
                escape(finding.split),
                text,
            )
        console.print(table)
        counts = Counter(f.severity for f in self.findings)
        console.print(
            f"Data check: {counts['error']} error(s), {counts['warning']} warning(s), "
            f"{counts['info']} note(s)"
        )


def _headline(finding: Finding) -> str:
    """ "check (split): message", plain text (the caller escapes it for rich)."""
    return f"{finding.check} ({finding.split}): {finding.message}"


def row_list(rows: list[int], shown: int = SHOWN_ROWS) -> str:
    """ "3, 17, 20 and 5 more" for a message."""
    head = ", ".join(str(r) for r in rows[:shown])
    return head + (f" and {len(rows) - shown} more" if len(rows) > shown else "")


def empty_rows_finding(split: str, file: str, rows: list[int], what: str, skipped: bool) -> Finding:
    """Rows with an empty `what` (e.g. "text or label"): an error, since training cannot read
    them, or a note when data.drop_empty (`skipped`) leaves them out. Every task kind's read
    check words it the same, so the same problem reads alike whatever the data."""
    return Finding(
        check="empty_rows",
        severity="info" if skipped else "error",
        split=split,
        rows=rows,
        file=file,
        message=f"{len(rows)} row(s) with an empty {what} (rows {row_list(rows)})"
        + ("; they are skipped (data.drop_empty)" if skipped else ""),
        fix="fill or remove them, or set data.drop_empty: true to skip them",
    )


def load_report(path: Path) -> QualityReport:
    data = json.loads(path.read_text())
    findings = [Finding(**item) for item in data.get("findings", [])]
    summary = {
        k: v for k, v in data.get("summary", {}).items() if k not in ("errors", "warnings", "infos")
    }
    return QualityReport(findings, summary)
