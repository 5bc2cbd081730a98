from pathlib import Path

import pytest

from tunesmith.errors import UserError
from tunesmith.methods.lora import LoraMethod
from tunesmith.recipe import load_recipe

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.yaml"))


def problems(raw: dict, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(UserError) as caught:
        load_recipe(raw, overrides)
    return str(caught.value)


def test_every_problem_is_reported_at_once_with_its_key_path():
    message = problems(
        {
            "data": {"train": "x.csv", "text_colum": "q"},
            "method": {"name": "lora", "r": "eight"},
            "train": {"learning_rat": 1e-4, "epochs": -1, "precision": "fp16"},
        }
    )
    assert "5 problems" in message
    assert "data.text_colum: unknown key; did you mean 'text_column'?" in message
    assert "train.learning_rat: unknown key; did you mean 'learning_rate'?" in message
    assert "method.r:" in message and "'eight'" in message
    assert "train.epochs:" in message
    assert "train.precision: 'fp16' is not allowed" in message


def test_unknown_method_suggests_the_closest_name():
    message = problems({"data": {"train": "x.csv"}, "method": {"name": "lorra"}})
    assert "unknown method 'lorra'; did you mean 'lora'?" in message


def test_method_specific_key_on_the_wrong_method_is_named():
    message = problems({"data": {"train": "x.csv"}, "method": {"name": "lora", "layers": 2}})
    assert "method.layers: unknown key" in message


def test_missing_data_section_is_reported():
    assert "data: required key is missing" in problems({"task": "text-classification"})


def test_overrides_set_nested_keys_with_yaml_types():
    recipe = load_recipe(
        {"data": {"train": "x.csv"}},
        ["train.epochs=5", "method.name=selective", "method.layers=3", "train.eval_every=10"],
    )
    assert recipe.train.epochs == 5
    assert recipe.method.name == "selective" and recipe.method.layers == 3
    assert recipe.train.eval_every == 10


def test_malformed_override_is_a_user_error():
    assert "expected key.sub=value" in problems({"data": {"train": "x"}}, ("train.epochs",))


def test_learning_rate_defaults_to_the_methods_own():
    recipe = load_recipe({"data": {"train": "x.csv"}})
    assert isinstance(recipe.method, LoraMethod)
    assert recipe.learning_rate == LoraMethod.default_learning_rate
    full = load_recipe({"data": {"train": "x.csv"}, "method": {"name": "full"}})
    assert full.learning_rate < recipe.learning_rate


def test_bad_yaml_names_the_line(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("data:\n  train: [unclosed\n")
    with pytest.raises(UserError, match=r"not valid YAML at line \d+"):
        load_recipe(path)


def test_relative_data_paths_resolve_next_to_the_recipe(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.csv").write_text("text,label\na,b\n")
    recipe_path = tmp_path / "sub" / "r.yaml"
    recipe_path.write_text("data:\n  train: d.csv\n")
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe(recipe_path)
    assert Path(recipe.data.train) == (tmp_path / "sub" / "d.csv").resolve()
    assert recipe.output_dir == str(Path("runs") / "r")


def test_resolved_recipe_round_trips(tmp_path):
    recipe = load_recipe({"data": {"train": "x.csv"}, "method": {"name": "ia3"}})
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe.to_yaml())
    assert load_recipe(path).model_dump() == recipe.model_dump() | {
        "output_dir": str(Path("runs") / "recipe")
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_shipped_recipe_validates(path: Path):
    text = path.read_text()
    assert text.startswith("#") and "tunesmith train" in text.splitlines()[0] + text
    load_recipe(path)


def test_examples_exist():
    assert len(EXAMPLES) >= 3


def test_a_bare_yaml_off_turns_the_data_gate_off(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model: builtin:minilm\ndata: {train: t.csv}\nguards: {data_quality: off}\n")
    assert load_recipe(path).guards.data_quality == "off"
    assert load_recipe(path, ["guards.data_quality=off"]).guards.data_quality == "off"
