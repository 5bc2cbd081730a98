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
        metrics=("micro_f1", "macro_f1", "subset_accuracy", "loss"),
        headline=("micro_f1", "macro_f1", "subset_accuracy"),
        inputs="text",
        # prefix/prompt/ptuning adapters cannot be merged into a plain classifier
        methods=("full", "lora", "dora", "ia3", "selective", "linear-probe"),
        default_max_length="auto",
        default_unicode="nfkc",
        pipeline_tag="text-classification",
        description="any number of labels per text (tags, topics, ticket categories)",
    )
)
