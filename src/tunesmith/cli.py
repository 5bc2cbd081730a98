"""The `tunesmith` command line. COMMANDS is the one table from command name to function."""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tunesmith.errors import GateFailed, UserError
from tunesmith.libraries import quiet_libraries

console = Console(soft_wrap=True)


class Language(str, Enum):
    """The languages of the pages tunesmith writes (tunesmith.i18n.LANGUAGES)."""

    en = "en"
    ja = "ja"


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Fine-tune pre-trained models on your own data, guarded against the classic failures.",
)


def package_version() -> str:
    """The installed distribution's version (what pip reports); the source tree's when
    tunesmith runs without being installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tunesmith")
    except PackageNotFoundError:
        from tunesmith.version import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        print(f"tunesmith {package_version()}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
) -> None:
    pass


def demo(
    output: Annotated[
        str | None, typer.Option(help="Run folder (default: a new runs/demo, runs/demo-2, ...)")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace the run folder named by --output (a run folder only)")
    ] = False,
) -> None:
    """Fine-tune the built-in MiniLM with LoRA on bundled real data, offline, in minutes."""
    from tunesmith.demo import run_demo

    run_demo(output, console=console, overwrite=overwrite)


def train(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML (see examples/)")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe key: --set train.epochs=5 (repeatable)"),
    ] = None,
    output: Annotated[str | None, typer.Option(help="Run folder (default: output_dir)")] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted run from its checkpoint")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run folder")] = False,
    nproc: Annotated[
        int,
        typer.Option(
            help="Processes on this machine, sharing every batch (DDP, or FSDP with "
            "train.distributed: fsdp); on several machines launch with torchrun instead",
            min=1,
        ),
    ] = 1,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            help="Where the recipe's `tracking` records the run: an MLflow tracking URI "
            "(http://host:5000, sqlite:///mlflow.db) or a TensorBoard log folder"
        ),
    ] = None,
) -> None:
    """Train with validation and early stopping, test, compare with cheaper options, report."""
    from tunesmith.recipe import load_recipe
    from tunesmith.run import prepare_output
    from tunesmith.run import train as run_train

    loaded = load_recipe(recipe, set_ or [])
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        from tunesmith.tracking import plan_tracking
        from tunesmith.train.device import resolve_device
        from tunesmith.train.distributed import launch_local

        # the checks that need no data: a mistake stops here, before any process starts
        prepare_output(loaded, Path(output or loaded.output_dir or "runs/run"), resume, overwrite)
        plan_tracking(loaded.tracking, tracking_uri)
        argv = ["train", str(recipe), "--nproc", str(nproc)]
        argv += [arg for item in set_ or [] for arg in ("--set", item)]
        argv += ["--output", output] if output else []
        argv += ["--resume"] if resume else []
        argv += ["--overwrite"] if overwrite else []
        argv += ["--tracking-uri", tracking_uri] if tracking_uri else []
        code = launch_local(nproc, argv, resolve_device(loaded.train.device).type)
        raise typer.Exit(code)
    run_train(
        loaded, output_dir=output, resume=resume, overwrite=overwrite, console=console,
        tracking_uri=tracking_uri,
    )  # fmt: skip


def data_check(
    recipe: Annotated[
        Path | None, typer.Argument(help="Recipe YAML whose data to check (or use --data)")
    ] = None,
    data: Annotated[
        str | None, typer.Option(help="A data file or image folder to check, without a recipe")
    ] = None,
    task: Annotated[
        str,
        typer.Option(help="With --data: text-classification, causal-lm or image-classification"),
    ] = "text-classification",
    text_column: Annotated[str | None, typer.Option(help="With --data: the text column")] = None,
    label_column: Annotated[str | None, typer.Option(help="With --data: the label column")] = None,
    image_column: Annotated[
        str | None, typer.Option(help="With --data: the image-path column")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe key: --set data.test=t.csv (repeatable)"),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Folder for quality.json (e.g. for `annotate --suspects`)")
    ] = None,
    label_issues: Annotated[
        bool, typer.Option(help="Look for likely label errors with the pre-trained model")
    ] = True,
    force: Annotated[
        bool, typer.Option(help="Replace quality.json in the --output folder if it exists")
    ] = False,
) -> None:
    """Check the data before training: duplicates, leakage, empty/overlong rows, label
    problems and likely label errors. Exit 1 when an error-level problem is found."""
    from tunesmith.data.quality import check_data
    from tunesmith.recipe import load_recipe

    if (recipe is None) == (data is None):
        raise UserError("data check: give a recipe, or --data FILE (with --task), not both")
    if recipe is not None:
        loaded = load_recipe(recipe, set_ or [])
    else:
        columns = {
            key: value
            for key, value in (
                ("text_column", text_column),
                ("label_column", label_column),
                ("image_column", image_column),
            )
            if value is not None
        }
        loaded = load_recipe({"task": task, "data": {"train": data, **columns}}, set_ or [])
    if output is not None:
        check_quality_output(output, loaded, force)
    report = check_data(loaded, console, label_issues=label_issues)
    report.print(console)
    if output is not None:
        path = report.write(output)
        console.print(f"Findings (every row): {escape(str(path))}")
    else:
        console.print("[dim]Add --output DIR to save every finding and row to DIR/quality.json")
    if report.errors:
        raise GateFailed(
            f"{len(report.errors)} error-level problem(s) in the data; fix them before training "
            "(or train with --set guards.data_quality=warn)"
        )


def data_curve(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML whose training rows to vary")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe key: --set train.epochs=5 (repeatable)"),
    ] = None,
    fractions: Annotated[
        str | None,
        typer.Option(help="Shares of the training rows, ascending (default 0.25,0.5,1)"),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(help="Method of every point (default: linear-probe, else the recipe's)"),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Curve folder (default curves/<recipe name>)")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace the curve in --output (a curve folder only)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print curve.json to stdout")] = False,
) -> None:
    """Would more labelled data help? Trains on 25/50/100% of the training rows (the same
    validation and test splits) and says what doubling the data would add."""
    from tunesmith.curve.command import run_curve

    run_curve(recipe, set_ or [], console, fractions, method, output, overwrite, as_json)


def check_quality_output(output: Path, recipe, force: bool) -> None:
    """Before the check runs: --output is a folder (made if missing) that can be written, and
    its quality.json is replaced only with --force."""
    from tunesmith.run_folder import RunFolder, inputs_of
    from tunesmith.safe_files import check_output_file, check_writable_folder

    if output.exists() and not output.is_dir():
        raise UserError(
            f"--output {output} is a file; give a folder (quality.json is written inside it)"
        )
    check_writable_folder(output, "--output")
    if output.is_dir():
        target = output / RunFolder.QUALITY
        check_output_file(target, "--output", inputs=inputs_of(recipe), force=force)


def estimate(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML")],
    memory_budget: Annotated[
        str | None, typer.Option(help="Memory to fit in, e.g. 16GB (default: free memory now)")
    ] = None,
    time_budget: Annotated[
        str | None, typer.Option(help="Time the whole run may take, e.g. 2h or 90m")
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="cpu or cuda (default: the recipe's train.device)")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Calibrate with a few real training steps of the recipe's method")
    ] = True,
    models: Annotated[
        str | None, typer.Option(help="Compare candidate models: A,B,... (the recipe's method)")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe key: --set train.batch_size=8 (repeatable)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the estimate as JSON")] = False,
) -> None:
    """Memory and time of the recipe for every method that fits its task, before training;
    recommends what fits the budgets. Exit 1 when nothing fits."""
    from tunesmith.estimate.command import run_estimate
    from tunesmith.recipe import load_recipe

    if device not in (None, "cpu", "cuda"):
        raise UserError(f"--device {device!r}: use cpu or cuda")
    loaded = load_recipe(recipe, set_ or [])
    candidates = [m.strip() for m in models.split(",") if m.strip()] if models else []
    run_estimate(loaded, console, memory_budget, time_budget, device, dry_run, candidates, as_json)


def eval_(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `tunesmith train`")],
    data: Annotated[
        str | None, typer.Option(help="Labelled file to score (default: the run's test split)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics as JSON")] = False,
    compare: Annotated[
        str | None,
        typer.Option(
            help="LLM runs: contenders to score beside the tuned model, comma-separated "
            "(base, few-shot, rag, fine-tuned+rag)"
        ),
    ] = None,
) -> None:
    """Metrics of a trained run on its test split or on any labelled file."""
    from tunesmith.inference import evaluate_run

    names = [n.strip() for n in compare.split(",") if n.strip()] if compare else None
    metrics = evaluate_run(run_dir, data, names)
    if as_json:
        print(json.dumps(metrics, indent=2, ensure_ascii=False))
        return
    if names is not None:
        from tunesmith.run import print_contenders

        print_contenders(console, metrics)
        return
    if "perplexity" in metrics:
        scores = ", ".join(
            f"{name} {metrics[name]:.4f}"
            for name in ("loss", "perplexity", "rouge_l", "exact_match", "token_f1")
            if name in metrics
        )
        console.print(
            f"{metrics['examples']} examples from {escape(str(metrics['source']))}: {scores}"
        )
        return
    console.print(
        f"{metrics['examples']} examples from {escape(str(metrics['source']))}: accuracy "
        f"{metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, loss {metrics['loss']:.4f}"
    )
    table = Table("label", "precision", "recall", "f1", "support")
    for name, row in metrics["per_class"].items():
        table.add_row(
            Text(name), *(f"{row[k]:.3f}" for k in ("precision", "recall", "f1")),
            str(row["support"]),
        )  # fmt: skip
    console.print(table)


def predict(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `tunesmith train`")],
    inputs: Annotated[
        list[str], typer.Argument(help="Texts, or files of texts (.txt lines, csv, jsonl, parquet)")
    ],
    output: Annotated[
        Path | None, typer.Option(help="Write predictions to a new .jsonl or .csv file")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace the --output file if it exists")] = False,
    text_column: Annotated[
        str | None, typer.Option(help="Column of texts in input files (default: the recipe's)")
    ] = None,
    max_new_tokens: Annotated[
        int | None, typer.Option(help="LLM runs: longest answer in tokens (default: recipe's)")
    ] = None,
    rag: Annotated[
        bool | None,
        typer.Option(
            "--rag/--no-rag",
            help="LLM runs: lead each prompt with passages from the run's retrieval index "
            "(default: when the run's verdict chose the fine-tuned model with RAG)",
        ),
    ] = None,
) -> None:
    """Predict labels (with probabilities) for texts, or an LLM run's answers to prompts."""
    from tunesmith.inference import predict_run
    from tunesmith.safe_files import check_output_file

    if output is not None:
        if output.suffix not in PREDICTION_FORMATS:
            raise UserError(f"--output {output}: use a .jsonl or .csv file name")
        sources = [run_dir, *(item for item in inputs if Path(item).exists())]
        check_output_file(output, "--output", inputs=sources, force=force)
    predictions = predict_run(run_dir, inputs, text_column, max_new_tokens, rag)
    if output is not None:
        _write_predictions(predictions, output)
        console.print(f"{len(predictions)} predictions written to {escape(str(output))}")
        return
    if predictions and "response" in predictions[0]:
        for row in predictions:
            console.print(f"[bold]> {escape(row['prompt'])}[/]", highlight=False)
            sources = ", ".join(dict.fromkeys(p["source"] for p in row.get("passages", [])))
            if sources:
                console.print(f"[dim](retrieved from {escape(sources)})[/]", highlight=False)
            console.print(row["response"] + "\n", highlight=False, markup=False)
        return
    for row in predictions:
        item = row.get("text", row.get("image", ""))
        text = item if len(item) <= 70 else item[:67] + "..."
        console.print(f"{row['label']}\t{row['score']:.3f}\t{text}", highlight=False, markup=False)


