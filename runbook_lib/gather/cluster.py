"""Evidence for the cluster runbook: Omni's view of clusters, their machine sets and machines,
then (only when a machine set waits for machines from the provider) Proxmox capacity and the
provider's log.

First ``omnictl get clusters``: when omnictl cannot talk to Omni every piece fails with that one
reason (the omnictl runbook explains it) instead of ten identical errors. Then the cluster, machine
set, control plane, machine, class and request resources are read in parallel and reduced to the
fields the checks read. The rest answers one question, why machines that were asked for do not
arrive, so it is only read when some machine set waits for machines: the machines Omni knows
(``machinestatuses``) for a class that picks them by label; the machine requests, Proxmox's free
memory and storage and the provider's log for a class the provider auto-provisions.

The names of what is gathered are documented in :mod:`runbook_lib.checks.cluster`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from ..calls import CallLog
from ..errors import RunbookError
from ..evidence import Evidence
from ..logscan import LogScan
from ..model.machinesets import waiting_in
from ..model.omni import (
    L_CLUSTER,
    L_CONNECTED,
    L_CONTROL_PLANE,
    L_HOSTNAME,
    L_MACHINE_SET,
    L_PROVIDER,
    L_REQUEST_SET,
    labels,
    rid,
    spec,
)
from ..model.provider_log import START_LINE, SUPPLY_CATEGORIES, SUPPLY_TRIGGERS
from ..site import Site
from ..sources import docker
from ..sources.omni import Omnictl
from ..sources.proxmox import ProxmoxCluster
from ..sources.ssh import SSHHost
from . import in_parallel
from .provider import find_container


@dataclass
class Options:
    cluster: str = ""  # one cluster by name; empty: every cluster
    max_parallel_provisions: int = 4  # more machine requests provisioning at once count as rate-limited
    log_tail: int | None = 5000  # provider log lines scanned when machines are waited for


# ------------------------------------------------------------------------ Omni, reduced


def _machines(s: dict) -> dict:
    m = s.get("machines") or {}
    return {k: int(m.get(k) or 0) for k in ("total", "healthy", "connected", "requested")}


def reduce_clusters(items: list[dict]) -> dict:
    return {rid(r): {"talosversion": str(spec(r).get("talosversion") or ""),
                     "kubernetesversion": str(spec(r).get("kubernetesversion") or ""),
                     "phase": (r.get("metadata") or {}).get("phase", "running")} for r in items}


def reduce_cluster_statuses(items: list[dict]) -> dict:
    out = {}
    for r in items:
        s = spec(r)
        out[rid(r)] = {"phase": int(s.get("phase") or 0), "ready": bool(s.get("ready")),
                       "available": bool(s.get("available")), "machines": _machines(s),
                       "controlplaneready": bool(s.get("controlplaneready")),
                       "kubernetesapiready": bool(s.get("kubernetesapiready")),
                       "hasconnectedcontrolplanes": bool(s.get("hasconnectedcontrolplanes")),
                       "updated": (r.get("metadata") or {}).get("updated", "")}
    return out


def reduce_machine_sets(items: list[dict]) -> dict:
    out = {}
    for r in items:
        s, tags = spec(r), labels(r)
        alloc = s.get("machineallocation") or s.get("machineclass") or None
        out[rid(r)] = {
            "cluster": str(tags.get(L_CLUSTER) or ""),
            "role": "controlplane" if L_CONTROL_PLANE in tags else "worker",
            "phase": int(s.get("phase") or 0), "ready": bool(s.get("ready")), "error": str(s.get("error") or ""),
            "machines": _machines(s),
            "allocation": None if not alloc or not alloc.get("name") else {
                "name": str(alloc["name"]), "machinecount": int(alloc.get("machinecount") or 0),
                "allocationtype": int(alloc.get("allocationtype") or 0)},
        }
    return out


def reduce_controlplane_statuses(items: list[dict]) -> dict:
    return {rid(r): {"cluster": str(labels(r).get(L_CLUSTER) or ""),
                     "conditions": [{k: c.get(k) for k in ("type", "status", "severity", "reason")}
                                    for c in spec(r).get("conditions") or []]} for r in items}


def reduce_cluster_machines(items: list[dict]) -> dict:
    out = {}
    for r in items:
        s, tags = spec(r), labels(r)
        out[rid(r)] = {
            "cluster": str(tags.get(L_CLUSTER) or ""), "machine_set": str(tags.get(L_MACHINE_SET) or ""),
            "role": "controlplane" if L_CONTROL_PLANE in tags else "worker",
            "connected": L_CONNECTED in tags, "hostname": str(tags.get(L_HOSTNAME) or ""),
            "ready": bool(s.get("ready")), "stage": int(s.get("stage") or 0),
            "configapplystatus": int(s.get("configapplystatus") or 0),
            "lastconfigerror": str(s.get("lastconfigerror") or ""),
            "request": str(((s.get("provisionstatus") or {}).get("requestid")) or ""),
        }
    return out


def reduce_machine_classes(items: list[dict]) -> dict:
    out = {}
    for r in items:
        s = spec(r)
        auto = s.get("autoprovision") or None
        out[rid(r)] = {"matchlabels": [str(q) for q in s.get("matchlabels") or []],
                       "autoprovision": None if not auto else {
                           "providerid": str(auto.get("providerid") or ""),
                           "providerdata": auto.get("providerdata") or ""}}
    return out


def reduce_request_sets(items: list[dict]) -> dict:
    return {rid(r): {"providerid": str(spec(r).get("providerid") or ""),
                     "machinecount": int(spec(r).get("machinecount") or 0)} for r in items}


def reduce_request_statuses(items: list[dict]) -> dict:
    return {rid(r): {"set": str(labels(r).get(L_REQUEST_SET) or ""), "provider": str(labels(r).get(L_PROVIDER) or ""),
                     "stage": int(spec(r).get("stage") or 0), "status": str(spec(r).get("status") or ""),
                     "error": str(spec(r).get("error") or "")} for r in items}


def reduce_cluster_request_statuses(items: list[dict]) -> dict:
    return {rid(r): {"cluster": str(labels(r).get(L_CLUSTER) or ""),
                     "machine_set": str(labels(r).get(L_MACHINE_SET) or ""),
                     "stage": int(spec(r).get("stage") or 0), "status": str(spec(r).get("status") or ""),
                     "error": str(spec(r).get("error") or "")} for r in items}


def reduce_machine_statuses(items: list[dict]) -> dict:
    return {rid(r): {"labels": {str(k): ("" if v is None else str(v)) for k, v in labels(r).items()},
                     "talosversion": str(spec(r).get("talosversion") or ""),
                     "connected": bool(spec(r).get("connected")), "cluster": str(spec(r).get("cluster") or "")}
            for r in items}


# evidence name -> (omnictl type, reducer)
OMNI_READS: dict[str, tuple[str, Callable[[list[dict]], dict]]] = {
    "cluster_statuses": ("clusterstatuses", reduce_cluster_statuses),
    "machine_sets": ("machinesetstatuses", reduce_machine_sets),
    "controlplane_statuses": ("controlplanestatuses", reduce_controlplane_statuses),
    "cluster_machines": ("clustermachinestatuses", reduce_cluster_machines),
    "machine_classes": ("machineclasses", reduce_machine_classes),
    "cluster_request_statuses": ("clustermachinerequeststatuses", reduce_cluster_request_statuses),
}
# read only when a machine set waits for machines the provider must create
SUPPLY_READS = {
    "request_sets": ("machinerequestsets", reduce_request_sets),
    "request_statuses": ("machinerequeststatuses", reduce_request_statuses),
}
# read only when a machine set waits on a class that picks machines by label
LABEL_READS = {"machine_statuses": ("machinestatuses", reduce_machine_statuses)}
NOT_NEEDED = None  # the value of evidence that this run had no reason to gather


# ---------------------------------------------------------------------------- entry point


def gather(site: Site, calls: CallLog, options: Options | None = None,
           progress: Callable[[str], None] | None = None) -> Evidence:
    opts = options or Options()
    ev = Evidence()
    ev.put("expected", {"cluster": opts.cluster, "provider_id": site.provider.id,
                        "proxmox_cluster": site.provider.cluster,
                        "max_parallel_provisions": int(opts.max_parallel_provisions)})
    omni = Omnictl(site.omni, calls)
    try:
        ev.put("clusters", reduce_clusters(omni.get("clusters")))
    except RunbookError as exc:
        reason = f"{exc} (run `runbook run omnictl`)"
        for name in ("clusters", *OMNI_READS, *SUPPLY_READS, *LABEL_READS):
            ev.fail(name, reason)
        for name in ("proxmox_nodes", "proxmox_storage", "provider_log"):
            ev.fail(name, reason)
        return ev
    _read(ev, omni, OMNI_READS)
    if progress is not None:
        progress("omni")
    groups = {}
    if waiting_in(ev.optional, None):
        groups["machines"] = lambda e: _read(e, omni, LABEL_READS)
    if waiting_in(ev.optional, site.provider.id):
        groups["requests"] = lambda e: _read(e, omni, SUPPLY_READS)
        groups["proxmox"] = lambda e: _proxmox(e, site, calls)
        groups["provider log"] = lambda e: _provider_log(e, site, calls, opts)
    for name in ("machine_statuses", "request_sets", "request_statuses", "proxmox_nodes", "proxmox_storage",
                 "provider_log"):
        ev.put(name, NOT_NEEDED)  # replaced below by what a group gathers (or the reason it could not)
    if groups:
        in_parallel(ev, groups, progress)
    return ev


def _read(ev: Evidence, omni: Omnictl, reads: dict) -> None:
    """``omnictl get`` each type in parallel, each reduced into its evidence name."""
    def read(name: str) -> None:
        rtype, reduce = reads[name]
        ev.collect(name, lambda: reduce(omni.get(rtype)))

    with ThreadPoolExecutor(max_workers=len(reads), thread_name_prefix="omnictl") as pool:
        for fut in [pool.submit(read, name) for name in reads]:
            fut.result()


# ------------------------------------------------------------------------- Proxmox, provider


def _proxmox(ev: Evidence, site: Site, calls: CallLog) -> None:
    name = site.provider.cluster
    px = ProxmoxCluster(name, site.proxmox[name], calls)
    try:
        raw = px.get("/nodes")
    except RunbookError as exc:
        for piece in ("proxmox_nodes", "proxmox_storage"):
            ev.fail(piece, str(exc))
        return
    nodes, storage = {}, {}
    for row in sorted(raw, key=lambda r: str(r.get("node"))):
        node = str(row.get("node"))
        online = row.get("status") == "online"
        nodes[node] = {"online": online, "cpus": int(row.get("maxcpu") or 0),
                       "mem_total": int(row.get("maxmem") or 0), "mem_used": int(row.get("mem") or 0)}
        if online:
            try:
                storage[node] = [{k: s.get(k) for k in ("storage", "type", "content", "enabled", "active", "shared",
                                                        "avail", "total")}
                                 for s in px.get(f"/nodes/{node}/storage")]
            except RunbookError as exc:
                nodes[node]["storage_error"] = str(exc)
    ev.put("proxmox_nodes", nodes)
    ev.put("proxmox_storage", storage)


def _provider_log(ev: Evidence, site: Site, calls: CallLog, opts: Options) -> None:
    spec = site.hosts.provider
    host = SSHHost(spec, calls)
    try:
        name = find_container(docker.ps(host), spec.container, spec.image)
        if name is None:
            ev.fail("provider_log", "no provider container on the provider host")
            return
        scan = LogScan(SUPPLY_CATEGORIES, triggers=SUPPLY_TRIGGERS, reset=START_LINE)
        docker.logs(host, name, tail=opts.log_tail, on_lines=scan.feed_lines)
        summary = scan.summary()
        summary["window"] = f"tail {opts.log_tail or 'all'} of {name}"
        ev.put("provider_log", summary)
    except RunbookError as exc:
        ev.fail("provider_log", str(exc))
    finally:
        host.close()
