"""tunesmith against Hugging Face Trainer + peft: the same model, data, method, batch, optimiser
and epochs, trained one after the other, each in its own process.

    .venv/bin/python benchmarks/vs_hf.py                    # minilm, smollm2, efficientnet
    .venv/bin/python benchmarks/vs_hf.py --cases smollm2 --epochs 1

For each case these processes run in turn:
- `hf-default`: `Trainer` as a tutorial writes it (random batches padded to their longest
  row, fp32, transformers' default fused AdamW);
- `hf-best`: `Trainer` with its best settings for this hardware: `train_sampling_strategy:
  group_by_length` (images: a data-loader worker instead), plus `bf16: true` where this
  machine multiplies bf16 faster than fp32 (measured first, printed);
- `tunesmith`: tunesmith's training loop set up as `tunesmith train` sets it up, with its
  defaults (the steps Trainer has no counterpart for are left out: data check, baselines,
  estimate, guards, report);
- `tunesmith-compile`: the same with `train.compile: true`, run twice: the first run fills
  the compile cache (its time is printed as `cold`), the second is the one in the table.

Fair by construction: both sides read the data through tunesmith (the same split, the same
token ids, the same response-only targets), start from the same pre-trained weights and the
same peft config, train the same epochs with AdamW, linear warm-up/decay, clipping at 1.0
and the same learning rate, and are scored by the same evaluation code on the same held-out
test split. Throughput counts real (non-padding) tokens: epochs x tokens of the training
rows, over the wall time of the training loop (evaluations excluded on both sides). Peak
memory is the process's peak resident set (VmHWM) while it trains: reset just before
training starts, read when it ends (the model and data already loaded count).

Data: chatterbot-corpus==1.3.3 questions in 19 topics (BSD-3; `make bench-setup`), the
zaragoza FAQ pairs in examples/data (CC BY 4.0), Fashion-MNIST images (MIT, Debian
package dataset-fashion-mnist).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "vs_hf"
SIDES = ("hf-default", "hf-best", "tunesmith", "tunesmith-compile")
WORKERS = (*SIDES, "flops")
OFF = {"data_quality": "off", "label_issues": False, "forgetting": None, "overfitting": None}

CASES = {
    "minilm": {
        "title": "builtin:minilm, full fine-tuning, chatterbot topics",
        "recipe": {
            "task": "text-classification",
            "model": "builtin:minilm",
            "data": {"train": "{data}/chatterbot.csv"},
            "method": {"name": "full"},
            "train": {"learning_rate": 5.0e-5, "batch_size": 16, "epochs": 3},
        },
        "unit": "tokens",
    },
    "smollm2": {
        "title": "builtin:smollm2, LoRA r16 SFT, zaragoza FAQ",
        "recipe": {
            "task": "causal-lm",
            "model": "builtin:smollm2",
            "data": {"train": str(ROOT / "examples/data/zaragoza-faq-en-alpaca.jsonl")},
            "method": {"name": "lora", "r": 16, "alpha": 32},
            "train": {"learning_rate": 1.0e-3, "batch_size": 8, "epochs": 1},
            "generation": {"max_new_tokens": 1, "max_examples": 1},
        },
        "unit": "tokens",
    },
    "efficientnet": {
        "title": "builtin:efficientnet-lite0, full fine-tuning, Fashion-MNIST at 96 px",
        "recipe": {
            "task": "image-classification",
            "model": "builtin:efficientnet-lite0",
            "data": {"train": "{data}/fashion"},
            "preprocess": {"image_size": 96},
            "method": {"name": "full"},
            "train": {"learning_rate": 1.0e-3, "batch_size": 32, "epochs": 2},
        },
        "unit": "images",
    },
}


# -- the data ----------------------------------------------------------------------------


def prepare_data(case: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if case == "minilm" and not (folder / "chatterbot.csv").is_file():
        from datasets import chatterbot_topics

        chatterbot_topics().to_csv(folder / "chatterbot.csv", index=False)
    if case == "efficientnet" and not (folder / "fashion").is_dir():
        from image_datasets import build

        build("fashion", folder / "fashion", 150, RESULTS / "cache")


def recipe_for(case: str, epochs: float | None) -> dict:
    recipe = json.loads(json.dumps(CASES[case]["recipe"]).replace("{data}", str(RESULTS / "data")))
    recipe["train"].update(early_stopping=None, precision="auto", seed=0)
    if epochs is not None:
        recipe["train"]["epochs"] = epochs
    recipe["guards"] = dict(OFF)
    return recipe


# -- one side, in its own process --------------------------------------------------------


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> None:
    """Start VmHWM afresh (Linux): the peaks compared are those of training itself."""
    Path("/proc/self/clear_refs").write_text("5")


def run_tunesmith(recipe_dict: dict, out: Path) -> dict:
    """tunesmith's training loop as `tunesmith train` runs it, with what train sets up
    (memory reuse, compiled blocks) but without the steps Trainer has no counterpart for
    (data check, baselines, estimate, report)."""
    import torch
    from rich.console import Console

    from tunesmith.methods import get_method
    from tunesmith.recipe import Recipe
    from tunesmith.tasks.family import prepare
    from tunesmith.train.allocator import keep_freed_memory
    from tunesmith.train.device import resolve_precision
    from tunesmith.train.loop import fit
    from tunesmith.train.setup import seed_everything, wrap_model

    keep_freed_memory()
    recipe = Recipe.model_validate(recipe_dict)
    seed_everything(0)
    cpu = torch.device("cpu")
    dtype = resolve_precision(recipe.train.precision, cpu)
    quiet = Console(quiet=True)
    family = prepare(recipe, cpu, dtype, quiet)
    method = get_method(recipe.method.name)
    family.adapt_to(method)
    family.init_head(quiet)  # LP-FT for images, as train does
    wrapped = wrap_model(recipe, family, method, dtype=dtype)
    model, head = wrapped.model, wrapped.head
    reset_peak_rss()
    result = fit(
        model, family.task, recipe.train, recipe.learning_rate, cpu, dtype, out / "run",
        console=quiet, head=head, head_learning_rate=recipe.head_learning_rate,
        score_start=family.score_start,
    )  # fmt: skip
    peak = peak_rss_mb()
    return {
        "train_seconds": result.train_seconds,
        "eval_loss": family.task.evaluate(model, "test")["loss"],
        "precision": "bf16" if dtype is not None else "fp32",
        "steps": result.steps,
        # real tokens (images) over the training steps' time, counted as run_hf counts them
        "units": result.tokens_per_second * result.train_seconds,
        "peak_mb": peak,
    }


def run_hf(recipe_dict: dict, out: Path, best: bool) -> dict:
    """Trainer + peft on the model and data tunesmith would use."""
    import torch
    from rich.console import Console
    from transformers import (
        DataCollatorForSeq2Seq,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from tunesmith.recipe import Recipe
    from tunesmith.tasks.family import prepare
    from tunesmith.train.device import cpu_bf16_speedup
    from tunesmith.train.setup import seed_everything

    recipe = Recipe.model_validate(recipe_dict)
    seed_everything(0)
    family = prepare(recipe, torch.device("cpu"), None, Console(quiet=True))
    task, model = family.task, family.model
    bf16 = best and cpu_bf16_speedup() > 1.3
    if recipe.method.name == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        from tunesmith.methods.lora import default_lora_targets

        model = get_peft_model(
            model,
            LoraConfig(
                task_type=TaskType.CAUSAL_LM,
                r=recipe.method.r,
                lora_alpha=recipe.method.alpha,
                lora_dropout=recipe.method.dropout,
                target_modules=default_lora_targets(model),
            ),
        )
    images = recipe.task == "image-classification"
    scored = model  # what the evaluation scores (Trainer's image model wraps it)
    if recipe.task == "causal-lm":
        rows = task.rows["train"]
        dataset = [
            {"input_ids": row.ids, "labels": [-100, *row.targets[:-1]]} for row in rows
        ]  # Trainer shifts labels itself: label j is the target of position j - 1
        collator = DataCollatorForSeq2Seq(task.tokenizer, padding=True)
        tokens = sum(len(row.ids) for row in rows)
    elif recipe.task == "text-classification":
        ids, labels = task.ids["train"], task.splits.train.labels
        dataset = [{"input_ids": row, "labels": int(y)} for row, y in zip(ids, labels, strict=True)]
        collator = DataCollatorWithPadding(task.tokenizer)
        tokens = sum(len(row) for row in ids)
    else:
        dataset = _ImageDataset(task)
        scored, model = model, _WithLoss(model)
        collator = None
        tokens = len(dataset)
    args = TrainingArguments(
        output_dir=str(out / "hf"),
        per_device_train_batch_size=recipe.train.batch_size,
        num_train_epochs=recipe.train.epochs,
        learning_rate=recipe.learning_rate,
        weight_decay=recipe.train.weight_decay,
        warmup_steps=recipe.train.warmup_ratio,  # a float under 1 is a ratio in transformers 5
        max_grad_norm=recipe.train.max_grad_norm,
        lr_scheduler_type="linear",
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        seed=0,
        use_cpu=True,
        bf16=bf16,
        # images have no length; their best is decoding in a worker while the step runs
        train_sampling_strategy="group_by_length" if best and not images else "random",
        dataloader_num_workers=1 if best and images else 0,
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
    reset_peak_rss()
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    peak = peak_rss_mb()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        eval_loss = task.evaluate(scored, "test")["loss"]
    return {
        "train_seconds": seconds,
        "eval_loss": eval_loss,
        "precision": "bf16" if bf16 else "fp32",
        "steps": trainer.state.global_step,
        "units": tokens * recipe.train.epochs,
        "peak_mb": peak,
    }


class _ImageDataset:
    """Fashion-MNIST as Trainer sees it: one augmented image tensor and its label per item,
    through tunesmith's own image preprocessing (the same pixels as the tunesmith side)."""

    def __init__(self, task) -> None:
        self.task = task

    def __len__(self) -> int:
        return len(self.task.lengths("train"))

    def __getitem__(self, i: int) -> dict:
        batch = self.task.batch("train", [i])
        return {"pixel_values": batch.inputs["pixel_values"][0], "label": int(batch.targets[0])}


