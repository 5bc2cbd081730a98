"""The HTTP API of `tunesmith serve`, on FastAPI.

Generative runs: POST /v1/chat/completions and /v1/completions as the OpenAI API defines
them (n, max_tokens, temperature, top_p, stop, streaming over server-sent events, usage).
Classifier runs: POST /v1/classify (texts as JSON, images as multipart uploads or base64).
Both: GET /v1/models, GET /health, GET /metrics (Prometheus text).

A request is validated, encoded (chat template, retrieval) on a worker thread, and queued;
the model thread batches what is queued (batching.py). Each choice streams through a
`ChoiceSink` from the model thread to the request's event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response, StreamingResponse

from tunesmith.errors import UserError
from tunesmith.local_server.guard import AllowedHosts, HostGuard, loopback_hosts
from tunesmith.serve.batching import Batcher, BatchOptions, Entry, QueueFull
from tunesmith.serve.errors import ApiError, error_body, install_handlers
from tunesmith.serve.middleware import BodyTooLarge, Guarded, Telemetry, too_large_response
from tunesmith.serve.schemas import (
    MAX_INPUTS,
    ChatRequest,
    ClassifyRequest,
    CompletionRequest,
    Sampled,
)
from tunesmith.tasks.serving import GenerationJob, Sampling

GENERATIVE_ROUTES = ("/v1/chat/completions", "/v1/completions")
CLASSIFIER_ROUTES = ("/v1/classify",)
COMMON_ROUTES = ("/v1/models", "/health", "/metrics")


@dataclass(frozen=True)
class ServeOptions:
    api_key: str | None = None
    """Bearer key every request but /health must carry (None: none needed)."""
    timeout_s: float = 120.0
    """Longest a request may wait and run; then 408 (its rows are dropped)."""
    max_body: int = 1 << 20
    """Largest request body in bytes; larger ones get 413."""
    batch: BatchOptions = field(default_factory=BatchOptions)


class ChoiceSink:
    """One choice's events, from the model thread to the request's loop, onto a queue the
    request shares with its other choices: (index, "text", str), (index, "finish", reason,
    tokens), (index, "error", message)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, index: int) -> None:
        self._loop = loop
        self._queue = queue
        self.index = index
        self._cancel = threading.Event()

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()

    def put(self, text: str) -> None:
        self._send((self.index, "text", text))

    def finish(self, reason: str, tokens: int) -> None:
        self._send((self.index, "finish", reason, tokens))

    def failed(self, error: BaseException) -> None:
        self._send((self.index, "error", f"{type(error).__name__}: {error}"))

    def _send(self, event: tuple) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)


