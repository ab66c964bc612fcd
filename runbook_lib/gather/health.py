"""Evidence for the health checks: one quick look at every part of the stack, all in parallel.

Groups (each fills its own names, documented in :mod:`runbook_lib.checks.health`):

* ``omni``: ``GET /healthz`` on the site's Omni URL (TLS checked as the site says);
* ``omni host``: ``docker compose ps --all`` in Omni's project directory, over SSH;
* ``provider host``: ``docker ps -a`` over SSH, the provider's container picked out;
* ``omnictl providers`` / ``omnictl machines`` / ``omnictl clusters``: Omni's own view;
* ``proxmox <name>``, one per cluster: ``GET /version`` on every endpoint, ``/cluster/status``
  (quorum), and, on the clusters that host the Omni VM or the provider's LXC (the site's
  ``guests``), ``/cluster/resources?type=vm`` to read those guests' status.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from ..calls import CallLog
from ..errors import RunbookError
from ..evidence import Evidence
from ..model.ages import age
from ..model.omni import created
from ..site import Site
from ..sources import docker
from ..sources.http import probe
from ..sources.omni import Omnictl
from ..sources.proxmox import ProxmoxCluster
from ..sources.ssh import SSHHost
from . import in_parallel
from .provider import find_container

GUEST_ROLES = {"omni_vm": "qemu", "provider_lxc": "lxc"}


@dataclass
class Options:
    probe_timeout: float = 5.0  # seconds for Omni's /healthz
    stuck_after: float = 900.0  # a machine request still provisioning after this many seconds is stuck


def gather(site: Site, calls: CallLog, options: Options | None = None,
           progress: Callable[[str], None] | None = None) -> Evidence:
    opts = options or Options()
    ev = Evidence()
    guests = {role: site.cluster_hosting(role) for role in GUEST_ROLES}
    ev.put("expected", {
        "omni_url": site.omni.url,
        "provider_id": site.provider.id,
        "omni_services": [site.hosts.omni.omni_service, site.hosts.omni.tailscale_service],
        "stuck_after": opts.stuck_after,
        "guests": {role: f"{where[0]}/{where[1]}" if where else None for role, where in guests.items()},
    })
    omnictl = Omnictl(site.omni, calls)
    groups = {
        "omni": lambda e: _healthz(e, site, calls, opts),
        "omni host": lambda e: _omni_host(e, site, calls),
        "provider host": lambda e: _provider_host(e, site, calls),
        "omnictl providers": lambda e: _providers(e, omnictl),
        "omnictl machines": lambda e: _machines(e, omnictl),
        "omnictl clusters": lambda e: _clusters(e, omnictl),
    }
    clusters: dict[str, dict] = {}
    for name in site.proxmox:
        hosted = {role: where[1] for role, where in guests.items() if where and where[0] == name}
        groups[f"proxmox {name}"] = lambda e, n=name, h=hosted: _proxmox(e, site, n, h, calls, clusters)
    in_parallel(ev, groups, progress)
    ev.put("proxmox", clusters)
    return ev


def _healthz(ev: Evidence, site: Site, calls: CallLog, opts: Options) -> None:
    url = site.omni.url.rstrip("/") + "/healthz"
    result = probe(url, calls, ca_file=site.omni.ca_file, verify=site.omni.verify_tls, timeout=opts.probe_timeout)
    ev.put("omni_healthz", result.to_dict())


def _omni_host(ev: Evidence, site: Site, calls: CallLog) -> None:
    host = SSHHost(site.hosts.omni, calls)
    try:
        ev.collect("omni_services", lambda: [summarize_service(r) for r in
                                             docker.compose_ps(host, site.hosts.omni.compose_dir)])
    finally:
        host.close()


def summarize_service(row: dict) -> dict:
    """One row of ``docker compose ps --format json``, the fields the check reads."""
    return {"service": row.get("Service", ""), "name": row.get("Name", ""), "state": row.get("State", ""),
            "health": row.get("Health", ""), "status": row.get("Status", ""), "exit_code": row.get("ExitCode")}


def _provider_host(ev: Evidence, site: Site, calls: CallLog) -> None:
    spec = site.hosts.provider
    host = SSHHost(spec, calls)
    try:
        rows = ev.collect("containers", docker.ps, host)
    finally:
        host.close()
    if rows is None:
        ev.fail("provider_container", ev.error("containers"))
        return
    name = find_container(rows, spec.container, spec.image)
    row = next((r for r in rows if r.get("Names") == name), None)
    ev.put("provider_container", None if row is None else {
        "name": row.get("Names", ""), "image": row.get("Image", ""), "state": row.get("State", ""),
        "status": row.get("Status", "")})


def _providers(ev: Evidence, omni: Omnictl) -> None:
    ids = ev.collect("infraproviders", lambda: sorted(p["metadata"]["id"] for p in omni.get("infraproviders")))
    if ids is None:
        ev.fail("provider_status", ev.error("infraproviders"))
        return
    ev.collect("provider_status", lambda: {
        c["metadata"]["id"]: provider_health(c) for c in omni.get("infraprovidercombinedstatuses")})


def provider_health(resource: dict) -> dict:
    health = (resource.get("spec") or {}).get("health") or {}
    return {"connected": bool(health.get("connected")), "initialized": bool(health.get("initialized")),
            "error": health.get("error") or ""}


def _machines(ev: Evidence, omni: Omnictl) -> None:
    ev.collect("machines", lambda: [summarize_machine(m) for m in omni.get("machinestatuses")])
    now = time.time()
    ev.collect("machine_requests", lambda: [summarize_request(r, now) for r in omni.get("machinerequeststatuses")])


def summarize_machine(resource: dict) -> dict:
    spec = resource.get("spec") or {}
    return {"id": resource["metadata"]["id"], "hostname": (spec.get("network") or {}).get("hostname", ""),
            "connected": bool(spec.get("connected")), "maintenance": bool(spec.get("maintenance")),
            "cluster": spec.get("cluster") or "", "lasterror": spec.get("lasterror") or "",
            "talosversion": spec.get("talosversion") or ""}


def summarize_request(resource: dict, now: float) -> dict:
    spec = resource.get("spec") or {}
    return {"id": resource["metadata"]["id"], "stage": int(spec.get("stage") or 0), "status": spec.get("status", ""),
            "error": spec.get("error", ""), "uuid": spec.get("id") or "", "age": age(now, created(resource))}


def _clusters(ev: Evidence, omni: Omnictl) -> None:
    def read() -> list[dict]:
        names = [c["metadata"]["id"] for c in omni.get("clusters")]
        statuses = {s["metadata"]["id"]: summarize_cluster(s) for s in omni.get("clusterstatuses")}
        return [statuses.get(n, {"id": n, "status_missing": True}) for n in sorted(set(names) | set(statuses))]

    ev.collect("clusters", read)


def summarize_cluster(resource: dict) -> dict:
    spec = resource.get("spec") or {}
    machines = spec.get("machines") or {}
    return {"id": resource["metadata"]["id"], "ready": bool(spec.get("ready")), "available": bool(spec.get("available")),
            "phase": int(spec.get("phase") or 0), "total": int(machines.get("total") or 0),
            "healthy": int(machines.get("healthy") or 0), "connected": int(machines.get("connected") or 0)}


def _proxmox(ev: Evidence, site: Site, name: str, hosted: dict[str, int], calls: CallLog,
             out: dict[str, dict]) -> None:
    cluster = ProxmoxCluster(name, site.proxmox[name], calls)
    entry: dict = {"endpoints": [], "quorate": None, "nodes": [], "status_error": ""}
    out[name] = entry
    try:
        entry["endpoints"] = [p.to_dict() for p in cluster.probe()]
    except RunbookError as exc:  # the credentials themselves cannot be resolved
        entry["endpoints_error"] = str(exc)
    try:
        status = cluster.get("/cluster/status")
        summary = next((s for s in status if s.get("type") == "cluster"), None)
        entry["quorate"] = bool(summary.get("quorate")) if summary else True  # a single node has no cluster row
        entry["nodes"] = [{"name": s.get("name"), "online": bool(s.get("online"))}
                          for s in status if s.get("type") == "node"]
    except RunbookError as exc:
        entry["status_error"] = str(exc)
    if hosted:
        try:
            resources = cluster.get("/cluster/resources", type="vm")
        except RunbookError as exc:
            for role in hosted:
                ev.fail(role, str(exc))
            return
        for role, vmid in hosted.items():
            ev.put(role, find_guest(resources, vmid, GUEST_ROLES[role]))


def find_guest(resources: list[dict], vmid: int, kind: str) -> dict | None:
    """The guest ``vmid`` of type ``qemu`` or ``lxc`` in a ``/cluster/resources`` listing, or None."""
    for r in resources:
        if int(r.get("vmid", -1)) == int(vmid) and r.get("type") == kind:
            return {"vmid": int(vmid), "type": kind, "name": r.get("name", ""), "node": r.get("node", ""),
                    "status": r.get("status", "")}
    return None


def stack_rows(ev: Evidence) -> list[dict]:
    """What the notebook shows first: Omni's /healthz, the compose services, the provider's
    container and the two guests, one row each (``what``, ``state``, ``detail``)."""
    rows = []
    hz = ev.optional("omni_healthz")
    rows.append({"what": "Omni /healthz",
                 "state": (f"HTTP {hz['status']}" if hz.get("status") else hz["kind"]) if hz else "unknown",
                 "detail": hz["error"] if hz else ev.error("omni_healthz") or ""})
    for s in ev.optional("omni_services") or []:
        rows.append({"what": f"compose service {s['service']}", "state": s["state"], "detail": s["status"]})
    if not ev.has("omni_services"):
        rows.append({"what": "compose services", "state": "unknown", "detail": ev.error("omni_services") or ""})
    c = ev.optional("provider_container")
    rows.append({"what": "provider container",
                 "state": c["state"] if c else ("absent" if ev.has("provider_container") else "unknown"),
                 "detail": c["status"] if c else ev.error("provider_container") or ""})
    for role, label in (("omni_vm", "Omni VM"), ("provider_lxc", "provider LXC")):
        where = (ev.optional("expected") or {}).get("guests", {}).get(role)
        g = ev.optional(role)
        state = g["status"] if g else "not found" if ev.has(role) else "unknown" if where else "-"
        rows.append({"what": f"{label} {where or '(not in the site file)'}", "state": state,
                     "detail": f"{g['name']} on node {g['node']}" if g else ev.error(role) or ""})
    return rows
