"""Machine sets: how many machines each asks for, and where the missing ones must come from.

Reduced MachineSetStatuses (``cluster``, ``role``, ``machines`` {total, healthy, connected,
requested}, ``allocation`` {name, machinecount, allocationtype} or None) and MachineClasses
(``matchlabels``, ``autoprovision`` {providerid, providerdata} or None).
"""

from __future__ import annotations

from .omni import ALLOCATION_UNLIMITED


def wanted(ms: dict) -> int:
    """How many machines a set asks for: its class allocation's count, else what Omni requested."""
    alloc = ms.get("allocation")
    if alloc and alloc["allocationtype"] != ALLOCATION_UNLIMITED:
        return alloc["machinecount"]
    return ms["machines"]["requested"]


def pending(ms: dict) -> int:
    """Machines the set asks for that it does not have at all yet."""
    return max(wanted(ms) - ms["machines"]["total"], 0)


def in_scope(clusters: dict, statuses: dict | None, wanted_cluster: str = "") -> list[str]:
    """The clusters a run looks at: the one asked for, else every cluster Omni knows."""
    return [wanted_cluster] if wanted_cluster else sorted(set(clusters) | set(statuses or {}))


def scope(ev) -> list[str]:
    """:func:`in_scope` over the cluster section's evidence (``clusters``, ``cluster_statuses``, ``expected``)."""
    return in_scope(ev.get("clusters"), ev.optional("cluster_statuses"),
                    (ev.optional("expected") or {}).get("cluster") or "")


def sets_in_scope(ev) -> dict[str, dict]:
    """The machine sets (evidence ``machine_sets``) of the clusters in :func:`scope`."""
    return sets_of(ev.get("machine_sets"), scope(ev))


def healthy(machine: dict) -> bool:
    """A cluster machine counts as healthy when it is ready and connected."""
    return machine["ready"] and machine["connected"]


def sets_of(machine_sets: dict, clusters: list[str]) -> dict[str, dict]:
    scope = set(clusters)
    return {sid: s for sid, s in sorted(machine_sets.items()) if s["cluster"] in scope}


def waiting(sets: dict[str, dict], classes: dict, provider: str | None) -> list[tuple[str, dict, str, dict]]:
    """(set id, set, class id, class) for every set that still waits for machines from a class.

    ``provider`` given: classes that auto-provision through that provider; ``None``: classes that
    pick existing machines by label.
    """
    out = []
    for sid, ms in sets.items():
        alloc = ms.get("allocation")
        cls = classes.get(alloc["name"]) if alloc else None
        if cls is None or pending(ms) <= 0:
            continue
        auto = cls.get("autoprovision")
        if (provider is None and not auto) or (provider is not None and auto and auto["providerid"] == provider):
            out.append((sid, ms, alloc["name"], cls))
    return out


def waiting_in(ev_get, provider: str | None) -> list[tuple[str, dict, str, dict]]:
    """:func:`waiting` over evidence (``ev_get(name)`` reads optional evidence: ``clusters``,
    ``cluster_statuses``, ``machine_sets``, ``machine_classes``, ``expected``); safe on partial
    evidence, so gathering can ask it what else to read."""
    clusters, sets, classes = ev_get("clusters"), ev_get("machine_sets"), ev_get("machine_classes")
    if clusters is None or sets is None or classes is None:
        return []
    scope = in_scope(clusters, ev_get("cluster_statuses"), (ev_get("expected") or {}).get("cluster") or "")
    return waiting(sets_of(sets, scope), classes, provider)
