"""The model: any Hugging Face encoder with a sequence-classification head of one logit per
label, marked `problem_type="multi_label_classification"` so transformers itself (its
pipelines, its own loss) treats the saved model as sigmoid + binary cross-entropy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel

from tunesmith.models.structure import head_modules
from tunesmith.models.text import load_text_classifier

PROBLEM_TYPE = "multi_label_classification"


def load_multi_label_classifier(folder: Path, label_names: list[str]) -> PreTrainedModel:
    """The pre-trained encoder with a fresh head of len(label_names) logits; label names and
    problem type kept in its config (and so in every saved copy)."""
    model = load_text_classifier(folder, label_names)
    model.config.problem_type = PROBLEM_TYPE
    return model


PRIOR_CLIP = 1e-3
"""Label frequencies are clipped to [PRIOR_CLIP, 1 - PRIOR_CLIP] before the logit."""


def output_layer(model: PreTrainedModel) -> nn.Linear | None:
    """The head's last linear layer, the one with a logit per label (BERT's `classifier`,
    RoBERTa's `classifier.out_proj`, ...); None when the head has no such layer."""
    found = [
        module
        for head in head_modules(model).values()
        for module in head.modules()
        if isinstance(module, nn.Linear) and module.out_features == model.config.num_labels
    ]
    return found[-1] if found else None


@torch.no_grad()
def start_at_label_priors(model: PreTrainedModel, targets: np.ndarray) -> bool:
    """Set the output bias to the logit of each label's training frequency, so training
    starts at the label priors instead of p = 0.5 everywhere (the prior initialisation of
    Lin et al. 2017, "Focal loss for dense object detection"): with most labels absent from
    most rows, a random head spends its first epochs pushing every logit down before it
    learns anything about the texts. False when the head has no such bias."""
    layer = output_layer(model)
    if layer is None or layer.bias is None:
        return False
    prior = np.clip(targets.mean(0), PRIOR_CLIP, 1 - PRIOR_CLIP)
    logit = torch.as_tensor(np.log(prior / (1 - prior)), dtype=layer.bias.dtype)
    layer.bias.copy_(logit.to(layer.bias.device))
    return True