PREDICTION_FORMATS = (".jsonl", ".csv")


def _write_predictions(predictions: list[dict], output: Path) -> None:
    """Written to a temporary file and renamed: an existing file is whole before and after."""
    import pandas as pd

    from tunesmith.safe_files import write_atomically

    if output.suffix == ".jsonl":
        lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in predictions)
        write_atomically(output, lambda tmp: tmp.write_text(lines, encoding="utf-8"))
    else:
        flat = [
            {k: v for k, v in r.items() if k not in ("probabilities", "passages")}
            | r.get("probabilities", {})
            | (
                {"sources": "; ".join(dict.fromkeys(p["source"] for p in r["passages"]))}
                if "passages" in r
                else {}
            )
            for r in predictions
        ]
        write_atomically(output, lambda tmp: pd.DataFrame(flat).to_csv(tmp, index=False))


def export(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `tunesmith train`")],
    output: Annotated[Path, typer.Option(help="New folder for the exported model")],
    merge: Annotated[
        bool,
        typer.Option(
            help="Fold a LoRA/DoRA/IA3 adapter into the base weights: a standalone model "
            "(image adapters need it); without it an adapter run exports its adapter"
        ),
    ] = False,
) -> None:
    """A model folder that loads without tunesmith, with a README.md model card (base model,
    method, data, scores, preprocessing, the loading lines). A run that saved a whole model,
    or --merge: a standalone transformers model (tokenizer and chat template, or the image
    processor). An adapter run without --merge: the adapter in PEFT format naming its base
    model by Hub id (built-ins too), with the tokenizer."""
    from tunesmith.export import export_run

    folder = export_run(run_dir, output, merge)
    console.print(
        f"Exported to {folder}: {folder / 'README.md'} shows how to load it without tunesmith",
        markup=False,
    )


