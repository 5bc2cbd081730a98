"""preprocess.max_length: auto reads nearly every training text whole, within the model."""

from pathlib import Path

import pandas as pd
import pytest
import yaml

from tunesmith.data.lengths import AUTO_LONGEST, auto_max_length
from tunesmith.errors import UserError
from tunesmith.recipe import load_recipe
from tunesmith.run import train


def test_auto_covers_every_text_rounded_up_to_eight():
    assert auto_max_length([10] * 97 + [40, 300], 512) == 304
    assert auto_max_length([10] * 97 + [40, 300, 900], 512) == 512
    assert auto_max_length([33] * 10, 512) == 40
    assert auto_max_length([3] * 10, 512) == 16  # never below 16
    assert auto_max_length([2000] * 10, None) == AUTO_LONGEST
    assert auto_max_length([2000] * 10, 128) == 128  # never past what the model reads
    assert auto_max_length([], 512) == 16


@pytest.mark.parametrize(("repeats", "low", "high"), [(12, 64, 96), (40, 128, 128)])
def test_a_classifier_run_keeps_the_length_auto_chose(tiny_recipe, tmp_path, repeats, low, high):
    """Half the texts grow by `repeats` x 6 words: auto reads them whole (about 60 tokens
    at 12), or stops at the tiny model's 128 positions (40: about 200 tokens)."""
    long = "the match went on and on " * repeats
    rows = pd.read_csv(tiny_recipe["data"]["train"])
    rows.loc[rows.index % 2 == 0, "text"] = long + rows["text"]
    data = tmp_path / "long.csv"
    rows.to_csv(data, index=False)
    tiny_recipe["data"]["train"] = str(data)
    tiny_recipe["train"]["max_steps"] = 2
    recipe = load_recipe(tiny_recipe)
    assert recipe.preprocess.max_length == "auto"
    metrics = train(recipe)
    saved = yaml.safe_load(Path(tiny_recipe["output_dir"], "recipe.yaml").read_text())
    chosen = saved["preprocess"]["max_length"]
    assert isinstance(chosen, int) and low <= chosen <= high and chosen % 8 == 0
    assert (metrics["truncated"]["train"] == 0) == (high < 128)


def test_auto_length_is_refused_where_the_length_is_a_packed_row():
    with pytest.raises(UserError, match="max_length: auto is for the text classifiers"):
        load_recipe(
            {
                "task": "causal-lm",
                "data": {"train": "x.jsonl"},
                "preprocess": {"max_length": "auto"},
            }
        )
