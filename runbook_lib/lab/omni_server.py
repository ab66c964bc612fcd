"""Omni's HTTPS ``/healthz`` endpoint, as the lab twin serves it.

Behaves like Omni's health handler: ``GET``/``HEAD`` answer **200 with an empty body** while the
state store answers, ``500 Internal Server Error`` otherwise, and any other method gets
``405 Method not allowed`` (plain-text bodies ending in a newline, as Go's ``http.Error`` writes
them). The model is the ``omni`` mapping of ``healthy.yaml``:

``healthz``      200 | 500 (or any status) | ``down`` (the port refuses) | ``hang`` (accepts, never answers)
``certificate``  ``valid`` (twin CA) | ``untrusted`` (another CA) | ``expired`` (twin CA, validity over)
"""

from __future__ import annotations

import http
import socket
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .certs import CA
from .net import HOST, HangListener, port_of, reserve_port

if TYPE_CHECKING:
    from .model import RequestLog

CERTIFICATES = ("valid", "untrusted", "expired")
_TEXT = "text/plain; charset=utf-8"
_READ_METHODS = ("GET", "HEAD", "OPTIONS")


def _go_error(status: int, text: str) -> web.Response:
    """What Go's ``http.Error`` sends: the text and a newline, as plain text, no sniffing."""
    return web.Response(status=status, text=text + "\n", headers={"Content-Type": _TEXT,
                                                                  "X-Content-Type-Options": "nosniff"})


def _healthz_app(status: int, log: "RequestLog") -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        await request.read()  # Omni drains the body before answering
        log.add("omni", "omni", f"{request.method} {request.path}", write=request.method not in _READ_METHODS)
        if request.path not in ("/", "/healthz"):
            return _go_error(404, "404 page not found")
        if request.method not in ("GET", "HEAD"):
            return _go_error(405, "Method not allowed")
        if status == 200:
            return web.Response(status=200)  # Omni writes no body at all
        return _go_error(status, http.HTTPStatus(status).phrase)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


@dataclass
class OmniServer:
    """A running Omni ``/healthz``: ``url`` is ``https://127.0.0.1:PORT``."""

    port: int
    _runner: web.AppRunner | None = field(default=None, repr=False)
    _hang: HangListener | None = field(default=None, repr=False)
    _reserved: socket.socket | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._hang is not None:
            await self._hang.stop()
            self._hang = None
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None


async def start_omni(model: dict, *, ca: CA, log: "RequestLog") -> OmniServer:
    """Serve Omni's health endpoint on loopback as ``model`` describes."""
    healthz: Any = model.get("healthz", 200)
    if healthz == "down":
        sock = reserve_port()
        return OmniServer(port_of(sock), _reserved=sock)
    if healthz == "hang":
        listener = HangListener(lambda: log.add("omni", "omni", "CONNECT (never answered)"))
        return OmniServer(await listener.start(), _hang=listener)
    try:
        status = int(healthz)
        http.HTTPStatus(status)
    except ValueError:
        raise ValueError(f"omni.healthz: expected an HTTP status, 'down' or 'hang', got {healthz!r}") from None

    cert, key = server_certificate(ca, model.get("certificate", "valid"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    runner = web.AppRunner(_healthz_app(status, log), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, HOST, 0, ssl_context=context)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return OmniServer(runner.addresses[0][1], _runner=runner)


def server_certificate(ca: CA, kind: str) -> tuple[str, str]:
    """Omni's certificate and key: from the twin CA, from an unrelated CA, or already expired."""
    if kind not in CERTIFICATES:
        raise ValueError(f"omni.certificate: expected one of {', '.join(CERTIFICATES)}, got {kind!r}")
    issuer = ca
    if kind == "untrusted":
        issuer = CA.create(ca.directory / "untrusted-ca", name="untrusted CA (not the site's)")
    cert, key = issuer.issue(f"omni-{kind}", [HOST, "localhost"], expired=kind == "expired")
    return str(cert), str(key)
