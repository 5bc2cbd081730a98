"""Multi-label classification: fine-tuned vs base vs baseline on real questions with 1-2 topics.

    make bench-setup   # installs chatterbot-corpus==1.3.3 (BSD-3-Clause)
    .venv/bin/python benchmarks/multi_label.py [--methods lora,full] [--set train.epochs=10]
    .venv/bin/python benchmarks/multi_label.py --write-example   # rewrites the example data

No real multi-label set is reachable offline, so one is built honestly from real single-label
texts: chatterbot-corpus questions, each labelled with its topic file. Half of the questions
are paired with a question of another topic and joined into one text that carries both topics
(two real questions in one message, as a ticket often asks two things); the rest stay single.
Nothing else is invented: every word is a real question, every label its real topic.

Each run is a separate `tunesmith train` process on the same 70/10/20 split (stratified on
each row's rarest topic); the table prints test micro-F1, macro-F1 and subset accuracy of the
fine-tuned model beside `base` (frozen encoder + one-vs-rest logistic regression) and
`baseline` (TF-IDF + one-vs-rest logistic regression), thresholds tuned on validation for all.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from datasets import chatterbot_topics
from runner import train_in_subprocess

ROOT = Path(__file__).parents[1]
RESULTS = Path(__file__).parent / "results"
BUNDLED = ROOT / "src" / "tunesmith" / "demo_data" / "chatterbot_topics.csv"
EXAMPLE = ROOT / "examples" / "data" / "chatterbot-multi-label.csv"
SEPARATOR = "|"
"""The example csv joins a row's topics with '|' (the questions hold commas)."""


def paired_questions(frame: pd.DataFrame, pair_share: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """Rows (text, labels: list) from single-label rows (text, label): `pair_share` of the
    questions joined two by two across topics, the rest kept as they are. Deterministic."""
    rng = random.Random(seed)
    rows = list(frame[["text", "label"]].itertuples(index=False))
    rng.shuffle(rows)
    to_pair = rows[: round(len(rows) * pair_share)]
    out = [{"text": text, "labels": [label]} for text, label in rows[len(to_pair) :]]
    while to_pair:
        text, label = to_pair.pop()
        partner = next((i for i, row in enumerate(to_pair) if row[1] != label), None)
        if partner is None:  # only one topic left to pair: keep it single
            out.append({"text": text, "labels": [label]})
            continue
        other_text, other_label = to_pair.pop(partner)
        out.append({"text": f"{text} {other_text}", "labels": sorted([label, other_label])})
    rng.shuffle(out)
    return pd.DataFrame(out)


def write_example() -> Path:
    """examples/data/chatterbot-multi-label.csv from the excerpt bundled with tunesmith."""
    frame = paired_questions(pd.read_csv(BUNDLED))
    joined = frame.assign(labels=[SEPARATOR.join(labels) for labels in frame["labels"]])
    joined.to_csv(EXAMPLE, index=False)
    return EXAMPLE


def run(method: str, data: Path, overrides: list[str], model: str) -> dict:
    recipe = {
        "task": "multi-label-classification",
        "model": model,
        "data": {"train": str(data.resolve()), "label_column": "labels"},
        "method": {"name": method},
    }
    name = f"chatterbot-multi-label-{method}"
    return train_in_subprocess(
        recipe, RESULTS / "recipes" / f"{name}.yaml", RESULTS / "runs" / name, overrides
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="lora")
    parser.add_argument("--model", default="builtin:minilm")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--write-example", action="store_true", help=write_example.__doc__)
    args = parser.parse_args()
    if args.write_example:
        path = write_example()
        print(f"wrote {path}")
        return

    data = RESULTS / "data" / "chatterbot-multi-label.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    frame = paired_questions(chatterbot_topics())
    frame.to_json(data, orient="records", lines=True, force_ascii=False)
    pairs = sum(len(labels) == 2 for labels in frame["labels"])
    topics = len({label for labels in frame["labels"] for label in labels})
    print(f"{len(frame)} rows ({pairs} paired questions), {topics} topics: {data}")

    header = (
        f"{'method':<13} {'trainable':>10} {'FT micro':>8} {'base':>6} {'baseline':>8} "
        f"{'FT macro':>8} {'base':>6} {'baseline':>8} {'FT exact':>8} {'base':>6} "
        f"{'baseline':>8} {'threshold':>9} {'train s':>8} {'peak MB':>8}"
    )
    rows = []
    for method in args.methods.split(","):
        m = run(method, data, args.overrides, args.model)
        cells = [
            f"{m[key][metric]:>{width}.3f}"
            for metric in ("micro_f1", "macro_f1", "subset_accuracy")
            for key, width in (("fine_tuned", 8), ("base", 6), ("baseline", 8))
        ]
        rows.append(
            f"{method:<13} {m['params']['trainable']:>10,} {' '.join(cells)} "
            f"{m['thresholds']['global']:>9.2f} {m['train_seconds']:>8.1f} "
            f"{m['peak_memory_mb']:>8.0f}"
        )
        print(rows[-1], flush=True)
    print("\n" + header)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
