"""The cluster notebook's tables: cluster statuses, machine sets, machines and the control plane,
then the supply side (machine requests, Proxmox nodes)."""

from __future__ import annotations

from ..evidence import Evidence
from ..model.machinesets import pending, sets_in_scope, wanted
from ..model.omni import CLUSTER_PHASES, CONDITION_STATUS, CONDITION_TYPES, MACHINE_STAGES, SET_PHASES, SEVERITY
from . import or_reason


def clusters(ev: Evidence) -> list[dict]:
    """Each cluster's phase, readiness and healthy machines out of the total."""
    rows = [{"cluster": cid, "phase": CLUSTER_PHASES.get(s["phase"], s["phase"]), "ready": s["ready"],
             "available": s["available"], "healthy": s["machines"]["healthy"], "total": s["machines"]["total"],
             "control plane ready": s["controlplaneready"], "Kubernetes API ready": s["kubernetesapiready"]}
            for cid, s in sorted((ev.optional("cluster_statuses") or {}).items())]
    return or_reason(rows, ev, "cluster_statuses", "cluster")


def machine_sets(ev: Evidence) -> list[dict]:
    """What each machine set of the clusters in scope asks for against what it has."""
    if not (ev.has("machine_sets") and ev.has("clusters")):
        return [{"machine set": ev.error("machine_sets") or ev.error("clusters")}]
    return [{"machine set": sid, "cluster": ms["cluster"], "role": ms["role"],
             "class": (ms["allocation"] or {}).get("name", "-"), "wants": wanted(ms),
             "allocated": ms["machines"]["total"], "healthy": ms["machines"]["healthy"],
             "pending": pending(ms), "phase": SET_PHASES.get(ms["phase"], ms["phase"]), "error": ms["error"]}
            for sid, ms in sets_in_scope(ev).items()]


def machines(ev: Evidence) -> list[dict]:
    """Every cluster machine with its stage, readiness and connection."""
    rows = [{"machine": mid, "hostname": m["hostname"], "set": m["machine_set"], "role": m["role"],
             "stage": MACHINE_STAGES.get(m["stage"], m["stage"]), "ready": m["ready"],
             "connected": m["connected"], "config error": m["lastconfigerror"]}
            for mid, m in sorted((ev.optional("cluster_machines") or {}).items())]
    return or_reason(rows, ev, "cluster_machines", "machine")


def control_plane(ev: Evidence) -> list[dict]:
    """Omni's control-plane conditions (etcd, and the SideroLink connection it depends on)."""
    rows = [{"control plane": sid, "condition": CONDITION_TYPES.get(c["type"], c["type"]),
             "status": CONDITION_STATUS.get(c["status"], c["status"]),
             "severity": SEVERITY.get(c["severity"], c["severity"]), "reason": c["reason"]}
            for sid, cp in sorted((ev.optional("controlplane_statuses") or {}).items()) for c in cp["conditions"]]
    return or_reason(rows, ev, "controlplane_statuses", "control plane")


def requests(ev: Evidence) -> list[dict]:
    """The machine requests the provider works on."""
    rows = [{"request": rid, **r} for rid, r in sorted((ev.optional("request_statuses") or {}).items())]
    return or_reason(rows, ev, "request_statuses", "request")


def proxmox_nodes(ev: Evidence) -> list[dict]:
    """What each Proxmox node has free (read only when machines are waited for)."""
    rows = [{"node": n, "online": v["online"], "cpus": v["cpus"],
             "memory free (GiB)": round((v["mem_total"] - v["mem_used"]) / 2**30, 1)}
            for n, v in sorted((ev.optional("proxmox_nodes") or {}).items())]
    return or_reason(rows, ev, "proxmox_nodes", "node", "Proxmox not read: no machine set waits for the provider")
