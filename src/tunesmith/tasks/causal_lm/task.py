"""Causal language modelling as a `TrainTask`: chat-templated examples with response-only
targets, or chunks of raw text; packed rows; loss, perplexity and generated answers.

Every example becomes (input ids, next-token targets) once, up front. Targets are already
shifted: `targets[j]` is the token that should follow position j, or -100 where nothing is
scored (prompt tokens, padding, the last token of an example, overlap context). That makes
packing trivial: rows are concatenations of examples, with position ids restarting at 0 for
each example, which tells the model's attention not to look across examples.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedTokenizerBase, StoppingCriteriaList

from tunesmith.data.causal import LMExample, LMSplit, LMSplits, Message
from tunesmith.data.text import SPLITS
from tunesmith.data.text_preprocess import TextPreprocessor
from tunesmith.evaluate.generation import generation_metrics
from tunesmith.methods.merged_lora import lora_merged
from tunesmith.progress import track
from tunesmith.recipe import GenerationConfig, Recipe
from tunesmith.tasks.causal_lm.chat import render_turns, template_turns
from tunesmith.tasks.common import answer_budget, content_digest, token_loss_metrics
from tunesmith.train.batching import sorted_batches
from tunesmith.train.device import autocast
from tunesmith.train.losses import linear_cross_entropy
from tunesmith.train.task import Batch


@dataclass(frozen=True)
class Answers:
    """Generated answers to a split's prompts, with the references they are scored against."""

    prompts: list[list[dict]]
    references: list[str]
    answers: list[str]


IGNORE = -100
PACKING_MIN_SAVING = 0.15
GENERATION_BATCH_TOKENS = 8192
"""Prompt and answer slots of one generation batch: long prompts (RAG, few-shot) go in
smaller batches. On SmolLM2 (2 cores, bf16), 32 prompts of 1,000 tokens in one batch took
74 s and 2.8 GB, in four batches of 8 50 s and 1.6 GB; prompts of 40 tokens stay 32 a
batch."""


@dataclass
class Encoded:
    ids: list[int]
    targets: list[int]
    """Next-token targets, already shifted (IGNORE where not scored)."""
    example: int
    """Index of the example in its split (a long raw text gives several chunks)."""

    @property
    def scored(self) -> int:
        return sum(t != IGNORE for t in self.targets)


def render(tokenizer: PreTrainedTokenizerBase, messages: list[Message], prompt: bool) -> str:
    """The chat template as text; `prompt`: end with the assistant's turn opened. Tool calls
    and results go through the template, or as plain turns where it has no tool support
    (tasks/causal_lm/chat.py)."""
    turns, tools, _ = template_turns(tokenizer, messages)
    return render_turns(tokenizer, turns, tools, prompt)


def response_spans(tokenizer: PreTrainedTokenizerBase, messages: list[Message]) -> list[range]:
    """Character ranges of the target assistant turns (with their end-of-turn token) in the
    rendered conversation: what the model must learn to write. A tool-call turn is a target
    only when it ends the conversation; tool results never are."""
    turns, tools, targets = template_turns(tokenizer, messages)
    full = render_turns(tokenizer, turns, tools, prompt=False)
    spans = []
    for i in targets:
        before = render_turns(tokenizer, turns[:i], tools, prompt=True) if i else ""
        through = render_turns(tokenizer, turns[: i + 1], tools, prompt=False)
        if full.startswith(before) and full.startswith(through) and len(through) > len(before):
            spans.append(range(len(before), len(through)))
        elif turns[i]["content"]:  # a template that is not prefix-consistent: find the text
            start = full.rfind(turns[i]["content"])
            if start >= 0:
                spans.append(range(start, start + len(turns[i]["content"])))
    return spans