def serve(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `tunesmith train`")],
    host: Annotated[
        str, typer.Option(help="Address to listen on (default: this machine only)")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free port)")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(help="Bearer key every request must carry (default: $TUNESMITH_API_KEY)"),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds a request may wait and run before a 408", min=1)
    ] = 120.0,
    max_batch: Annotated[
        int, typer.Option(help="Most answers (or inputs) in one model call", min=1)
    ] = 8,
    max_queue: Annotated[
        int, typer.Option(help="Most rows waiting; more get 429 with Retry-After", min=1)
    ] = 64,
    max_body_kb: Annotated[
        int, typer.Option(help="Largest request body in KiB; larger get 413", min=1)
    ] = 1024,
    rag: Annotated[
        bool | None,
        typer.Option(
            "--rag/--no-rag",
            help="LLM runs: lead each question with passages from the run's retrieval index "
            "(default: when the run's verdict chose the fine-tuned model with RAG)",
        ),
    ] = None,
) -> None:
    """HTTP API: OpenAI-compatible chat/completions for LLM and seq2seq runs, /v1/classify
    for classifiers; /health and Prometheus /metrics. Dynamic batching, bounded queue."""
    from tunesmith.serve.app import ServeOptions
    from tunesmith.serve.command import batch_options, run_serve

    options = ServeOptions(None, timeout, max_body_kb * 1024, batch_options(max_batch, max_queue))
    run_serve(run_dir, host, port, api_key, options, rag, console)


