"""Image classifiers: tiny Hugging Face ResNet and ViT built from configs (milliseconds), and the
real built-in EfficientNet-Lite0 (18 MB, loads in a fraction of a second)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn
from transformers import (
    BertConfig,
    ResNetConfig,
    ResNetForImageClassification,
    ViTConfig,
    ViTForImageClassification,
    ViTModel,
)

from tunesmith.errors import UserError
from tunesmith.methods import get_method
from tunesmith.methods.linear_probe import LinearProbeMethod
from tunesmith.methods.lora import LoraMethod
from tunesmith.methods.selective import SelectiveMethod
from tunesmith.models.resolve import BUILTINS, resolve_model
from tunesmith.models.structure import head_modules, is_language_model, layer_stack
from tunesmith.models.vision import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    VisionClassifier,
    _preprocessing,
    load_base,
    load_vision_classifier,
    lora_target_modules,
    vision_kind,
)

LABELS = ["cat", "dog", "bird"]
SIDE = 32


def _save(model: nn.Module, folder: Path, preprocessor: dict | None) -> Path:
    model.save_pretrained(folder)
    if preprocessor is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return folder


@pytest.fixture(scope="module")
def resnet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_channels=3, num_labels=5
    )
    preprocessor = {
        "image_processor_type": "ConvNextImageProcessor",
        "size": {"shortest_edge": SIDE},
        "crop_pct": 0.875,
        "image_mean": [0.5, 0.4, 0.3],
        "image_std": [0.2, 0.25, 0.3],
    }
    model = ResNetForImageClassification(config)
    return _save(model, tmp_path_factory.mktemp("tiny-resnet"), preprocessor)


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ViTForImageClassification checkpoint: it holds no pooler weights (as on the Hub)."""
    torch.manual_seed(0)
    preprocessor = {"size": {"height": SIDE, "width": SIDE}, "image_mean": [0.5] * 3}
    model = ViTForImageClassification(_vit_config())
    return _save(model, tmp_path_factory.mktemp("tiny-vit"), preprocessor)


def _vit_config() -> ViTConfig:
    return ViTConfig(
        image_size=SIDE,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=4,
    )


@pytest.fixture(params=["resnet", "vit"])
def tiny(request: pytest.FixtureRequest, resnet_dir: Path, vit_dir: Path) -> tuple[str, Path]:
    return request.param, resnet_dir if request.param == "resnet" else vit_dir


def pixels(batch: int = 2, side: int = SIDE, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(seed))


def trainable_names(model: nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


# ---------------------------------------------------------------- Hugging Face backbones


def test_resnet_classifier_uses_pretrained_pooled_features(resnet_dir: Path) -> None:
    model = load_vision_classifier(resnet_dir, LABELS, "transformers")
    x = pixels()
    with torch.no_grad():
        features = model.features(x)
        logits = model(pixel_values=x).logits
        reference = ResNetForImageClassification.from_pretrained(resnet_dir).eval()
        expected = reference.resnet(pixel_values=x).pooler_output.flatten(1)
    assert features.shape == (2, 16) and model.feature_dim == 16
    assert logits.shape == (2, len(LABELS))
    torch.testing.assert_close(features, expected)  # the checkpoint's weights, not random ones
    assert model.config.pooling == "pooler"
    assert model.config.image_size == SIDE
    assert model.config.mean == [0.5, 0.4, 0.3] and model.config.std == [0.2, 0.25, 0.3]
    assert model.config.labels == LABELS


def test_vit_without_pooler_weights_uses_the_cls_token(vit_dir: Path) -> None:
    model = load_vision_classifier(vit_dir, LABELS, "transformers")
    x = pixels()
    with torch.no_grad():
        features = model.features(x)
        reference = ViTForImageClassification.from_pretrained(vit_dir).eval()
        expected = reference.vit(pixel_values=x).last_hidden_state[:, 0]
    assert model.config.pooling == "cls"
    assert model.backbone.model.pooler is None  # no randomly initialised pooler kept
    assert features.shape == (2, 32)
    torch.testing.assert_close(features, expected)
    assert model(pixel_values=x).logits.shape == (2, len(LABELS))
    assert model.config.mean == [0.5] * 3 and model.config.std == IMAGENET_STD  # std fallback


def test_vit_with_trained_pooler_uses_it(tmp_path: Path) -> None:
    torch.manual_seed(1)
    folder = _save(ViTModel(_vit_config()), tmp_path / "vit-pooler", None)
    model = load_vision_classifier(folder, LABELS, "transformers")
    assert model.config.pooling == "pooler"
    assert model.backbone.model.pooler is not None
    # no preprocessor_config.json: the config's image size, ImageNet statistics
    assert (model.config.image_size, model.config.mean) == (SIDE, IMAGENET_MEAN)
    assert model.features(pixels()).abs().max() <= 1  # tanh of ViT's pooler


def test_structure_finds_blocks_and_head(tiny: tuple[str, Path]) -> None:
    name, folder = tiny
    model = load_vision_classifier(folder, LABELS, "transformers")
    stack = layer_stack(model)
    block_type = "ResNetStage" if name == "resnet" else "ViTLayer"
    assert all(type(block).__name__ == block_type for block in stack) and len(stack) == 2
    assert model.blocks() is stack
    assert set(head_modules(model)) == {"classifier"}
    assert head_modules(model)["classifier"] is model.classifier
    assert not is_language_model(model)


def test_save_and_load_give_identical_logits(tiny: tuple[str, Path], tmp_path: Path) -> None:
    _, folder = tiny
    model = load_vision_classifier(folder, LABELS, "transformers")
    model.train()
    with torch.no_grad():
        model(pixel_values=pixels(4, seed=3))  # train mode moves BatchNorm statistics
        nn.init.normal_(model.classifier.weight)
    model.eval()
    model.save(tmp_path / "saved")
    loaded = VisionClassifier.load(tmp_path / "saved")
    assert (tmp_path / "saved" / "backbone" / "config.json").is_file()
    assert not (tmp_path / "saved" / "config.json").exists()  # not a plain HF folder
    x = pixels(seed=5)
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=x).logits, model(pixel_values=x).logits)
    assert loaded.config == model.config


