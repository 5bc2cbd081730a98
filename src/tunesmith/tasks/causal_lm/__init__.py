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
        # A pre-trained LM learns an instruction set in a few epochs. On 80% of the zaragoza
        # FAQ (23 steps an epoch, LoRA at its default rate) validation loss went 3.18, 2.96,
        # 2.91, 2.91, 2.93 over five epochs: the best weights were epoch 3's, and forgetting
        # grew every epoch (+11%, +11%, +19%, +26%, +30% perplexity). 60 steps plan those
        # three epochs; 100 planned five, 300 would have planned 14.
        auto_epochs=AutoEpochs(target_steps=60, fewest=2, most=8),
        relative_min_delta=0.01,
        default_unicode="none",
        # an LLM fits an instruction set in a few epochs (see auto_epochs); full fine-tuning
        # of a 135M model costs a few times LoRA's memory, so lora and dora are searched
        search=SearchDefaults(methods=("lora", "dora"), epochs=(1, 4)),
        contenders=("base", "few-shot", "rag", "fine-tuned", "fine-tuned+rag"),
        pipeline_tag="text-generation",
        description="an LLM that answers (instruction tuning, chat, domain text)",
    )
)
