"""ASGI layers in front of the endpoints: the bearer key, the body size limit and the
Prometheus counters. Each answers in the OpenAI error shape."""

from __future__ import annotations

import hmac
import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tunesmith.serve.errors import error_body

OPEN_PATHS = frozenset({"/health"})
"""Answered without the key (a load balancer's health check carries none)."""


class Telemetry:
    """The server's Prometheus metrics, in a registry of its own (GET /metrics)."""

    def __init__(self) -> None:
        disable_created_metrics()  # no *_created series beside each counter
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tunesmith_requests", "Requests answered", ["endpoint", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "tunesmith_request_seconds", "Time to answer a request", ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )  # fmt: skip
        self.queue = Gauge(
            "tunesmith_queue_depth", "Rows waiting for the model", registry=self.registry
        )
        self.batch = Histogram(
            "tunesmith_batch_rows", "Rows per model call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=self.registry,
        )  # fmt: skip
        self.tokens = Counter(
            "tunesmith_generated_tokens", "Tokens generated", registry=self.registry
        )


class Guarded:
    """Bearer key (when set), body limit and metrics for every HTTP request."""

    def __init__(
        self,
        app: ASGIApp,
        telemetry: Telemetry,
        routes: frozenset[str],
        api_key: str | None,
        max_body: int,
    ) -> None:
        self.app = app
        self.telemetry = telemetry
        self.routes = routes
        self.api_key = api_key
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        endpoint = path if path in self.routes else "other"
        started = time.perf_counter()
        status = {"code": 500}

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            refusal = self._refusal(scope, path)
            if refusal is not None:
                await refusal(scope, receive, counted)
            else:
                await self.app(scope, self._limited(receive), counted)
        finally:
            self.telemetry.requests.labels(endpoint, str(status["code"])).inc()
            self.telemetry.latency.labels(endpoint).observe(time.perf_counter() - started)

    def _refusal(self, scope: Scope, path: str) -> JSONResponse | None:
        headers = Headers(scope=scope)
        if self.api_key and path not in OPEN_PATHS:
            given = headers.get("authorization", "")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                token.strip().encode(), self.api_key.encode()
            ):
                body = error_body(
                    "a valid API key is needed: send the header 'Authorization: Bearer KEY' "
                    "with the key the server was started with",
                    401,
                    code="invalid_api_key",
                )
                return JSONResponse(body, status_code=401)
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return _too_large(self.max_body)
        return None

    def _limited(self, receive: Receive) -> Receive:
        """A chunked body (no Content-Length) is counted as it arrives."""
        seen = {"bytes": 0}
        limit = self.max_body

        async def limited() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen["bytes"] += len(message.get("body", b""))
                if seen["bytes"] > limit:
                    raise BodyTooLarge(limit)
            return message

        return limited


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes")
        self.limit = limit


def _too_large(limit: int) -> JSONResponse:
    body = error_body(
        f"the request body is larger than this server takes ({limit // 1024} KiB; start "
        "it with a larger --max-body-kb)",
        413,
        code="request_too_large",
    )
    return JSONResponse(body, status_code=413)


def too_large_response(error: BodyTooLarge) -> JSONResponse:
    return _too_large(error.limit)
