"""text-classification: labelled texts, an encoder with a fresh head; TF-IDF and frozen-encoder
contenders. Data, model, loop task and contenders: family.py, task.py; a finished run: kind.py."""

from tunesmith.tasks.registry import TaskKind, register

register(
    TaskKind(
        name="text-classification",
        implementation="tunesmith.tasks.text_classification.kind",
        default_model="builtin:minilm",
        metrics=("macro_f1", "accuracy", "loss"),
        headline=("accuracy", "macro_f1"),
        inputs="text",
        methods=(
            "full",
            "lora",
            "dora",
            "ia3",
            "prefix",
            "prompt",
            "ptuning",
            "selective",
            "linear-probe",
        ),
        default_max_length="auto",
        default_unicode="nfkc",
        pipeline_tag="text-classification",
        description="one label per text (support tickets, intents, topics)",
    )
)
