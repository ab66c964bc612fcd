"""The provider notebook's tables: the container, its Proxmox configuration, its log, Omni's view
of it and the network as it sees it."""

from __future__ import annotations

from ..evidence import Evidence

PROBES_FROM_PROVIDER = ("omni_probe_from_provider", "proxmox_probe_from_provider")


def container(ev: Evidence) -> dict:
    """The provider's container as ``docker inspect`` shows it (its environment and mounts left out)."""
    c = ev.optional("container")
    if not c:
        return {"container": ev.error("container") or "no provider container on the host"}
    return {k: v for k, v in c.items() if k not in ("env", "mounts")}


def config(ev: Evidence) -> dict:
    """The provider's ``config.yaml`` as gathered (secrets never are)."""
    return ev.optional("provider_config") or \
        {"config.yaml": ev.error("provider_config") or "the container has no --config-file"}


def log_summary(ev: Evidence) -> str:
    """How much of the provider's log was read, or why it was not."""
    logs = ev.optional("logs")
    if not logs:
        return f"log not read: {ev.error('logs') or 'no provider container'}"
    return (f"scanned {logs['lines']} lines ({logs['window']}), {logs['restarts']} start(s) seen, "
            f"{logs['replaced']} undecodable bytes replaced")


def log_causes(ev: Evidence) -> list[dict]:
    """Per cause the log points at: how many lines, and the latest of them."""
    categories = (ev.optional("logs") or {}).get("categories") or {}
    return [{"cause": k, "lines": v["count"], "example": (v["examples"] or [""])[-1]} for k, v in categories.items()]


def log_tail(ev: Evidence, lines: int = 10) -> str:
    """The log's last lines (secrets masked); nothing when it was not read (:func:`log_summary` says why)."""
    return "\n".join(((ev.optional("logs") or {}).get("tail") or [])[-lines:])


def omni_view(ev: Evidence) -> list[dict]:
    """The infra providers Omni has, with their connection status."""
    status = ev.optional("provider_status") or {}
    rows = [{"id": i, "registered": True, **status.get(i, {})} for i in ev.optional("infraproviders") or []]
    return rows or [{"id": "-", "registered": ev.error("infraproviders") or "none"}]


def reachability(ev: Evidence) -> list[dict]:
    """Omni and Proxmox probed from the provider host, then each Proxmox endpoint from here."""
    rows = [{"probe": name, **(ev.optional(name) or {"kind": "unknown", "error": ev.error(name)})}
            for name in PROBES_FROM_PROVIDER]
    rows += [{"probe": "proxmox endpoint from here", "url": p["url"], "code": p["status"], "kind": p["kind"],
              "error": p["error"]} for p in ev.optional("proxmox_endpoints") or []]
    return rows
