"""The configuration of a tunesmith image classifier exported as a transformers custom model
(copied into the export folder; imports only transformers)."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig


class TunesmithVisionConfig(PretrainedConfig):
    """backbone -> pooled features (feature_dim) -> dropout -> Linear(feature_dim, num_labels).

    architecture "efficientnet-lite0": `stem_channels`, `blocks` (one dict per MBConv block:
    in, out, expand, kernel, stride, skip) and `head_channels` rebuild the network;
    "transformers": `backbone_config` is the config of a transformers vision model (AutoModel),
    pooled as `pooling` says ("pooler", "cls" or "mean")."""

    model_type = "tunesmith-vision"

    def __init__(
        self,
        architecture: str = "efficientnet-lite0",
        feature_dim: int = 1280,
        pooling: str = "mean",
        dropout: float = 0.0,
        stem_channels: int = 32,
        head_channels: int = 1280,
        blocks: list[dict[str, Any]] | None = None,
        batch_norm_eps: float = 1e-3,
        backbone_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.architecture = architecture
        self.feature_dim = feature_dim
        self.pooling = pooling
        self.dropout = dropout
        self.stem_channels = stem_channels
        self.head_channels = head_channels
        self.blocks = list(blocks or [])
        self.batch_norm_eps = batch_norm_eps
        self.backbone_config = backbone_config
        super().__init__(**kwargs)
