"""Evidence for the recovery runbook: Omni's view of the provider's machines against Proxmox's.

Two rounds. First, in parallel: Omni through omnictl (machine requests with their phase and
finalizers, their statuses, cluster machine request statuses, machines, links, the provider's
status), every VM of the provider's Proxmox cluster (``/cluster/resources``: cluster-wide, never
one node) and the provider's log (node picks, failing teardowns). Then, for the VMs that matter
(the provider's by tag or name, and those of requests tearing down), their config (SMBIOS UUID,
disks) and their task history on every online node (where each was created, where it migrated).

The names of what is gathered are documented in :mod:`runbook_lib.checks.recovery`.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, ClassVar

from .. import redact
from ..calls import CallLog
from ..errors import AuthFailed, CommandFailed, RunbookError
from ..evidence import Evidence
from ..fixes import PATH, Change
from ..model.ages import epoch
from ..model.omni import L_PROVIDER, L_REQUEST_SET, labels, meta, rid, spec
from ..model.provider_log import START_LINE
from ..model.recovery import (
    DEPROVISIONED,
    NODE_PICK_MESSAGES,
    RECONCILE_FAILED,
    TASK_CREATE,
    TASK_MIGRATE,
    request_set_of,
    smbios_uuid,
)
from ..site import Site, resolve_secret
from ..sources import docker
from ..sources.omni import Omnictl
from ..sources.proxmox import ProxmoxCluster
from ..sources.ssh import SSHHost
from . import in_parallel, log_window, provider_evidence
from .provider import find_container


@dataclass
class Options:
    log_tail: int | None = 5000  # lines of the provider's log to scan (None: all); the same read as provisioning's
    log_since: str | None = None
    max_vms: int = 24  # provider VMs whose config and task history are read
    task_limit: int = 50  # tasks read per node and VM
    limits: dict = field(default_factory=dict)  # the checks' limits where they differ (teardown_after, link_after)
    # the notebook parameters that go into ``limits`` (:func:`runbook_lib.gather.options`)
    LIMITS: ClassVar[tuple[str, ...]] = ("teardown_after", "link_after")


# ------------------------------------------------------------------------------------- Omni

def _meta(res: dict) -> dict:
    m = meta(res)
    return {"phase": m.get("phase") or "running", "finalizers": list(m.get("finalizers") or []),
            "created": epoch(m.get("created")), "updated": epoch(m.get("updated"))}


def summarize_requests(items: list[dict], provider_id: str) -> list[dict]:
    out = []
    for res in items:
        tags = labels(res)
        if tags.get(L_PROVIDER) not in (None, "", provider_id):
            continue
        out.append({"id": rid(res), "set": tags.get(L_REQUEST_SET) or "", **_meta(res)})
    return sorted(out, key=lambda r: r["id"])


def summarize_omni(name: str, items: list[dict], provider_id: str):
    if name == "machine_requests":
        return summarize_requests(items, provider_id)
    if name == "request_statuses":
        return {rid(r): {"uuid": str(spec(r).get("id") or "").lower(), "stage": spec(r).get("stage"),
                         "status": spec(r).get("status") or "", "error": spec(r).get("error") or "", **_meta(r)}
                for r in items}
    if name == "cluster_request_statuses":
        return {rid(r): {"stage": spec(r).get("stage"), "status": spec(r).get("status") or "",
                         "machineuuid": str(spec(r).get("machineuuid") or "").lower(),
                         "cluster": labels(r).get("omni.sidero.dev/cluster") or "", **_meta(r)} for r in items}
    if name == "machines":
        return {rid(r).lower(): {"connected": bool(spec(r).get("connected")), **_meta(r)} for r in items}
    if name == "links":
        return {rid(r).lower(): {"connected": bool(spec(r).get("connected")),
                                 "lastendpoint": spec(r).get("lastendpoint") or "", **_meta(r)} for r in items}
    if name == "machine_statuses":
        return {rid(r).lower(): {"connected": bool(spec(r).get("connected")), "cluster": spec(r).get("cluster") or "",
                                 "request": labels(r).get("omni.sidero.dev/machine-request") or "",
                                 "hostname": (spec(r).get("network") or {}).get("hostname") or ""} for r in items}
    if name == "provider_status":
        return {rid(r): {"connected": bool(((spec(r).get("health") or {}).get("connected")))} for r in items}
    raise KeyError(name)


_OMNI_TYPES = {  # evidence name -> omnictl type (the same reads as the other sections: shared)
    "machine_requests": "machinerequests",
    "request_statuses": "machinerequeststatuses",
    "cluster_request_statuses": "clustermachinerequeststatuses",
    "machines": "machines",
    "links": "links",
    "machine_statuses": "machinestatuses",
    "provider_status": "infraprovidercombinedstatuses",
}


def _omni(ev: Evidence, site: Site, calls: CallLog) -> None:
    omni = Omnictl(site.omni, calls)

    def one(name: str) -> None:
        ev.collect(name, lambda: summarize_omni(name, omni.get(_OMNI_TYPES[name]), site.provider.id))

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="omnictl") as pool:
        list(pool.map(one, _OMNI_TYPES))


# ------------------------------------------------------------------------------------ Proxmox

def summarize_vm(res: dict) -> dict:
    return {"name": res.get("name") or "", "vmid": res.get("vmid"), "node": res.get("node") or "",
            "status": res.get("status") or "", "tags": res.get("tags") or "", "maxmem": res.get("maxmem"),
            "maxdisk": res.get("maxdisk"), "maxcpu": res.get("maxcpu"), "lock": res.get("lock") or ""}


def _proxmox(ev: Evidence, px: ProxmoxCluster) -> None:
    nodes = ev.collect("nodes", px.get, "/nodes")
    if nodes is not None:
        ev.put("nodes", sorted(n["node"] for n in nodes if n.get("status") == "online"))
    resources = ev.collect("all_vms", px.get, "/cluster/resources", type="vm")
    if resources is not None:
        ev.put("all_vms", [summarize_vm(r) for r in resources if r.get("type") == "qemu"])


def summarize_task(task: dict) -> dict:
    return {"node": task.get("node"), "upid": task.get("upid"), "type": task.get("type"), "id": str(task.get("id") or ""),
            "user": task.get("user") or "", "status": str(task.get("status") or ""),
            "starttime": task.get("starttime"), "endtime": task.get("endtime")}


def _relevant(ev: Evidence) -> list[dict]:
    """The VMs whose config and tasks are read: the provider's (tagged, or named after a request)."""
    requests = {r["id"] for r in ev.optional("machine_requests") or []}
    return [vm for vm in ev.optional("all_vms") or []
            if request_set_of(vm.get("tags")) or vm["name"] in requests]