def test_lora_trains_only_adapters_and_head(tiny: tuple[str, Path]) -> None:
    name, folder = tiny
    model = load_vision_classifier(folder, LABELS, "transformers")
    targets = lora_target_modules(model)
    layer_type = nn.Conv2d if name == "resnet" else nn.Linear
    modules = dict(model.named_modules())
    assert targets and all(isinstance(modules[t], layer_type) for t in targets)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    peft_model = get_peft_model(
        model, LoraConfig(r=4, target_modules=targets, modules_to_save=["classifier"])
    )
    names = trainable_names(peft_model)
    assert any("lora_" in n for n in names) and any("classifier" in n for n in names)
    assert all("lora_" in n or "modules_to_save" in n for n in names)
    peft_model.train()
    optimizer = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=0.1)
    out = peft_model(pixel_values=pixels(), labels=torch.tensor([0, 2]))
    assert out.logits.shape == (2, len(LABELS)) and out.loss.requires_grad
    out.loss.backward()
    optimizer.step()
    checked = 0
    for key, value in model.named_parameters():  # wrapped in place: base_layer in the names
        if "lora_" in key or "classifier" in key:
            continue
        torch.testing.assert_close(value, before[key.replace(".base_layer", "")])
        checked += 1
    assert checked == len([k for k in before if not k.startswith("classifier.")])
    assert not torch.equal(
        model.classifier.modules_to_save.default.weight, before["classifier.weight"]
    )


def test_apply_lora_adapter_round_trip(vit_dir: Path, tmp_path: Path) -> None:
    """The project's lora method (peft's sequence-classification wrapper), then the adapter
    saved and put back on the pre-trained base gives the same logits."""
    model = load_vision_classifier(vit_dir, LABELS, "transformers")
    config = LoraMethod(name="lora", r=4, target_modules=lora_target_modules(model))
    peft_model = get_method("lora").apply(model, config)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_()  # a non-trivial adapter
    peft_model.eval()
    x = pixels(seed=7)
    with torch.no_grad():
        expected = peft_model(pixel_values=x).logits
    peft_model.save_pretrained(tmp_path / "adapter")
    peft_model.get_base_model().save_config(tmp_path / "adapter")
    restored = PeftModel.from_pretrained(load_base(tmp_path / "adapter"), tmp_path / "adapter")
    with torch.no_grad():
        torch.testing.assert_close(restored.eval()(pixel_values=x).logits, expected)


def test_linear_probe_and_selective(vit_dir: Path) -> None:
    model = load_vision_classifier(vit_dir, LABELS, "transformers")
    probe = get_method("linear-probe").apply(model, LinearProbeMethod(name="linear-probe"))
    assert trainable_names(probe) == {"classifier.weight", "classifier.bias"}
    model = load_vision_classifier(vit_dir, LABELS, "transformers")
    selective = get_method("selective").apply(model, SelectiveMethod(name="selective", layers=1))
    names = trainable_names(selective)
    stack = next(n for n, m in model.named_modules() if m is model.blocks())
    assert "classifier.weight" in names
    assert any(n.startswith(f"{stack}.1.") for n in names)
    assert not any(n.startswith(f"{stack}.0.") for n in names)
    assert not any("embeddings" in n for n in names)


def test_freeze_batchnorm_keeps_running_statistics(resnet_dir: Path) -> None:
    model = load_vision_classifier(resnet_dir, LABELS, "transformers")
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms
    model.freeze_batchnorm()
    model.train()
    assert model.training and model.classifier.training
    assert not any(m.training for m in norms)
    stats = [m.running_mean.clone() for m in norms]
    model(pixel_values=pixels(4) * 3 + 1)
    assert all(torch.equal(m.running_mean, s) for m, s in zip(norms, stats, strict=True))
    model.freeze_batchnorm(False)
    assert all(m.training for m in norms)