class _WithLoss:
    """Trainer wants a loss from forward; tunesmith's vision model returns logits."""

    def __new__(cls, model):
        import torch.nn.functional as F
        from torch import nn

        class Wrapped(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, pixel_values, labels=None):
                logits = self.model(pixel_values=pixel_values).logits
                return {"loss": F.cross_entropy(logits, labels), "logits": logits}

        return Wrapped()


def flops_per_unit(recipe_dict: dict) -> float:
    """Matrix-product FLOPs of one training step per token (per image), forward and
    backward, measured by tunesmith's profiler on an example of median length."""
    import numpy as np
    import torch
    from rich.console import Console

    from tunesmith.estimate.profile import profile_example
    from tunesmith.methods import get_method
    from tunesmith.recipe import Recipe
    from tunesmith.tasks.family import prepare

    recipe = Recipe.model_validate(recipe_dict)
    family = prepare(recipe, torch.device("cpu"), None, Console(quiet=True))
    method = get_method(recipe.method.name)
    family.adapt_to(method)
    model = method.apply(family.model, recipe.method)
    lengths = np.asarray(family.task.lengths("train"))
    median = int(np.argsort(lengths)[len(lengths) // 2])
    profile = profile_example(model, family.task, family.task.batch("train", [median]))
    return profile.train_flops / max(profile.tokens, 1)


def worker(side: str, case: str, epochs: float | None, out: Path) -> None:
    recipe = recipe_for(case, epochs)
    if side == "flops":
        import torch

        from tunesmith.estimate.memory import matmul_flops_per_second

        cpu = torch.device("cpu")
        work = {
            "flops_per_unit": flops_per_unit(recipe),
            "fp32_peak": matmul_flops_per_second(cpu, False),
            "bf16_peak": matmul_flops_per_second(cpu, True),
        }
        (out / "flops.json").write_text(json.dumps(work))
        return
    if side == "tunesmith-compile":
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(RESULTS / "inductor")
        recipe["train"]["compile"] = True
    if side.startswith("tunesmith"):
        result = run_tunesmith(recipe, out)
    else:
        result = run_hf(recipe, out, best=side == "hf-best")
    (out / f"{side}.json").write_text(json.dumps(result))


# -- the comparison ----------------------------------------------------------------------


def compare(cases: list[str], epochs: float | None, sides: list[str]) -> str:
    from tunesmith.train.device import cpu_bf16_speedup

    speedup = cpu_bf16_speedup()
    lines = [
        f"bf16 matmul speed-up on this CPU: {speedup:.2f}x "
        + ("(Trainer's best uses bf16)" if speedup > 1.3 else "(bf16 is slower here: fp32)"),
        "",
    ]
    header = (
        f"{'case':<13} {'side':<11} {'prec':<5} {'steps':>5} {'train s':>8} {'units/s':>9} "
        f"{'peak MB':>8} {'eval loss':>9} {'speed-up':>8}"
    )
    for case in cases:
        out = RESULTS / case
        out.mkdir(parents=True, exist_ok=True)
        prepare_data(case, RESULTS / "data")
        results, cold = {}, None
        for side in sides:
            command = [sys.executable, __file__, "--worker", side, "--cases", case]
            command += ["--out", str(out)] + (["--epochs", str(epochs)] if epochs else [])
            for _ in range(2 if side == "tunesmith-compile" else 1):
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode:
                    print(done.stdout[-2000:], done.stderr[-4000:], file=sys.stderr)
                    raise SystemExit(f"{case} / {side} failed")
                results[side] = json.loads((out / f"{side}.json").read_text())
                if side == "tunesmith-compile" and cold is None:
                    cold = results[side]["train_seconds"]
        lines += [f"{CASES[case]['title']} ({CASES[case]['unit']}/s)", header]
        for side, r in results.items():
            rate = r["units"] / r["train_seconds"]
            r["rate"] = rate
            ratio = {s: rate / results[s]["rate"] for s in results if "rate" in results[s]}
            lines.append(
                f"{case:<13} {side:<11} {r['precision']:<5} {r['steps']:>5} "
                f"{r['train_seconds']:>8.1f} {rate:>9.1f} {r['peak_mb']:>8.0f} "
                f"{r['eval_loss']:>9.4f} "
                + " ".join(f"{v:.2f}x {s}" for s, v in ratio.items() if s != side)
            )
        if cold is not None:
            lines.append(f"(tunesmith-compile's first run, compiling: {cold:.1f} s of training)")
        subprocess.run(
            [sys.executable, __file__, "--worker", "flops", "--cases", case, "--out", str(out)],
            check=True,
            capture_output=True,
        )
        work = json.loads((out / "flops.json").read_text())
        for side, r in results.items():
            done = r["rate"] * work["flops_per_unit"]
            lines.append(
                f"{side:<18} {done / 1e9:6.0f} GFLOP/s of matrix products: "
                f"{done / work['fp32_peak']:.0%} of this CPU's fp32 peak "
                f"({work['fp32_peak'] / 1e9:.0f}), {done / work['bf16_peak']:.0%} of its bf16 "
                f"peak ({work['bf16_peak'] / 1e9:.0f})"
            )
        lines.append("")
        print("\n".join(lines[-2 * len(results) - 5 :]), flush=True)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--sides", default=",".join(SIDES))
    parser.add_argument("--epochs", type=float, default=None)
    parser.add_argument("--worker", choices=WORKERS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.worker:
        # benchmarks/datasets.py would shadow Hugging Face's `datasets`, which Trainer imports
        sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
        worker(args.worker, args.cases, args.epochs, args.out)
        return
    cases = args.cases.split(",")
    unknown = set(cases) - set(CASES)
    if unknown:
        raise SystemExit(f"unknown case(s) {sorted(unknown)}; choose from {sorted(CASES)}")
    table = compare(cases, args.epochs, args.sides.split(","))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "table.txt").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
