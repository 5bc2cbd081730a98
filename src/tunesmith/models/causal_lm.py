"""Causal language models: any Hugging Face decoder, with a chat template and a pad token."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from tunesmith.errors import UserError

# For base models that ship no chat template: a plain instruction format. It is saved with
# the run's tokenizer, so training, evaluation, predict and exported models all use it.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'user' %}"
    "{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}"
    "{% else %}{{ '### Response:\\n' + message['content'] + eos_token + '\\n\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}"
)


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """A chat template (the model's own, else a plain instruction format) and a pad token."""
    if not tokenizer.chat_template:
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    if tokenizer.eos_token is None:
        raise UserError("model: the tokenizer has no end-of-sequence token; set eos_token")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.is_fast:
        raise UserError(
            "model: tunesmith needs a fast (Rust) tokenizer to find response tokens; this "
            "model ships only a slow one. Convert it with tokenizers or pick another model"
        )
    return tokenizer


def load_causal_lm(folder: Path) -> PreTrainedModel:
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32")
    except (OSError, ValueError, KeyError) as error:
        raise UserError(
            f"model: {folder} cannot be loaded as a causal language model (task: causal-lm): "
            f"{str(error).splitlines()[0]}"
        ) from None
    return model
