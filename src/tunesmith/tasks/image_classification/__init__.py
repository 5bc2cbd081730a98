"""image-classification: labelled images, a pre-trained CNN or ViT with a fresh head; a
frozen-feature probe (which also starts the head: LP-FT) and a pixel baseline as contenders.
Family and loop task: family.py, task.py; a finished run: kind.py."""

from tunesmith.tasks.registry import TaskKind, register

register(
    TaskKind(
        name="image-classification",
        implementation="tunesmith.tasks.image_classification.kind",
        default_model="builtin:efficientnet-lite0",
        metrics=("macro_f1", "accuracy", "loss"),
        headline=("accuracy", "macro_f1"),
        inputs="image",
        methods=("full", "lora", "dora", "ia3", "selective", "linear-probe"),
        pipeline_tag="image-classification",
        description="one label per image (defects, medical, satellite photos)",
    )
)
