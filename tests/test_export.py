"""`tunesmith export`: the exported folder of every task kind loads without tunesmith and gives
the predictions `tunesmith predict` gives. The check runs the model card's own loading lines,
as a user would copy them, in a fresh interpreter that cannot import tunesmith; then the card
itself, the adapter's portable base model, the standalone text preprocessing and the
refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from tunesmith.cli import main
from tunesmith.model_card import FOLDER_LINE, loader_code
from tunesmith.models.resolve import BUILTINS, ModelOrigin, model_origin
from tunesmith.recipe import load_recipe
from tunesmith.run import train

from .test_multi_label import multi_label_rows
from .test_seq2seq import build_t5, make_pairs

PROBABILITY_TOLERANCE = 1e-5

FULL_WIDTH = [
    "ＦＯＯＴＢＡＬＬ ｍａｔｃｈ ｔｏｄａｙ",  # NFKC: FOOTBALL match today
    "ＡＢＣ　テスト ｶﾀｶﾅ pizza",  # an ideographic space, half-width katakana
    "laptop wifi and the server",
]

RUNNER = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class NoTunesmith(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "tunesmith":
                raise ImportError(f"{name}: an export must load without tunesmith")
            return None

    sys.meta_path.insert(0, NoTunesmith())
    scope = {"__name__": "__main__"}
    with open(sys.argv[1], encoding="utf-8") as file:
        exec(compile(file.read(), "README.md", "exec"), scope)
    found = {}
    for name in ("probabilities", "labels", "answers"):
        if name in scope:
            value = scope[name]
            found[name] = value.tolist() if hasattr(value, "tolist") else value
    print("RESULT " + json.dumps(found))
    """
)


