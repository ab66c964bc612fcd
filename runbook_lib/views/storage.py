"""The storage notebook's tables: the machine classes and their selectors, the pools node by node,
and what the provider would pick (:func:`runbook_lib.checks.storage.outcome_table` and
:func:`~runbook_lib.checks.storage.pick_table` evaluate the selectors)."""

from __future__ import annotations

from ..checks.storage import outcome_table, pick_table, subjects
from ..evidence import Evidence

CLASS_COLUMNS = ["class", "provider", "pinned node", "selector", "text", "ignored keys", "error"]
NO_SELECTOR = {"path": "-", "text": "", "present": False}


def _ignored(keys: list[dict]) -> str:
    return ", ".join(i["key"] + (f" (read as {i['meant']})" if i.get("meant") else "") for i in keys)


def classes(ev: Evidence) -> list[dict]:
    """Each auto-provisioning MachineClass with each selector its provider data carries, and the keys
    the provider ignores."""
    found = ev.optional("machineclasses")
    if found is None:
        return [{"class": ev.error("machineclasses")}]
    return [{"class": c["id"], "provider": c["provider"] or "-", "pinned node": c["node"] or "",
             "selector": s["path"], "text": s["text"] if s["present"] else "(missing)",
             "ignored keys": _ignored(c["ignored"]), "error": c["error"]}
            for c in found for s in (c["selectors"] or [NO_SELECTOR])]


def pools(ev: Evidence) -> list[dict]:
    """What ``GET /nodes/{node}/storage`` returned, node by node, in its order."""
    rows = [{"node": n, "order": i, "storage": r["storage"], "storageType": r.get("type"),
             "content": r.get("content"), "enabled": r.get("enabled"), "active": r.get("active"),
             "shared": r.get("shared"), "availableSpace (GiB)": round((r.get("avail") or 0) / 1024 ** 3, 1)}
            for n, node_rows in (ev.optional("storages") or {}).items() for i, r in enumerate(node_rows, 1)]
    return rows or [{"node": "-", "storage": ev.error("storages") or "no online node answered"}]


def unread_nodes(ev: Evidence) -> str:
    """The nodes whose storages were not read, and why (offline ones take no VM)."""
    if not ev.has("storages"):
        return f"no storage read: {ev.error('storages')}"
    lines = [f"{node}: not read: {why}" for node, why in (ev.optional("storage_errors") or {}).items()]
    offline = [n["node"] for n in ev.optional("nodes") or [] if n["status"] != "online"]
    if offline:
        lines.append("offline (the provider places no VM there): " + ", ".join(offline))
    return "\n".join(lines) or "every online node's storages were read"


def outcomes(ev: Evidence) -> list[dict]:
    """For every selector and node: the pool the provider takes, the ones it never reaches, or its error."""
    return outcome_table(ev) if ev.has("storages") else [{"error": ev.error("storages")}]


def pick_tables(ev: Evidence) -> list[tuple[str, list[dict]]]:
    """Per selector (``label: text``), each storage evaluated node by node, with what decided it."""
    if not ev.has("storages"):
        return []
    return [(f"{s.label}: {s.text}", pick_table(s.text, ev.get("storages"), [s.node] if s.node else None))
            for s in subjects(ev)]
