"""Text classifiers: any Hugging Face encoder with a sequence-classification head."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from tunesmith.errors import UserError


def load_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as error:
        raise UserError(f"model: {folder} has no usable tokenizer: {error}") from None


def load_text_classifier(folder: Path, label_names: list[str]) -> PreTrainedModel:
    """The pre-trained encoder with a fresh head sized for `label_names`; names kept in config."""
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialized head" warning is expected here
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            folder,
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={name: i for i, name in enumerate(label_names)},
            ignore_mismatched_sizes=True,
        )
    except (OSError, ValueError, KeyError) as error:
        raise UserError(
            f"model: {folder} cannot be loaded as a text classifier: {str(error).splitlines()[0]}"
        ) from None
    finally:
        hf_logging.set_verbosity(previous)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = 0
    return model


def encoder_of(model: PreTrainedModel) -> nn.Module:
    """The pre-trained body (e.g. `bert`) under a task head."""
    return getattr(model, model.base_model_prefix, model)


def head_modules(model: PreTrainedModel) -> dict[str, nn.Module]:
    """The classification head by structure: what sits beside the encoder, plus its pooler.

    BERT's pooler (dense + tanh on [CLS]) feeds only the head, so it belongs to it.
    """
    encoder = encoder_of(model)
    head = {
        name: child
        for name, child in model.named_children()
        if child is not encoder and any(True for _ in child.parameters())
    }
    pooler = getattr(encoder, "pooler", None)
    if isinstance(pooler, nn.Module):
        head[f"{model.base_model_prefix}.pooler"] = pooler
    return head


def layer_stack(model: nn.Module) -> nn.ModuleList:
    """The transformer's repeated blocks: the ModuleList holding the most parameters."""
    best, best_size = None, 0
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) > 1:
            size = sum(p.numel() for p in module.parameters())
            if size > best_size:
                best, best_size = module, size
    if best is None:
        raise UserError(f"model: cannot find the layer stack of {type(model).__name__}")
    return best


@torch.inference_mode()
def mean_pooled(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token vectors that are not padding: (B, T, H), (B, T) -> (B, H)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
