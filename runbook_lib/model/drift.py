"""Omni's machine requests against Proxmox's VMs: each request of the provider followed to its VM,
looked up cluster-wide, and what is stuck, moved or left over.

What deletion states, finalizers and the provider's record of a VM's node mean is in
:mod:`runbook_lib.model.recovery`. The functions here read the recovery section's evidence (``ev``:
``get``, ``optional``, ``has``; names in :mod:`runbook_lib.checks.recovery`); those that need the
requests followed to their VMs take them (:func:`drift`) as an argument, so a caller builds them once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .ages import age, human_age
from .omni import CLUSTER_REQUEST_PROVISIONED, REQUEST_PROVISIONED, TEARING_DOWN
from .recovery import CLUSTER_REQUEST_DEPROVISIONING, TEARDOWN_STATUS, recorded_node, request_set_of

DEFAULTS = {"teardown_after": 900, "link_after": 600}


def limits(ev) -> dict:
    """The run's limits (``expected``) over :data:`DEFAULTS`."""
    return {**DEFAULTS, **(ev.optional("expected") or {})}


@dataclass
class Drift:
    """One machine request of the provider, with its VM looked up cluster-wide."""

    request: str
    set: str = ""
    phase: str = "running"
    finalizers: list = field(default_factory=list)
    teardown: bool = False  # tearing down, or Omni waits for the provider's teardown
    teardown_age: float | None = None
    cluster_status: str = ""
    stage: int | None = None  # MachineRequestStatus stage
    cluster_stage: int | None = None
    uuid: str = ""
    vm: dict | None = None  # the VM found (by name, else by SMBIOS UUID), on whatever node
    found_by: str = ""
    recorded: str = ""  # the node the provider recorded
    recorded_from: str = ""
    failure: dict | None = None  # the provider's last 'reconcile failed' for the request

    @property
    def provisioned(self) -> bool:
        return self.stage == REQUEST_PROVISIONED or self.cluster_stage == CLUSTER_REQUEST_PROVISIONED


def vm_uuids(ev) -> dict[str, dict]:
    """SMBIOS UUID -> VM, for the VMs whose config was read."""
    configs = ev.optional("vm_configs") or {}
    out = {}
    for vm in ev.optional("all_vms") or []:
        uuid = (configs.get(str(vm["vmid"])) or {}).get("uuid")
        if uuid:
            out[uuid] = vm
    return out


def drift(ev) -> list[Drift]:
    """Every request of the provider followed to its VM."""
    requests, vms = ev.get("machine_requests"), ev.optional("all_vms") or []
    now = ev.optional("now", 0.0)
    statuses = ev.optional("request_statuses") or {}
    cluster = ev.optional("cluster_request_statuses") or {}
    log = ev.optional("provider_log") or {}
    tasks = ev.optional("tasks") or []
    by_name = {vm["name"]: vm for vm in vms}
    by_uuid = vm_uuids(ev)
    errors = {k: v.get("error", "") for k, v in (log.get("failures") or {}).items()}
    rows = []
    for req in requests:
        d = Drift(request=req["id"], set=req.get("set", ""), phase=req.get("phase", "running"),
                  finalizers=list(req.get("finalizers") or []))
        st, cst = statuses.get(d.request) or {}, cluster.get(d.request) or {}
        d.stage, d.cluster_stage = st.get("stage"), cst.get("stage")
        d.uuid = st.get("uuid") or cst.get("machineuuid") or ""
        d.cluster_status = cst.get("status", "")
        waiting = cst.get("stage") == CLUSTER_REQUEST_DEPROVISIONING or cst.get("status") == TEARDOWN_STATUS
        d.teardown = d.phase == TEARING_DOWN or waiting
        if d.teardown:
            since = [t for t in ((req.get("updated") if d.phase == TEARING_DOWN else None),
                                 (cst.get("updated") if waiting else None)) if t]
            d.teardown_age = age(now, min(since)) if since else None
        if d.request in by_name:
            d.vm, d.found_by = by_name[d.request], "name"
        elif d.uuid and d.uuid in by_uuid:
            d.vm, d.found_by = by_uuid[d.uuid], "SMBIOS UUID"
        d.recorded, d.recorded_from = recorded_node(d.request, (d.vm or {}).get("vmid"), log.get("picks") or {},
                                                    tasks, errors)
        d.failure = (log.get("failures") or {}).get(d.request)
        rows.append(d)
    return rows


