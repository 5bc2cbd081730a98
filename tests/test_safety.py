"""A careless or hostile user, command by command: every case must end with its exit code (2
for bad input, 1 for a failed gate), a message, no traceback, and every file that existed
before the command byte-identical after it, unless the case names it as the output.

Grow CASES whenever a command or a file appears. Each case is (id, setup, expected exit
code, text the message must hold, files the command may write). `setup(ctx)` makes what
the case needs under ctx.tmp and returns the argv."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tunesmith.cli import main

from .conftest import make_rows


@dataclass
class Context:
    tmp: Path
    run: Path
    """A finished tiny LoRA run (checkpoints kept), shared: cases may read it, never change it."""
    model: Path
    data: Path
    """The CSV the shared run was trained on."""
    writes: list[Path] = field(default_factory=list)

    def recipe(self, **changes) -> Path:
        recipe = base_recipe(self.model, self.data)
        for key, value in changes.items():
            section, _, name = key.partition("__")
            if name:
                recipe.setdefault(section, {})[name] = value
            else:
                recipe[section] = value
        path = self.tmp / "recipe.yaml"
        path.write_text(yaml.safe_dump(recipe))
        return path

    def copy_run(self) -> Path:
        """A copy of the shared run that a case may damage."""
        copy = self.tmp / "run-copy"
        shutil.copytree(self.run, copy)
        return copy


def base_recipe(model: Path, data: Path) -> dict:
    return {
        "model": str(model),
        "data": {"train": str(data)},
        "method": {"name": "lora", "r": 4},
        "train": {"epochs": 1, "batch_size": 8, "learning_rate": 1e-2, "precision": "fp32"},
        "guards": {"data_quality": "warn"},
    }


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory, tiny_model_dir) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("shared")
    data = folder / "topics.csv"
    pd.DataFrame(make_rows(30)).to_csv(data, index=False)
    recipe = base_recipe(tiny_model_dir, data)
    recipe["train"]["keep_checkpoints"] = True
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    run = folder / "run"
    assert main(["train", str(path), "--output", str(run)]) == 0
    return run, data


# --- setups -------------------------------------------------------------------------------


def folder_with(ctx: Context, name: str, files: dict[str, str]) -> Path:
    folder = ctx.tmp / name
    folder.mkdir(parents=True, exist_ok=True)
    for file, text in files.items():
        (folder / file).write_text(text)
    return folder


def overwrite_folder_holding_inputs(ctx: Context) -> list[str]:
    folder = folder_with(ctx, "project", {"notes.tex": "\\section{Thesis}"})
    data = folder / "train.csv"
    shutil.copy(ctx.data, data)
    recipe = folder / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(base_recipe(ctx.model, data)))
    return ["train", str(recipe), "--output", str(folder), "--overwrite"]


def overwrite_unrelated_folder(ctx: Context) -> list[str]:
    folder = folder_with(ctx, "thesis", {"thesis.tex": "x", "results.csv": "a,b\n1,2\n"})
    return ["train", str(ctx.recipe()), "--output", str(folder), "--overwrite"]


def overwrite_run_with_bad_data(ctx: Context) -> list[str]:
    run = ctx.copy_run()
    recipe = ctx.recipe(data={"train": str(ctx.data), "label_column": "topic"})
    return ["train", str(recipe), "--output", str(run), "--overwrite"]


def overwrite_run_with_bad_method(ctx: Context) -> list[str]:
    run = ctx.copy_run()
    recipe = ctx.recipe(method={"name": "prefix"})
    return ["train", str(recipe), "--output", str(run), "--overwrite"]


def train_into_nonempty(ctx: Context) -> list[str]:
    folder = folder_with(ctx, "busy", {"keep.txt": "x"})
    return ["train", str(ctx.recipe()), "--output", str(folder)]


def train_into_file(ctx: Context) -> list[str]:
    target = ctx.tmp / "a-file.txt"
    target.write_text("mine")
    return ["train", str(ctx.recipe()), "--output", str(target)]


def train_below_a_file(ctx: Context) -> list[str]:
    target = ctx.tmp / "a-file.txt"
    target.write_text("mine")
    return ["train", str(ctx.recipe()), "--output", str(target / "run")]


def train_into_unwritable(ctx: Context) -> list[str]:
    return ["train", str(ctx.recipe()), "--output", "/proc/tunesmith-run"]


def train_into_cwd(ctx: Context) -> list[str]:
    return ["train", str(ctx.recipe()), "--output", str(ctx.tmp), "--overwrite"]


def train_into_model_folder(ctx: Context) -> list[str]:
    return ["train", str(ctx.recipe()), "--output", str(ctx.model / "run")]


def train_recipe(**changes) -> Callable[[Context], list[str]]:
    def setup(ctx: Context) -> list[str]:
        return ["train", str(ctx.recipe(**changes)), "--output", str(ctx.tmp / "new-run")]

    return setup


def train_data(**columns: str) -> Callable[[Context], list[str]]:
    def setup(ctx: Context) -> list[str]:
        recipe = ctx.recipe(data={"train": str(ctx.data), **columns})
        return ["train", str(recipe), "--output", str(ctx.tmp / "new-run")]

    return setup


def markup_labels_data(ctx: Context) -> Path:
    rows = make_rows(20)
    names = {"sports": "[urgent]", "food": "[/]", "tech": ":fire:"}
    data = ctx.tmp / "markup.csv"
    frame = pd.DataFrame([{"text": r["text"], "label": names[r["label"]]} for r in rows])
    frame.to_csv(data, index=False)
    return data


def train_markup_labels(ctx: Context) -> list[str]:
    recipe = ctx.recipe(data={"train": str(markup_labels_data(ctx))})
    return ["train", str(recipe), "--output", str(ctx.tmp / "markup-run")]


def eval_markup_labels(ctx: Context) -> list[str]:
    """eval prints every label in its per-class table."""
    recipe = ctx.recipe(data={"train": str(markup_labels_data(ctx))})
    assert main(["train", str(recipe), "--output", str(ctx.tmp / "markup-run")]) == 0
    return ["eval", str(ctx.tmp / "markup-run")]


def t5_as_classifier(ctx: Context) -> list[str]:
    """A T5 given to a classifier task: its head would need decoder inputs."""
    from transformers import T5Config, T5ForConditionalGeneration

    folder = ctx.tmp / "tiny-t5"
    config = T5Config(vocab_size=30522, d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        if (ctx.model / name).is_file():
            shutil.copy(ctx.model / name, folder / name)
    recipe = ctx.recipe(model=str(folder))
    return ["train", str(recipe), "--output", str(ctx.tmp / "new-run")]


def train_with_set(*overrides: str) -> Callable[[Context], list[str]]:
    def setup(ctx: Context) -> list[str]:
        argv = ["train", str(ctx.recipe()), "--output", str(ctx.tmp / "new-run")]
        return argv + [arg for item in overrides for arg in ("--set", item)]

    return setup


def train_yaml(text: str) -> Callable[[Context], list[str]]:
    def setup(ctx: Context) -> list[str]:
        path = ctx.tmp / "broken.yaml"
        path.write_text(text)
        return ["train", str(path), "--output", str(ctx.tmp / "new-run")]

    return setup


def tracking_store_not_sqlite(ctx: Context) -> list[str]:
    """`tracking.uri` naming a user's file that is not an MLflow store: it is left alone."""
    notes = ctx.tmp / "notes.db"
    notes.write_text("my notes\n")
    return train_recipe(tracking={"backend": "mlflow", "uri": f"sqlite:///{notes}"})(ctx)


