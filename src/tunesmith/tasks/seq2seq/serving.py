"""A seq2seq run (T5, BART) behind `tunesmith serve`: the input text is the encoder's (a
chat request's last user message; system and earlier turns do not apply to a model trained
on input-target pairs), and the decoder writes the answer, streamed row by row."""

from __future__ import annotations

from contextlib import ExitStack

import torch

from tunesmith.methods.merged_lora import lora_merged
from tunesmith.tasks.common import placed
from tunesmith.tasks.seq2seq import model as seq2seq
from tunesmith.tasks.seq2seq.data import PairSplit, PairSplits
from tunesmith.tasks.seq2seq.task import Seq2SeqTask
from tunesmith.tasks.serving import GenerationJob, RowWatcher
from tunesmith.train.device import autocast
from tunesmith.trained_run import TrainedRun


class Seq2SeqServing:
    """`GenerativeModel` for a seq2seq run (see tasks/serving.py)."""

    def __init__(self, run: TrainedRun) -> None:
        device, dtype = placed(run)
        empty = PairSplit([], "")
        splits = PairSplits(empty, empty, empty, "input-target")
        self.task = Seq2SeqTask.from_recipe(
            splits, run.tokenizer, run.model, run.recipe, device, dtype
        )
        self._merged = ExitStack()  # LoRA folded in once, for the server's lifetime
        self.model = self._merged.enter_context(lora_merged(run.model))
        self.model.eval()
        self.tokenizer = run.tokenizer
        self.name = run.folder.name
        self.default_max_tokens = run.recipe.generation.max_new_tokens
        config = getattr(run.model, "config", None)
        positions = getattr(config, "max_position_embeddings", None)  # T5: relative, none
        self._answer_limit = int(positions) if positions else 4096

    def chat_prompt(self, messages: list[dict[str, str]]) -> list[int]:
        users = [m["content"] for m in messages if m.get("role") == "user"]
        if not users:
            raise ValueError("messages: a user message is needed (the model's input text)")
        return self.text_prompt(users[-1])

    def text_prompt(self, text: str) -> list[int]:
        task = self.task
        ids = self.tokenizer(task.preprocessor(text), verbose=False)["input_ids"]
        if not text.strip():
            raise ValueError("the prompt is empty")
        if len(ids) > task.max_length:
            raise ValueError(
                f"the input has {len(ids)} tokens; this run reads at most {task.max_length} "
                "(its preprocess.max_length)"
            )
        return task.encode_sources([text])[0][0]

    def room(self, prompt_tokens: int) -> int:
        return self._answer_limit

    @torch.inference_mode()
    def generate(self, jobs: list[GenerationJob]) -> None:
        task = self.task
        width = max(len(job.prompt) for job in jobs)
        input_ids = torch.full((len(jobs), width), task.pad_id, dtype=torch.long)
        mask = torch.zeros((len(jobs), width), dtype=torch.long)
        for r, job in enumerate(jobs):
            input_ids[r, : len(job.prompt)] = torch.tensor(job.prompt)
            mask[r, : len(job.prompt)] = 1
        limit = max(job.sampling.max_tokens for job in jobs)
        settings = seq2seq.generation_settings(self.model, task.generation, limit, task.pad_id)
        settings.update(**jobs[0].sampling.generate_options())
        eos = settings.eos_token_id
        ends = [eos] if isinstance(eos, int) else list(eos or [])
        watcher = RowWatcher(self.tokenizer, jobs, 1, ends)  # after the decoder's start token
        with autocast(task.device, task.dtype):
            seq2seq.generate(
                self.model, input_ids.to(task.device), mask.to(task.device), settings, [watcher]
            )
        watcher.flush()
