"""The twin's latency knob: how far away the site is, as a real one behind a VPN is.

``latency`` in ``healthy.yaml`` (or a scenario) gives seconds per request, by protocol:

``ssh``      before each command an SSH exec request runs (the channel is open, the answer waits)
``api``      before each HTTPS request is handled: Proxmox's API (every endpoint, forwarders included,
             since they pass bytes to the same application), Omni's ``/healthz``, the Kubernetes API
``omnictl``  once per omnictl invocation that talks to Omni (``version`` and ``help`` stay local)

Every server waits with ``asyncio.sleep``, so a slow answer never holds up the twin's loop; the
omnictl stand-in is a process of its own and simply sleeps.
"""

from __future__ import annotations

import asyncio
from typing import Any

KINDS = ("ssh", "api", "omnictl")


def latencies(state: dict) -> dict[str, float]:
    """The knob of a twin state: seconds per request for every kind (0 when not set)."""
    spec: Any = state.get("latency") or {}
    if not isinstance(spec, dict):
        raise ValueError(f"latency: expected a mapping of {', '.join(KINDS)} to seconds, got {spec!r}")
    unknown = set(spec) - set(KINDS)
    if unknown:
        raise ValueError(f"latency: unknown kind(s) {sorted(unknown)}; known: {', '.join(KINDS)}")
    out = {}
    for kind in KINDS:
        value = spec.get(kind) or 0
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"latency.{kind}: expected seconds (a number >= 0), got {value!r}")
        out[kind] = float(value)
    return out


async def pause(seconds: float) -> None:
    """Wait ``seconds`` without blocking the loop (nothing at 0)."""
    if seconds > 0:
        await asyncio.sleep(seconds)


def middleware(seconds: float):
    """An aiohttp middleware that answers every request ``seconds`` late."""
    from aiohttp import web

    @web.middleware
    async def delay(request, handler):
        await pause(seconds)
        return await handler(request)

    return delay


def delay_app(app, seconds: float):
    """``app`` (an aiohttp Application not yet started) with every request ``seconds`` late."""
    if seconds > 0:
        app.middlewares.insert(0, middleware(seconds))
    return app