def run_card(folder: Path, inputs: str, scratch: Path) -> dict:
    """Run the loading lines of `folder`'s README.md, with `inputs` (e.g. 'texts = [...]') in
    place of the card's example inputs, from inside the folder (the card's `folder = "."`)
    in a new interpreter where importing tunesmith fails; what they leave in
    probabilities / labels / answers."""
    code = loader_code((folder / "README.md").read_text(encoding="utf-8"))
    lines = code.splitlines()
    assert lines[0] == FOLDER_LINE
    name = inputs.split("=", 1)[0].strip()
    index = next(i for i, line in enumerate(lines) if line.startswith(f"{name} = "))
    lines[index] = inputs
    script, runner = scratch / "card_code.py", scratch / "runner.py"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    runner.write_text(RUNNER, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_MODULES_CACHE": str(scratch / "hf-modules"),
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    done = subprocess.run(
        [sys.executable, str(runner), str(script)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert result, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(result[-1].removeprefix("RESULT "))


def predicted(run: Path, inputs: list[str], scratch: Path) -> list[dict]:
    """`tunesmith predict` on `inputs`, through the command line."""
    out = scratch / "predictions.jsonl"
    out.unlink(missing_ok=True)
    assert main(["predict", str(run), *inputs, "--output", str(out)]) == 0
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def export(run: Path, output: Path, *flags: str) -> Path:
    assert main(["export", str(run), "--output", str(output), *flags]) == 0
    return output


def front_matter(folder: Path) -> dict:
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n", 2)[1])


def probabilities_of(rows: list[dict], names: list[str]) -> np.ndarray:
    return np.array([[row["probabilities"][name] for name in names] for row in rows])


def assert_same_probabilities(card: dict, rows: list[dict], names: list[str]) -> float:
    """The card's probabilities (in the config's label order) against predict's; the
    largest difference."""
    ours = probabilities_of(rows, names)
    theirs = np.array(card["probabilities"])
    assert theirs.shape == ours.shape
    difference = float(np.abs(theirs - ours).max())
    assert difference <= PROBABILITY_TOLERANCE, difference
    return difference


def label_names(folder: Path) -> list[str]:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return [config["id2label"][str(i)] for i in range(len(config["id2label"]))]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (two threads wait on each other on 2 cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- text classification ------------------------------------------------------------------


def test_text_classifier_export_reads_full_width_text_as_predict_does(
    tiny_recipe: dict, tmp_path: Path
) -> None:
    train(load_recipe(tiny_recipe))  # LoRA; preprocess.unicode nfkc, the kind's default
    run = Path(tiny_recipe["output_dir"])
    folder = export(run, tmp_path / "exported", "--merge")
    assert not (folder / "preprocess.py").exists()  # NFKC lives in the tokenizer
    settings = json.loads((folder / "preprocess.json").read_text(encoding="utf-8"))
    assert settings["in_tokenizer"] == ["nfkc"] and settings["needs_prepare"] is False

    card = run_card(folder, f"texts = {FULL_WIDTH!r}", tmp_path)
    rows = predicted(run, FULL_WIDTH, tmp_path)
    names = label_names(folder)
    assert_same_probabilities(card, rows, names)
    assert card["labels"] == [row["label"] for row in rows]

    # the test has teeth: the run's own tokenizer (no NFKC) reads full-width text otherwise
    from transformers import AutoTokenizer

    plain = AutoTokenizer.from_pretrained(run / "adapter")
    exported = AutoTokenizer.from_pretrained(folder)
    assert plain(FULL_WIDTH[0])["input_ids"] != exported(FULL_WIDTH[0])["input_ids"]
    assert exported(FULL_WIDTH[0])["input_ids"] == plain("football match today")["input_ids"]

    meta = front_matter(folder)
    assert meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "text-classification"
    assert {"tunesmith", "text-classification", "lora"} <= set(meta["tags"])
    text = (folder / "README.md").read_text(encoding="utf-8")
    for heading in ("## Base model", "## Training data", "## Training", "## Results"):
        assert heading in text
    assert "## Preprocessing" in text and "NFKC" in text
    assert str(tmp_path) not in text  # no local paths in the card of a local-folder model


def test_a_stop_word_adapter_exports_its_preprocessing_beside_it(
    tiny_recipe: dict, tmp_path: Path
) -> None:
    tiny_recipe["preprocess"] = {
        "unicode": "nfkc",
        "lowercase": True,
        "stop_words": "english",
        "extra_stop_words": ["ｔｏｄａｙ"],  # stored NFKC-normalised: "today"
    }
    train(load_recipe(tiny_recipe))
    run = Path(tiny_recipe["output_dir"])
    folder = export(run, tmp_path / "adapter-export")  # no --merge: the adapter
    assert (folder / "adapter_config.json").is_file() and (folder / "preprocess.py").is_file()
    assert not (folder / "model.safetensors").exists()
    texts = [*FULL_WIDTH, "the a is was very", "THE Pizza, with the CHEESE!"]
    card = run_card(folder, f"texts = {texts!r}", tmp_path)
    rows = predicted(run, texts, tmp_path)
    assert_same_probabilities(card, rows, label_names(folder))
    assert front_matter(folder)["library_name"] == "peft"
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert "PeftModel.from_pretrained" in text and "prepare(text)" in text


def test_the_standalone_preprocessing_matches_tunesmiths() -> None:
    from tunesmith.data.text_preprocess import TextPreprocessor
    from tunesmith.models.portable.preprocess import TextPreparer

    texts = [
        *FULL_WIDTH,
        "This is NOT the best, but it was fine!",
        "the a an",  # nothing left: kept normalised
        "",
        "この映画はとても面白くないです。",
        "ＡＰＩの使い方を教えてください",
        "mixed テスト text with the words",
    ]
    settings = [
        {"stop_words": "english"},
        {"stop_words": "japanese", "lowercase": True},
        {"stop_words": "auto", "extra_stop_words": ["Ｆｉｎｅ", "使い方"]},
        {"unicode": "none", "stop_words": "none", "lowercase": True},
    ]
    for setting in settings:
        preprocessor = TextPreprocessor(
            unicode=setting.get("unicode", "nfkc"),
            lowercase=setting.get("lowercase", False),
            stop_words=setting["stop_words"],
            extra_stop_words=frozenset(setting.get("extra_stop_words", ())),
        )
        standalone = TextPreparer(json.loads(json.dumps(preprocessor.portable_settings())))
        assert [standalone(t) for t in texts] == preprocessor.apply(texts), setting


def test_a_prompt_tuning_adapter_exports_unmerged_only(tiny_recipe: dict, tmp_path: Path, capsys):
    tiny_recipe["method"] = {"name": "prompt", "num_virtual_tokens": 4}
    train(load_recipe(tiny_recipe))
    run = Path(tiny_recipe["output_dir"])
    refused = tmp_path / "merged"
    assert main(["export", str(run), "--merge", "--output", str(refused)]) == 2
    assert "Drop --merge" in capsys.readouterr().err
    assert not refused.exists()
    folder = export(run, tmp_path / "adapter")
    card = run_card(folder, f"texts = {FULL_WIDTH!r}", tmp_path)
    assert_same_probabilities(card, predicted(run, FULL_WIDTH, tmp_path), label_names(folder))


# --- multi-label classification -----------------------------------------------------------


def test_multi_label_export_applies_the_run_thresholds(tiny_model_dir: Path, tmp_path: Path):
    data = tmp_path / "tags.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in multi_label_rows(120)))
    recipe = {
        "task": "multi-label-classification",
        "model": str(tiny_model_dir),
        "data": {"train": str(data), "label_column": "tags"},
        "method": {"name": "full"},
        "train": {"epochs": 2, "batch_size": 8, "learning_rate": 2e-3, "precision": "fp32"},
        "guards": {"forgetting": None, "overfitting": None},
        "output_dir": str(tmp_path / "run"),
    }
    train(load_recipe(recipe))
    run = Path(recipe["output_dir"])
    folder = export(run, tmp_path / "exported")  # a whole model: nothing to merge
    texts = ["guitar song pizza bread", "ＧＵＩＴＡＲ ｓｏｎｇ", "the a very"]
    card = run_card(folder, f"texts = {texts!r}", tmp_path)
    rows = predicted(run, texts, tmp_path)
    assert_same_probabilities(card, rows, label_names(folder))
    assert [set(labels) for labels in card["labels"]] == [set(row["labels"]) for row in rows]
    assert front_matter(folder)["pipeline_tag"] == "text-classification"


# --- causal LM ----------------------------------------------------------------------------


def test_causal_lm_exports_answer_as_predict_does(tiny_llm_recipe: dict, tmp_path: Path):
    tiny_llm_recipe["guards"] = {"forgetting": None}
    # the untrained tiny model ends every answer at once; this much LoRA makes it write
    tiny_llm_recipe["train"].update(epochs=4, learning_rate=3e-2, early_stopping=None)
    train(load_recipe(tiny_llm_recipe))
    run = Path(tiny_llm_recipe["output_dir"])
    prompts = ["football goal", "pizza cake soup", "laptop wifi"]
    expected = [row["response"] for row in predicted(run, prompts, tmp_path)]
    assert any(expected)  # something to compare
    merged = export(run, tmp_path / "merged", "--merge")
    adapter = export(run, tmp_path / "adapter")
    for folder in (merged, adapter):
        assert run_card(folder, f"prompts = {prompts!r}", tmp_path)["answers"] == expected
    generation = json.loads((merged / "generation_config.json").read_text(encoding="utf-8"))
    assert generation["do_sample"] is False and generation["max_new_tokens"] == 8
    assert front_matter(merged)["pipeline_tag"] == "text-generation"
    assert front_matter(adapter)["library_name"] == "peft"
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["base_model_name_or_path"] == tiny_llm_recipe["model"]  # a local folder


def test_an_adapter_of_a_builtin_names_its_hub_base(
    tiny_llm_recipe: dict, tmp_path: Path, monkeypatch
) -> None:
    """The tiny LLM stands in for builtin:smollm2: the export names the Hub id, never the
    cache folder, and says the built-in weights are not the Hub's."""
    import tunesmith.export

    smollm2 = model_origin("builtin:smollm2")
    monkeypatch.setattr(tunesmith.export, "model_origin", lambda reference: smollm2)
    tiny_llm_recipe["guards"] = {"forgetting": None}
    tiny_llm_recipe["train"]["epochs"] = 1
    train(load_recipe(tiny_llm_recipe))
    folder = export(Path(tiny_llm_recipe["output_dir"]), tmp_path / "adapter")
    config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    meta = front_matter(folder)
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert meta["license"] == "apache-2.0"
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "not the Hub's" in card and "Q4_1" in card
    assert 'base = "HuggingFaceTB/SmolLM2-135M-Instruct"' in loader_code(card)
    # the run folder keeps its own adapter as it was: tunesmith loads the base from the recipe
    own = Path(tiny_llm_recipe["output_dir"]) / "adapter" / "adapter_config.json"
    saved = json.loads(own.read_text(encoding="utf-8"))
    assert saved["base_model_name_or_path"] != config["base_model_name_or_path"]


def test_builtins_name_their_hub_ids_and_cache_folders_theirs(tmp_path: Path) -> None:
    assert model_origin("builtin:minilm").hub_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert model_origin("builtin:minilm").note == ""  # the package holds the Hub's files
    assert model_origin("builtin:smollm2").hub_id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "dequantized" in model_origin("builtin:smollm2").note
    assert model_origin("builtin:efficientnet-lite0").hub_id is None
    assert all(b.license for b in BUILTINS.values())
    snapshot = tmp_path / "hub" / "models--google--flan-t5-small" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "README.md").write_text("---\nlicense: apache-2.0\n---\n# FLAN-T5\n")
    origin = model_origin(str(snapshot))
    assert origin == ModelOrigin(str(snapshot), "google/flan-t5-small", "", "apache-2.0")
    assert model_origin(str(tmp_path)).hub_id is None


# --- seq2seq ------------------------------------------------------------------------------


def test_seq2seq_export_answers_as_predict_does(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    model = build_t5(tmp_path_factory.mktemp("tiny-t5"))
    data = tmp_path / "pairs.jsonl"
    pd.DataFrame(make_pairs(150)).to_json(data, orient="records", lines=True)
    recipe = {
        "task": "seq2seq",
        "model": str(model),
        "data": {"train": str(data)},
        "method": {"name": "lora", "r": 8, "target_modules": ["q", "k", "v", "o", "wi", "wo"]},
        "preprocess": {"max_length": 32},
        "train": {"epochs": 6, "batch_size": 16, "learning_rate": 2e-2, "precision": "fp32"},
        "generation": {"max_examples": 8, "samples": 2, "max_new_tokens": 12},
        "guards": {"forgetting": None},
        "output_dir": str(tmp_path / "run"),
    }
    train(load_recipe(recipe))
    run = Path(recipe["output_dir"])
    texts = ["red gold grey", "cow fox bee", "six one eight"]
    expected = [row["response"] for row in predicted(run, texts, tmp_path)]
    assert any(expected)
    folder = export(run, tmp_path / "merged", "--merge")
    assert run_card(folder, f"texts = {texts!r}", tmp_path)["answers"] == expected
    assert front_matter(folder)["pipeline_tag"] == "text2text-generation"


# --- image classification -----------------------------------------------------------------


def odd_images(folder: Path) -> list[str]:
    """Images of every shape and mode predict reads: not square, RGBA, grey, palette, JPEG."""
    folder.mkdir()
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 255, size=(25, 40, 3), dtype=np.uint8)
    pixels[..., 0] = 210  # reddish
    images = {
        "wide.png": Image.fromarray(pixels),
        "tall.png": Image.fromarray(pixels.transpose(1, 0, 2).copy()),
        "clear.png": Image.fromarray(np.dstack([pixels, pixels[..., :1]])),
        "grey.png": Image.fromarray(pixels[..., 1]),
        "palette.png": Image.fromarray(pixels).convert("P"),
        "photo.jpg": Image.fromarray(pixels),
    }
    paths = []
    for name, image in images.items():
        image.save(folder / name)
        paths.append(str(folder / name))
    return paths


def test_image_export_loads_with_the_auto_classes(tiny_image_recipe: dict, tmp_path: Path):
    tiny_image_recipe["method"] = {"name": "lora"}
    train(load_recipe(tiny_image_recipe))
    run = Path(tiny_image_recipe["output_dir"])
    refused = tmp_path / "unmerged"
    assert main(["export", str(run), "--output", str(refused)]) == 2  # image adapters: --merge
    assert not refused.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export-")]
    folder = export(run, tmp_path / "exported", "--merge")
    assert {"config.json", "preprocessor_config.json", "model.safetensors"} <= {
        p.name for p in folder.iterdir()
    }
    paths = odd_images(tmp_path / "inputs")
    card = run_card(folder, f"images = {paths!r}", tmp_path)
    rows = predicted(run, paths, tmp_path)
    assert_same_probabilities(card, rows, label_names(folder))
    assert card["labels"] == [row["label"] for row in rows]
    assert front_matter(folder)["pipeline_tag"] == "image-classification"


def test_the_image_processor_gives_the_run_transforms_pixels(tmp_path: Path) -> None:
    from tunesmith.data.image_preprocess import ImageTransform
    from tunesmith.data.images import open_image
    from tunesmith.models.portable.image_processing_tunesmith_vision import (
        TunesmithVisionImageProcessor,
    )

    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    shared = {"size": 24, "crop_fraction": 0.8, "denoise": "median", "denoise_size": 3}
    transform = ImageTransform(mean=mean, std=std, **shared)
    processor = TunesmithVisionImageProcessor(image_mean=list(mean), image_std=list(std), **shared)
    for path in odd_images(tmp_path / "inputs"):
        expected = transform(open_image(path)).numpy()
        got = processor(path, return_tensors="np")["pixel_values"][0]
        assert np.array_equal(got, expected), path


@pytest.mark.slow
def test_the_builtin_efficientnet_exports_with_the_same_logits(tmp_path: Path) -> None:
    """The portable EfficientNet-Lite0 (models/portable/modeling_tunesmith_vision.py) against
    tunesmith's, on the real weights, at two image sizes."""
    from transformers import AutoModelForImageClassification

    from tunesmith.models.resolve import resolve_model
    from tunesmith.models.vision import EFFICIENTNET_LITE0, load_vision_classifier

    torch.manual_seed(0)
    model = load_vision_classifier(
        resolve_model("builtin:efficientnet-lite0"), ["a", "b", "c"], EFFICIENTNET_LITE0
    ).eval()
    model.save_portable(tmp_path / "exported", {"size": 224})
    portable = AutoModelForImageClassification.from_pretrained(
        tmp_path / "exported", trust_remote_code=True
    ).eval()
    for side in (224, 97):
        pixels = torch.randn(2, 3, side, side)
        with torch.no_grad():
            expected = model(pixel_values=pixels).logits
            got = portable(pixel_values=pixels).logits
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
