"""`tunesmith serve`: driven by the official `openai` client and by raw HTTP (httpx, the
client's own transport) against real servers on tiny trained runs."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
import openai
import pandas as pd
import pytest
import yaml
from PIL import Image

from tunesmith.cli import main
from tunesmith.inference import predict_run
from tunesmith.local_server.listener import bind, make_server
from tunesmith.serve.app import ServeOptions, create_app
from tunesmith.serve.batching import BatchOptions
from tunesmith.tasks.registry import get_task
from tunesmith.trained_run import load_run

from .conftest import make_image_folder, make_qa_rows, make_rows

PROMPT = "what is the answer about cake soup"


def train(folder: Path, recipe: dict) -> Path:
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    output = folder / "run"
    assert main(["train", str(path), "--output", str(output)]) == 0
    return output


@pytest.fixture(scope="module")
def llm_run(tmp_path_factory, tiny_llm_dir) -> Path:
    folder = tmp_path_factory.mktemp("serve-llm")
    data = folder / "qa.jsonl"
    pd.DataFrame(make_qa_rows()).to_json(data, orient="records", lines=True)
    recipe = {
        "task": "causal-lm",
        "model": str(tiny_llm_dir),
        "data": {"train": str(data)},
        "method": {"name": "lora", "r": 4},
        "preprocess": {"max_length": 64},
        "train": {"epochs": 4, "batch_size": 8, "learning_rate": 1e-2, "precision": "fp32"},
        "generation": {"max_new_tokens": 8, "max_examples": 4, "samples": 1},
        "compare": [],
        "guards": {"forgetting": None},
    }
    return train(folder, recipe)


@pytest.fixture(scope="module")
def text_run(tmp_path_factory, tiny_model_dir) -> Path:
    folder = tmp_path_factory.mktemp("serve-text")
    data = folder / "topics.csv"
    pd.DataFrame(make_rows(30)).to_csv(data, index=False)
    recipe = {
        "model": str(tiny_model_dir),
        "data": {"train": str(data)},
        "method": {"name": "lora"},
        "preprocess": {"unicode": "nfkc", "lowercase": True},
        "train": {"epochs": 2, "batch_size": 8, "learning_rate": 1e-2, "precision": "fp32"},
    }
    return train(folder, recipe)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory, tiny_resnet_dir) -> Path:
    folder = tmp_path_factory.mktemp("serve-image")
    recipe = {
        "task": "image-classification",
        "model": str(tiny_resnet_dir),
        "data": {"train": str(make_image_folder(folder / "images"))},
        "method": {"name": "full"},
        "preprocess": {"image_size": 32},
        "train": {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "precision": "fp32"},
    }
    return train(folder, recipe)


@contextmanager
def serving(run: Path, **options) -> Iterator[str]:
    """A real uvicorn server on a free port for `run`; yields its base URL."""
    loaded = load_run(run)
    model = get_task(loaded.recipe.task).serving_model(loaded, None)
    app = create_app(model, loaded.recipe.task, ServeOptions(**options))
    listener = bind("127.0.0.1", 0)
    server = make_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


@pytest.fixture(scope="module")
def llm_url(llm_run) -> Iterator[str]:
    with serving(llm_run) as url:
        yield url


def client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


# --- the openai client -------------------------------------------------------------------


def test_chat_answers_as_predict_does(llm_run, llm_url):
    """Greedy by default: the served answer is `tunesmith predict`'s, with its usage."""
    name = llm_run.name
    answer = client(llm_url).chat.completions.create(
        model=name, messages=[{"role": "user", "content": PROMPT}]
    )
    expected = predict_run(llm_run, [PROMPT])[0]["response"]
    assert answer.choices[0].message.content == expected
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.usage.prompt_tokens > 0
    assert 0 < answer.usage.completion_tokens <= 8  # the run's generation.max_new_tokens
    assert answer.model == name and answer.object == "chat.completion"


