"""Fine-tuned vs base vs baseline on real text-classification data sets, for each method.

    make bench-setup   # installs the data packages (chatterbot-corpus, zaragoza-construction-faq)
    .venv/bin/python benchmarks/text_classification.py [--methods full,lora] [--set train.epochs=5]

Each run is a separate `tunesmith train` process (so peak memory is that run's own) on the
same stratified 70/10/20 split; the table prints macro-F1 and accuracy of the fine-tuned
model beside its anchors: `base` (frozen encoder + logistic regression) and `baseline`
(TF-IDF + logistic regression), all on the same test split.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from datasets import chatterbot_topics, zaragoza_categories
from runner import train_in_subprocess

RESULTS = Path(__file__).parent / "results"
DATASETS = {"chatterbot": chatterbot_topics, "zaragoza": zaragoza_categories}
METHODS = ("full", "lora", "selective", "linear-probe")


def run(dataset: str, method: str, overrides: list[str], model: str) -> dict:
    data = RESULTS / "data" / f"{dataset}.csv"
    if not data.exists():
        data.parent.mkdir(parents=True, exist_ok=True)
        DATASETS[dataset]().to_csv(data, index=False)
    recipe = {
        "task": "text-classification",
        "model": model,
        "data": {"train": str(data.resolve())},
        "method": {"name": method},
    }
    name = f"{dataset}-{method}"
    return train_in_subprocess(
        recipe, RESULTS / "recipes" / f"{name}.yaml", RESULTS / "runs" / name, overrides
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--model", default="builtin:minilm")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()

    header = (
        f"{'data set':<11} {'method':<13} {'trainable':>10} {'FT macro-F1':>11} {'base':>6} "
        f"{'baseline':>8} {'FT acc':>7} {'base':>6} {'baseline':>8} {'train s':>8} "
        f"{'samples/s':>9} {'peak MB':>8}"
    )
    rows = []
    for dataset in args.datasets.split(","):
        for method in args.methods.split(","):
            m = run(dataset, method, args.overrides, args.model)
            rows.append(
                f"{dataset:<11} {method:<13} {m['params']['trainable']:>10,} "
                f"{m['fine_tuned']['macro_f1']:>11.3f} {m['base']['macro_f1']:>6.3f} "
                f"{m['baseline']['macro_f1']:>8.3f} {m['fine_tuned']['accuracy']:>7.3f} "
                f"{m['base']['accuracy']:>6.3f} {m['baseline']['accuracy']:>8.3f} "
                f"{m['train_seconds']:>8.1f} {m['samples_per_second']:>9.1f} "
                f"{m['peak_memory_mb']:>8.0f}"
            )
            print(rows[-1], flush=True)
    print("\n" + header)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
