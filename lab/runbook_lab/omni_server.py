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
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import https
from .certs import CA
from .net import HOST

if TYPE_CHECKING:
    from .model import RequestLog

CERTIFICATES = https.CERTIFICATES
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


class OmniServer(https.Endpoint):
    """A running Omni ``/healthz``: ``url`` is ``https://127.0.0.1:PORT``."""


async def start_omni(model: dict, *, ca: CA, log: "RequestLog", latency: float = 0.0) -> OmniServer:
    """Serve Omni's health endpoint on loopback as ``model`` describes, each request ``latency`` s late."""
    healthz: Any = model.get("healthz", 200)
    mode = healthz if healthz in ("down", "hang") else "up"
    status = 200
    if mode == "up":
        try:
            status = int(healthz)
            http.HTTPStatus(status)
        except ValueError:
            raise ValueError(f"omni.healthz: expected an HTTP status, 'down' or 'hang', got {healthz!r}") from None
    port, parts = await https.start(
        mode, lambda: _healthz_app(status, log),
        lambda: server_certificate(ca, model.get("certificate", "valid")),
        lambda: log.add("omni", "omni", "CONNECT (never answered)"), latency)
    return OmniServer(port, **parts)


def server_certificate(ca: CA, kind: str) -> tuple[str, str]:
    """Omni's certificate and key: from the twin CA, from an unrelated CA, or already expired."""
    return https.certificate(ca, kind, "omni", [HOST, "localhost"], field_name="omni.certificate",
                             untrusted_dir="untrusted-ca")
