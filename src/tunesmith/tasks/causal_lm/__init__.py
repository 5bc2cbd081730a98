"""causal-lm: instruction/chat data or raw text, a decoder with its chat template; the base model
and a retrieval baseline as contenders. Loop task and family: task.py, family.py; a finished
run: kind.py."""

from tunesmith.tasks.registry import TaskKind, register

register(
    TaskKind(
        name="causal-lm",
        implementation="tunesmith.tasks.causal_lm.kind",
        default_model="builtin:smollm2",
        metrics=("loss", "perplexity"),
        headline=("perplexity", "rouge_l", "exact_match", "token_f1"),
        inputs="text",
        methods=(
            "full",
            "lora",
            "dora",
            "ia3",
            "prefix",
            "prompt",
            "ptuning",
            "adapter",
            "selective",
        ),
        generative=True,
        default_max_length=512,
        default_unicode="none",
        description="an LLM that answers (instruction tuning, chat, domain text)",
    )
)
