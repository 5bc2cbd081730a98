"""Image classification on real image sets: fine-tuned vs frozen features vs pixels, per method.

    .venv/bin/python benchmarks/vision.py [--datasets fashion,digits] [--methods full,lora]
                                          [--per-class 100] [--set train.epochs=5]

Data (benchmarks/image_datasets.py writes them as image folders): Fashion-MNIST (MIT; 28x28
grey photos of clothing, from Debian's dataset-fashion-mnist) and scikit-learn's 8x8 digits
(BSD-3). `--per-class` images of each class, 70/10/20 stratified split with the same seed for
every method. Each run is a separate `tunesmith train` process (peak memory is its own) of
builtin:efficientnet-lite0 at preprocess.image_size (default 96: the sources are 28x28 and
8x8, so 224 would only spend compute on upsampled pixels). Prints accuracy and macro-F1 of
the fine-tuned model beside `base` (frozen pre-trained features + logistic regression) and
`baseline` (logistic regression on 32x32 pixels), images/s and peak memory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from image_datasets import build
from runner import train_in_subprocess

RESULTS = Path(__file__).parent / "results" / "vision"
DATASETS = ("fashion", "digits")
METHODS = ("full", "linear-probe", "selective", "lora")
PREPROCESS = {
    # digits and clothes have a handedness / an orientation worth keeping
    "fashion": {"flip": True},
    "digits": {"flip": False},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--model", default="builtin:efficientnet-lite0")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()

    header = (
        f"{'data set':<8} {'method':<13} {'trainable':>10} {'FT acc':>7} {'base':>6} "
        f"{'pixels':>6} {'FT F1':>6} {'base':>6} {'pixels':>6} {'train s':>8} {'img/s':>6} "
        f"{'peak MB':>8}"
    )
    rows = []
    for dataset in args.datasets.split(","):
        folder = build(
            dataset, RESULTS / "data" / f"{dataset}-{args.per_class}", args.per_class,
            RESULTS / "cache",
        )  # fmt: skip
        for method in args.methods.split(","):
            recipe = {
                "task": "image-classification",
                "model": args.model,
                "data": {"train": str(folder.resolve())},
                "preprocess": {"image_size": args.image_size, **PREPROCESS[dataset]},
                "method": {"name": method},
            }
            name = f"{dataset}-{method}"
            m = train_in_subprocess(
                recipe, RESULTS / "recipes" / f"{name}.yaml", RESULTS / "runs" / name,
                args.overrides,
            )  # fmt: skip
            fine, base, pixels = m["fine_tuned"], m["base"], m["baseline"]
            rows.append(
                f"{dataset:<8} {method:<13} {m['params']['trainable']:>10,} "
                f"{fine['accuracy']:>7.3f} {base['accuracy']:>6.3f} {pixels['accuracy']:>6.3f} "
                f"{fine['macro_f1']:>6.3f} {base['macro_f1']:>6.3f} {pixels['macro_f1']:>6.3f} "
                f"{m['train_seconds']:>8.0f} {m['samples_per_second']:>6.1f} "
                f"{m['peak_memory_mb']:>8.0f}"
            )
            print(rows[-1], flush=True)
    print(f"\n{header}\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