def _vm_details(ev: Evidence, px: ProxmoxCluster, opts: Options) -> None:
    if not ev.has("all_vms"):
        for name in ("vm_configs", "tasks"):
            ev.fail(name, ev.error("all_vms") or "the VMs could not be listed")
        return
    vms = _relevant(ev)[: opts.max_vms]
    nodes = ev.optional("nodes") or sorted({vm["node"] for vm in vms})
    configs: dict = {}
    tasks: list = []

    def config(vm: dict) -> None:
        try:
            cfg = px.get(f"/nodes/{vm['node']}/qemu/{vm['vmid']}/config")
            configs[str(vm["vmid"])] = {"uuid": smbios_uuid(cfg.get("smbios1", "")),
                                        "disks": {k: v for k, v in cfg.items() if isinstance(v, str) and "size=" in v}}
        except RunbookError as exc:
            configs[str(vm["vmid"])] = {"error": str(exc)}

    def history(pair: tuple[str, int]) -> None:
        node, vmid = pair
        try:  # every node: a migration is recorded on the node the VM left
            for t in px.get(f"/nodes/{node}/tasks", vmid=vmid, limit=opts.task_limit):
                if t.get("type") in (TASK_CREATE, TASK_MIGRATE) and str(t.get("id")) == str(vmid):
                    tasks.append(summarize_task(dict(t, node=t.get("node") or node)))
        except RunbookError:
            pass  # task history only adds detail; the refused read is in the calls

    pairs = [(n, vm["vmid"]) for vm in vms for n in nodes]
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="pve-vm") as pool:
        list(pool.map(config, vms))
        list(pool.map(history, pairs))
    ev.put("vm_configs", configs)
    ev.put("tasks", sorted(tasks, key=lambda t: (t["starttime"] or 0, t["upid"] or "")))


# -------------------------------------------------------------------------------- provider host

