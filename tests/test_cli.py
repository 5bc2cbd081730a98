"""End to end through the command line, on the tiny model: files written, errors, exit codes."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from peft import PeftModel
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from tunesmith.cli import main

from .conftest import make_rows


def write_recipe(tmp_path: Path, recipe: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    """One LoRA run and one full run, shared by the tests that read run folders."""
    folder = tmp_path_factory.mktemp("runs")
    data = folder / "topics.csv"
    pd.DataFrame(make_rows(40)).to_csv(data, index=False)
    runs = {}
    for method in ("lora", "full"):
        recipe = {
            "model": str(tiny_model_dir),
            "data": {"train": str(data)},
            "method": {"name": method},
            "train": {"epochs": 3, "batch_size": 8, "learning_rate": 1e-2, "precision": "fp32"},
        }
        output = folder / method
        path = write_recipe(folder, recipe)
        assert main(["train", str(path), "--output", str(output)]) == 0
        runs[method] = output
    return runs


def test_train_writes_the_run_folder(trained_runs):
    run = trained_runs["lora"]
    assert {p.name for p in run.iterdir()} == {
        ".tunesmith-run",
        "recipe.yaml",
        "quality.json",
        "estimate.json",
        "history.jsonl",
        "metrics.json",
        "adapter",
        "report.html",
    }
    assert (trained_runs["full"] / "model" / "config.json").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("fine_tuned", "base", "baseline"):
        assert {"accuracy", "macro_f1"} <= set(metrics[key])
    assert metrics["fine_tuned"]["confusion_matrix"] and metrics["fine_tuned"]["per_class"]
    assert metrics["labels"] == ["food", "sports", "tech"]
    assert 0 < metrics["params"]["trainable"] < metrics["params"]["total"]
    assert metrics["train_seconds"] > 0 and metrics["peak_memory_mb"] > 0
    phases = metrics["phase_seconds"]
    assert {"data_check", "load", "score_before", "training", "score_after", "report"} <= set(
        phases
    )
    # each phase and the total are rounded to the millisecond: up to 0.5 ms off apiece
    assert sum(phases.values()) <= metrics["wall_seconds"] + 5e-4 * (len(phases) + 1)
    assert phases["training"] >= metrics["train_seconds"]  # the steps, plus evaluations
    assert (
        sum(metrics["fine_tuned"]["per_class"][n]["support"] for n in metrics["labels"])
        == (metrics["splits"]["test"])
    )
    history = [json.loads(line) for line in (run / "history.jsonl").open()]
    assert len(history) >= 1 and "val_macro_f1" in history[0]
    kept = next(line for line in history if line["step"] == metrics["best_step"])
    assert metrics["validation"]["macro_f1"] == kept["val_macro_f1"]  # not evaluated again
    forgetting = metrics["forgetting"]
    assert forgetting["after"] == kept[f"forgetting_{forgetting['measure']}"]
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    assert recipe["method"]["name"] == "lora" and recipe["output_dir"] == str(run)
    assert "macro" in (run / "report.html").read_text().lower()


def test_adapter_loads_with_transformers_and_peft_alone(trained_runs, tiny_model_dir):
    from tunesmith.inference import predict_run

    run = trained_runs["lora"]
    texts = ["football match goal today", "pizza and cheese for dinner"]
    config = AutoConfig.from_pretrained(run / "adapter")
    base = AutoModelForSequenceClassification.from_pretrained(
        tiny_model_dir, config=config, ignore_mismatched_sizes=True
    )
    model = PeftModel.from_pretrained(base, run / "adapter").eval()
    tokenizer = AutoTokenizer.from_pretrained(run / "adapter")
    with torch.no_grad():
        probabilities = torch.softmax(
            model(**tokenizer(texts, padding=True, return_tensors="pt")).logits, -1
        )
    ours = predict_run(run, texts)
    for row, expected in zip(ours, probabilities, strict=True):
        got = torch.tensor([row["probabilities"][config.id2label[i]] for i in range(3)])
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    assert config.id2label == {0: "food", 1: "sports", 2: "tech"}


def test_full_model_loads_with_transformers_alone(trained_runs):
    model = AutoModelForSequenceClassification.from_pretrained(trained_runs["full"] / "model")
    assert model.config.id2label[1] == "sports"


def test_eval_scores_the_test_split_and_any_file(trained_runs, tmp_path, capsys):
    run = trained_runs["lora"]
    assert main(["eval", str(run), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    stored = json.loads((run / "metrics.json").read_text())["fine_tuned"]
    assert metrics["accuracy"] == pytest.approx(stored["accuracy"])
    other = tmp_path / "other.jsonl"
    pd.DataFrame(make_rows(4, seed=9)).to_json(other, orient="records", lines=True)
    assert main(["eval", str(run), "--data", str(other), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == 12


def test_predict_texts_and_files(trained_runs, tmp_path, capsys):
    run = trained_runs["full"]
    lines = tmp_path / "texts.txt"
    lines.write_text("wifi server network\ncake and soup\n")
    output = tmp_path / "out.jsonl"
    assert (
        main(["predict", str(run), "a team scored a goal", str(lines), "--output", str(output)])
        == 0
    )
    rows = [json.loads(line) for line in output.open()]
    assert [r["text"] for r in rows] == [
        "a team scored a goal",
        "wifi server network",
        "cake and soup",
    ]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in rows)
    assert main(["predict", str(run), "pizza"]) == 0
    assert "pizza" in capsys.readouterr().out


# --- bad input: one clear message, exit code 2, nothing written --------------------------


def run_bad(tmp_path: Path, recipe: dict, capsys) -> str:
    output = tmp_path / "should-not-exist"
    code = main(["train", str(write_recipe(tmp_path, recipe)), "--output", str(output)])
    assert code == 2
    assert not output.exists()
    return capsys.readouterr().err


def test_missing_column(tiny_recipe, tmp_path, capsys):
    tiny_recipe["data"]["label_column"] = "topic"
    err = run_bad(tmp_path, tiny_recipe, capsys)
    assert "data.label_column: column 'topic' not found" in err and "Traceback" not in err


def test_unknown_label_in_test(tiny_recipe, tmp_path, capsys):
    test = tmp_path / "test.csv"
    pd.DataFrame([{"text": "rain and sun", "label": "weather"}]).to_csv(test, index=False)
    tiny_recipe["data"]["test"] = str(test)
    assert "'weather' never seen in training" in run_bad(tmp_path, tiny_recipe, capsys)


def test_empty_file(tiny_recipe, tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    tiny_recipe["data"]["train"] = str(empty)
    assert "is empty" in run_bad(tmp_path, tiny_recipe, capsys)


def test_typo_in_recipe_key(tiny_recipe, tmp_path, capsys):
    tiny_recipe["train"]["learnin_rate"] = 0.1
    err = run_bad(tmp_path, tiny_recipe, capsys)
    assert "train.learnin_rate: unknown key; did you mean 'learning_rate'?" in err


def test_corrupt_parquet(tiny_recipe, tmp_path, capsys):
    bad = tmp_path / "train.parquet"
    bad.write_bytes(b"PAR1\x00\x01garbage")
    tiny_recipe["data"]["train"] = str(bad)
    assert "not a valid parquet file" in run_bad(tmp_path, tiny_recipe, capsys)


def test_missing_model_folder(tiny_recipe, tmp_path, capsys):
    tiny_recipe["model"] = str(tmp_path / "no-such-model")
    assert "folder" in run_bad(tmp_path, tiny_recipe, capsys)


def test_model_not_in_local_cache(tiny_recipe, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tiny_recipe["model"] = "someone/not-downloaded-model"
    err = run_bad(tmp_path, tiny_recipe, capsys)
    assert "never downloads at run time" in err


def test_existing_run_folder_is_not_overwritten(tiny_recipe, tmp_path, capsys):
    output = tmp_path / "run"
    output.mkdir()
    (output / "keep.txt").write_text("x")
    code = main(["train", str(write_recipe(tmp_path, tiny_recipe)), "--output", str(output)])
    assert code == 2 and "--overwrite" in capsys.readouterr().err
    assert (output / "keep.txt").exists()


def test_bad_override(tiny_recipe, tmp_path, capsys):
    code = main(["train", str(write_recipe(tmp_path, tiny_recipe)), "--set", "train.epochs"])
    assert code == 2 and "expected key.sub=value" in capsys.readouterr().err


# --- causal-lm bad input ------------------------------------------------------------------


def test_llm_row_that_fits_no_format(tiny_llm_recipe, tmp_path, capsys):
    data = Path(tiny_llm_recipe["data"]["train"])
    lines = data.read_text().splitlines()
    lines[3] = json.dumps({"instruction": "football", "input": "", "output": ["not", "text"]})
    data.write_text("\n".join(lines) + "\n")
    err = run_bad(tmp_path, tiny_llm_recipe, capsys)
    assert "row 3 (line 4)" in err and "Traceback" not in err


def test_llm_method_that_does_not_fit_the_task(tiny_llm_recipe, tmp_path, capsys):
    tiny_llm_recipe["method"] = {"name": "linear-probe"}
    err = run_bad(tmp_path, tiny_llm_recipe, capsys)
    assert "'linear-probe' is for text-classification" in err


def test_llm_selective_with_more_layers_than_the_model(tiny_llm_recipe, tmp_path, capsys):
    tiny_llm_recipe["method"] = {"name": "selective", "layers": 5}
    err = run_bad(tmp_path, tiny_llm_recipe, capsys)
    assert "method.layers: 5, but the model has 2 layers" in err


def test_llm_classification_metric_for_early_stopping(tiny_llm_recipe, tmp_path, capsys):
    tiny_llm_recipe["train"]["early_stopping"] = {"metric": "macro_f1"}
    assert "does not fit causal-lm" in run_bad(tmp_path, tiny_llm_recipe, capsys)
