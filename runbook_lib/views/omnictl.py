"""The omnictl notebook's views: the binary and its configuration, the credential, the one real
call, and the path to Omni layer by layer."""

from __future__ import annotations

from ..checks.omnictl import key_lines, probe_lines
from ..evidence import Evidence


def binary(ev: Evidence) -> dict:
    """Where omnictl is, its version, the omniconfig it reads and the endpoint and key it uses."""
    found, config, expected = ev.optional("binary") or {}, ev.optional("config") or {}, ev.get("expected")
    return {"binary (site)": expected["binary"], "found at": found.get("path") or found.get("error", ""),
            "version": ev.optional("client_version") or ev.error("client_version") or "",
            "omniconfig": f"{config.get('path')} ({config.get('source')}, "
                          f"{'present' if config.get('exists') else 'absent'})",
            "context": expected["context"] or "-", "endpoint omnictl uses": expected["endpoint"],
            "service account key": expected["key"] or "none (browser login)"}


def credential(ev: Evidence) -> str:
    """What the key says about itself: identity, creation and expiry (never the key)."""
    return "\n".join(key_lines(ev)) or "no credential facts"


def attempt(ev: Evidence) -> dict:
    """The one real call and omnictl's own error line, classified."""
    return ev.optional("omnictl") or {"omnictl": ev.error("omnictl")}


def path_to_omni(ev: Evidence) -> str:
    """DNS, TCP, TLS and /healthz in the order a connection is made."""
    return "\n".join(probe_lines(ev)) or "no probe was made"
