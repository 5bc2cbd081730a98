"""How well `tunesmith data check` finds known faults injected into real labelled data.

For each data set: a clean base (exact duplicates removed) is split 70/10/20 into train,
validation and test,
then faults are injected into train, seeded: 10% of its rows get a wrong label, 5% are copied
exactly, 5% are copied with a small change (a typo and punctuation for text; brightness,
noise and JPEG re-encoding for images), and 3% of the test rows are copied into train. The
check runs as `tunesmith train` would run it, and recall / precision are printed per fault:

- duplicates and leakage are judged by pair: a flagged pair is right when both rows come
  from the same base item; an injected pair is found when it is flagged (exact or near);
- flipped labels are judged by row: rows flagged by the label-issue check vs rows flipped.

    make bench-setup
    .venv/bin/python benchmarks/data_quality.py [--sets chatterbot,zaragoza,fashion]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))

from datasets import chatterbot_topics, zaragoza_categories
from image_datasets import FASHION_CLASSES, fashion_mnist

from tunesmith.data.quality import check_data
from tunesmith.data.quality.similarity import normalise_text
from tunesmith.recipe import load_recipe

FLIP, EXACT, NEAR, LEAK = 0.10, 0.05, 0.05, 0.03
CACHE = Path.home() / ".cache" / "tunesmith" / "benchmarks"


def typo(text: str, rng: np.random.Generator) -> str:
    """One typing slip (swap, drop or double a letter) and, half the time, a changed ending."""
    letters = [i for i, c in enumerate(text) if c.isalpha()]
    chars = list(text)
    if len(letters) >= 4:
        i = int(rng.choice(letters[1:-1]))
        kind = rng.integers(3)
        if kind == 0 and i + 1 < len(chars):
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        elif kind == 1:
            del chars[i]
        else:
            chars.insert(i, chars[i])
    out = "".join(chars)
    if rng.random() < 0.5:
        out = out.rstrip("?!.") + str(rng.choice(["?", "!", "...", " ?"]))
    return out


def blur_copy(path: Path, out: Path, rng: np.random.Generator) -> None:
    """A near copy: brightness +-8%, Gaussian noise (sigma 4), saved as JPEG quality 90."""
    image = Image.open(path).convert("L")
    image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.92, 1.08)))
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 4, (image.height, image.width))
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(out, quality=90)


def inject(base: pd.DataFrame, labels: list[str], seed: int, near_copy) -> dict:
    """train/test frames with a `base` id column, and the injected faults."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(base))
    n_test, n_validation = len(base) // 5, len(base) // 10
    test = base.iloc[order[:n_test]].reset_index(drop=True)
    validation = base.iloc[order[n_test : n_test + n_validation]].reset_index(drop=True)
    train = base.iloc[order[n_test + n_validation :]].reset_index(drop=True)
    n = len(train)
    picks = rng.permutation(n)
    n_flip, n_exact, n_near = round(FLIP * n), round(EXACT * n), round(NEAR * n)
    flip = picks[:n_flip]
    exact = picks[n_flip : n_flip + n_exact]
    near = picks[n_flip + n_exact : n_flip + n_exact + n_near]
    leak = rng.choice(len(test), round(LEAK * n_test), replace=False)

    train = train.copy()
    train["fault"] = ""
    for i in flip:
        choices = [label for label in labels if label != train.at[i, "label"]]
        train.at[i, "label"] = str(rng.choice(choices))
        train.at[i, "fault"] = "flipped"
    copies = [train.iloc[exact].assign(fault="exact")]
    near_rows = train.iloc[near].copy()
    near_rows["item"] = [near_copy(item, rng) for item in near_rows["item"]]
    copies.append(near_rows.assign(fault="near"))
    copies.append(test.iloc[leak].assign(fault="leak"))
    train = pd.concat([train, *copies], ignore_index=True)
    train = train.iloc[rng.permutation(len(train))].reset_index(drop=True)
    return {
        "train": train,
        "validation": validation.assign(fault=""),
        "test": test.assign(fault=""),
    }


