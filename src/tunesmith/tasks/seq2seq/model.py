"""Encoder-decoder models (T5, FLAN-T5, mT5, BART, ...): loading with a clear refusal of models
of another kind, and the one forward and generate path every method shares.

peft's virtual-token methods are run here rather than through peft's wrapper: tunesmith wraps
every language model as a causal LM (its task type), and peft's causal-LM wrapper neither
generates with an encoder-decoder nor puts a prefix where an encoder-decoder needs it. So:

- prompt tuning and p-tuning: the learned vectors go in front of the encoder's input
  embeddings (what peft's seq2seq wrapper does with them);
- prefix tuning: the learned keys and values go in front of the decoder's self-attention,
  laid out as peft's seq2seq wrapper lays them out (so a saved prefix means the same to
  plain peft), the cross-attention cache left to be filled from the encoder;
- every other method changes weights in place, so the base model runs as it is.
"""

from __future__ import annotations

import copy
import inspect
import json
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from transformers import (
    AutoModelForSeq2SeqLM,
    DynamicCache,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteriaList,
)
from transformers import GenerationConfig as Settings

from tunesmith.errors import UserError
from tunesmith.recipe import GenerationConfig

Virtual = Literal["prompt", "prefix"]
PROMPT_TYPES = {"PROMPT_TUNING": "prompt", "P_TUNING": "prompt", "PREFIX_TUNING": "prefix"}


def load_seq2seq_model(folder: Path, reference: str) -> PreTrainedModel:
    """The encoder-decoder in `folder`; a model of another kind is refused with the task
    kinds it does fit (an encoder such as BERT: text-classification; a decoder: causal-lm)."""
    config = _config(folder)
    if not config.get("is_encoder_decoder"):
        raise UserError(
            f"model: {reference} is a {config.get('model_type', 'unknown')} model without a "
            "decoder, not an encoder-decoder, so it cannot write an output text for seq2seq; "
            f"{fitting_tasks(config)}. For seq2seq pick an encoder-decoder (T5, FLAN-T5, "
            "mT5, BART) folder or cached Hugging Face id"
        )
    try:
        return AutoModelForSeq2SeqLM.from_pretrained(folder, dtype="float32")
    except (OSError, ValueError, KeyError) as error:
        raise UserError(
            f"model: {reference} cannot be loaded as an encoder-decoder (task: seq2seq): "
            f"{str(error).splitlines()[0]}"
        ) from None


def fitting_tasks(config: dict[str, Any]) -> str:
    """Which registered task kinds a (non encoder-decoder) model config fits, as a clause."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES

    from tunesmith.tasks.registry import task_kinds

    kinds = task_kinds().values()
    architectures = " ".join(config.get("architectures") or [])
    if "ForCausalLM" in architectures or "LMHeadModel" in architectures:
        names = [kind.name for kind in kinds if kind.name == "causal-lm"]
    elif config.get("model_type") in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES:
        names = [kind.name for kind in kinds if kind.inputs == "image"]
    else:
        names = [kind.name for kind in kinds if kind.inputs == "text" and not kind.generative]
    if not names:
        return "no tunesmith task fits it"
    return f"it fits task: {' or '.join(names)}"


def _config(folder: Path) -> dict[str, Any]:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"model: {folder}/config.json cannot be read ({error})") from None
    if not isinstance(config, dict):
        raise UserError(f"model: {folder}/config.json is not a model config")
    return config


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """An end-of-sequence token (the decoder must learn to stop) and a pad token."""
    if tokenizer.eos_token_id is None:
        raise UserError("model: the tokenizer has no end-of-sequence token; set eos_token")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def decoder_start_id(model: nn.Module, tokenizer: PreTrainedTokenizerBase) -> int:
    """The token the decoder starts from (T5: pad, BART: eos), as the model's config says."""
    config = _base(model).config
    for source in (config, getattr(_base(model), "generation_config", None)):
        value = getattr(source, "decoder_start_token_id", None)
        if isinstance(value, int):
            return value
    return tokenizer.pad_token_id