def resume_without_checkpoint(ctx: Context) -> list[str]:
    run = ctx.copy_run()
    shutil.rmtree(run / "checkpoints")
    return ["train", str(ctx.recipe()), "--output", str(run), "--resume"]


def resume_changed_recipe(ctx: Context) -> list[str]:
    run = ctx.copy_run()
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    recipe["train"]["learning_rate"] = 0.5
    path = ctx.tmp / "changed.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return ["train", str(path), "--output", str(run), "--resume"]


def resume_not_a_run(ctx: Context) -> list[str]:
    folder = folder_with(ctx, "other", {"keep.txt": "x"})
    return ["train", str(ctx.recipe()), "--output", str(folder), "--resume"]


def resume_planted_pickle(ctx: Context) -> list[str]:
    """An optimizer.pt that runs code when unpickled: it must never be loaded."""
    run = ctx.copy_run()
    last = run / "checkpoints" / "last"
    for item in last.iterdir():
        if item.name.startswith("optimizer"):
            item.unlink()
    marker = ctx.tmp / "pwned"
    (last / "optimizer.pt").write_bytes(_pickle_that_touches(marker))
    recipe = ctx.tmp / "same.yaml"
    shutil.copy(run / "recipe.yaml", recipe)
    return ["train", str(recipe), "--output", str(run), "--resume"]


