"""The fast loop (packed rows, fused output layer + loss, fused AdamW, prefetched batches,
optionally compiled blocks) follows the loss curve of a plain fp32 PyTorch loop: padded
batches, the model's own loss over full logits, textbook AdamW, on the same batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from rich.console import Console

from tunesmith.methods import get_method
from tunesmith.recipe import load_recipe
from tunesmith.run import train
from tunesmith.tasks.causal_lm.task import IGNORE
from tunesmith.tasks.family import prepare
from tunesmith.train.batching import length_grouped_batches
from tunesmith.train.loop import fit
from tunesmith.train.schedule import lr_factor
from tunesmith.train.setup import seed_everything

CPU = torch.device("cpu")
STEPS = 8


def _family(recipe):
    seed_everything(0)
    family = prepare(recipe, CPU, None, Console(quiet=True))
    method = get_method(recipe.method.name)
    family.adapt_to(method)
    return family, method.apply(family.model, recipe.method)


def plain_losses(recipe) -> list[float]:
    """The textbook loop: one padded row per example, labels for the model's own loss."""
    family, model = _family(recipe)
    task, config = family.task, recipe.train
    groups = {True: [], False: []}
    for p in model.parameters():
        if p.requires_grad:
            groups[p.ndim >= 2].append(p)
    optimizer = torch.optim.AdamW(
        [
            {"params": groups[True], "weight_decay": config.weight_decay},
            {"params": groups[False], "weight_decay": 0.0},
        ],
        lr=recipe.learning_rate,
        foreach=False,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, STEPS, int(STEPS * config.warmup_ratio), "linear")
    )
    rows = task.rows["train"]
    batches = [  # epoch after epoch, as the loop reshuffles them
        batch
        for epoch in range(STEPS)
        for batch in length_grouped_batches(task.lengths("train"), config.batch_size, 0, epoch)
    ]
    losses = []
    model.train()
    for indices in batches[:STEPS]:
        chosen = [rows[i] for i in indices]
        width = max(len(r.ids) for r in chosen)
        ids = torch.full((len(chosen), width), task.pad_id)
        labels = torch.full((len(chosen), width), IGNORE)
        mask = torch.zeros((len(chosen), width), dtype=torch.long)
        for j, row in enumerate(chosen):
            ids[j, : len(row.ids)] = torch.tensor(row.ids)
            labels[j, 1 : len(row.ids)] = torch.tensor(row.targets[:-1])  # the model shifts
            mask[j, : len(row.ids)] = 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def fast_losses(recipe, folder: Path) -> list[float]:
    family, model = _family(recipe)
    fit(model, family.task, recipe.train, recipe.learning_rate, CPU, None, folder,
        console=Console(quiet=True))  # fmt: skip
    history = (folder / "history.jsonl").read_text().splitlines()
    return [json.loads(line)["train_loss"] for line in history]


@pytest.mark.parametrize("method", ["full", "lora"])
def test_fast_loop_follows_the_plain_fp32_loop(tiny_llm_recipe, tmp_path, method):
    tiny_llm_recipe["method"] = {"name": method}
    tiny_llm_recipe["train"].update(
        max_steps=STEPS, eval_every=1, early_stopping=None, learning_rate=3e-3
    )
    recipe = load_recipe(tiny_llm_recipe)
    plain = plain_losses(recipe)
    fast = fast_losses(recipe, tmp_path / "fast")
    assert len(fast) == STEPS
    assert plain[-1] < plain[0] - 0.05  # it learns: the curve is not flat
    assert fast == pytest.approx(plain, rel=2e-3, abs=2e-4)


def test_compiled_blocks_train_the_same_model(tiny_llm_recipe, tmp_path):
    tiny_llm_recipe["train"].update(max_steps=3, eval_every=3, early_stopping=None)
    tiny_llm_recipe["generation"]["max_examples"] = 1
    tiny_llm_recipe["guards"] = {"data_quality": "off", "forgetting": None}
    plain = train(load_recipe(tiny_llm_recipe), console=Console(quiet=True))
    tiny_llm_recipe["train"]["compile"] = True
    tiny_llm_recipe["output_dir"] = str(tmp_path / "compiled")
    compiled = train(load_recipe(tiny_llm_recipe), console=Console(quiet=True))
    assert compiled["fine_tuned"]["loss"] == pytest.approx(plain["fine_tuned"]["loss"], rel=1e-3)


