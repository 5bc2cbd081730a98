import pytest
import torch

from tunesmith.errors import UserError
from tunesmith.methods import METHODS, count_parameters
from tunesmith.models.structure import head_modules, layer_stack
from tunesmith.models.text import load_text_classifier
from tunesmith.recipe import load_recipe


def prepared(folder, method: dict):
    model = load_text_classifier(folder, ["a", "b", "c"])
    config = load_recipe({"data": {"train": "x"}, "method": method}).method
    return model, METHODS[method["name"]].apply(model, config)


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