def _pickle_that_touches(marker: Path) -> bytes:
    import pickle

    class Touch:
        def __reduce__(self):
            return (Path.write_text, (marker, "ran"))

    return pickle.dumps({"optimizer": Touch()})


def demo_into_unrelated(overwrite: bool) -> Callable[[Context], list[str]]:
    def setup(ctx: Context) -> list[str]:
        folder = folder_with(ctx, "paper", {"paper.tex": "x", "data.csv": "a\n1\n"})
        return ["demo", "--output", str(folder)] + (["--overwrite"] if overwrite else [])

    return setup


def data_check_output_file(ctx: Context) -> list[str]:
    target = ctx.tmp / "quality.txt"
    target.write_text("mine")
    return ["data", "check", str(ctx.recipe()), "--output", str(target), "--no-label-issues"]


def data_check_existing_quality(ctx: Context) -> list[str]:
    folder = folder_with(ctx, "checked", {"quality.json": '{"mine": true}'})
    return ["data", "check", str(ctx.recipe()), "--output", str(folder), "--no-label-issues"]


def data_check_into_unwritable(ctx: Context) -> list[str]:
    argv = ["data", "check", str(ctx.recipe()), "--output", "/proc/tunesmith-check"]
    return [*argv, "--no-label-issues"]


def data_curve_into(kind: str) -> Callable[[Context], list[str]]:
    """`data curve --output` onto a file, the data's folder, or a folder that is not a curve."""

    def setup(ctx: Context) -> list[str]:
        recipe = ctx.recipe()
        if kind == "file":
            target = ctx.tmp / "curve.txt"
            target.write_text("mine")
        elif kind == "data":
            target = ctx.tmp / "data"
            target.mkdir()
            shutil.copy(ctx.data, target / "train.csv")
            recipe = ctx.recipe(data={"train": str(target / "train.csv")})
        else:
            target = folder_with(ctx, "mine", {"notes.txt": "mine"})
        return ["data", "curve", str(recipe), "--output", str(target), "--overwrite"]

    return setup


def plain(*argv: str) -> Callable[[Context], list[str]]:
    """argv with {run}, {recipe}, {data}, {tmp} filled in."""

    def setup(ctx: Context) -> list[str]:
        names = {"run": ctx.run, "data": ctx.data, "tmp": ctx.tmp}
        if any("{recipe}" in a for a in argv):
            names["recipe"] = ctx.recipe()
        return [a.format(**names) for a in argv]

    return setup


def on_damaged_run(command: str, damage: Callable[[Path], None], *extra: str):
    def setup(ctx: Context) -> list[str]:
        run = ctx.copy_run()
        damage(run)
        return [command, str(run), *[a.format(tmp=ctx.tmp) for a in extra]]

    return setup


