"""`tunesmith serve RUN_DIR`: check the address, load the run, serve until Ctrl-C."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console
from rich.text import Text

from tunesmith.errors import UserError
from tunesmith.local_server.guard import allowed_hosts
from tunesmith.local_server.listener import bind, is_loopback, make_server, url
from tunesmith.progress import phase, silence
from tunesmith.serve.app import ServeOptions, create_app
from tunesmith.serve.batching import BatchOptions
from tunesmith.tasks.registry import get_task
from tunesmith.trained_run import load_run

API_KEY_VARIABLE = "TUNESMITH_API_KEY"


def run_serve(
    folder: Path,
    host: str,
    port: int,
    api_key: str | None,
    options: ServeOptions,
    retrieval: bool | None,
    console: Console,
) -> None:
    """The address is taken first (a port in use is a clear error before the model loads),
    then the run loads; requests are answered until Ctrl-C."""
    key = api_key or os.environ.get(API_KEY_VARIABLE) or None
    listener = bind(host, port)
    try:
        with phase(f"Loading {folder}", console):
            run = load_run(folder)
            kind = get_task(run.recipe.task)
            model = kind.serving_model(run, retrieval)
        bound = listener.getsockname()[1]
        settings = ServeOptions(key, options.timeout_s, options.max_body, options.batch)
        app = create_app(model, run.recipe.task, settings, allowed_hosts(host, bound))
        _describe(console, model, run.recipe.task, host, bound, key)
        silence()  # a bar per batch would flood the log
        make_server(app, timeout_graceful_shutdown=5).run(sockets=[listener])
    except KeyboardInterrupt:
        pass  # uvicorn shut down gracefully, then re-raised the Ctrl-C it caught
    finally:
        listener.close()
    console.print("Stopped.")


def batch_options(max_batch: int, max_queue: int) -> BatchOptions:
    if max_queue < max_batch:
        raise UserError(
            f"--max-queue {max_queue} is below --max-batch {max_batch}: the queue must hold "
            "at least one full batch"
        )
    return BatchOptions(max_batch=max_batch, max_queue=max_queue)


def _describe(console: Console, model, task: str, host: str, port: int, key: str | None) -> None:
    base = url(host, port).rstrip("/")
    generative = not callable(getattr(model, "classify", None))
    if generative:
        endpoints = "POST /v1/chat/completions, POST /v1/completions"
        example = (
            f"curl {base}/v1/chat/completions -H 'Content-Type: application/json' "
            + ('-H "Authorization: Bearer $TUNESMITH_API_KEY" ' if key else "")
            + f'-d \'{{"model": "{model.name}", "messages": [{{"role": "user", '
            '"content": "Hello"}]}\''
        )
    else:
        endpoints = "POST /v1/classify"
        body = '{"input": ["some text"]}' if model.inputs == "text" else None
        auth = '-H "Authorization: Bearer $TUNESMITH_API_KEY" ' if key else ""
        example = (
            f"curl {base}/v1/classify -H 'Content-Type: application/json' {auth}-d '{body}'"
            if body
            else f"curl {base}/v1/classify {auth}-F image=@photo.jpg"
        )
    console.print(Text(f"Serving {model.name} ({task}) at {base}  (Ctrl-C to stop)"))
    console.print(Text(f"  {endpoints}, GET /v1/models, GET /health, GET /metrics"))
    console.print(Text(f"  try: {example}"), soft_wrap=True)
    if not is_loopback(host):
        if key:
            console.print(Text(f"Listening on {host}: requests need the API key"))
        else:
            console.print(
                Text(
                    f"Listening on {host} without an API key: anyone who can reach it can use "
                    f"the model; add --api-key KEY (or set {API_KEY_VARIABLE})"
                ),
                style="yellow",
            )
