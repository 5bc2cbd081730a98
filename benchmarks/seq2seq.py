"""seq2seq on real text: a small T5 trained from its config, against the nearest training
example's target, side by side.

    .venv/bin/python benchmarks/seq2seq.py [--tasks translate,answer] [--set train.epochs=40]

No pre-trained encoder-decoder weights are reachable offline (no registry package ships
one), so the T5 here starts from random weights: `base` is that untrained model (it writes
nothing useful, by construction) and the anchor that matters is `nearest`, the target of the
most similar training input (TF-IDF), which a from-scratch model must beat to have learnt
more than lookup. With a real checkpoint (examples/seq2seq-flan-t5.yaml) `base` becomes the
pre-trained model.

Data: zaragoza-construction-faq==1.2.1 (CC BY 4.0; `make bench-setup` installs it), 503
questions in Swedish and English with one id:
- translate: Swedish question -> English question (short, every word matters);
- answer: English question -> English answer (long, a company's own phrasing).
Questions asked twice are kept once; both are split 70/10/20 with one seed; the tokenizer
(BPE, 800 pieces) is learnt from the training split only. Each run is a separate
`tunesmith train` process.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from runner import train_in_subprocess

RESULTS = Path(__file__).parent / "results" / "seq2seq"
TASKS = {"translate": ("q_sv", "q_en"), "answer": ("q_en", "a_en")}
SETTINGS = {
    "method": {"name": "full"},
    "preprocess": {"max_length": 160},
    "train": {"epochs": 40, "batch_size": 16, "learning_rate": 2e-3},
    "generation": {"max_new_tokens": 160, "max_examples": None, "samples": 5},
    # a model trained from scratch has no pre-trained knowledge to forget
    "guards": {"forgetting": None},
}
SPLIT_SEED = 0
VOCAB = 800


def faq_pairs(source: str, target: str) -> pd.DataFrame:
    try:
        package = importlib.import_module("zaragoza_construction_faq")
    except ImportError:
        raise SystemExit(
            "install the data first: pip install --no-deps zaragoza-construction-faq==1.2.1"
        ) from None
    folder = Path(package.__file__).parent
    swedish = pd.read_json(folder / "data" / "faq.jsonl", lines=True)
    english = pd.read_json(folder / "data" / "faq-en.jsonl", lines=True)
    both = swedish.merge(english, on="id", suffixes=("_sv", "_en"))
    pairs = both[[source, target]].set_axis(["input", "target"], axis=1)
    # a question asked twice would leak from train into test: keep its first asking
    key = pairs["input"].str.lower().str.replace(r"[^\w ]", "", regex=True).str.split()
    key = key.str.join(" ")
    return pairs[~key.duplicated()].reset_index(drop=True)


def write_splits(frame: pd.DataFrame, folder: Path) -> dict[str, Path]:
    """train/validation/test files (70/10/20, seeded), so the tokenizer can be learnt from
    the training rows alone."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(frame))
    cut = {"test": order[: len(frame) // 5], "validation": order[len(frame) // 5 :][:50]}
    cut["train"] = order[len(frame) // 5 + 50 :]
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, rows in cut.items():
        paths[name] = folder / f"{name}.jsonl"
        frame.iloc[np.sort(rows)].to_json(paths[name], orient="records", lines=True)
    return paths


def small_t5(train: Path, folder: Path, vocab_size: int) -> Path:
    """A 3-layer T5 (d_model 128, 1.6M parameters) from its config, with a BPE tokenizer
    learnt on the training inputs and targets (SentencePiece-style word boundaries, </s>
    after every text, as T5's own tokenizer)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    rows = pd.read_json(train, lines=True)
    specials = ["<pad>", "</s>", "<unk>"]
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials)
    backend.train_from_iterator([*rows["input"], *rows["target"]], trainer)
    eos = backend.token_to_id("</s>")
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", eos)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=backend.get_vocab_size(),
        d_model=128,
        d_kv=32,
        d_ff=256,
        num_layers=3,
        num_heads=4,
        pad_token_id=backend.token_to_id("<pad>"),
        eos_token_id=eos,
        decoder_start_token_id=backend.token_to_id("<pad>"),
    )
    T5ForConditionalGeneration(config).save_pretrained(folder)
    return folder


def run(task: str, overrides: list[str], vocab_size: int) -> dict:
    data = write_splits(faq_pairs(*TASKS[task]), RESULTS / "data" / task)
    model = small_t5(data["train"], RESULTS / "models" / task, vocab_size)
    recipe = {
        "task": "seq2seq",
        "model": str(model.resolve()),
        "data": {name: str(path.resolve()) for name, path in data.items()},
        **SETTINGS,
    }
    return train_in_subprocess(
        recipe, RESULTS / "recipes" / f"{task}.yaml", RESULTS / "runs" / task, overrides
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--vocab", type=int, default=VOCAB, help="BPE pieces of the tokenizer")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()
    names = ("rouge_l", "exact_match", "token_f1")
    header = f"{'task':<10} {'test':>5} {'model':<12} " + " ".join(f"{n:>11}" for n in names)
    lines = []
    for task in args.tasks.split(","):
        m = run(task, args.overrides, args.vocab)
        for label, key in (("base", "base"), ("nearest", "baseline"), ("fine-tuned", "fine_tuned")):
            scores = " ".join(f"{m[key][n]:>11.3f}" for n in names)
            lines.append(f"{task:<10} {m['splits']['test']:>5} {label:<12} {scores}")
        lines.append(
            f"{'':<10} perplexity {m['base']['perplexity']:.1f} -> "
            f"{m['fine_tuned']['perplexity']:.2f}; {m['params']['total']:,} parameters, "
            f"{m['train_seconds']:.0f} s training, {m['wall_seconds']:.0f} s in all, "
            f"peak {m['peak_memory_mb']:.0f} MB"
        )
        print("\n".join(lines[-4:]), flush=True)
    print(f"\n{header}\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