def score(report, train: pd.DataFrame, test: pd.DataFrame) -> list[dict]:
    def flagged_pairs(checks: tuple[str, ...]) -> set[tuple]:
        pairs = set()
        for finding in report.findings:
            if finding.check in checks and finding.split == "train":
                for detail in finding.details:
                    other = detail["same_as"]
                    frame = train if other["split"] == "train" else test
                    pairs.add(
                        (
                            ("train", detail["row"]),
                            (other["split"], other["row"]),
                            train.at[detail["row"], "base"] == frame.at[other["row"], "base"],
                        )
                    )
        return pairs

    def injected(kind: str) -> list[int]:
        return train.index[train["fault"] == kind].tolist()

    def found(copy_row: int, pairs: set[tuple], other_split: str) -> bool:
        base = train.at[copy_row, "base"]
        for one, two, _ in pairs:
            rows = {one, two}
            if ("train", copy_row) in rows:
                partner = two if one == ("train", copy_row) else one
                frame = train if partner[0] == "train" else test
                if partner[0] == other_split and frame.at[partner[1], "base"] == base:
                    return True
        return False

    results = []
    duplicate_pairs = flagged_pairs(("exact_duplicates", "near_duplicates"))
    for kind, checks in (("exact", ("exact_duplicates",)), ("near", ("near_duplicates",))):
        pairs = flagged_pairs(checks)
        rows = injected(kind)
        hits = sum(found(r, duplicate_pairs, "train") for r in rows)
        results.append(_row(f"{kind} duplicates", len(rows), len(pairs), hits, pairs))
    leaks = flagged_pairs(("leakage",))
    rows = injected("leak")
    hits = sum(found(r, leaks, "test") for r in rows)
    results.append(_row("test rows in train", len(rows), len(leaks), hits, leaks))

    flagged = {
        d["row"]
        for f in report.findings
        if f.check == "label_issues" and f.split == "train"
        for d in f.details
    }
    flipped = set(injected("flipped"))
    hits = len(flagged & flipped)
    results.append(
        {
            "fault": "flipped labels",
            "injected": len(flipped),
            "flagged": len(flagged),
            "recall": hits / max(len(flipped), 1),
            "precision": hits / max(len(flagged), 1),
        }
    )
    return results


def _row(name: str, injected: int, flagged: int, hits: int, pairs: set[tuple]) -> dict:
    right = sum(1 for *_, same in pairs if same)
    return {
        "fault": name,
        "injected": injected,
        "flagged": flagged,
        "recall": hits / max(injected, 1),
        "precision": right / max(flagged, 1),
    }


def text_set(name: str, frame: pd.DataFrame, folder: Path, seed: int) -> tuple[dict, dict]:
    frame = frame.assign(key=frame["text"].map(normalise_text))
    frame = frame.drop_duplicates("key").reset_index(drop=True)
    base = pd.DataFrame({"item": frame["text"], "label": frame["label"], "base": frame.index})
    sets = inject(base, sorted(base["label"].unique()), seed, typo)
    files = {}
    for split, part in sets.items():
        files[split] = folder / f"{name}-{split}.csv"
        part.rename(columns={"item": "text"})[["text", "label"]].to_csv(files[split], index=False)
    recipe = {"task": "text-classification", "model": "builtin:minilm"}
    return sets, {**recipe, "data": {k: str(v) for k, v in files.items()}}


def image_set(per_class: int, folder: Path, seed: int) -> tuple[dict, dict]:
    images, labels, names = fashion_mnist(CACHE)
    rng = np.random.default_rng(seed)
    chosen = np.concatenate(
        [rng.choice(np.flatnonzero(labels == k), per_class, replace=False) for k in range(10)]
    )
    pictures = folder / "pictures"
    pictures.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in chosen:
        path = pictures / f"{i:05d}.png"
        Image.fromarray(images[i], mode="L").save(path)
        paths.append(path)
    base = pd.DataFrame(
        {"item": [str(p) for p in paths], "label": [names[labels[i]] for i in chosen]}
    )
    base["base"] = base.index
    counter = iter(range(10**9))

    def near_copy(item: str, rng: np.random.Generator) -> str:
        out = pictures / f"near-{next(counter):05d}.jpg"
        blur_copy(Path(item), out, rng)
        return str(out)

    sets = inject(base, list(FASHION_CLASSES), seed, near_copy)
    files = {}
    for split, part in sets.items():
        files[split] = folder / f"fashion-{split}.csv"
        part.rename(columns={"item": "image"})[["image", "label"]].to_csv(files[split], index=False)
    recipe = {
        "task": "image-classification",
        "model": "builtin:efficientnet-lite0",
        "preprocess": {"image_size": 96},
    }
    return sets, {**recipe, "data": {k: str(v) for k, v in files.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="chatterbot,zaragoza,fashion")
    parser.add_argument("--per-class", type=int, default=150, help="fashion images per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    console = Console()
    quiet = Console(quiet=True)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.sets.split(","):
            if name == "fashion":
                sets, recipe = image_set(args.per_class, folder, args.seed)
            else:
                frame = chatterbot_topics() if name == "chatterbot" else zaragoza_categories()
                sets, recipe = text_set(name, frame, folder, args.seed)
            start = time.perf_counter()
            report = check_data(load_recipe(recipe), quiet)
            seconds = time.perf_counter() - start
            rows = score(report, sets["train"].reset_index(drop=True), sets["test"])
            results[name] = {"rows": len(sets["train"]), "seconds": seconds, "faults": rows}
            table = Table(
                title=f"{name}: {len(sets['train'])} train / {len(sets['test'])} test rows, "
                f"check took {seconds:.1f} s"
            )
            for column in ("fault", "injected", "flagged", "recall", "precision"):
                table.add_column(column, justify="left" if column == "fault" else "right")
            for row in rows:
                table.add_row(
                    row["fault"],
                    str(row["injected"]),
                    str(row["flagged"]),
                    f"{row['recall']:.2f}",
                    f"{row['precision']:.2f}",
                )
            console.print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