def test_streaming_sends_the_same_answer_piece_by_piece(llm_run, llm_url):
    messages = [{"role": "user", "content": PROMPT}]
    plain = client(llm_url).chat.completions.create(
        model=llm_run.name, messages=messages, max_tokens=12
    )
    chunks = list(
        client(llm_url).chat.completions.create(
            model=llm_run.name,
            messages=messages,
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(pieces) == plain.choices[0].message.content
    assert sum(1 for p in pieces if p) >= 2  # streamed, not sent at once
    finals = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finals == [plain.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_completions_with_n_stop_and_several_prompts(llm_run, llm_url):
    api = client(llm_url)
    greedy = api.completions.create(model=llm_run.name, prompt="cake soup", max_tokens=10)
    words = greedy.choices[0].text.split()
    assert len(words) >= 3 and greedy.choices[0].finish_reason == "length"
    stop = f" {words[2]}"
    cut = api.completions.create(model=llm_run.name, prompt="cake soup", max_tokens=10, stop=stop)
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].text == greedy.choices[0].text[: greedy.choices[0].text.find(stop)]
    many = api.completions.create(
        model=llm_run.name, prompt=["cake soup", "goal match"], max_tokens=4, n=3, temperature=1.0
    )
    assert [c.index for c in many.choices] == [0, 1, 2, 3, 4, 5]
    assert all(c.text for c in many.choices)
    assert len({c.text for c in many.choices}) > 1  # sampled, not six copies of one answer
    assert 6 <= many.usage.completion_tokens <= 6 * 4


def test_models_health_and_metrics(llm_run, llm_url):
    listed = client(llm_url).models.list()
    assert [m.id for m in listed.data] == [llm_run.name]
    health = httpx.get(f"{llm_url}/health").json()
    assert health["status"] == "ok" and health["task"] == "causal-lm"
    text = httpx.get(f"{llm_url}/metrics").text
    assert 'tunesmith_requests_total{endpoint="/v1/models",status="200"}' in text
    assert "tunesmith_request_seconds_bucket" in text and "tunesmith_queue_depth" in text


def test_bad_requests_are_openai_errors(llm_run, llm_url):
    api = client(llm_url)
    with pytest.raises(openai.NotFoundError, match="not served here"):
        api.chat.completions.create(model="other", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="context"):
        api.chat.completions.create(
            model=llm_run.name, messages=[{"role": "user", "content": "x"}], max_tokens=100000
        )
    with pytest.raises(openai.BadRequestError, match="role"):
        api.chat.completions.create(
            model=llm_run.name, messages=[{"role": "robot", "content": "x"}]
        )
    with pytest.raises(openai.BadRequestError, match="temperature"):
        api.chat.completions.create(
            model=llm_run.name, messages=[{"role": "user", "content": "x"}], temperature=5
        )
    raw = httpx.post(
        f"{llm_url}/v1/chat/completions",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert raw.status_code == 400 and "not valid JSON" in raw.json()["error"]["message"]
    missing = httpx.post(f"{llm_url}/v1/chat/completions", json={"model": llm_run.name})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "messages"
    nowhere = httpx.get(f"{llm_url}/v1/nothing")
    assert nowhere.status_code == 404 and nowhere.json()["error"]["type"] == "not_found_error"
    wrong_kind = httpx.post(f"{llm_url}/v1/classify", json={"input": "x"})
    assert wrong_kind.status_code == 404 and "chat/completions" in wrong_kind.text


def test_a_foreign_host_or_site_is_refused(llm_url):
    rebound = httpx.get(f"{llm_url}/v1/models", headers={"Host": "evil.example"})
    assert rebound.status_code == 403 and "error" in rebound.json()
    cross = httpx.post(
        f"{llm_url}/v1/completions",
        json={"model": "x", "prompt": "x"},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403


def test_the_key_size_queue_and_time_limits(llm_run):
    messages = [{"role": "user", "content": PROMPT}]
    with serving(llm_run, api_key="s3cret", max_body=2048) as url:
        with pytest.raises(openai.AuthenticationError):
            client(url, "wrong").chat.completions.create(model=llm_run.name, messages=messages)
        ok = client(url, "s3cret").chat.completions.create(model=llm_run.name, messages=messages)
        assert ok.choices[0].finish_reason in ("stop", "length")
        assert httpx.get(f"{url}/health").status_code == 200  # no key needed
        big = [{"role": "user", "content": "word " * 2000}]
        with pytest.raises(openai.APIStatusError) as error:
            client(url, "s3cret").chat.completions.create(model=llm_run.name, messages=big)
        assert error.value.status_code == 413
    with serving(llm_run, batch=BatchOptions(max_batch=1, max_queue=1)) as url:
        with pytest.raises(openai.RateLimitError) as error:  # 2 choices, room for 1 row
            client(url).chat.completions.create(model=llm_run.name, messages=messages, n=2)
        assert error.value.response.headers["retry-after"] == "1"
    with serving(llm_run, timeout_s=0.001) as url:
        with pytest.raises(openai.APIStatusError) as error:
            client(url).chat.completions.create(
                model=llm_run.name, messages=messages, max_tokens=64
            )
        assert error.value.status_code == 408


def test_a_bounded_load_of_good_and_malformed_requests(llm_run):
    """8 clients, 240 requests, a third malformed: no 5xx, each malformed one a 4xx, each
    good one a 200 with its answer; concurrent requests shared model calls."""
    good = {"model": llm_run.name, "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": 4}  # fmt: skip
    malformed = [
        b"{broken",
        json.dumps({"model": llm_run.name}).encode(),
        json.dumps({**good, "max_tokens": -1}).encode(),
        json.dumps({**good, "n": 99}).encode(),
        json.dumps({**good, "model": "other"}).encode(),
        json.dumps({**good, "messages": [{"role": "robot", "content": "x"}]}).encode(),
    ]
    bodies = [
        (json.dumps(good).encode(), True) if i % 3 else (malformed[i % len(malformed)], False)
        for i in range(240)
    ]
    with serving(llm_run) as url, httpx.Client(base_url=url, timeout=60) as http:

        def send(item: tuple[bytes, bool]) -> tuple[int, bool, dict]:
            body, is_good = item
            answer = http.post(
                "/v1/chat/completions", content=body, headers={"Content-Type": "application/json"}
            )
            return answer.status_code, is_good, answer.json()

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(send, bodies))
        metrics = http.get("/metrics").text
    assert all(status < 500 for status, _, _ in results)
    assert all(400 <= status < 500 for status, is_good, _ in results if not is_good)
    assert all("error" in body for _, is_good, body in results if not is_good)
    assert all(status == 200 for status, is_good, _ in results if is_good)
    batched = [line for line in metrics.splitlines() if line.startswith("tunesmith_batch_rows_")]
    count = next(
        float(x.split()[-1]) for x in batched if x.startswith("tunesmith_batch_rows_count")
    )
    total = next(float(x.split()[-1]) for x in batched if x.startswith("tunesmith_batch_rows_sum"))
    assert total == 160 and count < total  # some model calls answered several requests


# --- classifiers ------------------------------------------------------------------------


def test_classify_texts_as_predict_does(text_run):
    texts = ["ＦＯＯＴＢＡＬＬ match goal", "the cake and the soup", "code"]
    expected = predict_run(text_run, texts)
    with serving(text_run) as url:
        answer = httpx.post(f"{url}/v1/classify", json={"input": texts}).json()
        single = httpx.post(f"{url}/v1/classify", json={"input": texts[0]}).json()
        empty = httpx.post(f"{url}/v1/classify", json={"input": []})
        chat = httpx.post(f"{url}/v1/chat/completions", json={"model": "x", "messages": []})
    assert [row["label"] for row in answer["data"]] == [row["label"] for row in expected]
    for served, local in zip(answer["data"], expected, strict=True):
        for label, p in local["probabilities"].items():
            assert served["probabilities"][label] == pytest.approx(p, abs=1e-5)
    assert single["data"][0]["label"] == expected[0]["label"]
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "input"
    assert chat.status_code == 404 and "/v1/classify" in chat.text


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_classify_uploaded_images_as_predict_does(image_run, tmp_path):
    colours = [(200, 40, 40), (40, 180, 60), (50, 60, 210)]
    paths = []
    for i, colour in enumerate(colours):
        paths.append(tmp_path / f"{i}.png")
        paths[-1].write_bytes(_png(colour))
    expected = predict_run(image_run, [str(p) for p in paths])
    with serving(image_run, max_body=1 << 20) as url:
        files = [("image", (p.name, p.read_bytes(), "image/png")) for p in paths]
        uploaded = httpx.post(f"{url}/v1/classify", files=files).json()
        encoded = [base64.b64encode(p.read_bytes()).decode() for p in paths]
        as_json = httpx.post(f"{url}/v1/classify", json={"images": encoded}).json()
        broken = httpx.post(
            f"{url}/v1/classify", files=[("image", ("bad.png", b"not an image", "image/png"))]
        )
        texts = httpx.post(f"{url}/v1/classify", json={"input": "a text"})
    for answer in (uploaded, as_json):
        assert [r["label"] for r in answer["data"]] == [r["label"] for r in expected]
        for served, local in zip(answer["data"], expected, strict=True):
            assert served["score"] == pytest.approx(local["score"], abs=1e-5)
    assert broken.status_code == 400 and "bad.png" in broken.json()["error"]["message"]
    assert texts.status_code == 400 and "images" in texts.json()["error"]["message"]


# --- the command --------------------------------------------------------------------------


def test_serve_refuses_before_loading(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(["serve", str(tmp_path), "--port", "70000"]) == 2
    assert main(["serve", str(tmp_path), "--max-batch", "8", "--max-queue", "2"]) == 2


def test_a_seq2seq_run_answers_chat_and_completions(tmp_path_factory):
    """The encoder reads the last user message (or the prompt); answers as predict's."""
    from .test_seq2seq import _recipe, build_t5, make_pairs

    folder = tmp_path_factory.mktemp("serve-t5")
    data = folder / "pairs.jsonl"
    pd.DataFrame(make_pairs(150)).to_json(data, orient="records", lines=True)
    recipe = _recipe(
        build_t5(folder / "t5"), data, folder / "unused", generation={"max_new_tokens": 6}
    )
    del recipe["output_dir"]  # train() below names the folder
    run = train(folder, recipe)
    source = "red green blue"
    expected = predict_run(run, [source])[0]["response"]
    with serving(run) as url:
        api = client(url)
        chat = api.chat.completions.create(
            model=run.name,
            messages=[
                {"role": "system", "content": "ignored"},
                {"role": "user", "content": source},
            ],
        )
        text = api.completions.create(model=run.name, prompt=source)
        streamed = api.completions.create(model=run.name, prompt=source, stream=True)
        pieces = "".join(chunk.choices[0].text for chunk in streamed if chunk.choices)
        with pytest.raises(openai.BadRequestError, match="max_length"):
            api.completions.create(model=run.name, prompt="red " * 100)
    assert expected and chat.choices[0].message.content == expected
    assert text.choices[0].text == expected == pieces
