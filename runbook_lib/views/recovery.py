"""The recovery notebook's table: every machine request, Omni's view against Proxmox's."""

from __future__ import annotations

from ..evidence import Evidence
from ..model.ages import human_age
from ..model.drift import drift


def drift_rows(ev: Evidence) -> list[dict]:
    """One row per machine request: Omni's view against Proxmox's (the notebook's table)."""
    try:
        rows = drift(ev)
    except Exception as exc:  # missing evidence: the verdict says why
        return [{"request": "-", "phase": f"not read: {exc}"}]
    return [{"request": d.request, "phase": d.phase, "finalizers": ", ".join(d.finalizers),
             "tearing down for": human_age(d.teardown_age) if d.teardown else "",
             "Omni says": d.cluster_status, "machine": d.uuid,
             "VM": f"{d.vm['vmid']} on {d.vm['node']} ({d.vm['status']})" if d.vm else "none on any node",
             "found by": d.found_by, "provider recorded": d.recorded, "recorded from": d.recorded_from,
             "provider's last teardown error": (d.failure or {}).get("error", "")} for d in rows]
