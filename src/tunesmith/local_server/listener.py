"""A local HTTP server's socket: bound before the server starts, so a bad --host or --port
is a clear error (exit 2) before any work, and no other program can take the port between
the check and the start. Used by `annotate` and `serve`."""

from __future__ import annotations

import errno
import ipaddress
import socket

import uvicorn

from tunesmith.errors import UserError


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one), so a port in use is a clear
    error before the server starts, no other program can take it in between, and a browser
    opened at once waits for the server instead of being refused."""
    check_port(port)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        listener.bind((host, port))
    except socket.gaierror:
        listener.close()
        raise UserError(f"--host {host}: not an address of this machine; use 127.0.0.1") from None
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRNOTAVAIL:
            raise UserError(
                f"--host {host}: not an address of this machine; use 127.0.0.1, or an address "
                "of this machine's network interfaces"
            ) from None
        why = "in use by another program" if error.errno == errno.EADDRINUSE else error.strerror
        raise UserError(
            f"--port {port}: cannot listen on {host}:{port} ({why}); choose another port, "
            f"e.g. --port {_free_port(host)}"
        ) from None
    listener.listen()
    return listener


def check_port(port: int) -> None:
    """A port out of range is the user's typo, not an OverflowError deep in `socket.bind`."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise UserError(f"--port {port}: a port is a number from 0 to 65535 (0: any free port)")


def make_server(app, **options) -> uvicorn.Server:
    """A quiet uvicorn server (no access log); `run(sockets=[bind(...)])` serves until Ctrl-C."""
    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, **options))


def url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    if ":" in shown:
        shown = "[::1]" if shown == "::" else f"[{shown}]"
    return f"http://{shown}:{port}/"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            return probe.getsockname()[1]
    except OSError:
        return 8766
