"""seq2seq: input/target pairs (or alpaca rows) and an encoder-decoder (T5, FLAN-T5, mT5, BART)
that learns to write the target; the base model and the nearest training example's target as
contenders. Data: data.py; model loading and the virtual-token paths: model.py; loop task:
task.py; family: family.py; data check: quality.py; a finished run: kind.py."""

from tunesmith.tasks.registry import AutoEpochs, SearchDefaults, TaskKind, register

register(
    TaskKind(
        name="seq2seq",
        implementation="tunesmith.tasks.seq2seq.kind",
        default_model="google/flan-t5-small",
        metrics=("loss", "perplexity"),
        headline=("perplexity", "rouge_l", "exact_match", "token_f1"),
        inputs="text",
        methods=("full", "lora", "dora", "ia3", "prefix", "prompt", "ptuning", "selective"),
        generative=True,
        default_max_length=512,
        # A pre-trained LM learns an instruction set in a few epochs: on the zaragoza FAQ
        # (22 steps an epoch) validation loss fell 3.87, 3.29, 2.94, 2.81, then rose (2.82)
        # while forgetting grew every epoch; 300 steps would have planned 14 epochs.
        auto_epochs=AutoEpochs(target_steps=100, fewest=2, most=8),
        relative_min_delta=0.01,
        default_unicode="none",
        search=SearchDefaults(methods=("lora", "full"), epochs=(1, 4)),
        pipeline_tag="text2text-generation",
        description="an encoder-decoder that rewrites text (summaries, translation, answers)",
    )
)
