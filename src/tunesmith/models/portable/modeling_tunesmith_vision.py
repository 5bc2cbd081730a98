"""A tunesmith image classifier as a transformers custom model (copied into the export folder;
imports only torch and transformers): `AutoModelForImageClassification.from_pretrained(folder,
trust_remote_code=True)`. The module names match tunesmith's own classifier, so its
model.safetensors loads as it is; inference gives the same logits as `tunesmith predict`."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput

from .configuration_tunesmith_vision import TunesmithVisionConfig


class SamePaddingConv2d(nn.Conv2d):
    """TensorFlow's "SAME" padding, worked out for each input size (EfficientNet's stride-2
    convolutions): the extra pixel of an odd padding goes to the right and bottom."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        pad_h = max((math.ceil(ih / sh) - 1) * sh + (kh - 1) * self.dilation[0] + 1 - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + (kw - 1) * self.dilation[1] + 1 - iw, 0)
        if pad_h > 0 or pad_w > 0:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv(inputs: int, outputs: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """A bias-free convolution: plain with k // 2 padding at stride 1 (odd kernels), else
    SAME-padded."""
    if stride == 1 and kernel % 2 == 1:
        return nn.Conv2d(inputs, outputs, kernel, padding=kernel // 2, groups=groups, bias=False)
    return SamePaddingConv2d(inputs, outputs, kernel, stride=stride, groups=groups, bias=False)


class MBConvBlock(nn.Module):
    """EfficientNet-Lite's inverted bottleneck: 1x1 expand, depthwise, 1x1 project (ReLU6,
    no squeeze-excite), with a residual connection where `skip`."""

    def __init__(self, spec: dict[str, Any], eps: float) -> None:
        super().__init__()
        inputs, outputs, expand = spec["in"], spec["out"], spec["expand"]
        hidden = inputs * expand
        self.expand = expand != 1
        self.skip = bool(spec["skip"])
        if self.expand:
            self._expand_conv = _conv(inputs, hidden, 1)
            self._bn0 = nn.BatchNorm2d(hidden, eps=eps)
        self._depthwise_conv = _conv(hidden, hidden, spec["kernel"], spec["stride"], groups=hidden)
        self._bn1 = nn.BatchNorm2d(hidden, eps=eps)
        self._project_conv = _conv(hidden, outputs, 1)
        self._bn2 = nn.BatchNorm2d(outputs, eps=eps)
        self._swish = nn.ReLU6()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.expand:
            x = self._swish(self._bn0(self._expand_conv(x)))
        x = self._swish(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.skip else x


class EfficientNetLiteFeatures(nn.Module):
    """EfficientNet-Lite's convolutions, globally average-pooled: (B, head_channels)."""

    def __init__(self, config: TunesmithVisionConfig) -> None:
        super().__init__()
        eps = config.batch_norm_eps
        self._conv_stem = _conv(3, config.stem_channels, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(config.stem_channels, eps=eps)
        self._blocks = nn.ModuleList(MBConvBlock(spec, eps) for spec in config.blocks)
        last = config.blocks[-1]["out"] if config.blocks else config.stem_channels
        self._conv_head = _conv(last, config.head_channels, 1)
        self._bn1 = nn.BatchNorm2d(config.head_channels, eps=eps)
        self._swish = nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self._swish(self._bn0(self._conv_stem(pixel_values)))
        for block in self._blocks:
            x = block(x)
        x = self._swish(self._bn1(self._conv_head(x)))
        return self._avg_pooling(x).flatten(1)


class TransformersFeatures(nn.Module):
    """A transformers vision model (AutoModel) pooled to (B, D): its pooler_output, the first
    token of last_hidden_state ("cls") or the mean over positions ("mean")."""

    def __init__(self, config: TunesmithVisionConfig) -> None:
        super().__init__()
        settings = dict(config.backbone_config or {})
        backbone = AutoConfig.for_model(settings.pop("model_type"), **settings)
        self.model = AutoModel.from_config(backbone)
        pooler = getattr(self.model, "pooler", None)
        trained = isinstance(pooler, nn.Module) and any(True for _ in pooler.parameters())
        if config.pooling != "pooler" and trained:
            self.model.pooler = None  # tunesmith pools the hidden states, not with this
        self.pooling = config.pooling

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        output = self.model(pixel_values=pixel_values)
        if self.pooling == "pooler":
            return output.pooler_output.flatten(1)
        hidden = output.last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        return hidden.mean(dim=(2, 3)) if hidden.dim() == 4 else hidden.mean(dim=1)


class TunesmithVisionPreTrainedModel(PreTrainedModel):
    config_class = TunesmithVisionConfig
    base_model_prefix = "tunesmith_vision"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def _init_weights(self, module: nn.Module) -> None:
        """Only for weights a checkpoint lacks (an export holds them all)."""
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.normal_(module.weight, std=0.01)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


class TunesmithVisionForImageClassification(TunesmithVisionPreTrainedModel):
    """backbone -> pooled features -> dropout -> classifier; `.logits` (B, num_labels), and
    the cross-entropy `.loss` when `labels` are given."""

    def __init__(self, config: TunesmithVisionConfig) -> None:
        super().__init__(config)
        if config.architecture == "efficientnet-lite0":
            self.backbone: nn.Module = EfficientNetLiteFeatures(config)
        elif config.architecture == "transformers":
            self.backbone = TransformersFeatures(config)
        else:
            raise ValueError(f"unknown architecture {config.architecture!r}")
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.feature_dim, config.num_labels)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **unused: Any,
    ) -> ImageClassifierOutput:
        if pixel_values is None:
            raise ValueError("pixel_values are needed")
        logits = self.classifier(self.dropout(self.backbone(pixel_values)))
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)
