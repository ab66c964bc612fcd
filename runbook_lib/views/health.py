"""The health notebook's tables: Omni's view (provider, machines, requests, clusters), Proxmox,
and what to run next for each failing check."""

from __future__ import annotations

from ..checks.health import POINTS_TO
from ..evidence import Evidence
from ..model.omni import CLUSTER_PHASES, REQUEST_STAGES
from ..verdict import Verdict


def providers(ev: Evidence) -> list[dict]:
    status = ev.optional("provider_status") or {}
    rows = [{"provider": i, **status.get(i, {})} for i in ev.optional("infraproviders") or []]
    return rows or [{"provider": "-", "error": ev.error("infraproviders") or "none registered"}]


def machines(ev: Evidence) -> list[dict]:
    return ev.optional("machines") or [{"id": "-", "error": ev.error("machines") or "no machines"}]


def machine_requests(ev: Evidence) -> list[dict]:
    rows = [{**r, "stage": REQUEST_STAGES.get(r["stage"], r["stage"])} for r in ev.optional("machine_requests") or []]
    return rows or [{"id": "-", "error": ev.error("machine_requests") or "no machine requests"}]


def clusters(ev: Evidence) -> list[dict]:
    rows = [{**c, "phase": CLUSTER_PHASES.get(c.get("phase"), c.get("phase"))} for c in ev.optional("clusters") or []]
    return rows or [{"id": "-", "error": ev.error("clusters") or "no clusters"}]


def proxmox(ev: Evidence) -> list[dict]:
    """Every API endpoint of every Proxmox cluster, then whether the cluster is quorate."""
    rows = []
    for name, c in (ev.optional("proxmox") or {}).items():
        rows += [{"cluster": name, "endpoint": p["url"], "answers": p["ok"], "kind": p["kind"], "error": p["error"]}
                 for p in c["endpoints"]]
        rows.append({"cluster": name, "endpoint": "(quorum)", "answers": c["quorate"], "kind": "",
                     "error": c.get("status_error", "")})
    return rows or [{"cluster": "-", "error": ev.error("proxmox") or "no Proxmox cluster"}]


def next_steps(verdict: Verdict) -> str:
    """For each failing check (a problem, or one that could not be decided): its fix and the runbook
    that finds the cause."""
    failing = [f for f in verdict.findings if f.status in ("problem", "unknown")]
    lines = []
    for f in failing:
        lines.append(f"{f.id} ({f.status}): {f.fix or f.summary}")
        lines.append(f"    next: runbook run {' / '.join(POINTS_TO.get(f.id, ()))}")
    return "\n".join(lines) or "Everything answers. Nothing to do."
