"""Write examples/data/chatterbot-topics-by-turn.csv: chatterbot-corpus 1.3.3 statements with
their topic and two real slice columns, for `examples/topics-slices.yaml`.

- `turn`: `question` (a conversation's first line) or `answer` (a reply to it);
- `style`: `shouted` for lines written all in capitals (the corpus's older AIML material),
  else `plain`.

Ten topics, at most 60 questions and 60 answers each, duplicates (by their words, case and
punctuation aside) and texts under 3 characters dropped, in a seeded order.

    .venv/bin/python benchmarks/slices_example.py   # needs `make bench-setup`
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

TOPICS = ("ai", "computers", "emotion", "food", "health", "history", "literature", "movies",
          "science", "sports")  # fmt: skip
PER_TURN = 60
OUTPUT = Path(__file__).resolve().parent.parent / "examples/data/chatterbot-topics-by-turn.csv"


def rows_of(topic: str) -> list[dict]:
    path = resources.files("chatterbot_corpus").joinpath("data", "english", f"{topic}.yml")
    rows = []
    for conversation in yaml.safe_load(path.read_text(encoding="utf-8"))["conversations"]:
        for position, text in enumerate(conversation):
            text = " ".join(str(text).split())
            if len(text) >= 3:
                turn = "question" if position == 0 else "answer"
                style = "shouted" if text.isupper() else "plain"
                rows.append({"text": text, "label": topic, "turn": turn, "style": style})
    return rows


def main() -> None:
    frame = pd.DataFrame([row for topic in TOPICS for row in rows_of(topic)])
    # duplicates by their words, so "WHAT IS X" and "What is x?" are one line (no leakage)
    frame["words"] = [re.sub(r"\W+", " ", text.lower()).strip() for text in frame["text"]]
    frame = frame.drop_duplicates("words").drop(columns="words")
    frame = frame.sample(frac=1.0, random_state=0)
    frame = frame.groupby(["label", "turn"], group_keys=False).head(PER_TURN)
    frame = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    frame.to_csv(OUTPUT, index=False)
    print(f"wrote {OUTPUT}: {len(frame)} rows")
    print(frame.groupby(["turn", "style"]).size().to_string())


if __name__ == "__main__":
    main()
