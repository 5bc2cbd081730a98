"""seq2seq end to end on a tiny T5 and a tiny BART built from configs: pairs are read from
columns or alpaca rows, every registered method trains both, full fine-tuning learns to write
the targets, and a run predicts, evaluates and exports to a plain transformers model that
writes the same text. Models of another kind and bad data are refused with exit 2."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from tunesmith.cli import main
from tunesmith.inference import evaluate_run
from tunesmith.methods import get_method
from tunesmith.recipe import load_recipe
from tunesmith.run import train
from tunesmith.tasks.registry import get_task
from tunesmith.tasks.seq2seq import model as seq2seq
from tunesmith.tasks.seq2seq.data import load_seq2seq, read_sources
from tunesmith.tasks.seq2seq.family import mark_seq2seq
from tunesmith.tasks.seq2seq.task import IGNORE, Encoded, Seq2SeqTask

CPU = torch.device("cpu")
GROUPS = {
    "colour": ["red", "green", "blue", "black", "white", "pink", "gold", "grey"],
    "animal": ["cat", "dog", "fox", "owl", "bee", "ant", "cow", "pig"],
    "number": ["one", "two", "three", "four", "five", "six", "seven", "eight"],
}
ANSWERS = {"colour": "red green blue", "animal": "cat dog", "number": "one two three four"}
"""Three words of a group in, the group's answer out: learnt by a tiny model in seconds."""


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Models this small run fastest on one thread: with two, every tiny kernel waits on the
    other thread (ten times slower on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_pairs(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < count:
        group = rng.choice(list(GROUPS))
        source = " ".join(rng.sample(GROUPS[group], 3))
        if source not in seen:  # no duplicates, no leakage: the data check stays quiet
            seen.add(source)
            rows.append({"input": source, "target": ANSWERS[group]})
    return rows


def _tokenizer(folder: Path):
    """A word-level fast tokenizer that ends every text with </s>, as T5's does."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<unk>", "<s>"]
    words = [w for group in GROUPS.values() for w in group] + [".", ",", "?"]
    vocab = {token: i for i, token in enumerate(specials + words)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", vocab["</s>"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        bos_token="<s>",
    )
    tokenizer.save_pretrained(folder)
    return tokenizer


def build_t5(folder: Path) -> Path:
    """A 2-layer T5 (d_model 32) with the word-level tokenizer."""
    from transformers import T5Config, T5ForConditionalGeneration

    vocab = len(_tokenizer(folder))
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=vocab,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    T5ForConditionalGeneration(config).save_pretrained(folder)
    return folder


def build_bart(folder: Path) -> Path:
    """A 2+2-layer BART (d_model 32) with the word-level tokenizer."""
    from transformers import BartConfig, BartForConditionalGeneration

    vocab = len(_tokenizer(folder))
    torch.manual_seed(0)
    config = BartConfig(
        vocab_size=vocab,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=64,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=3,
        decoder_start_token_id=1,  # BART starts the decoder from </s>
        forced_bos_token_id=None,
        forced_eos_token_id=None,
        init_std=0.1,  # from BART's 0.02 a model this small learns too slowly for a test
    )
    BartForConditionalGeneration(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_t5(tmp_path_factory.mktemp("tiny-t5"))


@pytest.fixture(scope="module")
def tiny_bart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bart(tmp_path_factory.mktemp("tiny-bart"))


@pytest.fixture(params=["t5", "bart"])
def tiny_seq2seq(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue(f"tiny_{request.param}")


@pytest.fixture
def pairs_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.jsonl"
    pd.DataFrame(make_pairs(150)).to_json(path, orient="records", lines=True)
    return path


def _recipe(model: Path, train_file: Path, output: Path, **sections: dict) -> dict:
    recipe = {
        "task": "seq2seq",
        "model": str(model),
        "data": {"train": str(train_file)},
        "method": {"name": "full"},
        "preprocess": {"max_length": 32},
        "train": {
            "epochs": 8,
            "batch_size": 16,
            "learning_rate": 1e-2,
            "precision": "fp32",
            "early_stopping": None,
        },
        "generation": {"max_examples": 16, "samples": 2},
        "output_dir": str(output),
    }
    for key, value in sections.items():
        recipe[key] = {**recipe.get(key, {}), **value} if isinstance(value, dict) else value
    return recipe


# --- data --------------------------------------------------------------------------------


def test_pairs_come_from_input_target_columns_or_alpaca_rows(tmp_path: Path) -> None:
    columns = tmp_path / "pairs.csv"
    pd.DataFrame(make_pairs(20)).to_csv(columns, index=False)
    alpaca = tmp_path / "alpaca.jsonl"
    rows = [
        {"instruction": "name it", "input": r["input"], "output": r["target"]}
        for r in make_pairs(20)
    ]
    pd.DataFrame(rows).to_json(alpaca, orient="records", lines=True)
    named = tmp_path / "named.parquet"
    pd.DataFrame([{"q": r["input"], "a": r["target"]} for r in make_pairs(20)]).to_parquet(named)

    plain = load_recipe({"task": "seq2seq", "data": {"train": str(columns)}}).data
    splits = load_seq2seq(plain, 0)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (14, 2, 4)
    assert splits.format == "input-target" and splits.train.pairs[0].target in ANSWERS.values()
    data = load_recipe({"task": "seq2seq", "data": {"train": str(alpaca)}}).data
    first = load_seq2seq(data, 0).train.pairs[0]
    assert first.source.startswith("name it\n\n") and first.target in ANSWERS.values()
    data = load_recipe(
        {
            "task": "seq2seq",
            "data": {"train": str(named), "prompt_column": "q", "response_column": "a"},
        }
    ).data
    assert len(load_seq2seq(data, 0).train) == 14
    # predict reads texts, or the input column of a file (any layout training reads)
    sources = read_sources(["red cat", str(columns), str(alpaca)], plain, None)
    assert sources[:2] == ["red cat", make_pairs(20)[0]["input"]] and len(sources) == 41
    assert sources[21] == f"name it\n\n{rows[0]['input']}"


@pytest.mark.parametrize(
    ("rows", "options", "expected"),
    [
        ([{"input": "red", "label": "x"}] * 12, {}, "no column 'target'"),
        ([{"input": "red", "target": ["a"]}] * 12, {}, "row 0"),
        ([{"input": "red", "target": ""}, *make_pairs(12)], {}, "data.drop_empty"),
        (make_pairs(12), {"format": "chat"}, "does not fit seq2seq"),
    ],
    ids=["missing-column", "not-text", "empty-target", "chat-format"],
)
def test_bad_data_exits_2_naming_the_row_or_key(
    tiny_t5: Path, tmp_path: Path, capsys, rows: list, options: dict, expected: str
) -> None:
    path = tmp_path / "bad.jsonl"
    pd.DataFrame(rows).to_json(path, orient="records", lines=True)
    recipe = tmp_path / "bad.yaml"
    settings = _recipe(tiny_t5, path, tmp_path / "run", data=options)
    recipe.write_text(json.dumps(settings))
    assert main(["train", str(recipe)]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_model_of_another_kind_exits_2_naming_the_tasks_it_fits(
    tiny_model_dir: Path, pairs_jsonl: Path, tmp_path: Path, capsys
) -> None:
    recipe = tmp_path / "bert.yaml"
    recipe.write_text(json.dumps(_recipe(tiny_model_dir, pairs_jsonl, tmp_path / "run")))
    assert main(["train", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "not an encoder-decoder" in err and "text-classification" in err


def test_the_default_model_is_refused_clearly_when_it_is_not_cached(
    pairs_jsonl: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "no-cache"))
    recipe = tmp_path / "default.yaml"
    settings = _recipe(Path("x"), pairs_jsonl, tmp_path / "run")
    del settings["model"]
    recipe.write_text(json.dumps(settings))
    assert main(["train", str(recipe)]) == 2
    assert get_task("seq2seq").default_model in capsys.readouterr().err


def test_the_data_check_finds_pair_problems(tiny_t5: Path, tmp_path: Path, capsys) -> None:
    rows = make_pairs(40)
    test = tmp_path / "test.jsonl"
    pd.DataFrame(rows[30:]).to_json(test, orient="records", lines=True)
    train_rows = [*rows[:30], rows[0], rows[31], {"input": "red " * 40, "target": "cat dog"}]
    train_rows.append({"input": rows[1]["input"], "target": "one two"})  # a second answer
    path = tmp_path / "train.jsonl"
    pd.DataFrame(train_rows).to_json(path, orient="records", lines=True)
    recipe = tmp_path / "check.yaml"
    recipe.write_text(
        json.dumps(_recipe(tiny_t5, path, tmp_path / "run", data={"test": str(test)}))
    )
    assert main(["data", "check", str(recipe), "--output", str(tmp_path / "q")]) == 1
    report = json.loads((tmp_path / "q" / "quality.json").read_text())
    found = {f["check"] for f in report["findings"]}
    assert {"exact_duplicates", "leakage", "truncated", "conflicting_responses"} <= found
    leak = next(f for f in report["findings"] if f["check"] == "leakage")
    assert leak["severity"] == "error" and 31 in leak["rows"]


# --- training ----------------------------------------------------------------------------


def test_full_fine_tuning_learns_to_write_the_targets(
    tiny_seq2seq: Path, pairs_jsonl: Path, tmp_path: Path
) -> None:
    output = tmp_path / "run"
    metrics = train(load_recipe(_recipe(tiny_seq2seq, pairs_jsonl, output)))
    assert metrics["base"]["exact_match"] < 0.1  # a random model writes nothing useful
    assert metrics["fine_tuned"]["exact_match"] > 0.8  # measured: 1.0 for both
    assert metrics["fine_tuned"]["perplexity"] < metrics["base"]["perplexity"] / 10
    assert metrics["baseline"]["description"].startswith("nearest training input")
    assert metrics["forgetting"]["measure"] == "representation_drift"  # the default guard
    generations = [json.loads(line) for line in (output / "generations.jsonl").open()]
    assert len(generations) == 16
    assert set(generations[0]) == {"prompt", "reference", "base", "fine_tuned"}
    assert (output / "model" / "config.json").is_file() and (output / "report.html").is_file()


METHODS = [
    {"name": "lora", "r": 4},
    {"name": "dora", "r": 4},
    {"name": "ia3"},
    {"name": "prefix", "num_virtual_tokens": 4},
    {"name": "prompt", "num_virtual_tokens": 4},
    {"name": "ptuning", "num_virtual_tokens": 4, "encoder_hidden_size": 16},
    {"name": "selective", "layers": 1},
]


def test_every_registered_method_is_tested() -> None:
    tested = {"full"} | {m["name"] for m in METHODS}
    assert set(get_task("seq2seq").methods) == tested


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m["name"])
def test_every_method_trains_t5_and_bart(
    tiny_seq2seq: Path, pairs_jsonl: Path, tmp_path: Path, method: dict
) -> None:
    output = tmp_path / "run"
    rate = 5e-2 if method["name"] in ("prefix", "prompt", "ptuning") else 1e-2
    recipe = _recipe(
        tiny_seq2seq,
        pairs_jsonl,
        output,
        method=method,
        train={"epochs": 2, "learning_rate": rate},
        generation={"max_examples": 2},
        guards={"forgetting": None, "data_quality": "off"},
    )
    metrics = train(load_recipe(recipe))
    assert metrics["fine_tuned"]["loss"] < metrics["base"]["loss"]
    assert 0 < metrics["params"]["trainable"] < metrics["params"]["total"]
    if method["name"] != "selective":
        config = json.loads((output / "adapter" / "adapter_config.json").read_text())
        assert config["task_type"] == "SEQ_2_SEQ_LM"  # loadable as peft's seq2seq kind
    # the saved run, loaded back, is the model that was scored
    reloaded = evaluate_run(output)
    assert reloaded["loss"] == pytest.approx(metrics["fine_tuned"]["loss"], rel=1e-4)


def test_a_bf16_lora_run_trains_on_frozen_weights_stored_in_bf16(
    tiny_seq2seq: Path, pairs_jsonl: Path, tmp_path: Path
) -> None:
    """Under bf16 an encoder-decoder's frozen weights are stored in bf16 too (fused LoRA
    layers, bf16 residual streams): it learns, and the saved run scores as trained."""
    output = tmp_path / "run"
    recipe = _recipe(
        tiny_seq2seq,
        pairs_jsonl,
        output,
        method={"name": "lora"},
        train={"epochs": 2, "precision": "bf16"},
        generation={"max_examples": 2},
        guards={"forgetting": None, "data_quality": "off"},
    )
    metrics = train(load_recipe(recipe))
    assert metrics["precision"] == "bf16"
    assert metrics["fine_tuned"]["loss"] < metrics["base"]["loss"]
    reloaded = evaluate_run(output)
    assert reloaded["loss"] == pytest.approx(metrics["fine_tuned"]["loss"], rel=2e-2)


@pytest.mark.parametrize("name", ["prefix", "prompt"])
def test_virtual_tokens_generate_and_load_with_plain_peft(
    tiny_seq2seq: Path, tmp_path: Path, name: str
) -> None:
    """The learned tokens reach generation, and peft's own seq2seq wrapper, loading the saved
    adapter, computes what tunesmith computes: the same text for prompt tuning, the same
    logits for a prefix (peft 0.21's seq2seq generate loses a prefix on transformers 5)."""
    from peft import PeftModel

    tokenizer = AutoTokenizer.from_pretrained(tiny_seq2seq)
    recipe = load_recipe({"task": "seq2seq", "data": {"train": "x"}, "method": {"name": name}})
    recipe.method.num_virtual_tokens = 4
    torch.manual_seed(1)
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_seq2seq)
    tuned = get_method(name).apply(model, recipe.method)
    with torch.no_grad():
        for parameter in tuned.prompt_encoder.parameters():
            parameter.normal_(0, 3.0)
    # a random model ends at once; barred from ending, it writes what its weights make of it
    never_stop = tokenizer.all_special_ids
    model.generation_config.suppress_tokens = never_stop
    task = Seq2SeqTask.from_recipe(_empty_splits(), tokenizer, tuned, recipe, CPU, None)
    sources = [" ".join(words[i : i + 3]) for words in GROUPS.values() for i in (0, 2, 4)]
    with_tokens = task.generate(tuned, sources, 6)
    plain = AutoModelForSeq2SeqLM.from_pretrained(tiny_seq2seq)
    plain.generation_config.suppress_tokens = never_stop
    assert all(with_tokens) and with_tokens != task.generate(plain, sources, 6)

    mark_seq2seq(tuned)
    tuned.save_pretrained(tmp_path / "adapter")
    loaded = PeftModel.from_pretrained(
        AutoModelForSeq2SeqLM.from_pretrained(tiny_seq2seq), tmp_path / "adapter"
    ).eval()
    assert type(loaded).__name__ == "PeftModelForSeq2SeqLM"
    encoded = tokenizer(sources, padding=True, return_tensors="pt")
    with torch.no_grad():
        if name == "prompt":
            ids = loaded.generate(
                **encoded,
                max_new_tokens=6,
                do_sample=False,
                num_beams=1,
                suppress_tokens=never_stop,
            )
            texts = [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
            assert texts == with_tokens
        else:
            batch = task.collate([Encoded(ids, ids) for ids in task.encode_sources(sources)[0]])
            ours = seq2seq.forward(tuned.eval(), batch.inputs).logits
            theirs = loaded(**batch.inputs).logits
            torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def _empty_splits():
    from tunesmith.tasks.seq2seq.data import PairSplit, PairSplits

    empty = PairSplit([], "")
    return PairSplits(empty, empty, empty, "input-target")


def test_targets_are_teacher_forced_behind_the_start_token(tiny_bart: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_bart)
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_bart)
    from tunesmith.tasks.seq2seq.data import Pair, PairSplit, PairSplits

    split = PairSplit([Pair(0, "red cat", "cat dog"), Pair(1, "one", "one two three")], "m")
    task = Seq2SeqTask(PairSplits(split, split, split, "input-target"), tokenizer, 32, 1, CPU, None)
    batch = task.batch("train", [0, 1])
    labels, decoder = batch.targets, batch.inputs["decoder_input_ids"]
    eos = tokenizer.eos_token_id
    assert labels[1].tolist() == [*tokenizer("one two three")["input_ids"]]
    assert labels[1, -1] == eos and labels[0, -1] == IGNORE  # padding is never scored
    assert decoder[:, 0].tolist() == [1, 1] and decoder[1, 1:].tolist() == labels[1, :-1].tolist()
    assert batch.items == int((labels != IGNORE).sum()) and batch.examples == 2
    with torch.no_grad():
        summed = task.loss_sum(model.eval(), batch)
        mean = model(**batch.inputs, labels=labels).loss
    torch.testing.assert_close(summed / batch.items, mean, rtol=1e-4, atol=1e-4)


# --- a finished run ----------------------------------------------------------------------


@pytest.fixture
def lora_run(tiny_t5: Path, pairs_jsonl: Path, tmp_path: Path) -> Path:
    output = tmp_path / "lora-run"
    recipe = _recipe(
        tiny_t5,
        pairs_jsonl,
        output,
        method={"name": "lora", "r": 8, "target_modules": ["q", "k", "v", "o", "wi", "wo"]},
        train={"epochs": 8, "learning_rate": 2e-2},
        guards={"forgetting": None},
    )
    metrics = train(load_recipe(recipe))
    assert metrics["fine_tuned"]["loss"] < metrics["base"]["loss"] / 2
    return output


def test_a_run_predicts_evaluates_and_exports_the_same_text(
    lora_run: Path, tmp_path: Path, capsys
) -> None:
    inputs = tmp_path / "inputs.txt"
    inputs.write_text("red gold grey\ncow fox bee\nsix one eight\n")
    out = tmp_path / "answers.jsonl"
    assert main(["predict", str(lora_run), str(inputs), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["prompt"] for r in rows] == ["red gold grey", "cow fox bee", "six one eight"]
    capsys.readouterr()
    assert main(["eval", str(lora_run), "--json"]) == 0
    printed = capsys.readouterr().out
    scores = json.loads(printed[printed.index("{") :])
    assert scores["examples"] == 30 and {"rouge_l", "exact_match", "perplexity"} <= set(scores)

    exported = tmp_path / "exported"
    adapter_only = tmp_path / "adapter-only"  # without --merge: the adapter, PEFT format
    assert main(["export", str(lora_run), "--output", str(adapter_only)]) == 0
    assert (adapter_only / "adapter_config.json").is_file()
    assert main(["export", str(lora_run), "--merge", "--output", str(exported)]) == 0
    model = AutoModelForSeq2SeqLM.from_pretrained(exported).eval()
    tokenizer = AutoTokenizer.from_pretrained(exported)
    encoded = tokenizer([r["prompt"] for r in rows], padding=True, return_tensors="pt")
    with torch.no_grad():
        ids = model.generate(**encoded, max_new_tokens=16, do_sample=False, num_beams=1)
    written = [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
    assert written == [r["response"] for r in rows]
    assert any(written)  # the tuned model writes something
