"""causal-lm: instruction/chat data or raw text, a decoder with its chat template; the base model
and a retrieval baseline as contenders. Loop task and family: task.py, family.py; a finished
run: kind.py."""

from tunesmith.tasks.registry import AutoEpochs, SearchDefaults, TaskKind, register

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
        # A pre-trained LM learns an instruction set in a few epochs: on the zaragoza FAQ
        # (22 steps an epoch) validation loss fell 3.87, 3.29, 2.94, 2.81, then rose (2.82)
        # while forgetting grew every epoch; 300 steps would have planned 14 epochs.
        auto_epochs=AutoEpochs(target_steps=100, fewest=2, most=8),
        relative_min_delta=0.01,
        default_unicode="none",
        # an LLM fits an instruction set in a few epochs (see auto_epochs); full fine-tuning
        # of a 135M model costs a few times LoRA's memory, so lora and dora are searched
        search=SearchDefaults(methods=("lora", "dora"), epochs=(1, 4)),
        description="an LLM that answers (instruction tuning, chat, domain text)",
    )
)