@dataclass
class ClassifyJob:
    items: list[Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future

    def resolve(self, value: Any) -> None:
        def settle() -> None:
            if not self.future.done():
                if isinstance(value, BaseException):
                    self.future.set_exception(value)
                else:
                    self.future.set_result(value)

        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(settle)


class NamedUpload(io.BytesIO):
    """An uploaded image: a binary file the model reads, named in messages by its field."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self.name = name

    def __str__(self) -> str:
        return self.name


def create_app(
    model: Any,
    task: str,
    options: ServeOptions | None = None,
    allowed: AllowedHosts | None = None,
) -> FastAPI:
    """The API for `model` (a GenerativeModel or a LabelModel, see tasks/serving.py).

    Requests whose Host is not an address of this server (default: the loopback names on
    any port), or that come from another site's page, answer 403; a key, when set, is
    required of every request but /health."""
    options = options or ServeOptions()
    generative = not callable(getattr(model, "classify", None))
    telemetry = Telemetry()
    routes = (GENERATIVE_ROUTES if generative else CLASSIFIER_ROUTES) + COMMON_ROUTES
    run = _generate_batch(model, telemetry) if generative else _classify_batch(model)
    batcher: Batcher = Batcher(run, options.batch, telemetry.batch.observe)
    telemetry.queue.set_function(lambda: batcher.depth)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        batcher.close()  # the model thread ends with the server

    app = FastAPI(
        title=f"tunesmith serve: {model.name}", docs_url=None, redoc_url=None, lifespan=lifespan
    )
    app.state.batcher = batcher
    app.state.telemetry = telemetry
    install_handlers(app)

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, error: BodyTooLarge) -> JSONResponse:
        return too_large_response(error)

    app.add_middleware(
        Guarded,
        telemetry=telemetry,
        routes=frozenset(routes),
        api_key=options.api_key,
        max_body=options.max_body,
    )
    app.add_middleware(
        HostGuard,
        allowed=allowed or loopback_hosts(),
        body=lambda message: error_body(message, 403),
        advice="use the address `tunesmith serve` printed",
    )
    created = int(time.time())

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "model": model.name, "task": task, "queue": batcher.depth}

    @app.get("/metrics")
    async def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(telemetry.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models() -> dict:
        entry = {"id": model.name, "object": "model", "created": created, "owned_by": "tunesmith"}
        return {"object": "list", "data": [entry]}

    def check_model(name: str | None) -> None:
        if name is not None and name != model.name:
            raise ApiError(
                404,
                f"model {name!r} is not served here; this server serves {model.name!r}",
                "model",
                "model_not_found",
            )

    if generative:
        _add_generation_routes(app, model, batcher, options, check_model, telemetry)
    else:
        _add_classify_route(app, model, batcher, options, check_model)
        for path in GENERATIVE_ROUTES:
            app.add_api_route(path, _wrong_kind(f"{task} runs classify: POST /v1/classify"),
                              methods=["POST"])  # fmt: skip
    if generative:
        message = f"{task} runs write text: POST /v1/chat/completions or /v1/completions"
        app.add_api_route(CLASSIFIER_ROUTES[0], _wrong_kind(message), methods=["POST"])
    return app


def _wrong_kind(message: str) -> Callable:
    async def refuse() -> None:
        raise ApiError(404, message, code="unsupported_endpoint")

    return refuse


# --- generation ------------------------------------------------------------------------


def _generate_batch(model: Any, telemetry: Telemetry) -> Callable[[list[GenerationJob]], None]:
    def run(jobs: list[GenerationJob]) -> None:
        model.generate(jobs)

    return run


def _add_generation_routes(
    app: FastAPI,
    model: Any,
    batcher: Batcher,
    options: ServeOptions,
    check_model: Callable[[str | None], None],
    telemetry: Telemetry,
) -> None:
    @app.post("/v1/chat/completions")
    async def chat(request: ChatRequest) -> Response:
        check_model(request.model)
        messages = [{"role": m.role, "content": m.text()} for m in request.messages]
        try:
            prompt = await run_in_threadpool(model.chat_prompt, messages)
        except (ValueError, UserError) as error:
            raise ApiError(400, str(error), "messages", "invalid_prompt") from None
        limit = request.max_completion_tokens or request.max_tokens
        return await _complete(request, [prompt], limit, True)

    @app.post("/v1/completions")
    async def completions(request: CompletionRequest) -> Response:
        check_model(request.model)
        prompts = []
        for i, text in enumerate(request.prompts()):
            try:
                prompts.append(await run_in_threadpool(model.text_prompt, text))
            except (ValueError, UserError) as error:
                where = "prompt" if isinstance(request.prompt, str) else f"prompt[{i}]"
                raise ApiError(400, f"{where}: {error}", where, "invalid_prompt") from None
        return await _complete(request, prompts, request.max_tokens, False)

    async def _complete(
        request: Sampled, prompts: list[list[int]], limit: int | None, chat: bool
    ) -> Response:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        sinks, entries, prompt_tokens = [], [], 0
        for prompt in prompts:
            sampling = _sampling(request, model, len(prompt), limit)
            prompt_tokens += len(prompt)
            for _ in range(request.n):
                sink = ChoiceSink(loop, queue, len(sinks))
                sinks.append(sink)
                job = GenerationJob(prompt, sampling, sink)
                entries.append(Entry(job, 1, sampling.batch_key(), sink.cancelled, sink.failed))
        try:
            batcher.submit(entries)
        except QueueFull as error:
            raise ApiError(
                429, f"{error}; retry shortly", code="queue_full", headers={"Retry-After": "1"}
            ) from None
        answer = Answer(chat, model.name, len(sinks), prompt_tokens, telemetry)
        deadline = loop.time() + options.timeout_s
        if request.stream:
            usage = bool(request.stream_options and request.stream_options.include_usage)
            events = answer.stream(queue, sinks, deadline, usage)
            return StreamingResponse(events, media_type="text/event-stream")
        try:
            await answer.collect(queue, deadline)
        except TimeoutError:
            raise ApiError(
                408,
                f"the answer took longer than {options.timeout_s:g} s (the server's "
                "--timeout); ask for fewer tokens or retry when it is less busy",
                code="timeout",
            ) from None
        finally:
            for sink in sinks:
                sink.cancel()
        return JSONResponse(answer.body())


def _sampling(request: Sampled, model: Any, prompt_tokens: int, limit: int | None) -> Sampling:
    room = model.room(prompt_tokens)
    if limit is not None and limit > room:
        raise ApiError(
            400,
            f"max_tokens {limit}: the prompt has {prompt_tokens} tokens, which leaves room "
            f"for at most {room} in this model's context",
            "max_tokens",
            "context_length_exceeded",
        )
    return Sampling(
        max_tokens=limit or min(model.default_max_tokens, room),
        temperature=request.temperature or 0.0,
        top_p=request.top_p if request.top_p is not None else 1.0,
        stop=request.stops(),
    )


@dataclass
class Answer:
    """The choices of one request as they arrive, in OpenAI's response shapes."""

    chat: bool
    model: str
    choices: int
    prompt_tokens: int
    telemetry: Telemetry
    texts: list[str] = field(init=False)
    reasons: list[str | None] = field(init=False)
    tokens: int = 0
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:24])
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        self.texts = [""] * self.choices
        self.reasons = [None] * self.choices

    @property
    def object(self) -> str:
        return "chat.completion" if self.chat else "text_completion"

    async def collect(self, queue: asyncio.Queue, deadline: float) -> None:
        while any(reason is None for reason in self.reasons):
            self._take(await _next(queue, deadline))

    async def stream(
        self, queue: asyncio.Queue, sinks: list[ChoiceSink], deadline: float, usage: bool
    ) -> AsyncIterator[str]:
        try:
            if self.chat:
                for i in range(self.choices):
                    yield self._chunk(i, {"role": "assistant", "content": ""}, None)
            while any(reason is None for reason in self.reasons):
                try:
                    event = await _next(queue, deadline)
                except TimeoutError:
                    yield _sse(error_body("the answer took longer than the server's --timeout",
                                          408, code="timeout"))  # fmt: skip
                    break
                index, kind = event[0], event[1]
                self._take(event)
                if kind == "text":
                    yield self._chunk(index, {"content": event[2]}, None)
                elif kind == "finish":
                    yield self._chunk(index, {}, event[2])
            if usage:
                yield _sse({**self._head("chunk"), "choices": [], "usage": self._usage()})
            yield "data: [DONE]\n\n"
        except ApiError as error:
            yield _sse(error_body(error.message, error.status, code=error.code))
            yield "data: [DONE]\n\n"
        finally:
            for sink in sinks:
                sink.cancel()

    def _take(self, event: tuple) -> None:
        index, kind = event[0], event[1]
        if kind == "text":
            self.texts[index] += event[2]
        elif kind == "finish":
            self.reasons[index] = event[2]
            self.tokens += event[3]
            self.telemetry.tokens.inc(event[3])
        else:
            raise ApiError(500, f"the model failed: {event[2]}", code="model_error")

    def body(self) -> dict:
        if self.chat:
            choices = [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": reason,
                    "logprobs": None,
                }
                for i, (text, reason) in enumerate(zip(self.texts, self.reasons, strict=True))
            ]
        else:
            choices = [
                {"index": i, "text": text, "finish_reason": reason, "logprobs": None}
                for i, (text, reason) in enumerate(zip(self.texts, self.reasons, strict=True))
            ]
        return {**self._head(), "choices": choices, "usage": self._usage()}

    def _head(self, suffix: str = "") -> dict:
        name = f"{self.object}.{suffix}" if suffix and self.chat else self.object
        prefix = "chatcmpl" if self.chat else "cmpl"
        return {"id": f"{prefix}-{self.id}", "object": name, "created": self.created,
                "model": self.model}  # fmt: skip

    def _usage(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.tokens,
            "total_tokens": self.prompt_tokens + self.tokens,
        }

    def _chunk(self, index: int, delta: dict, reason: str | None) -> str:
        if self.chat:
            choice = {"index": index, "delta": delta, "finish_reason": reason, "logprobs": None}
        else:
            text = delta.get("content", "")
            choice = {"index": index, "text": text, "finish_reason": reason, "logprobs": None}
        return _sse({**self._head("chunk"), "choices": [choice]})