def remove(name: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        target = run / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    return damage


def truncate(name: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        target = run / name
        target.write_bytes(target.read_bytes()[:100])

    return damage


def overwrite_with(name: str, text: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        (run / name).write_text(text)

    return damage


def eval_after_data_grew(ctx: Context) -> list[str]:
    run = ctx.copy_run()
    data = ctx.tmp / "grown.csv"
    pd.DataFrame(make_rows(35)).to_csv(data, index=False)
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    shutil.copy(ctx.data, data)  # the run was trained on this copy, which then grows
    recipe["data"]["train"] = str(data)
    metrics["data_fingerprints"]["train"]["path"] = str(data)
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (run / "metrics.json").write_text(json.dumps(metrics))
    with data.open("a") as handle:
        handle.write("a new football goal row,sports\n")
    return ["eval", str(run)]


def eval_data_with_unknown_label(ctx: Context) -> list[str]:
    data = ctx.tmp / "other.csv"
    pd.DataFrame([{"text": "rain and sun", "label": "weather"}] * 3).to_csv(data, index=False)
    return ["eval", str(ctx.run), "--data", str(data)]


def predict_output_is_input(ctx: Context) -> list[str]:
    data = ctx.tmp / "mine.csv"
    shutil.copy(ctx.data, data)
    return ["predict", str(ctx.run), str(data), "--output", str(data)]


def predict_output_exists(force: bool) -> Callable[[Context], list[str]]:
    def setup(ctx: Context) -> list[str]:
        target = ctx.tmp / "predictions.csv"
        target.write_text("old predictions\n")
        if force:
            ctx.writes.append(target)
        argv = ["predict", str(ctx.run), "pizza and cheese", "--output", str(target)]
        return argv + (["--force"] if force else [])

    return setup


def predict_file_without_column(ctx: Context) -> list[str]:
    data = ctx.tmp / "rows.csv"
    pd.DataFrame({"body": ["pizza", "goal"]}).to_csv(data, index=False)
    return ["predict", str(ctx.run), str(data)]


def predict_unsupported_file(ctx: Context) -> list[str]:
    document = ctx.tmp / "letter.docx"
    document.write_bytes(b"PK\x03\x04")
    return ["predict", str(ctx.run), str(document)]


def export_into_nonempty(ctx: Context) -> list[str]:
    folder = folder_with(ctx, "exported", {"keep.txt": "x"})
    return ["export", str(ctx.run), "--output", str(folder), "--merge"]


def annotate_export_onto_input(ctx: Context) -> list[str]:
    data = ctx.tmp / "labels.csv"
    shutil.copy(ctx.data, data)
    return ["annotate", str(data), "--export", str(data)]


def annotate_export_exists(ctx: Context) -> list[str]:
    data = ctx.tmp / "labels.csv"
    shutil.copy(ctx.data, data)
    target = ctx.tmp / "labelled.csv"
    target.write_text("mine\n")
    return ["annotate", str(data), "--export", str(target)]


def annotate_with(*extra: str) -> Callable[[Context], list[str]]:
    def setup(ctx: Context) -> list[str]:
        data = ctx.tmp / "labels.csv"
        shutil.copy(ctx.data, data)
        return ["annotate", str(data), *extra]

    return setup


def tune_over_unrelated_folder(ctx: Context) -> list[str]:
    folder = folder_with(ctx, "thesis", {"thesis.tex": "x", "results.csv": "a,b\n1,2\n"})
    return ["tune", str(ctx.recipe()), "--trials", "1", "--output", str(folder), "--overwrite"]


def tune_into_a_run_folder(ctx: Context) -> list[str]:
    return ["tune", str(ctx.recipe()), "--trials", "1", "--output", str(ctx.copy_run())]


def tune_with_a_bad_key(ctx: Context) -> list[str]:
    return ["tune", str(ctx.recipe(tune={"train.learnin_rate": [1e-3]})), "--trials", "1"]


def compare_with_damaged_run(ctx: Context) -> list[str]:
    run = ctx.copy_run()
    (run / "metrics.json").unlink()
    return ["compare", str(ctx.run), str(run)]


def compare_output_exists(ctx: Context) -> list[str]:
    output = ctx.tmp / "compare.html"
    output.write_text("notes of mine")
    return ["compare", str(ctx.run), str(ctx.copy_run()), "--output", str(output)]


def compare_output_in_a_run(ctx: Context) -> list[str]:
    copy = ctx.copy_run()
    return ["compare", str(ctx.run), str(copy), "--output", str(copy / "compare.html")]


def tune_into_the_data_folder(ctx: Context) -> list[str]:
    folder = ctx.tmp / "data"
    folder.mkdir()
    shutil.copy(ctx.data, folder / "train.csv")
    recipe = ctx.recipe(data={"train": str(folder / "train.csv")})
    return ["tune", str(recipe), "--trials", "1", "--output", str(folder), "--overwrite"]


@dataclass
class Case:
    id: str
    setup: Callable[[Context], list[str]]
    code: int = 2
    says: str = ""
    """Text the message must hold (case-insensitive)."""
    leaves: tuple[str, ...] = ()
    """Paths (relative to ctx.tmp) that must not exist afterwards."""


# fmt: off
CASES = [
    # train: the output folder
    Case("overwrite-folder-holding-inputs", overwrite_folder_holding_inputs, says="input"),
    Case("overwrite-unrelated-folder", overwrite_unrelated_folder, says="not a tunesmith run"),
    Case("overwrite-run-bad-data", overwrite_run_with_bad_data, says="topic"),
    Case("overwrite-run-bad-method", overwrite_run_with_bad_method, says="prefix"),
    Case("train-into-nonempty", train_into_nonempty, says="--overwrite"),
    Case("train-into-file", train_into_file, says="is a file"),
    Case("train-below-a-file", train_below_a_file, says="is a file"),
    Case("train-into-unwritable", train_into_unwritable, says="cannot write"),
    Case("train-into-cwd-overwrite", train_into_cwd, says="input"),
    Case("train-into-model-folder", train_into_model_folder, says="inside"),
    # train: the recipe, refused before any work
    Case("method-prefix-on-encoder", train_recipe(method={"name": "prefix"}), says="prefix",
         leaves=("new-run",)),
    Case("max-length-over-model-limit", train_recipe(preprocess={"max_length": 1000}),
         says="reads at most 128", leaves=("new-run",)),
    Case("recipe-key-typo", train_recipe(train__learnin_rate=0.1), says="learning_rate"),
    Case("recipe-unknown-section", train_recipe(trian={"epochs": 1}), says="trian"),
    Case("recipe-unknown-method", train_recipe(method={"name": "lorra"}), says="lorra"),
    Case("recipe-negative-epochs", train_with_set("train.epochs=-1"), says="train.epochs"),
    Case("recipe-zero-batch", train_with_set("train.batch_size=0"), says="batch_size"),
    Case("recipe-lr-as-text", train_with_set("train.learning_rate=fast"), says="learning_rate"),
    Case("recipe-unknown-task", train_recipe(task="translation"), says="task"),
    Case("recipe-bad-override", train_with_set("train.epochs"), says="key.sub=value"),
    Case("recipe-override-into-value", train_with_set("model.name=x"), says="not a section"),
    Case("recipe-not-yaml", train_yaml("task: [unclosed\n"), says="not valid YAML"),
    Case("recipe-empty", train_yaml(""), says="empty"),
    Case("recipe-a-list", train_yaml("- a\n- b\n"), says="mapping"),
    Case("recipe-missing", plain("train", "{tmp}/nope.yaml"), says="not found"),
    Case("data-missing-file", train_recipe(data={"train": "/nonexistent/train.csv"}),
         says="train.csv"),
    Case("data-wrong-text-column", train_data(text_column="body"), says="body"),
    Case("data-missing-slice-column", train_data(slice_columns=["region"]),
         says="data.slice_columns: column 'region' not found", leaves=("new-run",)),
    Case("data-wrong-label-column", train_data(label_column="topic"), says="topic"),
    Case("model-missing-folder", train_recipe(model="/nonexistent/model"), says="not found"),
    Case("model-unknown-builtin", train_recipe(model="builtin:gpt5"), says="builtin:gpt5"),
    Case("model-t5-as-classifier", t5_as_classifier, says="task: seq2seq", leaves=("new-run",)),
    Case("recipe-method-for-another-task", train_recipe(method={"name": "adapter"}),
         says="causal-lm"),
    Case("recipe-contenders-on-a-classifier", train_recipe(compare=["rag"]),
         says="compare: rag do not apply"),
    Case("recipe-documents-on-a-classifier", train_recipe(data__documents="docs/"),
         says="data.documents"),
    Case("recipe-chunk-overlap-too-big", train_with_set("retrieval.chunk_overlap=500"),
         says="chunk_overlap"),
    Case("recipe-tracking-typo", train_with_set("tracking=mlfow"), says="did you mean 'mlflow'",
         leaves=("new-run",)),
    Case("tracking-server-unreachable",
         train_with_set("tracking={backend: mlflow, uri: http://127.0.0.1:9}"),
         says="no MLflow tracking server answers", leaves=("new-run",)),
    Case("tracking-store-not-sqlite", tracking_store_not_sqlite, says="not an SQLite database",
         leaves=("new-run",)),
    Case("tracking-uri-without-backend",
         plain("train", "{recipe}", "--output", "{tmp}/new-run", "--tracking-uri",
               "sqlite:///{tmp}/m.db"),
         says="tracking is none", leaves=("new-run", "m.db")),
    Case("eval-compare-on-a-classifier", plain("eval", "{run}", "--compare", "rag"),
         says="not a contender"),
    Case("predict-rag-on-a-classifier", plain("predict", "{run}", "hello", "--rag"),
         says="--rag"),
    # train: resume
    Case("resume-without-checkpoint", resume_without_checkpoint, says="no checkpoint"),
    Case("resume-changed-recipe", resume_changed_recipe, says="learning_rate"),
    Case("resume-not-a-run", resume_not_a_run, says="not a tunesmith run"),
    Case("resume-planted-pickle", resume_planted_pickle, says="optimizer.pt",
         leaves=("pwned",)),
    # demo
    Case("demo-into-unrelated", demo_into_unrelated(False), says="--overwrite"),
    Case("demo-overwrite-unrelated", demo_into_unrelated(True), says="not a tunesmith run"),
    # data check
    Case("data-check-output-file", data_check_output_file, says="is a file"),
    Case("data-check-existing-quality", data_check_existing_quality, says="--force"),
    Case("data-check-unwritable", data_check_into_unwritable, says="cannot write"),
    Case("data-check-recipe-and-data", plain("data", "check", "{recipe}", "--data", "{data}"),
         says="not both"),
    Case("data-check-nothing", plain("data", "check"), says="--data"),
    # data curve
    Case("data-curve-output-file", data_curve_into("file"), says="is a file"),
    Case("data-curve-into-the-data-folder", data_curve_into("data"), says="input"),
    Case("data-curve-overwrite-unrelated", data_curve_into("other"), says="not a curve folder"),
    Case("data-curve-unwritable",
         plain("data", "curve", "{recipe}", "--output", "/proc/tunesmith-curve"),
         says="cannot write"),
    Case("data-curve-fractions-descending",
         plain("data", "curve", "{recipe}", "--fractions", "1,0.5", "--output", "{tmp}/c"),
         says="ascending", leaves=("c",)),
    Case("data-check-missing-data", plain("data", "check", "--data", "{tmp}/none.csv"),
         says="none.csv"),
    # estimate
    Case("estimate-zero-memory", plain("estimate", "{recipe}", "--memory-budget", "0GB"),
         says="above zero"),
    Case("estimate-bad-memory", plain("estimate", "{recipe}", "--memory-budget", "lots"),
         says="16GB"),
    Case("estimate-two-dots", plain("estimate", "{recipe}", "--memory-budget", "1.2.3GB"),
         says="16GB"),
    Case("estimate-zero-time", plain("estimate", "{recipe}", "--time-budget", "0m"),
         says="above zero"),
    Case("estimate-bad-time", plain("estimate", "{recipe}", "--time-budget", "soon"),
         says="2h"),
    Case("estimate-bad-device", plain("estimate", "{recipe}", "--device", "tpu"), says="cuda"),
    # eval
    Case("eval-missing-folder", plain("eval", "{tmp}/no-run"), says="no such folder"),
    Case("eval-not-a-run", plain("eval", "{tmp}"), says="not a tunesmith run"),
    Case("eval-no-metrics", on_damaged_run("eval", remove("metrics.json")), says="metrics.json"),
    Case("eval-no-adapter", on_damaged_run("eval", remove("adapter")), says="adapter"),
    Case("eval-no-adapter-config",
         on_damaged_run("eval", remove("adapter/adapter_config.json")),
         says="adapter_config.json"),
    Case("eval-no-adapter-weights",
         on_damaged_run("eval", remove("adapter/adapter_model.safetensors")),
         says="adapter_model.safetensors"),
    Case("eval-truncated-adapter",
         on_damaged_run("eval", truncate("adapter/adapter_model.safetensors")),
         says="cannot be loaded"),
    Case("eval-corrupt-recipe", on_damaged_run("eval", overwrite_with("recipe.yaml", "a: [")),
         says="recipe.yaml"),
    Case("eval-recipe-not-mapping",
         on_damaged_run("eval", overwrite_with("recipe.yaml", "- 1\n")),
         says="recipe.yaml"),
    Case("eval-corrupt-metrics", on_damaged_run("eval", overwrite_with("metrics.json", "{")),
         says="metrics.json"),
    Case("eval-after-data-grew", eval_after_data_grew, says="--data"),
    Case("eval-missing-data", plain("eval", "{run}", "--data", "{tmp}/none.csv"),
         says="none.csv"),
    Case("eval-unknown-label", eval_data_with_unknown_label, says="weather"),
    # predict
    Case("predict-missing-input-file", plain("predict", "{run}", "data/nope.csv"),
         says="no such file"),
    Case("predict-output-is-input", predict_output_is_input, says="input"),
    Case("predict-output-exists", predict_output_exists(False), says="--force"),
    Case("predict-output-force", predict_output_exists(True), code=0),
    Case("predict-output-missing-folder",
         plain("predict", "{run}", "pizza", "--output", "{tmp}/no/where.csv"),
         says="does not exist"),
    Case("predict-output-bad-suffix",
         plain("predict", "{run}", "pizza", "--output", "{tmp}/out.xlsx"), says=".csv"),
    Case("predict-output-in-run", plain("predict", "{run}", "pizza", "--output",
         "{run}/predictions.csv"), says="input"),
    Case("predict-output-is-folder", plain("predict", "{run}", "pizza", "--output", "{tmp}"),
         says=".csv"),
    Case("predict-file-without-column", predict_file_without_column, says="--text-column"),
    Case("predict-unsupported-file", predict_unsupported_file, says=".docx"),
    Case("predict-damaged-run", on_damaged_run("predict", remove("adapter"), "pizza"),
         says="adapter"),
    # export
    Case("export-into-nonempty", export_into_nonempty, says="not empty"),
    Case("export-into-run", plain("export", "{run}", "--output", "{run}/export", "--merge"),
         says="inside the run folder"),
    Case("export-damaged-run",
         on_damaged_run("export", truncate("adapter/adapter_model.safetensors"),
                        "--output", "{tmp}/exported", "--merge"),
         says="cannot be loaded", leaves=("exported",)),
    # annotate
    Case("annotate-port-out-of-range", annotate_with("--port", "70000"), says="--port"),
    Case("annotate-export-onto-input", annotate_export_onto_input, says="would replace"),
    Case("annotate-export-exists", annotate_export_exists, says="--force"),
    Case("annotate-missing-data", plain("annotate", "{tmp}/none.csv"), says="none.csv"),
    Case("annotate-export-bad-suffix", annotate_with("--export", "{tmp}/out.xlsx"),
         says=".csv"),
    Case("annotate-host-not-local", annotate_with("--host", "203.0.113.9", "--port", "0"),
         says="--host", leaves=("labels.csv.annotations.sqlite",)),
    # user strings that look like rich markup are printed as they are, never interpreted
    Case("train-labels-with-markup", train_markup_labels, code=0, says="Run folder"),
    Case("eval-labels-with-markup", eval_markup_labels, code=0, says="[urgent]"),
    Case("error-naming-markup-path", plain("eval", "{tmp}/[bold]run[/]"), says="[bold]run[/]"),
    # tune: its folder is a tune folder or new; its space is checked before any work
    Case("tune-overwrite-unrelated-folder", tune_over_unrelated_folder, says="not a tune folder"),
    Case("tune-into-a-run-folder", tune_into_a_run_folder, says="not a tune folder"),
    Case("tune-bad-space-key", tune_with_a_bad_key, says="tune.train.learnin_rate",
         leaves=("tunes",)),
    Case("tune-into-the-data-folder", tune_into_the_data_folder, says="input"),
    # compare: finished run folders, each once; its page never replaces a file unasked
    Case("compare-one-run", plain("compare", "{run}"), says="two or more"),
    Case("compare-missing-folder", plain("compare", "{run}", "{tmp}/no-run"),
         says="no such folder"),
    Case("compare-the-same-run-twice", plain("compare", "{run}", "{run}/../run"),
         says="named twice"),
    Case("compare-unfinished-run", compare_with_damaged_run, says="metrics.json"),
    Case("compare-output-exists", compare_output_exists, says="--force"),
    Case("compare-output-in-a-run", compare_output_in_a_run, says="input"),
    # the command line itself
    Case("unknown-command", plain("trian", "{recipe}"), says=""),
    Case("unknown-option", plain("train", "{recipe}", "--epochs", "3"), says=""),
]
# fmt: on


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_refused_cleanly(case: Case, shared_run, tiny_model_dir, tmp_path, capsys, monkeypatch):
    run, data = shared_run
    ctx = Context(tmp=tmp_path, run=run, model=tiny_model_dir, data=data)
    monkeypatch.chdir(tmp_path)
    argv = case.setup(ctx)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    before = {"tmp": snapshot(tmp_path), "run": snapshot(run), "data": data.read_bytes()}
    code = main(argv)  # an exception here is a traceback a user would have seen
    out = capsys.readouterr()
    message = out.out + out.err
    assert code == case.code, message
    assert "Traceback" not in message
    assert case.says.lower() in message.lower(), message
    after = snapshot(tmp_path)
    for name, digest in before["tmp"].items():
        if tmp_path / name in ctx.writes:
            continue
        assert after.get(name) == digest, f"{name} changed or vanished"
    assert snapshot(run) == before["run"], "the shared run folder changed"
    assert data.read_bytes() == before["data"]
    for name in case.leaves:
        assert not (tmp_path / name).exists(), f"{name} was left behind"
    left = [p.name for p in tmp_path.iterdir() if ".tunesmith-" in p.name]
    assert not left, f"staging or probe files left: {left}"


# --- replacing a run: only ours, only at the end ------------------------------------------


def test_overwrite_replaces_a_run_only_when_the_new_one_finished(shared_run, tmp_path):
    run, _ = shared_run
    target = tmp_path / "run"
    shutil.copytree(run, target)
    (target / "notes-from-the-old-run.txt").write_text("old")  # ours: marked folder
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    recipe["train"]["keep_checkpoints"] = False
    path = tmp_path / "again.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["train", str(path), "--output", str(target), "--overwrite"]) == 0
    assert not (target / "notes-from-the-old-run.txt").exists()
    assert (target / "metrics.json").is_file() and (target / ".tunesmith-run").is_file()
    assert not (target / "checkpoints").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.yaml", "run"]


def test_a_late_failure_leaves_no_folder_and_the_old_run_intact(
    shared_run, tmp_path, monkeypatch, capsys
):
    from tunesmith.errors import UserError
    from tunesmith.tasks.text_classification.family import TextClassificationFamily

    def refuse(*args, **kwargs):
        raise UserError("disk full while saving (injected)")

    monkeypatch.setattr(TextClassificationFamily, "save", refuse)
    run, _ = shared_run
    path = tmp_path / "recipe.yaml"
    shutil.copy(run / "recipe.yaml", path)
    fresh = tmp_path / "fresh"
    assert main(["train", str(path), "--output", str(fresh)]) == 2
    assert not fresh.exists()
    old = tmp_path / "old"
    shutil.copytree(run, old)
    before = snapshot(old)
    assert main(["train", str(path), "--output", str(old), "--overwrite"]) == 2
    assert snapshot(old) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old", "recipe.yaml"]
    assert "injected" in capsys.readouterr().err


def test_the_demo_never_reuses_a_folder_that_holds_files(tmp_path):
    from tunesmith.run_folder import fresh_folder

    base = tmp_path / "demo"
    assert fresh_folder(base) == base
    base.mkdir()
    assert fresh_folder(base) == base  # empty: free
    (base / "thesis.tex").write_text("x")
    (tmp_path / "demo-2").write_text("a file")
    assert fresh_folder(base) == tmp_path / "demo-3"