class CausalLMTask:
    def __init__(
        self,
        splits: LMSplits,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        device: torch.device,
        dtype: torch.dtype | None,
        *,
        eval_batch_size: int = 16,
        loss_on: str = "response",
        pack: bool = True,
        chunk_overlap: int = 64,
        generation: GenerationConfig | None = None,
        preprocessor: TextPreprocessor | None = None,
    ) -> None:
        """`preprocessor` (preprocess.unicode; none by default) normalises every message and
        text: the splits here (so references are scored in the same form) and the prompts
        given to `generate`."""
        self.preprocessor = preprocessor or TextPreprocessor(unicode="none")
        self.splits = _preprocessed(splits, self.preprocessor)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.device = device
        self.dtype = dtype
        self.eval_batch_size = eval_batch_size
        self.loss_on = loss_on
        self.pack = pack
        self.overlap = min(chunk_overlap, max_length // 2)
        self.generation = generation or GenerationConfig()
        self.pad_id = tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = tokenizer.eos_token_id or 0
        self.truncated: dict[str, int] = {}
        self.unscored: dict[str, int] = {}
        self.rows: dict[str, list[Encoded]] = {}
        for name in SPLITS:
            encoded, self.truncated[name] = [], 0
            for i, example in enumerate(self.splits.split(name).examples):
                chunks, cut = self._encode(example, i)
                encoded += chunks
                self.truncated[name] += cut
            self.unscored[name] = sum(row.scored == 0 for row in encoded)
            if name == "train":  # a row with nothing to learn costs compute and teaches nothing
                encoded = [row for row in encoded if row.scored]
            self.rows[name] = encoded

    @classmethod
    def from_recipe(
        cls,
        splits: LMSplits,
        tokenizer: PreTrainedTokenizerBase,
        recipe: Recipe,
        device: torch.device,
        dtype: torch.dtype | None,
    ) -> CausalLMTask:
        """The task as the recipe sets it up; methods that prepend virtual tokens to each
        row (prefix, prompt, ptuning, adapter) train one example per row, unpacked."""
        from tunesmith.methods import get_method

        return cls(
            splits,
            tokenizer,
            recipe.preprocess.max_length,
            device,
            dtype,
            eval_batch_size=recipe.train.eval_batch_size or recipe.train.batch_size,
            loss_on=recipe.train.loss_on,
            pack=recipe.preprocess.pack and not get_method(recipe.method.name).virtual_tokens,
            chunk_overlap=recipe.preprocess.chunk_overlap,
            generation=recipe.generation,
            # unicode only: lowercase and stop words are refused for causal-lm
            preprocessor=TextPreprocessor(unicode=recipe.preprocess.unicode),
        )

    @property
    def is_text(self) -> bool:
        return self.splits.format == "text"

    # -- encoding -----------------------------------------------------------------------

    def _encode(self, example: LMExample, index: int) -> tuple[list[Encoded], bool]:
        """The example's rows, and whether it was cut at max_length."""
        if example.messages is None:
            return self._encode_text(example.text or "", index), False
        return self._encode_chat(example.messages, index)

    def _encode_chat(self, messages: list[Message], index: int) -> tuple[list[Encoded], bool]:
        text = render(self.tokenizer, messages, prompt=False)
        encoding = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        ids, offsets = encoding["input_ids"], encoding["offset_mapping"]
        if self.loss_on == "all":
            scored = [True] * len(ids)
        else:
            spans = response_spans(self.tokenizer, messages)
            scored = [any(start in span for span in spans) for start, _ in offsets]
        cut = len(ids) > self.max_length
        ids, scored = ids[: self.max_length], scored[: self.max_length]
        targets = [ids[j + 1] if scored[j + 1] else IGNORE for j in range(len(ids) - 1)]
        return [Encoded(ids, [*targets, IGNORE], index)], cut

    def _encode_text(self, text: str, index: int) -> list[Encoded]:
        """Raw text: cut into windows of max_length tokens; each window after the first starts
        with `overlap` tokens of the previous one, as context that is not scored again."""
        ids = self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        if self.tokenizer.eos_token_id is not None:
            ids = [*ids, self.tokenizer.eos_token_id]
        if self.tokenizer.bos_token_id is not None and self.tokenizer.bos_token_id != (
            self.tokenizer.eos_token_id
        ):
            ids = [self.tokenizer.bos_token_id, *ids]
        chunks, start, step = [], 0, self.max_length - self.overlap
        while True:
            window = ids[start : start + self.max_length]
            context = 0 if start == 0 else self.overlap
            targets = [
                window[j + 1] if j + 1 >= context else IGNORE for j in range(len(window) - 1)
            ]
            chunks.append(Encoded(window, [*targets, IGNORE], index))
            if start + self.max_length >= len(ids):
                break
            start += step
        return chunks

    # -- batches ------------------------------------------------------------------------

    def lengths(self, split: str) -> list[int]:
        return [len(row.ids) for row in self.rows[split]]

    def batch(self, split: str, indices: Sequence[int]) -> Batch:
        return self.collate([self.rows[split][i] for i in indices])

    def collate(self, rows: list[Encoded]) -> Batch:
        """Packed rows (position ids restarting per example and no attention mask, so
        attention stays inside each example) or one example per padded row.

        Rows are filled up to the batch's longest example, not to max_length: attention
        costs grow with the square of the row length, so short examples share a row only
        where they would otherwise be padding. Packing is used only where it removes at
        least PACKING_MIN_SAVING of the padded slots: on length-grouped batches padding is
        often rare, and a plain padded batch runs faster through attention kernels."""
        singles = [[row] for row in rows]
        groups = _pack(rows, max(len(row.ids) for row in rows)) if self.pack else singles
        if len(groups) > (1 - PACKING_MIN_SAVING) * len(rows):
            groups = singles
        packed = groups is not singles
        width = max(sum(len(row.ids) for row in group) for group in groups)
        input_ids = torch.full((len(groups), width), self.pad_id, dtype=torch.long)
        targets = torch.full((len(groups), width), IGNORE, dtype=torch.long)
        positions = torch.zeros((len(groups), width), dtype=torch.long)
        mask = torch.zeros((len(groups), width), dtype=torch.long)
        for r, group in enumerate(groups):
            at = 0
            for row in group:
                n = len(row.ids)
                input_ids[r, at : at + n] = torch.tensor(row.ids)
                targets[r, at : at + n] = torch.tensor(row.targets)
                positions[r, at : at + n] = torch.arange(n)
                at += n
            mask[r, :at] = 1
            positions[r, at:] = torch.arange(width - at)  # padding: a segment of its own
        if packed:
            inputs = {"input_ids": input_ids, "position_ids": positions}
        else:
            inputs = {"input_ids": input_ids, "attention_mask": mask}
        return Batch(
            inputs={k: v.to(self.device) for k, v in inputs.items()},
            targets=targets.to(self.device),
            items=int((targets != IGNORE).sum()),
            tokens=int(mask.sum()),
            examples=len(rows),
        )

    def loss_sum(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Cross-entropy summed over the scored tokens (the loop divides by their count).

        Where the decoder is reachable, the output layer runs on the scored positions only:
        prompt tokens need no vocabulary-sized logits, which saves compute and, above all,
        the memory of a (tokens x vocabulary) tensor and its gradient; and it runs fused
        with the loss, a chunk of positions at a time (`linear_cross_entropy`)."""
        scored = batch.targets != IGNORE
        lm = scored_positions_model(model)
        if lm is not None:
            hidden = lm.get_decoder()(**batch.inputs, use_cache=False).last_hidden_state
            head = lm.get_output_embeddings()
            if type(head) is nn.Linear:  # never the whole (tokens x vocabulary) logits
                return linear_cross_entropy(
                    hidden[scored], head.weight, head.bias, batch.targets[scored]
                )
            logits = head(hidden[scored])
        else:
            logits = model(**batch.inputs, use_cache=False).logits
            # prompt tuning prepends virtual tokens: the last positions are the real ones
            logits = logits[:, -batch.targets.shape[1] :][scored]
        return F.cross_entropy(logits.float(), batch.targets[scored], reduction="sum")

    # -- evaluation ---------------------------------------------------------------------

    def evaluate(self, model: nn.Module, split: str, detailed: bool = False) -> dict:
        """Loss and perplexity per scored token; `detailed` adds scores of generated answers
        (ROUGE-L, exact match, token F1)."""
        if detailed and not self.is_text:
            return self.evaluate_answers(model, split)[0]
        return self._loss_metrics(model, split)

    def evaluate_answers(self, model: nn.Module, split: str) -> tuple[dict, Answers]:
        """The detailed metrics and the answers they were computed from."""
        out = self._loss_metrics(model, split)
        examples = self.generation_examples(split)
        prompts = [ex.messages[:-1] for ex in examples]
        references = [ex.messages[-1]["content"] for ex in examples]
        started = time.perf_counter()
        answers = self.generate(model, prompts, self.answer_budget(references))
        seconds = time.perf_counter() - started
        out.update(generation_metrics(answers, references))
        out["generated"] = len(answers)
        if answers:
            out["seconds_per_answer"] = round(seconds / len(answers), 4)
            lengths = [min(len(ids), self.max_length) for ids in self.encode(prompts)]
            out["prompt_tokens"] = round(sum(lengths) / len(lengths), 1)
        return out, Answers(prompts, references, answers)

    def answer_budget(self, references: list[str]) -> int:
        """Tokens an answer may take: generation.max_new_tokens, cut to what the reference
        answers need (tasks/common.py `answer_budget`)."""
        return answer_budget(self.generation.max_new_tokens, self._token_lengths(references))

    def scoring_inputs(self, split: str) -> dict:
        """Everything besides the model that decides `evaluate_answers(model, split)`: the
        key of the base model's cached scores (evaluate/base_scores.py)."""
        examples = self.generation_examples(split)
        return {
            "kind": "causal-lm",
            "rows": content_digest([[row.ids, row.targets] for row in self.rows[split]]),
            "prompts": content_digest([ex.messages for ex in examples]),
            "generation": self.generation.model_dump(),
            "template": self.tokenizer.chat_template,
            "max_length": self.max_length,
            "batch_size": self.eval_batch_size,
            "dtype": str(self.dtype),
            "device": self.device.type,
        }

    def _loss_metrics(self, model: nn.Module, split: str) -> dict:
        return token_loss_metrics(self, model, split)

    def generation_examples(self, split: str) -> list:
        """The examples scored by generation: the first max_examples of the split."""
        examples = self.splits.split(split).examples
        limit = self.generation.max_examples
        return examples[:limit] if limit else examples

    def _token_lengths(self, texts: list[str]) -> list[int]:
        encoded = self.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
        return [len(ids) for ids in encoded]

    @torch.no_grad()  # not inference_mode: FSDP reuses buffers made here while training
    def generate(
        self,
        model: nn.Module,
        prompts: list[list[Message]],
        max_new_tokens: int | None = None,
        max_prompt_tokens: int | None = None,
    ) -> list[str]:
        """Answers to chat prompts, in order: batched, left-padded, greedy by default, at most
        `max_new_tokens` each (default generation.max_new_tokens); each row stops at its
        own end-of-turn token. A prompt keeps its last `max_prompt_tokens` tokens (default
        preprocess.max_length)."""
        model.eval()
        config = self.generation
        limit = max_new_tokens or config.max_new_tokens
        encoded = [ids[-(max_prompt_tokens or self.max_length) :] for ids in self.encode(prompts)]
        answers: list[str] = [""] * len(encoded)
        batches = sorted_batches(
            [len(ids) + limit for ids in encoded], config.batch_size, GENERATION_BATCH_TOKENS
        )
        stop, virtual = _stop_ids(self.tokenizer, model), _prefix_tokens(model)
        with lora_merged(model):  # one matrix product per layer while decoding
            for chunk in track(batches, "Generating answers", size=len, unit="answers"):
                rows = [encoded[i] for i in chunk]
                batch_answers = self._answer_batch(model, rows, limit, stop, virtual)
                for i, answer in zip(chunk, batch_answers, strict=True):
                    answers[i] = answer
        return answers

    def encode(self, prompts: list[list[Message]]) -> list[list[int]]:
        """The token ids of each chat prompt as `generate` feeds it (preprocessed, rendered
        with the chat template, the assistant's turn opened)."""
        prompts = [_preprocessed_messages(messages, self.preprocessor) for messages in prompts]
        return [
            self.tokenizer(
                render(self.tokenizer, messages, prompt=True),
                add_special_tokens=False,
                verbose=False,
            )["input_ids"]
            for messages in prompts
        ]

    def _answer_batch(
        self, model: nn.Module, rows: list[list[int]], limit: int, stop: list[int], virtual: int
    ) -> list[str]:
        """Answers to one batch of encoded prompts, left-padded, each stopping at a `stop`
        token; with prefix tuning, `virtual` leading slots stand for the prefix."""
        config = self.generation
        sampling = (
            {"do_sample": True, "temperature": config.temperature, "top_p": config.top_p}
            if config.do_sample
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        output, width = self.generate_ids(model, rows, limit, stop, virtual, sampling)
        return [
            self.tokenizer.decode(output[r, width:].tolist(), skip_special_tokens=True).strip()
            for r in range(len(rows))
        ]

    def generate_ids(
        self,
        model: nn.Module,
        rows: list[list[int]],
        limit: int,
        stop: list[int],
        virtual: int,
        sampling: dict,
        criteria: list | None = None,
    ) -> tuple[torch.Tensor, int]:
        """transformers' generate on encoded prompts, left-padded, each row ending at a
        `stop` token: (the ids, prompt included; the width where new tokens start). With
        prefix tuning, `virtual` leading slots stand for the prefix; `criteria` are extra
        stopping criteria (serve's per-row streaming)."""
        width = virtual + max(len(ids) for ids in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        mask[:, :virtual] = 1
        for r, ids in enumerate(rows):
            input_ids[r, width - len(ids) :] = torch.tensor(ids)
            mask[r, width - len(ids) :] = 1
        generator, extra = model, {}
        if virtual:
            generator = model.get_base_model()
            extra["past_key_values"] = model.get_prompt(len(rows), max_cache_len=width + limit)
        if criteria:
            extra["stopping_criteria"] = StoppingCriteriaList(criteria)
        with autocast(self.device, self.dtype):
            output = generator.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=mask.to(self.device),
                max_new_tokens=limit,
                eos_token_id=stop,
                pad_token_id=self.pad_id,
                **sampling,
                **extra,
            )
        return output, width

    def virtual_tokens(self, model: nn.Module) -> int:
        """Leading slots a prefix-tuned model's prompts need (see `_prefix_tokens`)."""
        return _prefix_tokens(model)

    def stop_ids(self, model: nn.Module) -> list[int]:
        """The tokens that end an answer (the tokenizer's and the generation config's)."""
        return _stop_ids(self.tokenizer, model)


def _preprocessed(splits: LMSplits, preprocessor: TextPreprocessor) -> LMSplits:
    """The splits with every text and message content preprocessed (new examples; the
    given ones are left as they are)."""
    if preprocessor.is_identity:
        return splits

    def example(ex: LMExample) -> LMExample:
        if ex.messages is not None:
            return replace(ex, messages=_preprocessed_messages(ex.messages, preprocessor))
        return replace(ex, text=preprocessor(ex.text or ""))

    parts = {
        name: LMSplit(
            [example(ex) for ex in splits.split(name).examples], splits.split(name).source
        )
        for name in SPLITS
    }
    return LMSplits(**parts, format=splits.format)


def _preprocessed_messages(
    messages: list[Message], preprocessor: TextPreprocessor
) -> list[Message]:
    if preprocessor.is_identity:
        return messages
    return [{**m, "content": preprocessor(m["content"])} for m in messages]


def scored_positions_model(model: nn.Module) -> nn.Module | None:
    """The causal LM whose decoder and output layer can be called apart, else None: a
    prompt-learning adapter must go through peft's forward (it adds virtual tokens), and a
    model that post-processes its logits (soft-capping, scaling) through its own."""
    config = getattr(model, "active_peft_config", None)
    if config is not None:
        if config.is_prompt_learning or getattr(config, "is_adaption_prompt", False):
            return None
        model = model.get_base_model()
    get_decoder = getattr(model, "get_decoder", None)
    if get_decoder is None or model.get_output_embeddings() is None:
        return None
    settings = model.config
    if getattr(settings, "final_logit_softcapping", None) or getattr(settings, "logit_scale", None):
        return None
    return model


def _prefix_tokens(model: nn.Module) -> int:
    """Virtual tokens of a prefix-tuned peft model, else 0.

    peft 0.21 hands its prefix to generate() as `past_key_values`, which transformers 5
    ignores beside its own cache, so the prefix would silently vanish when generating. The
    caller instead passes the prefix as a pre-filled cache to the base model's generate(),
    with as many placeholder tokens at the front as the cache already holds.
    """
    config = getattr(model, "active_peft_config", None)
    if config is None or getattr(config.peft_type, "value", "") != "PREFIX_TUNING":
        return 0
    return config.num_virtual_tokens


def _stop_ids(tokenizer: PreTrainedTokenizerBase, model: nn.Module) -> list[int]:
    """End-of-turn tokens: the tokenizer's eos plus whatever the generation config names."""
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, list):
        ids.update(configured)
    return sorted(ids)


def _pack(rows: list[Encoded], capacity: int) -> list[list[Encoded]]:
    """First-fit decreasing: fill each row up to `capacity` tokens."""
    groups: list[list[Encoded]] = []
    room: list[int] = []
    for row in sorted(rows, key=lambda r: -len(r.ids)):
        for g, free in enumerate(room):
            if len(row.ids) <= free:
                groups[g].append(row)
                room[g] -= len(row.ids)
                break
        else:
            groups.append([row])
            room.append(capacity - len(row.ids))
    return groups
