"""Text classifiers: any Hugging Face encoder with a sequence-classification head."""

from __future__ import annotations

from pathlib import Path

import torch
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
    """The pre-trained encoder with a fresh head sized for `label_names`; names kept in config.
    An encoder-decoder (T5, BART) is refused: its classification head needs decoder inputs
    that a classifier's batches do not have."""
    refuse_encoder_decoder(folder)
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


def refuse_encoder_decoder(folder: Path) -> None:
    import json

    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # from_pretrained reports a missing or broken config itself
    if isinstance(config, dict) and config.get("is_encoder_decoder"):
        kind = config.get("model_type", "encoder-decoder")
        raise UserError(
            f"model: {folder} is an encoder-decoder ({kind}); it fits task: seq2seq, not a "
            "classifier. Use task: seq2seq, or an encoder model (BERT, MiniLM, RoBERTa) here"
        )


@torch.inference_mode()
def mean_pooled(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token vectors that are not padding: (B, T, H), (B, T) -> (B, H)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
