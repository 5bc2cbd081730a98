"""One self-contained HTML report per run folder, readable by someone who did not run it."""

from __future__ import annotations

from pathlib import Path

from tunesmith.i18n import LANGUAGES, check_language, language
from tunesmith.report import load
from tunesmith.report.render import build_context, render_html
from tunesmith.run_folder import RunFolder
from tunesmith.safe_files import write_text_atomically

__all__ = ["recipe_language", "render_report", "write_report"]


def recipe_language(run_dir: str | Path) -> str:
    """The language the run's recipe.yaml asks for (report.language), English without one."""
    recipe = load.read_yaml_mapping(Path(run_dir) / RunFolder.RECIPE)
    report = recipe.get("report")
    chosen = report.get("language") if isinstance(report, dict) else None
    return chosen if chosen in LANGUAGES else LANGUAGES[0]


def render_report(run_dir: str | Path, lang: str | None = None) -> str:
    """The HTML of the run's report in `lang` (default: the recipe's report.language)."""
    run_dir = Path(run_dir)
    with language(check_language(lang or recipe_language(run_dir))):
        return render_html(build_context(run_dir))


def write_report(
    run_dir: str | Path, language: str | None = None, output: str | Path | None = None
) -> Path:
    """Write `run_dir/report.html` (or `output`) from the files the run left there and return
    its path; in `language`, by default the recipe's report.language.

    Only metrics.json is required (a UserError otherwise); every other file is optional and its
    section is left out when it is missing, so a partial run still gets a report.
    """
    run_dir = Path(run_dir)
    path = Path(output) if output is not None else run_dir / RunFolder.REPORT
    write_text_atomically(path, render_report(run_dir, language))
    return path


def rerender(
    run_dir: str | Path, lang: str | None, output: str | Path | None = None, force: bool = False
) -> Path:
    """`tunesmith report`: a finished run's report again, from its files (no model is
    loaded), in `lang`. Default file: RUN_DIR/report.html in the recipe's language, else
    RUN_DIR/report.<lang>.html (tunesmith's own files, replaced freely); an --output file must
    end in .html, is no input, and replaces an existing file only with `force`."""
    from tunesmith.errors import UserError
    from tunesmith.safe_files import check_output_file

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such folder; give a run folder written by train")
    if not (run_dir / RunFolder.METRICS).is_file():
        raise UserError(
            f"{run_dir} is not a finished run (no {RunFolder.METRICS}); give a run folder "
            "written by `tunesmith train`"
        )
    own = recipe_language(run_dir)
    lang = check_language(lang or own)
    if output is None:
        name = RunFolder.REPORT if lang == own else f"report.{lang}.html"
        return write_report(run_dir, lang, run_dir / name)
    output = Path(output)
    if output.suffix.lower() != ".html":
        raise UserError(f"--output {output}: use an .html file name, e.g. report.{lang}.html")
    inputs = [run_dir / name for name in (RunFolder.METRICS, RunFolder.RECIPE)]
    inputs += [run_dir / name for name in (RunFolder.HISTORY, RunFolder.QUALITY)]
    check_output_file(
        output, "--output", inputs=[*inputs, run_dir / RunFolder.ESTIMATE], force=force
    )
    return write_report(run_dir, lang, output)