def test_frozen_weights_in_bf16_train_as_autocast_trains(tiny_llm_dir):
    """Under bf16 autocast, a LoRA model with every frozen weight stored in bf16 (the
    residual stream then bf16 too) gives autocast's loss and adapter gradients to bf16
    precision, from less memory; the trained adapter stays fp32. Leaving the adapters'
    inputs uncast (no bf16 -> fp32 -> bf16 round trip) changes no bit."""
    import copy

    from transformers import AutoModelForCausalLM

    from tunesmith.train.setup import keep_adapter_input_dtype, store_frozen_weights

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_llm_dir)
    settings = load_recipe({"data": {"train": "x"}, "method": {"name": "lora", "r": 4}}).method
    plain = get_method("lora").apply(copy.deepcopy(base), settings)
    with torch.no_grad():  # B = 0 at the start would hide what flows through A's input
        for name, parameter in plain.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.1)
    stored = copy.deepcopy(plain)
    fp32_bytes = sum(p.numel() * 4 for p in stored.parameters() if not p.requires_grad)
    assert store_frozen_weights(stored, torch.bfloat16) == fp32_bytes // 2
    uncast = copy.deepcopy(stored)
    assert keep_adapter_input_dtype(uncast) == 2 * 7  # every adapted Linear of 2 layers
    dtypes = {n: p.dtype for n, p in stored.named_parameters()}
    assert all(d == torch.float32 for n, d in dtypes.items() if "lora_" in n)
    assert all(d == torch.bfloat16 for n, d in dtypes.items() if "lora_" not in n)
    assert stored.get_output_embeddings().weight.dtype == torch.bfloat16  # tied: stored once
    ids = torch.randint(3, 40, (2, 9))
    results = []
    for model, autocast in ((plain, False), (plain, True), (stored, True), (uncast, True)):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        results.append((loss.item(), grads))
    (exact_loss, exact), (_, autocast_grads), (stored_loss, stored_grads), _ = results
    assert stored_loss == pytest.approx(exact_loss, rel=1e-2)

    def error(grads: dict) -> float:  # relative distance to the fp32 gradients
        return max((grads[n] - g).norm().item() / g.norm().item() for n, g in exact.items())

    assert error(stored_grads) < 2 * error(autocast_grads)  # bf16's noise, not another bug
    uncast_loss, uncast_grads = results[3]
    assert stored_loss == uncast_loss
    assert all(torch.equal(stored_grads[n], uncast_grads[n]) for n in stored_grads)


def test_training_attention_runs_in_fp32_under_bf16_on_a_cpu(tiny_llm_dir, monkeypatch):
    """With a backward pass to come, attention under CPU bf16 autocast gets fp32 inputs
    with autocast off (the fast kernel backward); without one, transformers' own path."""
    from transformers import AttentionInterface, AutoModelForCausalLM
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from tunesmith.models.attention import use_fast_cpu_training_attention

    model = AutoModelForCausalLM.from_pretrained(tiny_llm_dir)
    assert model.config._attn_implementation == "sdpa"
    ids = torch.randint(3, 40, (2, 9))
    calls: list[tuple[torch.dtype, bool]] = []
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(query, *args, **kwargs):
        calls.append((query.dtype, torch.is_autocast_enabled("cpu")))
        return real(query, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)

    def run(grad: bool) -> torch.Tensor:
        calls.clear()
        with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16):
            return model(input_ids=ids, labels=ids).loss

    use_fast_cpu_training_attention()
    fast_inference, fast_training = run(False), run(True)
    assert calls == [(torch.float32, False)] * 2  # both layers: fp32, autocast off
    fast_training.backward()
    monkeypatch.setitem(AttentionInterface._global_mapping, "sdpa", sdpa_attention_forward)
    assert torch.equal(run(False), fast_inference)  # inference: untouched
    plain_training = run(True)
    assert all(autocast for _, autocast in calls)  # transformers' path: bf16 by autocast
    assert fast_training.item() == pytest.approx(plain_training.item(), rel=2e-2)


@pytest.mark.parametrize("kind", ["text", "llm"])
def test_a_bf16_adapter_run_trains_scores_and_predicts(kind, request, tmp_path):
    """The whole command under bf16 with the frozen weights stored in bf16: training,
    the forgetting measure, scoring after training and predict all run on them."""
    from tunesmith.cli import main

    recipe = request.getfixturevalue("tiny_recipe" if kind == "text" else "tiny_llm_recipe")
    recipe["train"].update(precision="bf16", max_steps=3)
    metrics = train(load_recipe(recipe))
    assert metrics["precision"] == "bf16"
    estimate = json.loads(Path(recipe["output_dir"], "estimate.json").read_text())
    assert estimate["predicted"]["peak_memory_mb"] > 0  # profiled as it trains
    assert all(v == v for v in metrics["fine_tuned"].values() if isinstance(v, float))
    prompts = tmp_path / "inputs.txt"
    prompts.write_text("football goal\n")
    out = tmp_path / "predictions.jsonl"
    assert main(["predict", recipe["output_dir"], str(prompts), "--output", str(out)]) == 0
    assert out.read_text().strip()


@pytest.mark.parametrize("method", ["dora", "ia3", "prompt", "prefix"])
def test_every_adapter_method_trains_on_bf16_frozen_weights(method, tiny_llm_recipe):
    """Methods other than LoRA also train on frozen weights stored in bf16 (their own
    fp32 parameters meet a bf16 residual stream): finite losses, and the adapter learns."""
    tiny_llm_recipe["method"] = {"name": method}
    tiny_llm_recipe["train"].update(
        precision="bf16", max_steps=4, eval_every=2, early_stopping=None, learning_rate=3e-2
    )
    tiny_llm_recipe["generation"]["max_examples"] = 2
    tiny_llm_recipe["guards"] = {"data_quality": "off", "forgetting": None}
    metrics = train(load_recipe(tiny_llm_recipe), console=Console(quiet=True))
    history = Path(tiny_llm_recipe["output_dir"], "history.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in history]
    losses = [r["train_loss"] for r in records if "train_loss" in r]  # not the start's
    assert metrics["precision"] == "bf16" and len(losses) == 2
    assert all(loss == loss and loss < 1e4 for loss in losses)
    assert metrics["fine_tuned"]["loss"] < metrics["base"]["loss"]
