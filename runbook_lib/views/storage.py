"""The storage notebook's tables: the machine classes and their selectors, the pools node by node,
and what each selector makes of every pool.

Built with :mod:`runbook_lib.model.storage_selectors` and :mod:`runbook_lib.cel`, the definitions
the checks judge with, so a table never disagrees with the verdict.
"""

from __future__ import annotations

from .. import cel
from ..evidence import Evidence
from ..model.machineclass import GIB
from ..model.storage_selectors import analyze, subjects

CLASS_COLUMNS = ["class", "provider", "pinned node", "selector", "text", "ignored keys", "error"]
NO_SELECTOR = {"path": "-", "text": "", "present": False}

def pick_table(selector: str, storages: dict[str, list[dict]], nodes: list[str] | None = None) -> list[dict]:
    """Node by node, what a selector makes of each storage: the table the notebook shows.

    One row per (node, storage) in API order: ``matched`` (True, False, or None when it cannot
    be evaluated), ``first`` (the storage the provider takes), ``why`` (the terms that decided).
    A node where the provider fails gets one row whose ``why`` is the provider's error.
    """
    sel = cel.compile_selector(selector)
    rows = []
    for node in nodes or list(storages):
        raw = storages.get(node, [])
        result = cel.pick(sel, node, raw)
        for i, (row, storage) in enumerate(zip(result.rows, raw), 1):
            rows.append({"node": node, "order": i, "storage": row.storage, "storageType": row.storage_type,
                         "availableSpace (GiB)": round(row.available / GIB, 1),
                         "content": storage.get("content", ""), "enabled": storage.get("enabled"),
                         "active": storage.get("active"), "matched": row.matched, "first": row.first,
                         "why": row.error or cel.explain(sel, node, storage)})
        if result.error:
            rows.append({"node": node, "order": None, "storage": "-", "matched": None, "first": False,
                         "why": f"the provider fails: {result.error}"})
    return rows


def outcomes(ev: Evidence) -> list[dict]:
    """One row per (selector, node): the pool the provider takes there, the ones it never reaches,
    or the error it fails with (one row saying why when the storages were not read)."""
    if not ev.has("storages"):
        return [{"error": ev.error("storages")}]
    rows = []
    for e in analyze(ev):
        for node, p in e.picks.items():
            rows.append({"selector": e.subject.label, "node": node, "takes": p.winner or "-",
                         "also matches": ", ".join(p.shadowed), "error": p.error})
        for node, why in e.not_judged.items():
            rows.append({"selector": e.subject.label, "node": node, "takes": "?", "also matches": "", "error": why})
    return rows


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


def pick_tables(ev: Evidence) -> list[tuple[str, list[dict]]]:
    """Per selector (``label: text``), each storage evaluated node by node, with what decided it."""
    if not ev.has("storages"):
        return []
    return [(f"{s.label}: {s.text}", pick_table(s.text, ev.get("storages"), [s.node] if s.node else None))
            for s in subjects(ev)]
