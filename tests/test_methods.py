import pytest
import torch

from tunesmith.errors import UserError
from tunesmith.methods import count_parameters, get_method
from tunesmith.models.structure import head_modules, layer_stack
from tunesmith.models.text import load_text_classifier
from tunesmith.recipe import load_recipe


def prepared(folder, method: dict):
    model = load_text_classifier(folder, ["a", "b", "c"])
    config = load_recipe({"data": {"train": "x"}, "method": method}).method
    return model, get_method(method["name"]).apply(model, config)


def trainable_names(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_full_trains_everything(tiny_model_dir):
    _, model = prepared(tiny_model_dir, {"name": "full"})
    trainable, total = count_parameters(model)
    assert trainable == total


def test_linear_probe_trains_only_the_head(tiny_model_dir):
    original, model = prepared(tiny_model_dir, {"name": "linear-probe"})
    assert trainable_names(model) == {
        "classifier.weight",
        "classifier.bias",
        "bert.pooler.dense.weight",
        "bert.pooler.dense.bias",
    }
    assert set(head_modules(original)) == {"classifier", "bert.pooler"}


def test_selective_trains_the_last_layers_and_head(tiny_model_dir):
    _, model = prepared(tiny_model_dir, {"name": "selective", "layers": 1})
    names = trainable_names(model)
    assert any(n.startswith("bert.encoder.layer.1.") for n in names)
    assert not any(n.startswith("bert.encoder.layer.0.") for n in names)
    assert not any("embeddings" in n for n in names)
    assert "classifier.weight" in names


def test_selective_more_layers_than_the_model_has(tiny_model_dir):
    with pytest.raises(UserError, match=r"method\.layers: 5, but the model has 2 layers"):
        prepared(tiny_model_dir, {"name": "selective", "layers": 5})


@pytest.mark.parametrize("name", ["lora", "ia3"])
def test_peft_methods_train_adapters_and_head_only(tiny_model_dir, name):
    _, model = prepared(tiny_model_dir, {"name": name})
    names = trainable_names(model)
    marker = "lora_" if name == "lora" else "ia3_l"
    assert any(marker in n for n in names)
    assert any("classifier" in n for n in names) and any("pooler" in n for n in names)
    base_weights = [n for n in names if "encoder.layer" in n and marker not in n]
    assert base_weights == []
    trainable, total = count_parameters(model)
    assert 0 < trainable < total / 2


def test_lora_targets_every_linear_in_the_blocks(tiny_model_dir):
    _, model = prepared(tiny_model_dir, {"name": "lora", "r": 2})
    wrapped = {n.split(".lora_A")[0] for n, _ in model.named_parameters() if "lora_A" in n}
    # query, key, value, attention output, intermediate, output: 6 per layer, 2 layers
    assert len(wrapped) == 12


def test_layer_stack_is_found_by_structure(tiny_model_dir):
    model = load_text_classifier(tiny_model_dir, ["a", "b"])
    assert layer_stack(model) is model.bert.encoder.layer


def test_frozen_weights_do_not_move_in_a_step(tiny_model_dir):
    _, model = prepared(tiny_model_dir, {"name": "linear-probe"})
    before = model.bert.encoder.layer[0].attention.self.query.weight.clone()
    inputs = torch.randint(5, 1000, (4, 7))
    loss = model(input_ids=inputs, labels=torch.tensor([0, 1, 2, 0])).loss
    loss.backward()
    torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    assert torch.equal(before, model.bert.encoder.layer[0].attention.self.query.weight)


def test_lora_on_an_encoder_decoder_adapts_both_stacks_as_seq2seq():
    from peft import PeftModelForSeq2SeqLM
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=64, d_model=16, d_kv=8, d_ff=32, num_layers=2, num_heads=2,
        decoder_start_token_id=0,
    )  # fmt: skip
    model = T5ForConditionalGeneration(config)
    settings = load_recipe({"data": {"train": "x"}, "method": {"name": "lora", "r": 2}}).method
    tuned = get_method("lora").apply(model, settings)
    assert isinstance(tuned, PeftModelForSeq2SeqLM)
    wrapped = {n.split(".lora_A")[0] for n, _ in tuned.named_parameters() if "lora_A" in n}
    # encoder: q, k, v, o, wi, wo per layer; decoder adds cross-attention q, k, v, o
    assert sum(".encoder." in n for n in wrapped) == 2 * 6
    assert sum(".decoder." in n for n in wrapped) == 2 * 10


def test_a_method_is_registered_with_its_settings_and_listed_in_order():
    from tunesmith.method_registry import METHOD_MODULES, MethodSettings, method_name, methods

    registered = methods()
    assert [m.apply.__module__ for m in registered.values()] == list(METHOD_MODULES)
    assert registered["dora"].settings.__name__ == "DoraMethod"
    assert registered["lora"].saves_adapter and not registered["full"].saves_adapter
    assert not registered["prefix"].mergeable and registered["prefix"].virtual_tokens

    class Unnamed(MethodSettings):
        r: int = 1

    with pytest.raises(TypeError, match="name: Literal"):
        method_name(Unnamed)


def test_ia3_on_a_classifier_with_a_pooler_merges_to_the_same_logits(tiny_model_dir, tmp_path):
    from peft import PeftModel

    _, tuned = prepared(tiny_model_dir, {"name": "ia3"})
    with torch.no_grad():  # move the trained parts off their initial values
        for parameter in tuned.parameters():
            if parameter.requires_grad:
                parameter.add_(0.1 * torch.randn_like(parameter))
    tuned.eval()
    inputs = torch.randint(5, 1000, (3, 6))
    expected = tuned(input_ids=inputs).logits
    tuned.save_pretrained(tmp_path / "adapter")
    base = load_text_classifier(tiny_model_dir, ["a", "b", "c"])
    merged = PeftModel.from_pretrained(base, tmp_path / "adapter").merge_and_unload().eval()
    assert type(merged).__name__ == "BertForSequenceClassification"
    assert torch.allclose(merged(input_ids=inputs).logits, expected, atol=1e-5)