async def _next(queue: asyncio.Queue, deadline: float) -> tuple:
    left = deadline - asyncio.get_running_loop().time()
    if left <= 0:
        raise TimeoutError
    return await asyncio.wait_for(queue.get(), timeout=left)


def _sse(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


# --- classification --------------------------------------------------------------------


def _classify_batch(model: Any) -> Callable[[list[ClassifyJob]], None]:
    def run(jobs: list[ClassifyJob]) -> None:
        items = [item for job in jobs for item in job.items]
        try:
            rows = model.classify(items)
        except (ValueError, UserError) as error:
            if len(jobs) == 1:
                jobs[0].resolve(ApiError(400, str(error), "input", "unreadable_input"))
            else:  # one request's bad input must not fail the others in its batch
                for job in jobs:
                    run([job])
            return
        start = 0
        for job in jobs:
            job.resolve(rows[start : start + len(job.items)])
            start += len(job.items)

    return run


def _add_classify_route(
    app: FastAPI,
    model: Any,
    batcher: Batcher,
    options: ServeOptions,
    check_model: Callable[[str | None], None],
) -> None:
    @app.post("/v1/classify")
    async def classify(request: Request) -> JSONResponse:
        items = await _classify_inputs(request, model, check_model)
        loop = asyncio.get_running_loop()
        job = ClassifyJob(items, loop, loop.create_future())
        entry = Entry(job, len(items), "classify", job.future.done, job.resolve)
        try:
            batcher.submit([entry])
        except QueueFull as error:
            raise ApiError(
                429, f"{error}; retry shortly", code="queue_full", headers={"Retry-After": "1"}
            ) from None
        try:
            rows = await asyncio.wait_for(job.future, timeout=options.timeout_s)
        except TimeoutError:
            raise ApiError(
                408, f"the answer took longer than {options.timeout_s:g} s", code="timeout"
            ) from None
        data = [{"index": i, **_without_input(row)} for i, row in enumerate(rows)]
        return JSONResponse({"object": "list", "model": model.name, "data": data})


def _without_input(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("text", "image")}


async def _classify_inputs(
    request: Request, model: Any, check_model: Callable[[str | None], None]
) -> list[Any]:
    """Texts from JSON `input`; images from multipart `image` fields or JSON base64 `images`."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        if model.inputs != "image":
            raise ApiError(400, 'this model classifies texts: send JSON {"input": [...]}')
        form = await request.form(max_files=MAX_INPUTS, max_fields=MAX_INPUTS)
        check_model(form.get("model") if isinstance(form.get("model"), str) else None)
        uploads = [f for f in form.getlist("image") if not isinstance(f, str)]
        if not uploads:
            raise ApiError(400, "no images: upload each one as a multipart field named 'image'",
                           "image")  # fmt: skip
        return [
            NamedUpload(await f.read(), f"image[{i}] ({f.filename or 'unnamed'})")
            for i, f in enumerate(uploads)
        ]
    if kind not in ("application/json", ""):
        raise ApiError(415, f"Content-Type {kind!r}: send application/json (or multipart "
                            "uploads of images)")  # fmt: skip
    body = await request.body()
    try:
        parsed = ClassifyRequest.model_validate_json(body or b"null")
    except ValidationError as error:
        raise RequestValidationError(_located(error)) from None
    check_model(parsed.model)
    if model.inputs == "text":
        if parsed.input is None:
            raise ApiError(400, "input: give the text (or a list of texts) to classify", "input")
        texts = [parsed.input] if isinstance(parsed.input, str) else parsed.input
        return list(texts)
    if not parsed.images:
        raise ApiError(400, "this model classifies images: send base64 'images' or multipart "
                            "'image' uploads", "images")  # fmt: skip
    images = []
    for i, text in enumerate(parsed.images):
        try:
            images.append(NamedUpload(base64.b64decode(text, validate=True), f"images[{i}]"))
        except (binascii.Error, ValueError):
            raise ApiError(400, f"images[{i}]: not base64-encoded image bytes",
                           f"images[{i}]") from None  # fmt: skip
    return images


def _located(error: ValidationError) -> list[dict]:
    """pydantic's errors with the `body` prefix FastAPI gives its own."""
    return [{**e, "loc": ("body", *e["loc"])} for e in error.errors()]
