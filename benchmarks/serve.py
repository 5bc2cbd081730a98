"""`tunesmith serve` under load: throughput and latency at 1, 4 and 8 concurrent clients.

    .venv/bin/python benchmarks/serve.py [--classifier RUN] [--llm RUN] [--requests 96]

Without run folders it trains two small real ones first (in their own processes): the
built-in MiniLM with LoRA on the bundled chatterbot topics (a text classifier), and the
built-in SmolLM2 with LoRA on the zaragoza FAQ for 30 steps (an LLM; answers of at most
32 tokens). Each run is served by a real `tunesmith serve` process on a free port and
driven by the official `openai` client (LLM) or HTTP (classifier), in threads, with
dynamic batching on (--max-batch 8) and off (--max-batch 1) side by side: requests per
second, p50 and p99 latency, and for the LLM generated tokens per second. Results go to
benchmarks/results/serve/serve.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import numpy as np
import openai

sys.path.insert(0, str(Path(__file__).parent))
from runner import train_in_subprocess

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "serve"
TOPICS = ROOT / "src" / "tunesmith" / "demo_data" / "chatterbot_topics.csv"
FAQ = ROOT / "examples" / "data" / "zaragoza-faq-en-alpaca.jsonl"
CLIENTS = (1, 4, 8)


def train_runs(folder: Path) -> tuple[Path, Path]:
    classifier, llm = folder / "classifier", folder / "llm"
    if not (classifier / "metrics.json").is_file():
        recipe = {"model": "builtin:minilm", "data": {"train": str(TOPICS)},
                  "method": {"name": "lora"}, "train": {"epochs": 2}}  # fmt: skip
        train_in_subprocess(recipe, folder / "classifier.yaml", classifier, [])
    if not (llm / "metrics.json").is_file():
        recipe = {
            "task": "causal-lm",
            "model": "builtin:smollm2",
            "data": {"train": str(FAQ), "test_size": 0.1},
            "method": {"name": "lora"},
            "train": {"max_steps": 30, "batch_size": 8},
            "generation": {"max_new_tokens": 32, "max_examples": 8},
            "compare": [],
            # the FAQ repeats a few questions across splits; serving speed does not mind
            "guards": {"data_quality": "warn"},
        }
        train_in_subprocess(recipe, folder / "llm.yaml", llm, [])
    return classifier, llm


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A `tunesmith serve` process, up once /health answers."""

    def __init__(self, run: Path, max_batch: int) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "tunesmith", "serve", str(run), "--port",
                   str(self.port), "--max-batch", str(max_batch), "--max-queue", "256"]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy()
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 300
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"serve exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.5)
        raise SystemExit("serve did not start in 5 minutes")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def load(send, clients: int, requests: int) -> dict:
    """`requests` calls of `send` from `clients` threads: rate and latency percentiles."""
    send(0)  # warm
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(send, range(requests)))
    wall = time.perf_counter() - started
    latencies = np.array([seconds for seconds, _ in results])
    tokens = sum(count for _, count in results)
    return {
        "clients": clients,
        "requests": requests,
        "requests_per_s": requests / wall,
        "p50_s": float(np.percentile(latencies, 50)),
        "p99_s": float(np.percentile(latencies, 99)),
        "tokens_per_s": tokens / wall,
    }


def classifier_sender(url: str, texts: list[str]):
    http = httpx.Client(base_url=url, timeout=120)

    def send(i: int) -> tuple[float, int]:
        started = time.perf_counter()
        answer = http.post("/v1/classify", json={"input": texts[i % len(texts)]})
        answer.raise_for_status()
        return time.perf_counter() - started, 0

    return send


def llm_sender(url: str, name: str, questions: list[str], max_tokens: int):
    api = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=300)

    def send(i: int) -> tuple[float, int]:
        started = time.perf_counter()
        answer = api.chat.completions.create(
            model=name,
            messages=[{"role": "user", "content": questions[i % len(questions)]}],
            max_tokens=max_tokens,
        )
        return time.perf_counter() - started, answer.usage.completion_tokens

    return send


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier", type=Path)
    parser.add_argument("--llm", type=Path)
    parser.add_argument("--requests", type=int, default=96, help="classifier requests per row")
    parser.add_argument("--llm-requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    classifier, llm = args.classifier, args.llm
    if classifier is None or llm is None:
        trained = train_runs(RESULTS / "runs")
        classifier, llm = classifier or trained[0], llm or trained[1]
    import pandas as pd

    texts = pd.read_csv(TOPICS)["text"].astype(str).tolist()[:200]
    questions = pd.read_json(FAQ, lines=True)["instruction"].astype(str).tolist()[:100]
    rows = []
    for kind, run in (("classifier", classifier), ("llm", llm)):
        for batch in (1, 8):
            server = Server(run, batch)
            try:
                for clients in CLIENTS:
                    if kind == "classifier":
                        send, count = classifier_sender(server.url, texts), args.requests
                    else:
                        send = llm_sender(server.url, run.name, questions, args.max_tokens)
                        count = args.llm_requests
                    row = {"run": kind, "max_batch": batch, **load(send, clients, count)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
            finally:
                server.stop()
    (RESULTS / "serve.json").write_text(json.dumps(rows, indent=2))
    print(f"\n{'run':<11}{'clients':>8} | {'batch 1: req/s':>15}{'p50 s':>8}{'p99 s':>8}"
          f" | {'batch 8: req/s':>15}{'p50 s':>8}{'p99 s':>8}{'tok/s':>8}")  # fmt: skip
    for kind in ("classifier", "llm"):
        for clients in CLIENTS:
            one, eight = (
                next(r for r in rows if (r["run"], r["max_batch"], r["clients"]) == key)
                for key in ((kind, 1, clients), (kind, 8, clients))
            )
            print(
                f"{kind:<11}{clients:>8} | {one['requests_per_s']:>15.2f}{one['p50_s']:>8.3f}"
                f"{one['p99_s']:>8.3f} | {eight['requests_per_s']:>15.2f}{eight['p50_s']:>8.3f}"
                f"{eight['p99_s']:>8.3f}{eight['tokens_per_s']:>8.1f}"
            )


if __name__ == "__main__":
    main()
