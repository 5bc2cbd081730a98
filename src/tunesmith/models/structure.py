"""Find a model's parts by structure, not by name, so methods work on any architecture.

A classifier is an encoder plus a freshly initialised head; a causal language model is a
decoder whose output layer is pre-trained (and usually tied to the input embeddings).
"""

from __future__ import annotations

from peft import TaskType
from torch import nn
from transformers import PreTrainedModel

from tunesmith.errors import UserError


def is_language_model(model: PreTrainedModel) -> bool:
    """True for a model whose head predicts tokens (a causal LM), not classes."""
    get_output = getattr(model, "get_output_embeddings", None)
    return get_output is not None and get_output() is not None


def peft_task_type(model: nn.Module) -> TaskType | None:
    """peft's task type; None (a plain PeftModel) for a model that is not a transformers
    model, such as tunesmith's image classifier."""
    if not isinstance(model, PreTrainedModel):
        return None
    if not is_language_model(model):
        return TaskType.SEQ_CLS
    if getattr(model.config, "is_encoder_decoder", False):
        return TaskType.SEQ_2_SEQ_LM
    return TaskType.CAUSAL_LM


def encoder_of(model: PreTrainedModel) -> nn.Module:
    """The pre-trained body (e.g. `bert`, `model`) under a task head."""
    return getattr(model, model.base_model_prefix, model)


def head_modules(model: PreTrainedModel) -> dict[str, nn.Module]:
    """The freshly initialised head: what sits beside the encoder, plus its pooler.

    BERT's pooler (dense + tanh on [CLS]) feeds only the head, so it belongs to it. A
    language model has no fresh head: its output layer is pre-trained (and often tied to
    the input embeddings), so nothing here.
    """
    if is_language_model(model):
        return {}
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


def final_norm(model: PreTrainedModel) -> list[nn.Module]:
    """Normalisation layers after a decoder's layer stack (e.g. Llama's `model.norm`): they
    shape what the output layer sees, so selective fine-tuning of the top layers trains them."""
    encoder = encoder_of(model)
    stack = layer_stack(model)
    return [
        child
        for child in encoder.children()
        if child is not stack
        and not isinstance(child, nn.Embedding)
        and "norm" in type(child).__name__.lower()
    ]


def layer_stacks(model: nn.Module) -> list[nn.ModuleList]:
    """Every stack of transformer blocks: the encoder's and the decoder's of an
    encoder-decoder (T5, BART), else the one `layer_stack`."""
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):
        return [layer_stack(model.get_encoder()), layer_stack(model.get_decoder())]
    return [layer_stack(model)]


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