def annotate(
    data: Annotated[
        Path, typer.Argument(help="A table (csv, tsv, jsonl, json, parquet) or an image folder")
    ],
    port: Annotated[int, typer.Option(help="Port of the page (0: any free port)")] = 8765,
    host: Annotated[
        str, typer.Option(help="Address to listen on (the page answers only under its names)")
    ] = "127.0.0.1",
    text_column: Annotated[str, typer.Option(help="Column of texts")] = "text",
    label_column: Annotated[str, typer.Option(help="Column of labels (empty: to label)")] = "label",
    image_column: Annotated[
        str | None, typer.Option(help="Column of image paths, relative to the table's folder")
    ] = None,
    labels: Annotated[
        str | None, typer.Option(help="Labels to offer besides DATA's, in order: a,b,c")
    ] = None,
    suspects: Annotated[
        Path | None, typer.Option(help="quality.json of `tunesmith data check`: label issues")
    ] = None,
    db: Annotated[
        Path | None, typer.Option(help="Decisions database (default DATA.annotations.sqlite)")
    ] = None,
    export_to: Annotated[
        Path | None,
        typer.Option("--export", help="Write DATA with the final labels (.csv or .jsonl); no page"),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Let --export replace an existing file (never DATA)")
    ] = False,
    agreement: Annotated[
        bool, typer.Option(help="Print agreement between annotators; no page")
    ] = False,
    lang: Annotated[Language, typer.Option("--lang", help="Language of the page")] = Language.en,
    accept_above: Annotated[
        float,
        typer.Option(help="Confidence (0-1) from which Enter accepts a suspect's suggestion"),
    ] = 0.8,
) -> None:
    """A local web page to label rows and review suspected label errors (decisions in SQLite)."""
    from tunesmith.annotate.command import run_annotate

    run_annotate(
        data,
        port=port,
        host=host,
        text_column=text_column,
        label_column=label_column,
        image_column=image_column,
        labels=labels,
        suspects=suspects,
        db=db,
        export=export_to,
        agreement=agreement,
        console=console,
        force=force,
        lang=lang.value,
        accept_above=accept_above,
    )


def tune(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML; its tune: section is the space")],
    budget: Annotated[
        str | None,
        typer.Option(help="Time to search, e.g. 30m, 2h, 90s (default 30m without --trials)"),
    ] = None,
    trials: Annotated[
        int | None, typer.Option(help="Trials to run (pruned and skipped ones count)")
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Local worker processes sharing the study", min=1)
    ] = 1,
    storage: Annotated[
        str | None,
        typer.Option(help="Optuna storage URL (default sqlite:///TUNE_DIR/study.db)"),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Tune folder (default tunes/<recipe name>)")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Start again in an existing tune folder (a tune folder only)")
    ] = False,
    memory_budget: Annotated[
        str | None, typer.Option(help="Memory one trial may take, e.g. 8GB (analytic estimate)")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe key: --set train.seed=1 (repeatable)"),
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            help="Where the recipe's `tracking` records the search (one run, a nested run "
            "per trial): an MLflow tracking URI or a TensorBoard log folder"
        ),
    ] = None,
    worker: Annotated[int | None, typer.Option(hidden=True)] = None,
    deadline: Annotated[float | None, typer.Option(hidden=True)] = None,
) -> None:
    """Search models, methods and hyperparameters within a budget (Optuna), guarded; the
    best trial is scored on test. Re-run the same command to resume a killed search."""
    from tunesmith.tune import run_tune, run_worker

    if worker is not None:  # worker K of --workers (or one joining from another machine)
        run_worker(
            recipe, set_ or [], console, trials, storage, output, memory_budget, deadline, worker,
            tracking_uri=tracking_uri,
        )  # fmt: skip
        return
    run_tune(
        recipe,
        set_ or [],
        console,
        budget=budget,
        trials=trials,
        workers=workers,
        storage=storage,
        output=output,
        overwrite=overwrite,
        memory_budget=memory_budget,
        tracking_uri=tracking_uri,
    )


