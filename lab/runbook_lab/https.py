"""One HTTPS endpoint of the twin (Omni's API, the Kubernetes API server) in one of three modes.

``up`` serves an aiohttp application over TLS with a certificate that is ``valid`` (issued by the
twin CA), ``untrusted`` (issued by an unrelated CA) or ``expired``; ``down`` keeps the port
reserved so connections are refused; ``hang`` accepts connections and never answers.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from typing import Callable

from aiohttp import web

from .certs import CA
from .latency import delay_app
from .net import HOST, HangListener, port_of, reserve_port

CERTIFICATES = ("valid", "untrusted", "expired")


@dataclass
class Endpoint:
    """A running endpoint: ``url`` is ``https://127.0.0.1:PORT`` whatever the mode."""

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


def certificate(ca: CA, kind: str, name: str, hosts: list[str], *, field_name: str,
                untrusted_dir: str) -> tuple[str, str]:
    """A server certificate and key of the given ``kind`` for ``hosts``; an untrusted one comes from
    a CA created in ``<ca dir>/<untrusted_dir>``."""
    if kind not in CERTIFICATES:
        raise ValueError(f"{field_name}: expected one of {', '.join(CERTIFICATES)}, got {kind!r}")
    issuer = ca
    if kind == "untrusted":
        issuer = CA.create(ca.directory / untrusted_dir, name=f"untrusted CA (not the site's, {name})")
    cert, key = issuer.issue(f"{name}-{kind}", hosts, expired=kind == "expired")
    return str(cert), str(key)


async def start(mode: str, app: Callable[[], web.Application], cert: Callable[[], tuple[str, str]],
                on_hang: Callable[[], None], latency: float = 0.0) -> tuple[int, dict]:
    """Start an endpoint; returns its port and the fields that stop it (see :class:`Endpoint`).
    ``latency``: seconds every request waits before it is handled (:mod:`.latency`)."""
    if mode == "down":
        sock = reserve_port()
        return port_of(sock), {"_reserved": sock}
    if mode == "hang":
        listener = HangListener(on_hang)
        return await listener.start(), {"_hang": listener}
    cert_file, key_file = cert()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    runner = web.AppRunner(delay_app(app(), latency), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, HOST, 0, ssl_context=context).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner.addresses[0][1], {"_runner": runner}