class TeardownLog:
    """From the provider's log since its last start: the node picked per request, the last
    ``reconcile failed`` error per request with how often it failed, and the requests deprovisioned."""

    def __init__(self, now: float):
        self.now = now
        self.lines = 0
        self.picks: dict[str, str] = {}
        self.failures: dict[str, dict] = {}
        self.deprovisioned: set[str] = set()
        self._redact = redact.default()

    def feed_lines(self, stream: str, lines: list[str]) -> None:
        self.lines += len(lines)
        for line in lines:
            if START_LINE in line:
                self.failures.clear()
                self.deprovisioned.clear()  # node picks stay: the VM was made where the earlier process said
                continue
            if '"msg"' not in line or ("node" not in line and RECONCILE_FAILED not in line and DEPROVISIONED not in line):
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict):
                continue
            msg, request = entry.get("msg"), str(entry.get("id") or entry.get("request_id") or "")
            if msg in NODE_PICK_MESSAGES and request and entry.get("node"):
                self.picks[request] = str(entry["node"])
            elif msg == RECONCILE_FAILED and request:
                hit = self.failures.setdefault(request, {"count": 0})
                hit["count"] += 1
                hit["error"] = self._redact.text(str(entry.get("error") or ""))[:400]
                ts = entry.get("ts")
                hit["ago"] = max(0.0, self.now - float(ts)) if isinstance(ts, (int, float)) else None
            elif msg == DEPROVISIONED and request:
                self.deprovisioned.add(request)

    def summary(self, window: str) -> dict:
        return {"lines": self.lines, "window": window, "picks": dict(sorted(self.picks.items())),
                "failures": dict(sorted(self.failures.items())), "deprovisioned": sorted(self.deprovisioned)}


def _provider_log(ev: Evidence, host: SSHHost, site: Site, opts: Options) -> None:
    containers = ev.collect("provider_log", docker.ps, host)
    if containers is None:
        return
    name = find_container(containers, site.hosts.provider.container, site.hosts.provider.image)
    if name is None:
        ev.fail("provider_log", "no provider container on the provider host")
        return
    scan = TeardownLog(time.time())
    try:
        docker.logs(host, name, tail=opts.log_tail, since=opts.log_since, on_lines=scan.feed_lines)
    except RunbookError as exc:
        ev.fail("provider_log", str(exc))
        return
    window = log_window(opts.log_tail, opts.log_since)
    ev.put("provider_log", scan.summary(window))


# -------------------------------------------------------------------------------------- gather

def gather(site: Site, calls: CallLog, options: Options | None = None,
           progress: Callable[[str], None] | None = None) -> Evidence:
    opts = options or Options()
    ev = provider_evidence(site, **opts.limits)
    ev.put("now", time.time())
    px = ProxmoxCluster(site.provider.cluster, site.proxmox[site.provider.cluster], calls)
    host = SSHHost(site.hosts.provider, calls)
    try:
        in_parallel(ev, {
            "omni": lambda e: _omni(e, site, calls),
            "proxmox": lambda e: _proxmox(e, px),
            "provider log": lambda e: _provider_log(e, host, site, opts),
        }, progress)
        in_parallel(ev, {"vm details": lambda e: _vm_details(e, px, opts)}, progress)
    finally:
        host.close()
    return ev


# --------------------------------------------------------------------------- guarded writes

def fix_cluster(site: Site, name: str, calls: CallLog) -> ProxmoxCluster:
    """The cluster reached with the site's fix token (never the read-only one every diagnosis uses)."""
    spec = site.proxmox[name]
    if not spec.fix_token_id or not spec.fix_token_secret:
        raise AuthFailed(f"proxmox {name}", "the site file gives this cluster no fix_token_id/fix_token_secret: "
                                            "the runbooks' own token is read-only, so the plan cannot be applied")
    return ProxmoxCluster.with_credentials(
        name, [str(e) for e in spec.endpoints], calls, token_id=spec.fix_token_id,
        token_secret=resolve_secret(spec.fix_token_secret, field=f"proxmox.{name}.fix_token_secret"),
        verify=(spec.ca_file or True) if spec.verify_tls else False,
        connect_timeout=spec.connect_timeout, read_timeout=spec.read_timeout)


def executor(site: Site, calls: CallLog, task_timeout: float = 300.0) -> Callable[[Change], str]:
    """Makes one change of a recovery plan: a Proxmox call (waiting for the task it starts) with the
    fix token, or ``omnictl delete``. Every call is recorded as a write."""
    clusters: dict[str, ProxmoxCluster] = {}

    def execute(change: Change) -> str:
        if change.target.startswith("proxmox "):
            name = change.target.split(" ", 1)[1]
            px = clusters.get(name) or clusters.setdefault(name, fix_cluster(site, name, calls))
            method = {"post": "POST", "delete": "DELETE"}.get(change.verb)
            if change.kind != PATH or method is None:
                raise CommandFailed(change.target, f"not a Proxmox call: {change.describe()}")
            data = px.write(method, change.name, **(change.body or {}))
            if isinstance(data, str) and data.startswith("UPID:"):
                return f"task {data} ended {px.wait_task(data, timeout=task_timeout)}"
            return "done"
        if change.target == "omni" and change.verb == "delete":
            result = Omnictl(site.omni, calls).delete(change.kind.lower(), change.name, change.namespace)
            return " | ".join(line for line in result.stdout.splitlines() if line.strip())[:300]
        raise CommandFailed(change.target, f"no way to make this change: {change.describe()}")

    return execute
