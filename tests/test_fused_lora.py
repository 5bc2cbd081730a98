"""The fused LoRA layer computes peft's function and gradients, and steps aside wherever
peft's own path does something it does not (DoRA, dropout, disabled or merged adapters)."""

from __future__ import annotations

import copy

import pytest
import torch

from tunesmith.methods import get_method
from tunesmith.recipe import load_recipe
from tunesmith.train.fused_lora import fuse_lora_layers


def _lora_model(tiny_llm_dir, **settings):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_llm_dir)
    name = settings.pop("name", "lora")
    recipe = load_recipe({"data": {"train": "x"}, "method": {"name": name, "r": 4, **settings}})
    model = get_method(name).apply(base, recipe.method)
    with torch.no_grad():  # B = 0 at the start would hide what flows through A
        for parameter_name, parameter in model.named_parameters():
            if "lora_B" in parameter_name:
                parameter.normal_(0, 0.1)
    return model


def _loss_and_grads(model, ids, autocast: bool = False):
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.item(), grads


def _lora_b_calls(model, ids) -> int:
    calls = []
    hooks = [
        module.register_forward_hook(lambda *_: calls.append(1))
        for name, module in model.named_modules()
        if name.endswith("lora_B.default")
    ]
    with torch.no_grad():
        model(input_ids=ids)
    for hook in hooks:
        hook.remove()
    return len(calls)


@pytest.mark.parametrize("autocast", [False, True])
def test_fused_layers_give_peft_loss_and_gradients(tiny_llm_dir, autocast):
    plain = _lora_model(tiny_llm_dir)
    fused = copy.deepcopy(plain)
    assert fuse_lora_layers(fused) == 2 * 7  # every adapted Linear of 2 layers
    ids = torch.randint(3, 40, (3, 11))
    assert _lora_b_calls(plain, ids) == 14 and _lora_b_calls(fused, ids) == 0  # fused ran
    plain_loss, plain_grads = _loss_and_grads(plain, ids, autocast)
    fused_loss, fused_grads = _loss_and_grads(fused, ids, autocast)
    tolerance = 2e-2 if autocast else 1e-5  # bf16 rounds the sum once here, twice in peft
    assert fused_loss == pytest.approx(plain_loss, rel=tolerance)
    assert fused_grads.keys() == plain_grads.keys() and len(fused_grads) == 28
    for name, grad in plain_grads.items():
        assert grad.abs().max() > 0, name  # both of A and B learn
        torch.testing.assert_close(fused_grads[name], grad, rtol=tolerance, atol=tolerance * 1e-1)


def test_fused_layers_keep_what_peft_does_differently(tiny_llm_dir):
    ids = torch.randint(3, 40, (2, 9))
    for settings in ({"name": "dora"}, {"dropout": 0.1}):
        model = _lora_model(tiny_llm_dir, **settings)
        plain = copy.deepcopy(model)
        fuse_lora_layers(model)
        assert _lora_b_calls(model, ids) == _lora_b_calls(plain, ids) > 0, settings  # peft's
    model = _lora_model(tiny_llm_dir)
    reference = copy.deepcopy(model)
    fuse_lora_layers(model)
    with torch.no_grad(), model.disable_adapter(), reference.disable_adapter():
        assert torch.equal(model(input_ids=ids).logits, reference(input_ids=ids).logits)
    with torch.no_grad():
        adapted = model(input_ids=ids).logits
        merged = model.merge_and_unload()(input_ids=ids).logits
    torch.testing.assert_close(merged, adapted, rtol=1e-4, atol=1e-5)


def test_the_estimate_counts_a_fused_layer_s_products(tiny_llm_recipe):
    """The profile sees no sub-layer run inside a fused layer; it counts its products and
    module calls itself: the same as on peft's path, forward and to train."""
    from rich.console import Console

    from tunesmith.estimate.profile import profile_example
    from tunesmith.tasks.family import prepare

    recipe = load_recipe(tiny_llm_recipe)
    family = prepare(recipe, torch.device("cpu"), None, Console(quiet=True))
    model = get_method("lora").apply(family.model, recipe.method)
    batch = family.task.batch("train", [0])
    plain = profile_example(model, family.task, batch)
    fuse_lora_layers(model)
    fused = profile_example(model, family.task, batch)
    assert fused.forward_flops == plain.forward_flops > 0
    assert fused.train_flops == plain.train_flops
    assert fused.module_calls == plain.module_calls  # counted as peft's path makes them
