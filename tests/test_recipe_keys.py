"""`tunesmith recipe keys [TASK]`: every key of the schema, its docstring, the task filter."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel
from rich.cells import cell_len

from tunesmith.cli import main
from tunesmith.methods import methods
from tunesmith.methods.lora import LoraMethod
from tunesmith.recipe import (
    IMAGE_PREPROCESS_KEYS,
    TEXT_PREPROCESS_KEYS,
    Recipe,
    TrainConfig,
)
from tunesmith.tasks.registry import task_kinds


def schema_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every dotted key of a config class, nested sections included (methods apart)."""
    paths = set()
    for name, field in model.model_fields.items():
        path = prefix + name
        paths.add(path)
        nested = [
            arg
            for arg in (*getattr(field.annotation, "__args__", ()), field.annotation)
            if isinstance(arg, type) and issubclass(arg, BaseModel)
        ]
        if nested and name != "method":
            paths |= schema_paths(nested[0], path + ".")
    return paths


def run_keys(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["recipe", "keys", *args])
    out, err = capsys.readouterr()
    return code, out, err


def keys_json(capsys, *args: str) -> dict[str, dict]:
    code, out, _ = run_keys(capsys, *args, "--json")
    assert code == 0
    payload = json.loads(out)
    return {row["key"]: row for row in payload["keys"]}


def flat(text: str) -> str:
    return " ".join(text.split())


def test_every_recipe_key_appears(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    expected = schema_paths(Recipe) | {
        f"method.{field}" for method in methods().values() for field in method.settings.model_fields
    }
    listed = keys_json(capsys)
    assert expected - set(listed) == set()
    code, out, _ = run_keys(capsys)
    assert code == 0
    heads = {line.split(":")[0] for line in out.splitlines() if line and not line[0].isspace()}
    assert expected - heads == set()


def test_docstrings_reach_the_output(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run_keys(capsys)
    assert code == 0
    for doc in (
        TrainConfig.model_fields["learning_rate"].description,
        LoraMethod.model_fields["dropout"].description,
    ):
        assert doc and flat(doc) in flat(out)
    listed = keys_json(capsys)
    assert listed["train.learning_rate"]["doc"] == flat(
        TrainConfig.model_fields["learning_rate"].description
    )


def test_readable_at_80_columns(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    _, out, _ = run_keys(capsys)
    lines = out.splitlines()
    assert max(cell_len(line) for line in lines) <= 80
    assert not [line for line in lines if line != line.rstrip()]


def test_method_keys_name_their_methods(capsys):
    listed = keys_json(capsys)
    assert listed["method.r"]["methods"] == ["lora", "dora"]
    assert listed["method.r"]["default"] == 8
    assert listed["method.num_virtual_tokens"]["methods"] == ["prefix", "prompt", "ptuning"]
    assert set(listed["method.name"]["type"].split(" | ")) == set(methods())
    assert listed["preprocess.max_length"]["type"] == "int in [8, 32768] | auto | null"


def test_causal_lm_has_no_image_keys(capsys):
    kind = task_kinds()["causal-lm"]
    listed = keys_json(capsys, "causal-lm")
    preprocess = {
        key.removeprefix("preprocess.") for key in listed if key.startswith("preprocess.")
    }
    assert preprocess & IMAGE_PREPROCESS_KEYS == set()
    assert "max_length" in preprocess and "lowercase" not in preprocess  # refused for an LLM
    assert set(listed["method.name"]["type"].split(" | ")) == set(kind.methods)
    assert "method.adapter_len" in listed
    assert listed["model"]["default"] == kind.default_model
    assert listed["preprocess.max_length"]["default"] == kind.default_max_length
    assert listed["train.early_stopping.metric"]["type"] == " | ".join(kind.metrics)
    assert "generation.max_new_tokens" in listed


def test_image_classification_has_no_text_keys(capsys):
    kind = task_kinds()["image-classification"]
    listed = keys_json(capsys, "image-classification")
    preprocess = {
        key.removeprefix("preprocess.") for key in listed if key.startswith("preprocess.")
    }
    assert preprocess == IMAGE_PREPROCESS_KEYS
    assert preprocess & TEXT_PREPROCESS_KEYS == set()
    assert not [key for key in listed if key.startswith("generation")]
    assert set(listed["method.name"]["type"].split(" | ")) == set(kind.methods)
    assert all(set(row["methods"]) <= set(kind.methods) for row in listed.values())


@pytest.mark.parametrize("as_json", [False, True])
def test_unknown_task_exits_2_with_the_known_ones(capsys, as_json):
    code, out, err = run_keys(capsys, "no-such-task", *(["--json"] if as_json else []))
    assert code == 2
    assert out == ""
    assert "no-such-task" in err
    assert all(name in flat(err) for name in task_kinds())


def test_json_parses_with_one_row_per_key(capsys):
    code, out, _ = run_keys(capsys, "text-classification", "--json")
    assert code == 0
    payload = json.loads(out)
    assert payload["task"] == "text-classification"
    for row in payload["keys"]:
        assert set(row) == {"key", "type", "default", "required", "doc", "section", "methods"}
    assert {row["key"]: row["required"] for row in payload["keys"]}["data.train"] is True
