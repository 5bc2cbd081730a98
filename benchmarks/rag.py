"""Fine-tune or RAG, on real question/answer sets: every contender of a causal-lm run
(base, few-shot, rag, fine-tuned, fine-tuned+rag) on the same held-out questions.

    .venv/bin/python benchmarks/rag.py [--sets faq,handbook,chatterbot] [--set key=value]
    .venv/bin/python benchmarks/rag.py --write-example   # rewrite examples/data/zaragoza-handbook

Sets (builtin:smollm2, LoRA r16, the recipe defaults otherwise; 20% held out, seed 0):
- faq: examples/faq-lora.yaml as it is: the zaragoza FAQ (503 Q&A about building in
  Sweden, CC BY 4.0), retrieval over the training pairs only.
- handbook: the same questions, with a knowledge source (data.documents) that states the
  facts: examples/data/zaragoza-handbook, one Markdown file per FAQ category holding that
  category's answers as prose. The answers to the test questions are in it, and in no
  training pair: the case of a chatbot that searches a company's documents. Each question
  names its category file (data.source_column), so recall@3 is reported.
- chatterbot: English conversations of chatterbot-corpus==1.3.3 (BSD-3; `make
  bench-setup` installs it) as question -> first answer pairs, retrieval over the training
  pairs: chit-chat and trivia, where a model's general knowledge and style count.

Each run is its own `tunesmith train` process. Prints per set and contender: ROUGE-L, token
F1, prompt tokens and seconds per answer, the one-off cost, and the verdict sentence.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from datasets import _package_dir
from runner import train_in_subprocess

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "rag"
EXAMPLES = ROOT / "examples"
HANDBOOK = EXAMPLES / "data" / "zaragoza-handbook"
SOURCED = EXAMPLES / "data" / "zaragoza-faq-en-sourced.jsonl"
SETTINGS = {
    "task": "causal-lm",
    "model": "builtin:smollm2",
    "method": {"name": "lora", "r": 16, "alpha": 32},
    "train": {"epochs": 2, "batch_size": 16},
    "generation": {"max_new_tokens": 96, "max_examples": 60},
}


def write_handbook() -> None:
    """examples/data/zaragoza-handbook/<category>.md and the questions naming their file."""
    folder = _package_dir("zaragoza_construction_faq", "zaragoza-construction-faq==1.2.1")
    rows = [json.loads(line) for line in (folder / "data" / "faq-en.jsonl").open()]
    by_category: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        by_category[row["category"]].append(row["a"].strip())
    HANDBOOK.mkdir(parents=True, exist_ok=True)
    for category, answers in sorted(by_category.items()):
        title = category.replace("-", " ").capitalize()
        body = "\n\n".join(answers)
        (HANDBOOK / f"{category}.md").write_text(f"# {title}\n\n{body}\n", encoding="utf-8")
    with SOURCED.open("w", encoding="utf-8") as handle:
        for row in rows:
            record = {"prompt": row["q"], "response": row["a"], "document": row["category"]}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"{len(by_category)} handbook files in {HANDBOOK}, {len(rows)} questions in {SOURCED}")


def chatterbot_pairs(output: Path) -> Path:
    """(question, first answer) of every English chatterbot conversation, deduplicated."""
    folder = _package_dir("chatterbot_corpus", "chatterbot-corpus==1.3.3") / "data" / "english"
    seen, rows = set(), []
    for path in sorted(folder.glob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for conversation in document.get("conversations", []):
            if len(conversation) < 2 or not all(isinstance(t, str) for t in conversation[:2]):
                continue
            question, answer = conversation[0].strip(), conversation[1].strip()
            if question and answer and question.lower() not in seen:
                seen.add(question.lower())
                rows.append({"prompt": question, "response": answer})
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return output


def recipes() -> dict[str, dict]:
    faq = yaml.safe_load((EXAMPLES / "faq-lora.yaml").read_text())
    faq["data"]["train"] = str(EXAMPLES / faq["data"]["train"])
    handbook = yaml.safe_load((EXAMPLES / "faq-rag.yaml").read_text())
    for key in ("train", "documents"):
        handbook["data"][key] = str(EXAMPLES / handbook["data"][key])
    pairs = chatterbot_pairs(RESULTS / "data" / "chatterbot-pairs.jsonl")
    chatterbot = {**SETTINGS, "data": {"train": str(pairs), "test_size": 0.2}}
    return {"faq": faq, "handbook": handbook, "chatterbot": chatterbot}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="faq,handbook,chatterbot")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--write-example", action="store_true")
    args = parser.parse_args()
    if args.write_example:
        write_handbook()
        return
    available = recipes()
    print(
        f"{'set':<11} {'contender':<15} {'ROUGE-L':>7} {'tokF1':>6} {'prompt tok':>10} "
        f"{'s/answer':>8}  one-off"
    )
    sentences = []
    for name in args.sets.split(","):
        recipe = available[name]
        m = train_in_subprocess(
            recipe, RESULTS / "recipes" / f"{name}.yaml", RESULTS / "runs" / name, args.overrides
        )
        index = (m.get("retrieval") or {}).get("build_seconds", 0.0)
        for contender, scores in m["contenders"].items():
            one_off = {
                "base": "-",
                "few-shot": f"index {index:.0f} s",
                "rag": f"index {index:.0f} s",
            }
            cost = one_off.get(
                contender, f"train {m['train_seconds']:.0f} s (wall {m['wall_seconds']:.0f} s)"
            )
            print(
                f"{name:<11} {contender:<15} {scores['rouge_l']:>7.3f} {scores['token_f1']:>6.3f} "
                f"{scores['prompt_tokens']:>10.0f} {scores['seconds_per_answer']:>8.2f}  {cost}"
            )
        retrieval = m.get("retrieval") or {}
        recall = retrieval.get("recall_at_k")
        extra = f" recall@{retrieval.get('top_k')} {recall:.3f}." if recall is not None else ""
        sentences.append(f"{name}: {m['verdict']['sentence']}{extra}")
    print()
    print("\n".join(sentences))


if __name__ == "__main__":
    main()
