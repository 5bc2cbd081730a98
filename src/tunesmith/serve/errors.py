"""Every refusal in the OpenAI error shape, so an OpenAI client raises its own typed error
(BadRequestError, AuthenticationError, RateLimitError, ...) with our message:
{"error": {"message", "type", "param", "code"}}. A bad request is a 4xx, never a 500."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

log = logging.getLogger("tunesmith.serve")

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class ApiError(Exception):
    """A refusal with its status, message and (optionally) the parameter at fault."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}


def error_body(
    message: str, status: int = 400, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    kind = TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(error: ApiError) -> JSONResponse:
    body = error_body(error.message, error.status, error.param, error.code)
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def install_handlers(app: FastAPI) -> None:
    """Validation errors, HTTP errors (404, 405, ...) and ApiError in the OpenAI shape; an
    unexpected exception is a bug: logged with its trace, answered 500 in the same shape."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = [str(part) for part in first.get("loc", ()) if part != "body"]
        param = ".".join(where) or None
        message = first.get("msg", "invalid request")
        if first.get("type") == "json_invalid":
            message, param = "the request body is not valid JSON", None
        elif param is None:
            message = "the request body must be a JSON object (Content-Type: application/json)"
        text = f"{param}: {message}" if param else message
        return error_response(ApiError(400, text, param, first.get("type")))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = str(error.detail)
        if error.status_code == 404:
            message = f"{request.method} {request.url.path}: no such endpoint; see GET /v1/models"
        elif error.status_code == 405:
            message = f"{request.url.path} does not take {request.method}"
        headers = dict(error.headers or {})
        return error_response(ApiError(error.status_code, message, headers=headers))

    @app.exception_handler(Exception)
    async def bug(request: Request, error: Exception) -> JSONResponse:
        log.exception("serve: %s %s failed", request.method, request.url.path)
        body = error_body(f"internal error ({type(error).__name__}); see the server's log", 500)
        return JSONResponse(body, status_code=500)