def stuck(rows: list[Drift], limit: float) -> list[Drift]:
    """The requests tearing down for longer than ``limit`` seconds."""
    return [d for d in rows if d.teardown and d.teardown_age is not None and d.teardown_age > limit]


def moved(late: list[Drift]) -> list[Drift]:
    """Of the stuck teardowns ``late``: those whose VM runs on another node than the one the provider recorded."""
    return [d for d in late if d.vm is not None and d.recorded and d.recorded != d.vm["node"]]


def orphan_vms(ev, rows: list[Drift]) -> list[tuple[dict, str]]:
    """(VM, its SMBIOS UUID) for every VM with the provider's tag that no request owns, by name or UUID."""
    requests = {r["id"] for r in ev.get("machine_requests")}
    uuids = {d.uuid for d in rows if d.uuid}
    configs = ev.optional("vm_configs") or {}
    out = []
    for vm in ev.get("all_vms"):
        if not request_set_of(vm.get("tags")):
            continue
        uuid = (configs.get(str(vm["vmid"])) or {}).get("uuid", "")
        if vm["name"] not in requests and not (uuid and uuid in uuids):
            out.append((vm, uuid))
    return out


def orphan_links(ev, rows: Callable[[], list[Drift]]) -> tuple[list[tuple[str, str]], list[str]]:
    """([(Link id, why)], [lines about Links that could not be judged]).

    ``rows()`` gives the requests followed to their VMs; it is asked only when both were read.
    """
    links, machines = ev.get("links"), ev.get("machines")
    now = ev.optional("now", 0.0)
    lim = limits(ev)
    statuses = ev.optional("machine_statuses") or {}
    claimed = {d.uuid for d in rows() if d.uuid and not d.teardown and d.vm is not None} \
        if ev.has("machine_requests") and ev.has("all_vms") else None
    orphans, unsure = [], []
    for mid, link in sorted(links.items()):
        m = machines.get(mid)
        link_age = age(now, link.get("created"))
        if m is None and (link_age is None or link_age > lim["link_after"]):
            line = (f"Link {mid}: no Machine {mid} ({'connected' if link['connected'] else 'disconnected'}, "
                    f"last endpoint {link.get('lastendpoint') or 'none'}, {human_age(link_age)} old)")
            if claimed is None:
                unsure.append(line + "; whether a live request claims it is unknown (requests or VMs unread)")
            elif mid not in claimed:
                orphans.append((mid, line + "; no live request with a VM claims it"))
        elif m is not None and m.get("phase") == TEARING_DOWN:
            stuck_for = age(now, m.get("updated"))
            if stuck_for is not None and stuck_for > lim["teardown_after"]:
                req = (statuses.get(mid) or {}).get("request")
                known = {r["id"] for r in ev.optional("machine_requests") or []}
                orphans.append((mid, f"Link {mid}: its Machine has been tearing down for {human_age(stuck_for)} "
                               f"(finalizers [{', '.join(m.get('finalizers') or []) or 'none'}])"
                               + (f", made for request {req}" + ("" if req in known else " (gone)") if req else "")))
    return orphans, unsure


def provider_connected(ev) -> bool:
    """Whether Omni sees the site's provider connected (InfraProviderCombinedStatus)."""
    status = (ev.optional("provider_status") or {}).get(limits(ev).get("provider_id") or "")
    return bool(status and status.get("connected"))