def virtual_kind(model: nn.Module) -> Virtual | None:
    """prompt (prompt tuning, p-tuning), prefix (prefix tuning), or None (weights only)."""
    config = getattr(model, "active_peft_config", None)
    peft_type = getattr(getattr(config, "peft_type", None), "value", None)
    return PROMPT_TYPES.get(peft_type)  # type: ignore[return-value]


def encoder_inputs(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> dict[str, Any]:
    """What the base model's forward or generate takes on the encoder side, with the learned
    virtual tokens of a prompt-learning method in place: (B, S) ids and mask in."""
    kind = virtual_kind(model)
    if kind is None:
        return {"input_ids": input_ids, "attention_mask": attention_mask}
    rows = input_ids.shape[0]
    if kind == "prompt":
        tokens = model.active_peft_config.num_virtual_tokens
        embeddings = _base(model).get_input_embeddings()(input_ids)  # (B, S, D)
        prompts = model.get_prompt(batch_size=rows)[:, :tokens].to(embeddings.dtype)
        ones = torch.ones(rows, tokens, dtype=attention_mask.dtype, device=attention_mask.device)
        return {
            "inputs_embeds": torch.cat([prompts, embeddings], dim=1),  # (B, V + S, D)
            "attention_mask": torch.cat([ones, attention_mask], dim=1),
        }
    # peft's seq2seq layout: its keys and values for the decoder's self-attention, and an
    # empty cross-attention cache that the encoder's output fills
    model.active_peft_config.num_transformer_submodules = 2
    cache = model.get_prompt(batch_size=rows)
    cache.cross_attention_cache = DynamicCache()
    for layer in cache.is_updated:
        cache.is_updated[layer] = False
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        _cache_keyword(_base(model)): cache,
        "use_cache": True,
    }


def forward(model: nn.Module, inputs: dict[str, torch.Tensor], **options: Any) -> Any:
    """The model's output for a batch (input_ids, attention_mask, decoder_input_ids)."""
    if virtual_kind(model) is None:
        return model(**inputs, use_cache=False, **options)
    encoder = encoder_inputs(model, inputs["input_ids"], inputs["attention_mask"])
    return _base(model)(**encoder, decoder_input_ids=inputs["decoder_input_ids"], **options)


def generate(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    settings: Settings,
    stopping_criteria: list | None = None,
) -> torch.Tensor:
    """(B, T) generated ids, starting with the decoder's start token; `stopping_criteria`:
    extra per-row criteria (serve's streaming)."""
    extra = (
        {"stopping_criteria": StoppingCriteriaList(stopping_criteria)} if stopping_criteria else {}
    )
    return _base(model).generate(
        **encoder_inputs(model, input_ids, attention_mask), generation_config=settings, **extra
    )


def generation_settings(
    model: nn.Module, config: GenerationConfig, max_new_tokens: int, pad_id: int
) -> Settings:
    """The model's own generation config with the recipe's decoding: greedy (or sampling) with
    one beam, and none of a checkpoint's length minimums or n-gram bans (BART-CNN ships
    min_length 56), so the base and the tuned model are scored on the same footing."""
    settings = copy.deepcopy(_base(model).generation_config)
    sampling = (
        {"do_sample": True, "temperature": config.temperature, "top_p": config.top_p}
        if config.do_sample
        else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    )
    settings.update(
        max_new_tokens=max_new_tokens,
        num_beams=1,
        num_return_sequences=1,
        min_length=0,
        min_new_tokens=None,
        no_repeat_ngram_size=0,
        length_penalty=1.0,
        early_stopping=False,
        pad_token_id=settings.pad_token_id if settings.pad_token_id is not None else pad_id,
        **sampling,
    )
    return settings


def _base(model: nn.Module) -> nn.Module:
    """The transformers model under a peft wrapper (adapters sit inside it, in place)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if get_base is not None else model


def _cache_keyword(model: nn.Module) -> str:
    """transformers 5.x renamed `past_key_values` to `cache` (5.24); use the model's name."""
    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"
