"""The whole `tunesmith train` command on real instruction data, phase by phase.

    .venv/bin/python benchmarks/time_to_answer.py [--set train.epochs=3] [--name faq-defaults]

One LoRA SFT of builtin:smollm2 on the 503 zaragoza FAQ pairs (examples/data/, CC BY 4.0),
20% held out, every other setting at its default: what a new user's first run costs. Run
in its own process; prints the wall time of each phase (metrics.json `phase_seconds`), the
end-to-end time as measured from outside, the epochs and steps trained, and the test
perplexity, ROUGE-L and exact match of the base and the tuned model. A second call with
the same settings shows the base model's answers read from the cache.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from runner import train_in_subprocess

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "time-to-answer"
FAQ = ROOT / "examples" / "data" / "zaragoza-faq-en-alpaca.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--name", default="faq-defaults")
    parser.add_argument("--model", default="builtin:smollm2")
    args = parser.parse_args()
    recipe = {
        "task": "causal-lm",
        "model": args.model,
        "data": {"train": str(FAQ), "test_size": 0.2},
        "method": {"name": "lora"},
    }
    m = train_in_subprocess(
        recipe, RESULTS / "recipes" / f"{args.name}.yaml", RESULTS / "runs" / args.name,
        args.overrides,
    )  # fmt: skip
    phases = m.get("phase_seconds", {})
    print(f"{args.name}: {m['steps']} steps, stop: {m['stop_reason']}, precision {m['precision']}")
    print(" | ".join(f"{name} {sec:.1f} s" for name, sec in phases.items()))
    wall, steps = m["wall_seconds"], m["train_seconds"]
    print(f"end to end (outside) {wall:.1f} s; training steps {steps:.1f} s")
    for model in ("base", "baseline", "fine_tuned"):
        scores = m.get(model, {})
        shown = {k: round(v, 4) for k, v in scores.items() if k in SHOWN}
        print(f"  {model:<11} {json.dumps(shown)}")
    summary = {"name": args.name, "phases": phases, "wall": wall, "steps": m["steps"]}
    print(json.dumps({**summary, "fine_tuned": m["fine_tuned"], "base": m["base"]}))


SHOWN = ("perplexity", "rouge_l", "exact_match", "token_f1", "generated")


if __name__ == "__main__":
    main()
