"""The provisioning notebook's tables and its capacity plot, built from the evidence.

Each ``*_rows`` function returns plain dicts (the notebook turns them into DataFrames with
:func:`runbook_lib.notebook.frame`); the numbers come from :mod:`runbook_lib.model`, the same
definitions the checks use, so a table never disagrees with the verdict.
"""

from __future__ import annotations

from ..evidence import Evidence
from ..model.ages import human_age
from ..model.capacity import NodeFit, capacity
from ..model.join import join_chain
from ..model.machineclass import GIB
from ..model.network import same_segment
from ..model.privileges import PROVIDER_NEEDS, SDN_NEED, missing_privileges
from . import or_reason


def join_rows(ev: Evidence) -> list[dict]:
    """One row per machine request: what Omni asked for, what Proxmox holds, what Omni sees."""
    rows = [{"request": r.request, "age": human_age(r.age), "request stage": r.stage or "-",
             "status": r.status or r.error or "-", "cluster request": r.cluster_stage or "-",
             "machine id (SMBIOS UUID)": r.uuid or "-", "VM": r.vmid, "node": r.node or "-",
             "VM state": r.vm_status or "no VM", "lock": r.lock, "role": r.role or "-", "connected": r.connected,
             "joined before": "; ".join(r.history) or "-",
             "Talos": r.talos_version or "-", "addresses": ", ".join(r.addresses), "from": r.address_source}
            for r in join_chain(ev.optional)]
    return or_reason(rows, ev, "machine_requests", "request", "none: Omni has requested no machine from this provider")


def provider_classes(ev: Evidence, provider_id: str) -> list[dict]:
    return [c for c in ev.optional("machine_classes") or [] if c.get("providerid") == provider_id]


def fits(ev: Evidence, provider_id: str) -> dict[str, list[NodeFit]]:
    return capacity(provider_classes(ev, provider_id), ev.optional("node_status") or {},
                       ev.optional("node_storage") or {})


def capacity_rows(ev: Evidence, provider_id: str) -> list[dict]:
    rows = [f.to_row() for nodes in fits(ev, provider_id).values() for f in nodes]
    return rows or [{"class": "no machine class of this provider states cores, memory and disk_size"}]


def capacity_figure(ev: Evidence, provider_id: str):
    """Per class (a row) and per node: what one VM needs against what is free, for idle CPUs,
    free memory and free pool space; bars short of the need are red. None without classes."""
    import matplotlib.pyplot as plt

    shown = {c: nodes for c, nodes in fits(ev, provider_id).items() if nodes}
    if not shown:
        return None
    fig, axes = plt.subplots(len(shown), 3, figsize=(11, 2.8 * len(shown)), squeeze=False)
    for row, (cls, nodes) in zip(axes, shown.items()):
        names = [n.node for n in nodes]
        pools = sorted({n.pool for n in nodes if n.pool}) or ["undecided pool"]
        series = [("idle CPUs", [n.cpu_free for n in nodes], nodes[0].cpu_need),
                  ("free memory (GiB)", [n.mem_free / GIB for n in nodes], nodes[0].mem_need / GIB),
                  (f"free on {', '.join(pools)} (GiB)", [(n.disk_free or 0) / GIB for n in nodes],
                   nodes[0].disk_need / GIB)]
        for ax, (label, free, need) in zip(row, series):
            x = list(range(len(names)))
            ax.bar([i - 0.2 for i in x], free, width=0.4, label="free (red: too little)",
                   color=["#2e7d32" if f >= need else "#c62828" for f in free])
            ax.bar([i + 0.2 for i in x], [need] * len(names), width=0.4, color="#9e9e9e", label="one VM needs")
            ax.set_xticks(x, names)
            ax.set_title(f"{cls}: {label}", fontsize=10)
        row[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def permissions_line(ev: Evidence) -> str:
    """Whose privileges were read and how, or why they were not."""
    if not ev.has("permissions"):
        return f"not read: {ev.error('permissions')}"
    return f"{ev.get('permissions')['who']}: via {ev.get('permissions')['via']}"


def privilege_rows(ev: Evidence) -> list[dict]:
    """Each thing the provider does in Proxmox, the privilege it needs, and whether it is held
    (none when the privileges could not be read: :func:`permissions_line` says why)."""
    if not ev.has("permissions"):
        return []
    perms = ev.get("permissions")
    missing = {(path, privs) for path, privs, _ in missing_privileges(perms["paths"], ev.optional("pve_version"))}
    return [{"path": path, "privilege": " or ".join(privs), "held": (path, privs) not in missing, "needed to": why}
            for path, privs, why in (*PROVIDER_NEEDS, SDN_NEED)]


def provision_log_line(ev: Evidence) -> str:
    """How much of the provider's log was scanned for failed steps, or why it was not read."""
    if not ev.has("provision_log"):
        return f"provider log not read: {ev.error('provision_log')}"
    log = ev.get("provision_log")
    return f"scanned {log['lines']} log lines ({log['window']}), {log['starts']} start(s) seen"


def failure_rows(ev: Evidence) -> list[dict]:
    """Failed provision steps since the provider last started (none when its log was not read)."""
    if not ev.has("provision_log"):
        return []
    log = ev.get("provision_log")
    return [{**f, "ago": human_age(f.get("ago"))} for f in log["failures"]] or [{"request": "no failed step"}]


def task_rows(ev: Evidence) -> list[dict]:
    now = ev.optional("now") or 0
    rows = [{**t, "age": human_age(now - (t["starttime"] or now))} for t in ev.optional("tasks") or []]
    return or_reason(rows, ev, "tasks", "task", "no running or failed task")


def provider_addresses(ev: Evidence) -> str:
    return "provider host: " + (", ".join(ev.optional("provider_addresses") or [])
                                or str(ev.error("provider_addresses")))


def registration_rows(ev: Evidence) -> list[dict]:
    """Running VMs: their addresses against the provider host's, and their Talos ports from there."""
    probes = ev.optional("talos_probes") or {}
    host = ev.optional("provider_addresses") or []
    rows = []
    for r in join_chain(ev.optional):
        if r.vm_status != "running":
            continue
        ports = (probes.get(r.request) or {}).get("ports") or {}
        rows.append({"request": r.request, "addresses": ", ".join(r.addresses) or "-", "from": r.address_source or "-",
                     "same segment as the provider": same_segment(host, r.addresses),
                     "tcp 50000": ports.get("50000", "-"), "tcp 50001": ports.get("50001", "-"),
                     "connected to Omni": r.connected})
    return or_reason(rows, ev, "vms", "request", "no running provider VM")