def test_reset_head(vit_dir: Path) -> None:
    model = load_vision_classifier(vit_dir, LABELS, "transformers")
    model.reset_head(5)
    assert model.classifier.weight.shape == (5, 32)
    assert model.config.labels == [f"LABEL_{i}" for i in range(5)]
    assert model.classifier.weight.std() < 0.05 and not model.classifier.bias.any()
    model.reset_head(2, ["x", "y"])
    assert model(pixel_values=pixels()).logits.shape == (2, 2)
    assert model.config.labels == ["x", "y"]


def test_forward_rejects_unexpected_arguments(vit_dir: Path) -> None:
    model = load_vision_classifier(vit_dir, LABELS, "transformers")
    assert model(pixel_values=pixels(), input_ids=None).logits.shape == (2, len(LABELS))
    with pytest.raises(TypeError, match="input_ids"):
        model(pixel_values=pixels(), input_ids=torch.zeros(2, 3, dtype=torch.long))


def test_preprocessing_forms(tmp_path: Path) -> None:
    config = _vit_config()
    cases = [
        ({"size": 256, "crop_size": 224, "do_center_crop": True}, 224),
        ({"size": {"shortest_edge": 256}, "crop_size": {"height": 240, "width": 240}}, 240),
        ({"size": {"height": 384, "width": 384}, "do_center_crop": False, "crop_size": 9}, 384),
        ({}, SIDE),
    ]
    for data, side in cases:
        (tmp_path / "preprocessor_config.json").write_text(json.dumps(data))
        assert _preprocessing(tmp_path, config)[0] == side, data
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"do_normalize": False}))
    assert _preprocessing(tmp_path, config)[1:] == ([0.0] * 3, [1.0] * 3)


def test_vision_kind(vit_dir: Path, tmp_path: Path) -> None:
    assert vision_kind(str(vit_dir), vit_dir) == "transformers"
    assert vision_kind("builtin:efficientnet-lite0", Path("/nowhere")) == "efficientnet-lite0"
    with pytest.raises(UserError, match="not an image model"):
        vision_kind("builtin:minilm", Path("/nowhere"))
    (tmp_path / "bert").mkdir()
    BertConfig(hidden_size=8).save_pretrained(tmp_path / "bert")
    with pytest.raises(UserError, match="bert model, not an image model"):
        vision_kind("bert", tmp_path / "bert")
    with pytest.raises(UserError, match=r"no config\.json"):
        vision_kind(str(tmp_path), tmp_path)


# ---------------------------------------------------------------- built-in EfficientNet-Lite0


def test_builtin_efficientnet_lite0(tmp_path: Path) -> None:
    folder = resolve_model("builtin:efficientnet-lite0")
    weights = folder / BUILTINS["efficientnet-lite0"].weights_file
    kind = vision_kind("builtin:efficientnet-lite0", folder)
    model = load_vision_classifier(folder, LABELS, kind)
    assert model.feature_dim == 1280 and model.config.image_size == 224
    assert model.config.mean == [127 / 255] * 3 and model.config.std == [128 / 255] * 3
    assert model.config.dropout == 0.2
    state = torch.load(weights, map_location="cpu", weights_only=True)
    torch.testing.assert_close(model.backbone._conv_stem.weight, state["_conv_stem.weight"])
    torch.testing.assert_close(
        model.backbone._blocks[15]._project_conv.weight, state["_blocks.15._project_conv.weight"]
    )
    assert layer_stack(model) is model.blocks() is model.backbone._blocks
    assert len(model.blocks()) == 16
    assert set(head_modules(model)) == {"classifier"}
    assert not is_language_model(model)

    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = model.features(x)
    assert features.shape == (2, 1280)
    assert (features >= 0).all()  # ReLU6 before pooling
    assert not torch.allclose(features[0], features[1], atol=1e-3)

    # the rest on small images (dynamic "same" padding runs at any size), to stay fast
    small = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(pixel_values=small).logits
    assert logits.shape == (2, len(LABELS))
    model.save(tmp_path / "saved")
    loaded = VisionClassifier.load(tmp_path / "saved")
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=small).logits, logits)

    targets = lora_target_modules(model)
    modules = dict(model.named_modules())
    assert len(targets) == 31  # expand (15) and project (16) 1x1 convolutions; no depthwise
    assert all(modules[t].groups == 1 and modules[t].kernel_size == (1, 1) for t in targets)
    peft_model = get_peft_model(
        model, LoraConfig(r=4, target_modules=targets, modules_to_save=["classifier"])
    )
    assert all("lora_" in n or "modules_to_save" in n for n in trainable_names(peft_model))
    with torch.no_grad():
        torch.testing.assert_close(peft_model(pixel_values=small).logits, logits)  # B = 0
