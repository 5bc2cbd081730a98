"""Real text-classification data sets reachable offline, built from PyPI packages.

- chatterbot: English questions of chatterbot-corpus==1.3.3 (BSD-3-Clause, Gunther Cox),
  labelled with their topic file (ai, coding, trivia, tech_support, ...).
- zaragoza: questions of zaragoza-construction-faq==1.2.1 (CC BY 4.0), labelled with their
  category (39 Swedish construction topics: bygglov, rot-avdrag, ...).

`make bench-setup` installs both packages (--no-deps). Run this file to rewrite the demo
excerpt bundled with tunesmith (src/tunesmith/demo_data/chatterbot_topics.csv).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pandas as pd
import yaml


def _package_dir(name: str, requirement: str) -> Path:
    try:
        module = importlib.import_module(name)
    except ImportError:
        raise SystemExit(f"install the data first: pip install --no-deps {requirement}") from None
    return Path(module.__file__).parent


def chatterbot_topics(min_per_topic: int = 15) -> pd.DataFrame:
    """Unique English questions and their topic; ambiguous duplicates and tiny topics dropped."""
    folder = _package_dir("chatterbot_corpus", "chatterbot-corpus==1.3.3") / "data" / "english"
    rows = []
    for path in sorted(folder.glob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for conversation in document.get("conversations", []):
            if conversation and isinstance(conversation[0], str):
                rows.append({"text": conversation[0].strip(), "label": path.stem})
    frame = pd.DataFrame(rows)
    key = frame["text"].str.lower().str.replace(r"[^\w ]", "", regex=True).str.strip()
    labels_per_text = frame.groupby(key)["label"].transform("nunique")
    frame = frame[labels_per_text == 1].assign(key=key).drop_duplicates("key").drop(columns="key")
    counts = frame["label"].value_counts()
    return frame[frame["label"].isin(counts[counts >= min_per_topic].index)].reset_index(drop=True)


def zaragoza_categories() -> pd.DataFrame:
    folder = _package_dir("zaragoza_construction_faq", "zaragoza-construction-faq==1.2.1")
    frame = pd.read_json(folder / "data" / "faq-en.jsonl", lines=True)
    return frame.rename(columns={"q": "text", "category": "label"})[["text", "label"]]


def demo_excerpt(per_topic: int = 60, min_per_topic: int = 20, seed: int = 0) -> pd.DataFrame:
    """A small balanced-ish excerpt for `tunesmith demo`: a few hundred rows, minutes to train."""
    frame = chatterbot_topics(min_per_topic)
    parts = [
        group.sample(min(len(group), per_topic), random_state=seed)
        for _, group in frame.groupby("label")
    ]
    return pd.concat(parts).sample(frac=1, random_state=seed).reset_index(drop=True)


if __name__ == "__main__":
    target = Path(__file__).parents[1] / "src" / "tunesmith" / "demo_data" / "chatterbot_topics.csv"
    excerpt = demo_excerpt()
    excerpt.to_csv(target, index=False)
    print(f"wrote {len(excerpt)} rows, {excerpt['label'].nunique()} topics to {target}")
    print(excerpt["label"].value_counts().to_string())
