"""multi-label-classification: texts with any number of labels each (tags, topics, ticket
categories), an encoder with one sigmoid per label and thresholds tuned on validation;
TF-IDF and frozen-encoder contenders (one logistic regression per label).
Data: data.py; loop task: task.py; thresholds: thresholds.py; `train`: family.py; a finished
run and the data check: kind.py, quality.py."""

from tunesmith.tasks.registry import TaskKind, register

register(
    TaskKind(
        name="multi-label-classification",
        implementation="tunesmith.tasks.multi_label_classification.kind",
        default_model="builtin:minilm",
        # micro_f1 would fit better as the default, but train.early_stopping.metric accepts
        # macro_f1, accuracy, loss or perplexity only (recipe.EarlyStopping)
        metrics=("macro_f1", "loss"),
        headline=("micro_f1", "macro_f1", "subset_accuracy"),
        inputs="text",
        # ia3 trains, but `export --merge` fails in peft on its saved pooler (as for
        # text-classification); prefix/prompt/ptuning adapters cannot be merged at all
        methods=("full", "lora", "dora", "selective", "linear-probe"),
        default_max_length=128,
        default_unicode="nfkc",
        description="any number of labels per text (tags, topics, ticket categories)",
    )
)
