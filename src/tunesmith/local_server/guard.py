"""Refuse requests that do not come from the page as served: a DNS-rebinding guard.

A page on another site cannot read this server's answers (no CORS), but with DNS rebinding it
can make its own name resolve to 127.0.0.1 and then talk to the server as "same origin"; its
requests still carry its own name in the Host header, so every request whose Host is not an
address of this server is refused. A cross-site form or fetch that changes something (POST,
PUT, PATCH, DELETE) carries the other site's Origin, so such requests are refused too.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import psutil
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"", "0.0.0.0", "::"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class AllowedHosts:
    """The Host header values the server answers: one of `names` (normalised by `normal_name`)
    on `port` (None: any port, for an app whose port is not known, as in tests)."""

    names: frozenset[str]
    port: int | None = None

    def allows(self, name: str | None, port: int | None) -> bool:
        if name is None or port is None:
            return False
        return normal_name(name) in self.names and self.port in (None, port)

    def allows_host(self, value: str) -> bool:
        """`value` is a Host header: name[:port], an IPv6 address in brackets."""
        return self.allows(*_split(f"http://{value}"))

    def allows_origin(self, value: str) -> bool:
        """`value` is an Origin header: scheme://name[:port] ("null" from a sandbox: refused)."""
        return self.allows(*_split(value))

    def shown(self) -> str:
        names = ", ".join(sorted(self.names))
        return names if self.port is None else f"{names} (port {self.port})"


def allowed_hosts(host: str, port: int) -> AllowedHosts:
    """The names the page may be opened under when listening on host:port.

    Loopback (127.0.0.1, ::1, localhost): the three loopback names. A wildcard (0.0.0.0, ::):
    the loopback names, this machine's host name and the addresses of its network interfaces;
    any other name (a DNS name, a proxy) is refused, so bind to the address it names instead.
    Any other address or name: that one, and the addresses it resolves to."""
    if host in WILDCARDS:
        return AllowedHosts(LOOPBACK_NAMES | _machine_names(), port)
    names = {normal_name(host)}
    if _is_loopback(host):
        names |= LOOPBACK_NAMES
    else:
        names |= _resolved(host)
    return AllowedHosts(frozenset(names), port)


def loopback_hosts() -> AllowedHosts:
    """The loopback names on any port: what `create_app` allows unless told otherwise."""
    return AllowedHosts(LOOPBACK_NAMES)


def normal_name(name: str) -> str:
    """One spelling per host: lower case, no trailing dot, IPv6 without brackets and compressed
    ("[0:0::1]" and "::1" are one address)."""
    name = name.strip().strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name


def detail_body(message: str) -> dict:
    """FastAPI's own error shape: {"detail": message}."""
    return {"detail": message}


class HostGuard:
    """ASGI middleware: 403 with a JSON body (`body(message)`: FastAPI's `detail` by
    default) for a foreign Host, or a foreign Origin on a request that changes something;
    everything else goes on to the app."""

    def __init__(
        self,
        app: ASGIApp,
        allowed: AllowedHosts,
        body: Callable[[str], dict] = detail_body,
        advice: str = "open the address that `tunesmith annotate` printed",
    ) -> None:
        self.app = app
        self.allowed = allowed
        self.body = body
        self.advice = advice

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self.refusal(scope) if scope["type"] == "http" else None
        if refusal is None:
            await self.app(scope, receive, send)
            return
        await JSONResponse(self.body(refusal), status_code=403)(scope, receive, send)

    def refusal(self, scope: Scope) -> str | None:
        """Why the request is refused, or None."""
        headers = Headers(scope=scope)
        hosts = headers.getlist("host")
        if len(hosts) != 1 or not self.allowed.allows_host(hosts[0]):
            return (
                f"Host {', '.join(hosts)!r} is not an address of this server "
                f"({self.allowed.shown()}); {self.advice}"
            )
        if scope["method"] in SAFE_METHODS:
            return None
        for origin in headers.getlist("origin"):
            if not self.allowed.allows_origin(origin):
                return (
                    f"Origin {origin!r} is another site; only this server's own pages may "
                    "send it requests that change something"
                )
        return None


def _split(url: str) -> tuple[str | None, int | None]:
    """(name, port) of a bare scheme://name[:port] (port: the scheme's default when absent);
    (None, None) for anything else, such as a user name, a path or an invalid port."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None, None
    default = DEFAULT_PORTS.get(parts.scheme)
    extra = parts.username is not None or parts.path or parts.query or parts.fragment
    if default is None or extra or not parts.hostname:
        return None, None
    return parts.hostname, default if port is None else port


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower().rstrip(".") == "localhost"


def _machine_names() -> frozenset[str]:
    """This machine's host name and its interfaces' addresses (IPv6 scope ids dropped, since
    a browser's Host header has none)."""
    names = {normal_name(socket.gethostname())}
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family in (socket.AF_INET, socket.AF_INET6):
                names.add(normal_name(address.address.split("%")[0]))
    return frozenset(names)


def _resolved(host: str) -> set[str]:
    """The addresses `host` resolves to (none when it does not resolve: bind reports that)."""
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return set()
    return {normal_name(str(info[4][0]).split("%")[0]) for info in found}
