"""causal-lm end to end on a tiny Llama: every method trains, the chat template and response
masks are right, packing keeps examples apart, predict and export work."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunesmith.cli import main
from tunesmith.data.causal import LMExample, LMSplit, LMSplits
from tunesmith.recipe import load_recipe
from tunesmith.run import train
from tunesmith.tasks.causal_lm.task import IGNORE, CausalLMTask

CPU = torch.device("cpu")


def _task(tokenizer, examples: list[LMExample], **options) -> CausalLMTask:
    split = LMSplit(examples, "memory")
    fmt = "text" if examples[0].messages is None else "chat"
    return CausalLMTask(LMSplits(split, split, split, fmt), tokenizer, 64, CPU, None, **options)


def _chat(question: str, answer: str) -> LMExample:
    return LMExample(
        row=0,
        messages=[{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
    )


def test_only_the_answer_and_its_end_token_are_scored(tiny_llm_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    task = _task(tokenizer, [_chat("football match", "the team won the match")])
    row = task.rows["train"][0]
    scored = tokenizer.convert_ids_to_tokens([t for t in row.targets if t != IGNORE])
    assert "".join(scored[:9]) == "the team won the match"
    assert "<|im_end|>" in scored and "football" not in scored
    everything = _task(tokenizer, [_chat("football match", "the team")], loss_on="all")
    targets = [t for t in everything.rows["train"][0].targets if t != IGNORE]
    assert "football" in tokenizer.convert_ids_to_tokens(targets)


def test_packed_rows_give_the_same_loss_as_separate_rows(tiny_llm_dir: Path) -> None:
    """Position ids restarting per example keep attention inside each example."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llm_dir).eval()
    long_question = "football match goal team league coach score tennis " * 3
    examples = [
        _chat(long_question, "the team won the match and the league"),
        _chat("pizza", "bake"),
        _chat("wifi", "restart"),
    ]
    packed = _task(tokenizer, examples, pack=True)
    separate = _task(tokenizer, examples, pack=False)
    packed_batch = packed.batch("train", [0, 1, 2])
    separate_batch = separate.batch("train", [0, 1, 2])
    # the two short examples share the row beside the long one
    assert packed_batch.inputs["input_ids"].shape[0] == 2
    assert "position_ids" in packed_batch.inputs
    assert separate_batch.inputs["input_ids"].shape[0] == 3
    with torch.no_grad():
        a = packed.loss_sum(model, packed_batch)
        b = separate.loss_sum(model, separate_batch)
    assert packed_batch.items == separate_batch.items
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_similar_lengths_are_padded_not_packed(tiny_llm_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    examples = [_chat("football match", "the team won"), _chat("pizza soup", "bake the bread")]
    batch = _task(tokenizer, examples, pack=True).batch("train", [0, 1])
    assert batch.inputs["input_ids"].shape[0] == 2 and "attention_mask" in batch.inputs


def test_raw_text_is_chunked_with_unscored_overlap(tiny_llm_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    text = " ".join(["football match goal team"] * 30)  # 120 words
    task = _task(tokenizer, [LMExample(row=0, text=text)], chunk_overlap=16)
    rows = task.rows["train"]
    assert len(rows) >= 2 and all(len(r.ids) <= 64 for r in rows)
    assert rows[1].ids[:16] == rows[0].ids[48:64]  # 16 tokens of context carried over
    assert all(t == IGNORE for t in rows[1].targets[:15])
    total_scored = sum(r.scored for r in rows)
    # every token but the first is scored exactly once: the text plus bos and eos, minus one
    assert total_scored == len(tokenizer(text)["input_ids"]) + 2 - 1


@pytest.mark.parametrize(
    "method",
    [
        {"name": "lora", "r": 4},
        {"name": "dora", "r": 4},
        {"name": "ia3"},
        {"name": "prefix", "num_virtual_tokens": 4},
        {"name": "prompt", "num_virtual_tokens": 4},
        {"name": "ptuning", "num_virtual_tokens": 4, "encoder_hidden_size": 16},
        {"name": "adapter", "adapter_len": 4, "adapter_layers": 2},
        {"name": "selective", "layers": 1},
        {"name": "full"},
    ],
    ids=lambda m: m["name"],
)
def test_every_method_trains_and_lowers_the_loss(tiny_llm_recipe: dict, method: dict) -> None:
    tiny_llm_recipe["method"] = method
    tiny_llm_recipe["train"]["epochs"] = 3
    if method["name"] in ("prefix", "prompt", "ptuning", "adapter"):
        tiny_llm_recipe["train"]["learning_rate"] = 5e-2  # a few virtual tokens move slowly
    tiny_llm_recipe["train"]["early_stopping"] = None
    metrics = train(load_recipe(tiny_llm_recipe))
    output = Path(tiny_llm_recipe["output_dir"])
    assert metrics["fine_tuned"]["loss"] < metrics["base"]["loss"]
    assert 0 < metrics["params"]["trainable"] <= metrics["params"]["total"]
    assert {"rouge_l", "exact_match", "token_f1", "perplexity"} <= set(metrics["fine_tuned"])
    assert len(metrics["samples"]) == 2
    assert len((output / "generations.jsonl").read_text().splitlines()) == 6
    assert (output / ("model" if method["name"] in ("full", "selective") else "adapter")).is_dir()


def test_generated_answers_are_learned(tiny_llm_recipe: dict) -> None:
    """The answers follow from the question's topic: after training, generation finds them
    (full fine-tuning: a random tiny model has nothing for an adapter to build on)."""
    tiny_llm_recipe["method"] = {"name": "full"}
    tiny_llm_recipe["train"].update(epochs=40, early_stopping=None, learning_rate=2e-2)
    tiny_llm_recipe["generation"]["max_new_tokens"] = 16
    metrics = train(load_recipe(tiny_llm_recipe))
    assert metrics["fine_tuned"]["rouge_l"] > 0.5  # 0.68 measured; the untrained model: 0
    assert metrics["fine_tuned"]["rouge_l"] > metrics["base"]["rouge_l"] + 0.4
    assert metrics["fine_tuned"]["perplexity"] < metrics["base"]["perplexity"] / 10


@pytest.fixture
def trained_llm(tiny_llm_recipe: dict) -> Path:
    tiny_llm_recipe["train"].update(epochs=4, learning_rate=3e-2)
    train(load_recipe(tiny_llm_recipe))
    return Path(tiny_llm_recipe["output_dir"])


def test_predict_generates_with_the_chat_template(trained_llm: Path, tmp_path: Path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("football goal\npizza cake\n")
    out = tmp_path / "answers.jsonl"
    assert main(["predict", str(trained_llm), str(prompts), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["prompt"] for r in rows] == ["football goal", "pizza cake"]
    assert all(isinstance(r["response"], str) for r in rows)
    capsys.readouterr()
    assert main(["eval", str(trained_llm), "--json"]) == 0
    printed = capsys.readouterr().out
    scores = json.loads(printed[printed.index("{") :])
    assert scores["perplexity"] > 1 and 0 <= scores["rouge_l"] <= 1
    assert scores["examples"] == 12  # the run's own test split (20% of 60 rows)


def test_export_merges_the_adapter_with_the_same_logits(trained_llm: Path, tmp_path: Path):
    from peft import PeftModel

    exported = tmp_path / "exported"
    adapter_only = tmp_path / "adapter-only"  # without --merge: the adapter, PEFT format
    assert main(["export", str(trained_llm), "--output", str(adapter_only)]) == 0
    assert (adapter_only / "adapter_config.json").is_file()
    assert main(["export", str(trained_llm), "--merge", "--output", str(exported)]) == 0
    recipe = load_recipe(trained_llm / "recipe.yaml")
    base = AutoModelForCausalLM.from_pretrained(recipe.model).eval()
    adapted = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(recipe.model), trained_llm / "adapter"
    ).eval()
    merged = AutoModelForCausalLM.from_pretrained(exported).eval()
    tokenizer = AutoTokenizer.from_pretrained(exported)
    assert tokenizer.chat_template  # shipped with the model
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "football goal"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    with torch.no_grad():
        expected = adapted(input_ids=ids).logits
        got = merged(input_ids=ids).logits
        untouched = base(input_ids=ids).logits
    assert not torch.allclose(expected, untouched, atol=1e-3)  # the adapter changed something
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_prefix_tuning_generates_with_its_prefix(tiny_llm_dir: Path) -> None:
    """Guards a peft/transformers mismatch in which generate() silently drops the prefix."""
    from peft import PrefixTuningConfig, TaskType, get_peft_model

    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llm_dir)
    tuned = get_peft_model(
        model, PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=4)
    )
    with torch.no_grad():
        for parameter in tuned.prompt_encoder.parameters():
            parameter.normal_(0, 3.0)
    task = _task(tokenizer, [_chat("football match", "the team")])
    prompts = [[{"role": "user", "content": q}] for q in ("football goal", "pizza cake soup")]
    with_prefix = task.generate(tuned, prompts)
    without = task.generate(AutoModelForCausalLM.from_pretrained(tiny_llm_dir), prompts)
    assert with_prefix != without


def test_scoring_only_the_answer_positions_gives_the_full_logits_loss(tiny_llm_dir: Path):
    from tunesmith.tasks.causal_lm import task as causal_lm

    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llm_dir).eval()
    task = _task(tokenizer, [_chat("football match", "the team won"), _chat("pizza", "bake")])
    batch = task.batch("train", [0, 1])
    assert causal_lm.scored_positions_model(model) is model
    with torch.no_grad():
        fast = task.loss_sum(model, batch)
        logits = model(**batch.inputs, use_cache=False).logits
        scored = batch.targets != IGNORE
        full = torch.nn.functional.cross_entropy(
            logits[scored], batch.targets[scored], reduction="sum"
        )
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-5)


