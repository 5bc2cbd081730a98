"""A causal-LM run behind `tunesmith serve`: chat prompts through the run's chat template
(and its system prompt), plain prompts as they are, one batched `generate` per group of
requests, and, when the run's verdict chose the fine-tuned model with RAG, each chat
question led by the passages it retrieves from the run's index."""

from __future__ import annotations

from contextlib import ExitStack

from rich.console import Console

from tunesmith.data.causal import LMSplit, LMSplits, Message, load_causal_lm, with_system_prompt
from tunesmith.methods.merged_lora import lora_merged
from tunesmith.run_folder import RunFolder
from tunesmith.tasks.causal_lm.contenders import Contenders
from tunesmith.tasks.causal_lm.task import CausalLMTask
from tunesmith.tasks.common import placed
from tunesmith.tasks.serving import GenerationJob, RowWatcher
from tunesmith.trained_run import TrainedRun

ROLES = ("system", "user", "assistant")


class ChatServing:
    """`GenerativeModel` for a causal-LM run (see tasks/serving.py)."""

    def __init__(self, run: TrainedRun, retrieval: bool) -> None:
        recipe = run.recipe
        device, dtype = placed(run)
        empty = LMSplit([], "")
        splits = LMSplits(empty, empty, empty, format="chat")
        self.contenders: Contenders | None = None
        if retrieval:
            splits = load_causal_lm(recipe.data, recipe.train.seed)  # the training pairs
            recipe = recipe.model_copy(update={"compare": ["fine-tuned+rag"]})
        self.task = CausalLMTask.from_recipe(splits, run.tokenizer, recipe, device, dtype)
        if retrieval:
            self.contenders = Contenders(self.task, recipe, splits.train.examples)
            self.contenders.open(run.folder / RunFolder.RETRIEVAL, Console(stderr=True))
        self.recipe = recipe
        self.tokenizer = run.tokenizer
        self._merged = ExitStack()  # LoRA folded in once, for the server's lifetime
        self.model = self._merged.enter_context(lora_merged(run.model))
        self.model.eval()
        self.name = run.folder.name
        config = getattr(run.model, "config", None)
        self.context_length = int(getattr(config, "max_position_embeddings", 0) or 2048)
        self.default_max_tokens = recipe.generation.max_new_tokens
        self._stop = self.task.stop_ids(run.model)
        self._virtual = self.task.virtual_tokens(run.model)

    def chat_prompt(self, messages: list[dict[str, str]]) -> list[int]:
        for i, message in enumerate(messages):
            if message.get("role") not in ROLES:
                raise ValueError(
                    f"messages[{i}].role {message.get('role')!r}: this model takes "
                    f"{', '.join(ROLES)}"
                )
        if not messages or messages[-1]["role"] != "user":
            raise ValueError("messages: the last message must be the user's (the model answers)")
        prompt: list[Message] = with_system_prompt(
            [{"role": m["role"], "content": m["content"]} for m in messages], self.recipe.data
        )
        if self.contenders is not None:
            budget = self.contenders.prompt_budget(
                self.model, self.recipe.generation.max_new_tokens
            )
            prompt, _ = self.contenders.rag_prompt(prompt, budget)
        return self._fitting(self.task.encode([prompt])[0])

    def text_prompt(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        return self._fitting(ids)

    def room(self, prompt_tokens: int) -> int:
        return self.context_length - self._virtual - prompt_tokens

    def _fitting(self, ids: list[int]) -> list[int]:
        if not ids:
            raise ValueError("the prompt is empty")
        if self.room(len(ids)) < 1:
            raise ValueError(
                f"the prompt has {len(ids)} tokens; this model reads at most "
                f"{self.context_length - self._virtual - 1} (its context is "
                f"{self.context_length} tokens, answer included)"
            )
        return ids

    def generate(self, jobs: list[GenerationJob]) -> None:
        rows = [job.prompt for job in jobs]
        limit = max(job.sampling.max_tokens for job in jobs)
        width = self._virtual + max(len(ids) for ids in rows)
        watcher = RowWatcher(self.tokenizer, jobs, width, self._stop)
        sampling = jobs[0].sampling.generate_options()
        self.task.generate_ids(
            self.model, rows, limit, self._stop, self._virtual, sampling, [watcher]
        )
        watcher.flush()
