"""Text preprocessing: what each option does to a text, how the recipe validates the keys,
and that a trained run applies the same preprocessing again at eval and predict."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from rich.console import Console
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunesmith.data.causal import LMExample, LMSplit, LMSplits
from tunesmith.data.text import TextExamples, TextSplits
from tunesmith.data.text_preprocess import TextPreprocessor, is_japanese
from tunesmith.errors import UserError
from tunesmith.inference import evaluate_run, predict_run
from tunesmith.recipe import Preprocess, load_recipe
from tunesmith.run import train
from tunesmith.tasks.causal_lm.task import CausalLMTask
from tunesmith.tasks.text_classification.task import TextClassificationTask
from tunesmith.trained_run import load_run

from .conftest import make_rows

# --- what each option does -----------------------------------------------------------------


def test_nfkc_unifies_full_width_and_half_width_forms():
    nfkc = TextPreprocessor()
    assert nfkc("ＡＢＣ１２３") == "ABC123"
    assert nfkc("ｶﾀｶﾅ ｶﾞｷﾞ") == "カタカナ ガギ"  # half-width katakana, voiced marks joined
    assert nfkc("㈱ ﬁle №1") == "(株) file No1"  # compatibility characters
    assert TextPreprocessor(unicode="none")("ＡＢＣ１２３") == "ＡＢＣ１２３"


def test_lowercase_comes_after_nfkc():
    assert TextPreprocessor(lowercase=True)("ＨＥＬＬＯ World") == "hello world"
    assert TextPreprocessor(unicode="none", lowercase=True)("HeLLo") == "hello"


def test_english_stop_words_are_dropped_in_any_case_keeping_negations_and_punctuation():
    english = TextPreprocessor(stop_words="english")
    assert english("The cat sat on the mat") == "cat sat mat"
    assert english("THE CAT") == "CAT"  # matched in any case, the text keeps its own
    assert english("This is not good, and it was never fine.") == "not good, never fine."
    assert english("my  computer   system\nfailed") == "computer system failed"


def test_japanese_stop_words_on_real_sentences():
    japanese = TextPreprocessor(stop_words="japanese")
    # particles (は の で を て), auxiliaries (ます), light verbs (し=する, い=いる) dropped
    assert japanese("私は東京の大学で機械学習を研究しています") == "私 東京 大学 機械 学習 研究"
    assert japanese("これはペンです。") == "ペン"
    assert japanese("今日は天気がいいですね") == "今日 天気 いい"
    assert japanese("それはとても良いことだと思います！") == "とても 良い 思い"
    # negations are auxiliary verbs too, but "not tasty" must not become "tasty"
    assert japanese("この料理は美味しくない") == "料理 美味しく ない"
    # full-width letters are unified first, half-width katakana too
    assert japanese("ｶﾀｶﾅでＡＢＣを書く") == "カタカナ ABC 書く"


def test_auto_picks_the_language_of_each_text():
    auto = TextPreprocessor(stop_words="auto")
    assert auto.apply(["the cat is here", "猫がここにいる", "カタカナのテスト"]) == [
        "cat",
        "猫",
        "カタカナ テスト",
    ]
    assert is_japanese("漢字") and is_japanese("ひらがな") and is_japanese("ｶﾀｶﾅ")
    assert not is_japanese("plain English, café")


def test_extra_stop_words_in_any_case_and_without_a_list():
    english = TextPreprocessor.from_config(
        Preprocess(stop_words="english", extra_stop_words=["Please", "thanks"])
    )
    assert english("please fix the printer, THANKS!") == "fix printer,"
    only_extra = TextPreprocessor.from_config({"extra_stop_words": ["printer", "東京"]})
    assert only_extra("the printer is broken") == "the is broken"
    assert only_extra("東京の大学") == "の 大学"  # janome tokens, only the listed one dropped


def test_a_text_of_stop_words_keeps_its_normalised_form_and_is_counted():
    preprocessor = TextPreprocessor(lowercase=True, stop_words="auto")
    texts, fallbacks = preprocessor.apply_counted(["THE OF AND", "The cat", "これはそれ", ""])
    assert texts == ["the of and", "cat", "これはそれ", ""]
    assert fallbacks == 2  # an empty text is not a fallback
    assert preprocessor("It is what it is") == "it is what it is"


def test_identity_and_description():
    assert TextPreprocessor(unicode="none").is_identity
    assert not TextPreprocessor().is_identity
    assert not TextPreprocessor(unicode="none", extra_stop_words=frozenset({"x"})).is_identity
    assert TextPreprocessor(unicode="none").describe().startswith("none")
    full = TextPreprocessor.from_config(
        Preprocess(lowercase=True, stop_words="english", extra_stop_words=["a", "b"])
    )
    assert full.describe() == "NFKC, lowercase, stop words: english (+2 extra)"
    assert TextPreprocessor.from_config(Preprocess()) == TextPreprocessor()
    extra = TextPreprocessor(extra_stop_words=frozenset({" ＰＬＥＡＳＥ", "Thanks"}))
    assert extra.extra_stop_words == {"please", "thanks"}
    with pytest.raises(ValueError, match=r"preprocess\.stop_words: 'french'"):
        TextPreprocessor(stop_words="french")


# --- the recipe ----------------------------------------------------------------------------


def problems(raw: dict) -> str:
    with pytest.raises(UserError) as caught:
        load_recipe(raw)
    return str(caught.value)


def test_text_keys_validate_with_their_fix():
    message = problems(
        {"data": {"train": "x.csv"}, "preprocess": {"stop_words": "french", "unicode": "nfc"}}
    )
    assert "preprocess.stop_words: 'french' is not allowed; use 'none', 'english'" in message
    assert "preprocess.unicode: 'nfc' is not allowed; use 'nfkc' or 'none'" in message
    message = problems({"data": {"train": "x"}, "preprocess": {"extra_stop_words": ["new york"]}})
    assert "preprocess.extra_stop_words: 'new york'" in message and "single words" in message
    recipe = load_recipe({"data": {"train": "x"}, "preprocess": {"stop_words": None}})
    assert recipe.preprocess.stop_words == "none"


@pytest.mark.parametrize("key", [{"lowercase": True}, {"stop_words": "english"}])
def test_causal_lm_refuses_lowercase_and_stop_words(key):
    message = problems({"task": "causal-lm", "data": {"train": "x"}, "preprocess": key})
    assert f"preprocess: {next(iter(key))} would teach a causal-lm model" in message
    assert "remove them" in message


def test_causal_lm_takes_unicode_and_saves_no_classifier_keys():
    assert load_recipe({"task": "causal-lm", "data": {"train": "x"}}).preprocess.unicode == "none"
    assert load_recipe({"data": {"train": "x"}}).preprocess.unicode == "nfkc"
    recipe = load_recipe(
        {"task": "causal-lm", "data": {"train": "x"}, "preprocess": {"unicode": "nfkc"}}
    )
    saved = yaml.safe_load(recipe.to_yaml())["preprocess"]
    assert saved["unicode"] == "nfkc" and "lowercase" not in saved and "stop_words" not in saved
    none = load_recipe({"task": "causal-lm", "data": {"train": "x"}, "preprocess": saved})
    assert none.preprocess == recipe.preprocess  # the saved recipe loads again


@pytest.mark.parametrize("key", ["unicode", "lowercase", "stop_words", "extra_stop_words"])
def test_image_tasks_refuse_the_text_keys(key):
    value = {"unicode": "none", "lowercase": True, "stop_words": "auto"}.get(key, ["x"])
    raw = {"task": "image-classification", "data": {"train": "x"}, "preprocess": {key: value}}
    assert f"preprocess: {key} apply to text tasks, not image-classification" in problems(raw)
    saved = yaml.safe_load(load_recipe({**raw, "preprocess": {}}).to_yaml())["preprocess"]
    assert key not in saved


# --- applied where texts enter a model -----------------------------------------------------


def test_classifier_task_preprocesses_splits_and_predict_inputs(tiny_model_dir: Path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    split = TextExamples(["The ＣＡＴ", "the and"], [0, 1], [0, 1], "memory")
    preprocessor = TextPreprocessor(stop_words="english")
    task = TextClassificationTask(
        TextSplits(split, split, split, ["a", "b"]),
        tokenizer,
        32,
        torch.device("cpu"),
        None,
        preprocessor=preprocessor,
    )
    assert task.texts["train"] == ["CAT", "the and"]
    assert task.fallbacks == {"train": 1, "validation": 1, "test": 1}
    assert task.ids["train"][0] == tokenizer("CAT")["input_ids"]


def test_causal_lm_task_normalises_examples_and_prompts(tiny_llm_dir: Path, tiny_llm_recipe):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    example = LMExample(
        row=0,
        messages=[
            {"role": "user", "content": "ｆｏｏｔｂａｌｌ match"},
            {"role": "assistant", "content": "ｔｈｅ team"},
        ],
    )
    split = LMSplit([example], "memory")
    splits = LMSplits(split, split, split, "chat")
    recipe = load_recipe(tiny_llm_recipe, ["preprocess.unicode=nfkc"])
    task = CausalLMTask.from_recipe(splits, tokenizer, recipe, torch.device("cpu"), None)
    messages = task.splits.train.examples[0].messages
    assert [m["content"] for m in messages] == ["football match", "the team"]
    assert example.messages[0]["content"] == "ｆｏｏｔｂａｌｌ match"  # the input is untouched
    text = LMExample(row=0, text="ｔｅａｍ")
    raw = LMSplits(*[LMSplit([text], "memory")] * 3, "text")
    text_task = CausalLMTask.from_recipe(raw, tokenizer, recipe, torch.device("cpu"), None)
    assert text_task.splits.test.examples[0].text == "team"

    model = AutoModelForCausalLM.from_pretrained(tiny_llm_dir)
    task.generation.max_new_tokens = 4
    wide = task.generate(model, [[{"role": "user", "content": "ｆｏｏｔｂａｌｌ"}]])
    assert wide == task.generate(model, [[{"role": "user", "content": "football"}]])
    recipe.preprocess.unicode = "none"
    as_given = CausalLMTask.from_recipe(splits, tokenizer, recipe, torch.device("cpu"), None)
    assert as_given.splits.train.examples[0].messages[1]["content"] == "ｔｈｅ team"


# --- end to end: saved with the run, applied again at eval and predict ---------------------


@pytest.fixture(scope="module")
def preprocessed_run(tmp_path_factory, tiny_model_dir) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("preprocessed")
    stop_words_only = ["The and a", "and of the", "it is what it is"]
    rows = make_rows(40) + [{"text": text, "label": "food"} for text in stop_words_only]
    data = folder / "topics.csv"
    pd.DataFrame(rows).to_csv(data, index=False)
    recipe = load_recipe(
        {
            "model": str(tiny_model_dir),
            "data": {"train": str(data)},
            "preprocess": {"lowercase": True, "stop_words": "english"},
            "method": {"name": "lora", "r": 4},
            "train": {"epochs": 2, "batch_size": 8, "learning_rate": 5e-3, "precision": "fp32"},
            "output_dir": str(folder / "run"),
        }
    )
    out = io.StringIO()
    train(recipe, console=Console(file=out, width=200))
    return folder / "run", out.getvalue()


def test_run_saves_the_settings_and_counts_texts_of_stop_words(preprocessed_run):
    run, console = preprocessed_run
    saved = yaml.safe_load((run / "recipe.yaml").read_text())["preprocess"]
    assert saved["unicode"] == "nfkc" and saved["lowercase"] is True
    assert saved["stop_words"] == "english" and saved["extra_stop_words"] == []
    assert "Text preprocessing: NFKC, lowercase, stop words: english" in console
    assert "hold nothing but stop words" in console
    metrics = json.loads((run / "metrics.json").read_text())
    assert sum(metrics["stop_word_fallbacks"].values()) == 3


def test_predict_applies_the_runs_preprocessing(preprocessed_run, capsys):
    run, _ = preprocessed_run
    shouted, plain, only_stop_words = predict_run(run, ["THE CAT", "cat", "the and"])
    assert shouted["text"] == "THE CAT"  # the input as given, not as preprocessed
    assert only_stop_words["text"] == "the and"
    assert shouted["probabilities"] == plain["probabilities"]
    assert "1 inputs hold nothing but stop words" in capsys.readouterr().err

    # without the run's preprocessing the model would see other tokens and answer otherwise
    loaded = load_run(run)
    empty = TextExamples([], [], [], "")
    as_given = TextClassificationTask(
        TextSplits(empty, empty, empty, loaded.label_names),
        loaded.tokenizer,
        128,
        torch.device("cpu"),
        None,
        preprocessor=TextPreprocessor(unicode="none"),
    ).predict_proba(loaded.model, ["THE CAT"])[0]
    shouted_row = np.array([shouted["probabilities"][n] for n in loaded.label_names])
    assert not np.allclose(as_given, shouted_row, atol=1e-6)


def test_eval_on_a_file_applies_the_preprocessing(preprocessed_run, tmp_path):
    run, _ = preprocessed_run
    data = tmp_path / "more.csv"
    rows = [{"text": "THE FOOTBALL MATCH", "label": "sports"}, {"text": "and the", "label": "tech"}]
    pd.DataFrame(rows).to_csv(data, index=False)
    metrics = evaluate_run(run, str(data))
    assert metrics["examples"] == 2 and metrics["stop_word_fallbacks"] == 1


def test_a_run_saved_before_text_preprocessing_uses_its_texts_as_given(preprocessed_run, tmp_path):
    import shutil

    run, _ = preprocessed_run
    old = tmp_path / "old-run"
    shutil.copytree(run, old)
    recipe = yaml.safe_load((old / "recipe.yaml").read_text())
    for key in ("unicode", "lowercase", "stop_words", "extra_stop_words"):
        del recipe["preprocess"][key]
    (old / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert load_run(old).recipe.preprocess.unicode == "none"
    assert TextPreprocessor.from_config(load_run(old).recipe.preprocess).is_identity