def test_gradient_checkpointing_trains_the_same_model(tiny_llm_recipe: dict, tmp_path: Path):
    """Recomputing activations in the backward pass saves memory, not accuracy."""
    tiny_llm_recipe["train"].update(max_steps=3, eval_every=3, early_stopping=None)
    tiny_llm_recipe["generation"]["max_examples"] = 1
    plain = train(load_recipe(tiny_llm_recipe))
    tiny_llm_recipe["train"]["gradient_checkpointing"] = True
    tiny_llm_recipe["output_dir"] = str(tmp_path / "checkpointed")
    checkpointed = train(load_recipe(tiny_llm_recipe))
    assert checkpointed["fine_tuned"]["loss"] == pytest.approx(plain["fine_tuned"]["loss"], 1e-4)


def test_the_base_models_answers_are_cached_between_runs(
    tiny_llm_recipe: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A second run on the same test split reads the base model's scores and answers back
    instead of generating them again; changing what they depend on misses the cache."""
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    tiny_llm_recipe["train"].update(max_steps=2)
    first = train(load_recipe(tiny_llm_recipe))
    assert "from the cache" not in capsys.readouterr().out
    assert len(list((tmp_path / "cache" / "base-scores").glob("*.json"))) == 1

    tiny_llm_recipe["output_dir"] = str(tmp_path / "second")
    second = train(load_recipe(tiny_llm_recipe))
    assert "Base model's test scores and answers: from the cache" in capsys.readouterr().out
    assert second["base"] == first["base"]
    rows = Path(tiny_llm_recipe["output_dir"], "generations.jsonl").read_text().splitlines()
    assert len(rows) == first["base"]["generated"]

    tiny_llm_recipe["output_dir"] = str(tmp_path / "third")
    tiny_llm_recipe["generation"]["max_new_tokens"] = 5
    train(load_recipe(tiny_llm_recipe))
    assert "from the cache" not in capsys.readouterr().out
    assert len(list((tmp_path / "cache" / "base-scores").glob("*.json"))) == 2


def _lora_model(folder: Path, **options):
    """The tiny Llama with LoRA on every Linear, its B matrices random (a trained look)."""
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=4, target_modules="all-linear", **options)
    tuned = get_peft_model(AutoModelForCausalLM.from_pretrained(folder), config).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in tuned.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    return tuned


def test_answers_through_merged_lora_weights_are_the_adapters_answers(
    tiny_llm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tunesmith.methods.merged_lora import lora_merged, mergeable_lora_layers
    from tunesmith.tasks.causal_lm import task as causal_lm

    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    tuned = _lora_model(tiny_llm_dir)
    assert len(mergeable_lora_layers(tuned)) == 2 * 7  # q k v o gate up down, 2 layers
    frozen = {n: p for n, p in tuned.named_parameters() if "base_layer" in n}
    before = {n: p.detach().clone() for n, p in frozen.items()}
    ids = torch.tensor([[5, 9, 12, 7, 20, 3]])
    with torch.no_grad():
        separate = tuned(input_ids=ids).logits
        with lora_merged(tuned) as merged:
            folded = merged(input_ids=ids).logits
            assert all(p is not frozen[n] for n, p in merged.named_parameters() if n in frozen)
        with tuned.disable_adapter():
            untuned = tuned(input_ids=ids).logits
    torch.testing.assert_close(folded, separate, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(separate, untuned, atol=1e-3)  # the adapters do change it
    after = dict(tuned.named_parameters())
    assert all(after[n] is p and torch.equal(p, before[n]) for n, p in frozen.items())
    assert any(m.lora_A for m in mergeable_lora_layers(tuned))  # adapters still there, on

    task = _task(tokenizer, [_chat("football match", "the team")])
    prompts = [[{"role": "user", "content": q}] for q in ("football goal", "pizza cake soup")]
    answers = task.generate(tuned, prompts)
    monkeypatch.setattr(causal_lm, "lora_merged", contextlib.nullcontext)  # LoRA's own path
    assert answers == task.generate(tuned, prompts)
    with tuned.disable_adapter():
        assert answers != task.generate(tuned, prompts)


def test_dora_and_merged_models_generate_as_they_are(tiny_llm_dir: Path) -> None:
    from tunesmith.methods.merged_lora import mergeable_lora_layers

    assert mergeable_lora_layers(_lora_model(tiny_llm_dir, use_dora=True)) == []
    merged = _lora_model(tiny_llm_dir)
    merged.merge_adapter()
    assert mergeable_lora_layers(merged) == []
    assert mergeable_lora_layers(AutoModelForCausalLM.from_pretrained(tiny_llm_dir)) == []
