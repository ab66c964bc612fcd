"""The storage notebook's tables: what each selector makes of every pool, node by node.

Built with :mod:`runbook_lib.model.storage_selectors` and :mod:`runbook_lib.cel`, the definitions
the checks judge with, so a table never disagrees with the verdict.
"""

from __future__ import annotations

from .. import cel
from ..evidence import Evidence
from ..model.machineclass import GIB
from ..model.storage_selectors import analyze


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


def outcome_table(ev: Evidence) -> list[dict]:
    """One row per (selector, node): the pool the provider takes there, or the error it fails with."""
    rows = []
    for e in analyze(ev):
        for node, p in e.picks.items():
            rows.append({"selector": e.subject.label, "node": node, "takes": p.winner or "-",
                         "also matches": ", ".join(p.shadowed), "error": p.error})
        for node, why in e.not_judged.items():
            rows.append({"selector": e.subject.label, "node": node, "takes": "?", "also matches": "", "error": why})
    return rows