def compare_(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(
            help="Two or more finished run folders (also a tune's trials/NNNN and best/)"
        ),
    ],
    output: Annotated[
        Path | None, typer.Option(help="Also write the comparison as an HTML page (compare.html)")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace the --output file if it exists")] = False,
    lang: Annotated[
        Language, typer.Option("--lang", help="Language of the --output page (en, ja)")
    ] = Language.en,
) -> None:
    """Runs side by side: the recipe keys that differ, test metrics (the best run marked),
    cost and what the guards did; names the best run and whether its lead is noise. The
    terminal tables are in English; --lang sets the language of the --output page."""
    from tunesmith.report.runs import build_comparison, read_runs
    from tunesmith.report.runs_view import print_comparison, write_comparison
    from tunesmith.safe_files import check_output_file

    runs = read_runs(run_dirs)
    if output is not None:
        if output.suffix.lower() not in (".html", ".htm"):
            raise UserError(f"--output {output}: use an .html file name, e.g. compare.html")
        check_output_file(output, "--output", inputs=run_dirs, force=force)
    comparison = build_comparison(runs)
    print_comparison(comparison, console)
    if output is not None:
        from tunesmith.i18n import language

        with language(lang.value):  # the page's text is built in its language
            write_comparison(build_comparison(runs), output)
        console.print(f"Comparison page: {escape(str(output))}", highlight=False)


def report_(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder (with metrics.json)")],
    lang: Annotated[
        Language | None,
        typer.Option("--lang", help="Language of the report (default: the recipe's)"),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(help="HTML file (default RUN_DIR/report.html, or report.LANG.html)"),
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace the --output file if it exists")] = False,
) -> None:
    """Re-render a finished run's report from its files, e.g. in Japanese (--lang ja),
    without loading the model or training again."""
    from tunesmith.report import rerender

    path = rerender(run_dir, lang.value if lang else None, output, force)
    console.print(f"Report: {escape(str(path))}", highlight=False)


COMMANDS = {
    "demo": demo,
    "train": train,
    "estimate": estimate,
    "eval": eval_,
    "predict": predict,
    "export": export,
    "serve": serve,
    "annotate": annotate,
    "tune": tune,
    "compare": compare_,
    "report": report_,
}
for _name, _function in COMMANDS.items():
    app.command(_name)(_function)
data_app = typer.Typer(
    no_args_is_help=True, help="Check data before training; would more data help?"
)
data_app.command("check")(data_check)
data_app.command("curve")(data_curve)
app.add_typer(data_app, name="data")


def recipe_keys(
    task: Annotated[
        str | None, typer.Argument(help="Only the keys that apply to this task kind")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the keys as JSON")] = False,
) -> None:
    """Every recipe key with its type, default and doc.

    A method's own keys name the methods they apply to; with TASK, only the keys of that
    task kind are listed, with its defaults."""
    from tunesmith.recipe_keys import print_keys

    print_keys(task, as_json)


recipe_app = typer.Typer(no_args_is_help=True, help="The recipe format.")
recipe_app.command("keys")(recipe_keys)
app.add_typer(recipe_app, name="recipe")


def main(argv: list[str] | None = None) -> int:
    """Entry point: a user's mistake prints one message and exits 2 (a failed gate: 1)."""
    quiet_libraries()
    try:
        app(args=argv, standalone_mode=True)
    except (UserError, GateFailed) as error:
        Console(stderr=True, soft_wrap=True).print(
            f"[bold red]error:[/] {escape(str(error))}", highlight=False
        )
        return error.exit_code
    except KeyboardInterrupt:  # train said how to resume; other commands have nothing to keep
        Console(stderr=True).print("[yellow]Interrupted")
        return 130
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
