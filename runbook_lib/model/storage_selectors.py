"""The storage selectors a site's MachineClasses carry, run as the provider runs them on every node.

A selector is judged the way the provider runs it (:mod:`runbook_lib.cel`): compiled and
type-checked as cel-go does, then evaluated for every storage of every online node in the order
``GET /nodes/{node}/storage`` lists them, the first match winning. A MachineClass that pins a
``node`` is only run on that node.

The functions read the storage section's evidence (``ev``: ``get``, ``optional``, ``has``; names
in :mod:`runbook_lib.checks.storage`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import cel
from .storage import holds_disks


@dataclass(frozen=True)
class Subject:
    """One selector the provider would run: a class's, one of its additional disks', or a candidate."""

    label: str
    text: str
    node: str | None = None  # the node the class pins VMs to


@dataclass
class Evaluated:
    subject: Subject
    selector: cel.Selector
    picks: dict[str, cel.Pick] = field(default_factory=dict)  # node -> what the provider does there
    rows: dict[str, list[dict]] = field(default_factory=dict)  # node -> the storages it saw
    not_judged: dict[str, str] = field(default_factory=dict)  # node -> why it was not evaluated


def provider_classes(ev) -> list[dict]:
    """The auto-provisioning MachineClasses of the site's provider (one when a class is named)."""
    expected = ev.get("expected")
    classes = [c for c in ev.get("machineclasses")
               if c.get("autoprovision") and c.get("provider") == expected["provider_id"]]
    if expected.get("machine_class"):
        classes = [c for c in classes if c["id"] == expected["machine_class"]]
    return classes


def usable(entry: dict) -> bool:
    """A class's selector entry the provider can run: present, a string, not blank."""
    return entry["present"] and not entry["not_string"] and bool(entry["text"].strip())


def subjects(ev) -> list[Subject]:
    """The selectors to judge: the candidate when one is given, else every class's usable ones."""
    expected = ev.get("expected")
    if expected.get("candidate") is not None:
        node = None
        if expected.get("machine_class") and ev.has("machineclasses"):
            node = next((c["node"] for c in provider_classes(ev)), None)
        return [Subject("candidate selector", expected["candidate"], node)]
    out = []
    for c in provider_classes(ev):
        for entry in c["selectors"]:
            if usable(entry):
                where = "" if entry["path"] == "storage_selector" else f" {entry['path'].rsplit('.', 1)[0]}"
                out.append(Subject(f"machineclass {c['id']}{where}", entry["text"], c.get("node")))
    return out


def analyze(ev) -> list[Evaluated]:
    """Every subject run through the provider's loop on every node it may land on."""
    storages = ev.get("storages")
    out = []
    for subject in subjects(ev):
        result = Evaluated(subject, cel.compile_selector(subject.text))
        unread = [n for n in ev.optional("storage_errors", {}) if n not in storages]
        nodes = [subject.node] if subject.node else list(storages) + unread
        for node in nodes:
            if node not in storages:
                result.not_judged[node] = (ev.optional("storage_errors", {}).get(node)
                                           or f"node {node} is not an online node of the cluster")
                continue
            result.rows[node] = storages[node]
            result.picks[node] = cel.pick(result.selector, node, storages[node])
        out.append(result)
    return out


def grouped(e: Evaluated) -> list[tuple[str, cel.Pick]]:
    """The picks of one selector, nodes with the same outcome merged: ("pve1, pve2", pick of pve1)."""
    groups: dict[tuple, list[str]] = {}
    first: dict[tuple, cel.Pick] = {}
    for node, p in e.picks.items():
        key = (p.winner, tuple(p.matched), p.error.replace(node, "<node>"),
               tuple((r.storage, r.matched) for r in p.rows))
        groups.setdefault(key, []).append(node)
        first.setdefault(key, p)
    return [(", ".join(nodes), first[key]) for key, nodes in groups.items()]


def usable_pools(ev, nodes: list[str]) -> list[str]:
    """Pools that hold VM disks and are enabled and active on every one of ``nodes`` (shared first)."""
    storages = ev.optional("storages") or {}
    per_node = [{r["storage"]: r for r in storages.get(n, [])} for n in nodes if n in storages]
    if not per_node:
        return []
    names = set.intersection(*(set(p) for p in per_node))
    good = [n for n in names if all(holds_disks(p[n]) and p[n].get("enabled") and p[n].get("active")
                                    for p in per_node)]
    return sorted(good, key=lambda n: (not per_node[0][n].get("shared"), -int(per_node[0][n].get("avail") or 0), n))


def pool_names(ev) -> set[str]:
    """Every pool name any node lists."""
    return {r["storage"] for rows in (ev.optional("storages") or {}).values() for r in rows}
