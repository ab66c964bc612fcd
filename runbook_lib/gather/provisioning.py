"""Evidence for the provisioning runbook: Omni's requests and machines, Proxmox, the provider host.

Two rounds. First, in parallel: Omni through omnictl (classes, requests and their statuses,
machines, links), Proxmox with the site's read-only credentials (nodes with their status and
storage, VMs, tasks), and the provider host over SSH (its config.yaml, its log, its addresses).
Then, once the join chain says which VMs belong to which request, in parallel again: the
privileges of the provider's own Proxmox user, and for the running VMs the addresses their guest
agent reports (when Omni has none) and a probe of their Talos ports from the provider host.

The names of what is gathered are documented in :mod:`runbook_lib.checks.provisioning`.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, ClassVar

from .. import redact
from ..calls import CallLog
from ..errors import RunbookError, SourceError
from ..evidence import Evidence
from ..model.ages import epoch
from ..model.join import join_chain
from ..model.network import probe_address
from ..model.omni import L_PROVIDER, L_REQUEST_SET, labels, meta, rid, spec
from ..model.provider_log import PROVISION_FAILED, REQUEST_TAG, START_LINE
from ..model.talos import PORTS as TALOS_PORTS
from ..site import Site
from ..sources import docker, net
from ..sources.omni import Omnictl
from ..sources.proxmox import ProxmoxCluster
from ..sources.ssh import SSHHost
from . import in_parallel, log_window, provider_evidence
from .provider import api_base, container_env, find_container, read_settings, summarize_container

_OMNI_TYPES = {  # evidence name -> omnictl type
    "machine_classes": "machineclasses",
    "infraproviders": "infraproviders",
    "machine_requests": "machinerequests",
    "request_statuses": "machinerequeststatuses",
    "cluster_request_statuses": "clustermachinerequeststatuses",
    "machine_statuses": "machinestatuses",
    "machines": "machines",
    "links": "links",
    "cluster_machine_statuses": "clustermachinestatuses",
}


@dataclass
class Options:
    log_tail: int | None = 5000  # lines of the provider's log to scan (None: all)
    log_since: str | None = None  # `docker logs --since`
    probe_timeout: float = 2.0  # seconds nc waits for each Talos port
    max_probes: int = 8  # running VMs whose Talos ports are probed
    max_agent_queries: int = 8  # running VMs asked for their addresses through the guest agent
    task_limit: int = 50  # most recent tasks read per node
    limits: dict = field(default_factory=dict)  # the checks' time limits and Talos floor, where not the defaults
    # the notebook parameters that go into ``limits`` (:func:`runbook_lib.gather.options`)
    LIMITS: ClassVar[tuple[str, ...]] = ("vm_grace", "join_grace", "stuck_after", "task_stuck_after",
                                            "min_talos_version")


@dataclass
class _Private:
    """What gathering holds but evidence must not: the provider's Proxmox credentials, all VMs."""

    credentials: dict = field(default_factory=dict)
    vms: list = field(default_factory=list)


# ------------------------------------------------------------------------------------- Omni

def summarize_classes(items: list[dict]) -> list[dict]:
    """Auto-provision machine classes (those with a provider id)."""
    out = []
    for res in items:
        auto = spec(res).get("autoprovision") or {}
        if auto.get("providerid"):
            out.append({"id": rid(res), "providerid": auto.get("providerid"),
                        "providerdata": auto.get("providerdata") or ""})
    return out


def summarize_requests(items: list[dict], provider_id: str) -> list[dict]:
    """The provider's machine requests (by the infra-provider-id label; unlabelled ones are kept)."""
    out = []
    for res in items:
        tags = labels(res)
        pid = tags.get(L_PROVIDER)
        if pid not in (None, "", provider_id):
            continue
        out.append({"id": rid(res), "set": tags.get(L_REQUEST_SET) or "",
                    "created": epoch(meta(res).get("created")), "phase": meta(res).get("phase") or "running",
                    "talosversion": spec(res).get("talosversion") or ""})
    return sorted(out, key=lambda r: r["id"])


def _by_id(items: list[dict], pick: Callable[[dict], dict]) -> dict:
    return {rid(res): {**pick(spec(res)), "updated": epoch(meta(res).get("updated"))} for res in items}


def summarize_omni(name: str, items: list[dict], provider_id: str):
    """The evidence kept for one omnictl listing."""
    if name == "machine_classes":
        return summarize_classes(items)
    if name == "infraproviders":
        return sorted(rid(r) for r in items)
    if name == "machine_requests":
        return summarize_requests(items, provider_id)
    if name == "request_statuses":
        return _by_id(items, lambda s: {"uuid": s.get("id") or "", "stage": s.get("stage"),
                                        "status": s.get("status") or "", "error": s.get("error") or ""})
    if name == "cluster_request_statuses":
        return _by_id(items, lambda s: {"stage": s.get("stage"), "status": s.get("status") or "",
                                        "error": s.get("error") or "", "machineuuid": s.get("machineuuid") or ""})
    if name == "machine_statuses":
        return _by_id(items, lambda s: {
            "connected": bool(s.get("connected")), "talosversion": s.get("talosversion") or "",
            "addresses": list((s.get("network") or {}).get("addresses") or []),
            "maintenance": bool(s.get("maintenance")), "lasterror": s.get("lasterror") or "",
            "cluster": s.get("cluster") or "", "role": int(s.get("role") or 0)})
    if name == "machines":
        return _by_id(items, lambda s: {"connected": bool(s.get("connected"))})
    if name == "links":
        return _by_id(items, lambda s: {"connected": bool(s.get("connected")), "lastendpoint": s.get("lastendpoint") or ""})
    if name == "cluster_machine_statuses":
        return _by_id(items, lambda s: {"stage": s.get("stage"), "configapplystatus": s.get("configapplystatus"),
                                        "lastconfigerror": s.get("lastconfigerror") or "", "ready": bool(s.get("ready"))})
    raise KeyError(name)


def _omni(ev: Evidence, site: Site, calls: CallLog) -> None:
    omni = Omnictl(site.omni, calls)
    provider_id = site.provider.id

    def one(name: str) -> None:
        ev.collect(name, lambda: summarize_omni(name, omni.get(_OMNI_TYPES[name]), provider_id))

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="omnictl") as pool:
        list(pool.map(one, _OMNI_TYPES))


# ------------------------------------------------------------------------------------ Proxmox

def summarize_node_status(data: dict) -> dict:
    """The capacity figures of ``/nodes/{node}/status``."""
    memory = data.get("memory") or {}
    cpuinfo = data.get("cpuinfo") or {}
    total, used = int(memory.get("total") or 0), int(memory.get("used") or 0)
    available = memory.get("available")
    if available is None:
        available = memory.get("free", total - used)
    return {"cpus": int(cpuinfo.get("cpus") or 0), "cpu": float(data.get("cpu") or 0.0), "mem_total": total,
            "mem_used": used, "mem_available": int(available)}


def summarize_storage(rows: list[dict]) -> list[dict]:
    keys = ("storage", "type", "content", "enabled", "active", "shared", "total", "used", "avail")
    return [{k: r.get(k) for k in keys if k in r} for r in rows]


def summarize_task(task: dict) -> dict:
    running = "endtime" not in task and task.get("status") in (None, "", "running")
    return {"node": task.get("node"), "upid": task.get("upid"), "type": task.get("type"), "id": str(task.get("id") or ""),
            "user": task.get("user") or "", "status": "running" if running else str(task.get("status") or ""),
            "starttime": task.get("starttime"), "endtime": task.get("endtime")}


def summarize_vm(res: dict) -> dict:
    return {"name": res.get("name") or "", "vmid": res.get("vmid"), "node": res.get("node") or "",
            "status": res.get("status") or "", "lock": res.get("lock") or "", "uptime": res.get("uptime"),
            "tags": res.get("tags") or ""}


def _proxmox(ev: Evidence, px: ProxmoxCluster, opts: Options, private: _Private) -> None:
    ev.collect("pve_version", lambda: (px.get("/version") or {}).get("version", ""))
    nodes = ev.collect("nodes", px.get, "/nodes")
    resources = ev.collect("vm_resources", px.get, "/cluster/resources", type="vm")
    if resources is not None:
        private.vms = [summarize_vm(r) for r in resources if r.get("type") == "qemu"]
        ev.put("vm_resources", {"count": len(private.vms)})
    else:
        ev.fail("vms", ev.error("vm_resources"))
    if nodes is None:
        for name in ("node_status", "node_storage", "tasks"):
            ev.fail(name, ev.error("nodes"))
        return
    online = sorted(n["node"] for n in nodes if n.get("status") == "online")
    status, storage, tasks = {}, {}, []
    storage_errors = []

    def per_node(node: str) -> None:
        try:
            status[node] = summarize_node_status(px.get(f"/nodes/{node}/status"))
        except RunbookError as exc:
            status[node] = {"error": str(exc)}
        try:
            storage[node] = summarize_storage(px.get(f"/nodes/{node}/storage"))
        except RunbookError as exc:
            storage_errors.append(f"{node}: {exc}")
        try:  # every running task, and the latest failed ones (PVE filters; fakepve lists all)
            listed = px.get(f"/nodes/{node}/tasks", source="active")
            listed += px.get(f"/nodes/{node}/tasks", source="archive", errors=1, limit=opts.task_limit)
        except RunbookError:
            return  # tasks only add detail; a node whose task list is refused says so in the calls
        seen = set()
        for task in map(summarize_task, listed):
            if task["status"] != "OK" and task["upid"] not in seen:
                seen.add(task["upid"])
                tasks.append(task)

    with ThreadPoolExecutor(max_workers=max(1, min(len(online), 4)), thread_name_prefix="pve-node") as pool:
        list(pool.map(per_node, online))
    ev.put("node_status", dict(sorted(status.items())))
    if storage or not storage_errors:
        ev.put("node_storage", dict(sorted(storage.items())))
    else:
        ev.fail("node_storage", "; ".join(storage_errors))
    ev.put("tasks", sorted(tasks, key=lambda t: (t["node"], t["starttime"] or 0)))


# -------------------------------------------------------------------------------- provider host

class ProvisionLog:
    """The provider's provision failures, streamed: per (request, step) a count and the last error.

    Only the lines since the provider's last start count (an earlier process's failures are
    history). Memory is bounded by the number of distinct (request, step) pairs kept.
    """

    FAILED = PROVISION_FAILED

    def __init__(self, now: float, max_pairs: int = 2000):
        self.now = now
        self.max_pairs = max_pairs
        self.lines = 0
        self.starts = 0
        self.dropped = 0
        self._failures: dict[tuple[str, str], dict] = {}
        self._redact = redact.default()

    def feed_lines(self, stream: str, lines: list[str]) -> None:
        self.lines += len(lines)
        for line in lines:
            if START_LINE in line:
                self.starts += 1
                self._failures.clear()
            elif self.FAILED in line:
                self._failure(line)

    def _failure(self, line: str) -> None:
        try:
            entry = json.loads(line)
        except ValueError:
            return
        if not isinstance(entry, dict) or entry.get("msg") != self.FAILED:
            return
        key = (str(entry.get("id") or entry.get("request_id") or "?"), str(entry.get("step") or "?"))
        hit = self._failures.get(key)
        if hit is None:
            if len(self._failures) >= self.max_pairs:
                self.dropped += 1
                return
            hit = self._failures[key] = {"request": key[0], "step": key[1], "count": 0}
        hit["count"] += 1
        hit["error"] = self._redact.text(str(entry.get("error") or ""))[:400]
        ts = entry.get("ts")
        hit["ago"] = max(0.0, self.now - float(ts)) if isinstance(ts, (int, float)) else None

    def summary(self, window: str) -> dict:
        failures = sorted(self._failures.values(), key=lambda f: (-f["count"], f["request"], f["step"]))
        return {"lines": self.lines, "starts": self.starts, "window": window, "failures": failures,
                "dropped": self.dropped}


def parse_ip_addr(text: str) -> list[str]:
    """Global addresses (CIDR) from ``ip -j addr``."""
    try:
        interfaces = json.loads(text or "[]")
    except ValueError as exc:
        raise RunbookError(f"ip -j addr printed something that is not JSON: {exc}") from None
    out = []
    for iface in interfaces:
        for a in iface.get("addr_info") or []:
            if a.get("scope") == "global" and a.get("local"):
                out.append(f"{a['local']}/{a.get('prefixlen')}")
    return out


def _provider_host(ev: Evidence, host: SSHHost, site: Site, opts: Options, private: _Private) -> None:
    ev.collect("provider_addresses", _addresses, host)
    containers = ev.collect("provider_containers", docker.ps, host)
    if containers is None:
        reason = ev.error("provider_containers")
        ev.fail("provision_log", reason)
        ev.fail("provider_user", reason)
        return
    ev.put("provider_containers", len(containers))
    spec = site.hosts.provider
    name = find_container(containers, spec.container, spec.image)
    if name is None:
        ev.fail("provision_log", "no provider container on the provider host")
        ev.fail("provider_user", "no provider container on the provider host")
        return
    try:
        raw = docker.inspect(host, name)
        container = summarize_container(raw)
    except RunbookError as exc:
        ev.fail("provision_log", str(exc))
        ev.fail("provider_user", str(exc))
        return
    _config(ev, host, container, container_env(raw), private)
    scan = ProvisionLog(time.time())
    try:
        docker.logs(host, name, tail=opts.log_tail, since=opts.log_since, on_lines=scan.feed_lines)
        window = log_window(opts.log_tail, opts.log_since)
        ev.put("provision_log", scan.summary(window))
    except RunbookError as exc:
        ev.fail("provision_log", str(exc))


def _addresses(host: SSHHost) -> list[str]:
    result = host.run(["ip", "-j", "addr"])
    if result.rc != 0:
        raise RunbookError(f"ip -j addr on the provider host: rc {result.rc}: {result.stderr.strip()[:200]}")
    return parse_ip_addr(result.stdout)


def _config(ev: Evidence, host: SSHHost, container: dict, env: dict[str, str], private: _Private) -> None:
    try:
        settings = read_settings(host, container, env)
    except RunbookError as exc:
        ev.fail("provider_user", str(exc))
        return
    if settings is None:
        ev.fail("provider_user", "the provider has neither a config file nor PROXMOX_* variables")
        return
    summary, private.credentials = settings
    ev.put("provider_user", provider_user(summary))


def provider_user(config: dict) -> str:
    """Whom the provider logs in to Proxmox as: its token id, or ``user@realm``."""
    if config.get("tokenID"):
        return config["tokenID"]
    user = config.get("username") or ""
    return user if not user or "@" in user else f"{user}@{config.get('realm') or 'pam'}"


# ------------------------------------------------------------------------------- second round

def _permissions(ev: Evidence, site: Site, px: ProxmoxCluster, calls: CallLog, private: _Private) -> None:
    """``/access/permissions`` as the provider's own user; else asked about it with the site's."""
    who = ev.optional("provider_user")
    creds = private.credentials
    first_error = None
    if creds.get("url"):
        spec = site.proxmox[site.provider.cluster]
        own = ProxmoxCluster.with_credentials(
            "provider credentials", [api_base(creds["url"])], calls,
            token_id=creds.get("tokenID"), token_secret=creds.get("tokenSecret"),
            user=(who if creds.get("username") else None), password=creds.get("password"),
            verify=(spec.ca_file or True) if spec.verify_tls else False,
            connect_timeout=spec.connect_timeout, read_timeout=spec.read_timeout)
        try:
            ev.put("permissions", {"who": who, "via": "the provider's own credentials",
                                   "paths": own.get("/access/permissions")})
            return
        except SourceError as exc:
            first_error = str(exc)
    if not who:
        ev.fail("permissions", first_error or ev.error("provider_user") or "the provider's Proxmox user is unknown")
        return
    try:
        paths = px.get("/access/permissions", userid=who)
        via = "the site's credentials, userid=" + who + (f" (its own login failed: {first_error})" if first_error else "")
        ev.put("permissions", {"who": who, "via": via, "paths": paths})
    except SourceError as exc:
        ev.fail("permissions", (first_error + "; " if first_error else "") + str(exc))


def agent_addresses(result) -> list[str]:
    """Global addresses (CIDR) from ``agent/network-get-interfaces``."""
    interfaces = result.get("result") if isinstance(result, dict) else result
    out = []
    for iface in interfaces or []:
        if iface.get("name") == "lo":
            continue
        for a in iface.get("ip-addresses") or []:
            if a.get("ip-address") and a.get("prefix") is not None:
                out.append(f"{a['ip-address']}/{a['prefix']}")
    return out


def _registration(ev: Evidence, px: ProxmoxCluster, host: SSHHost, opts: Options) -> None:
    """Addresses of running VMs Omni knows none for (guest agent), then their Talos ports."""
    if not (ev.has("machine_requests") and ev.has("vms")):
        ev.fail("talos_probes", "the machine requests or the VMs could not be read")
        return
    running = [r for r in join_chain(ev.optional) if r.vm_status == "running" and not r.torn_down]
    found: dict = {}
    for r in [r for r in running if not r.addresses][: opts.max_agent_queries]:
        try:
            found[r.request] = agent_addresses(px.get(f"/nodes/{r.node}/qemu/{r.vmid}/agent/network-get-interfaces"))
        except SourceError as exc:
            found[r.request] = {"error": exc.reason}
    ev.put("agent_addresses", found)
    if not ev.has("provider_addresses"):
        ev.fail("talos_probes", ev.error("provider_addresses") or "the provider host could not be asked")
        return
    rows = sorted(join_chain(ev.optional), key=lambda r: r.connected)  # not connected first
    targets = [(r.request, probe_address(r.addresses)) for r in rows
               if r.vm_status == "running" and not r.torn_down and probe_address(r.addresses)]
    targets = targets[: opts.max_probes]
    with ThreadPoolExecutor(max_workers=max(1, min(len(targets), 4)), thread_name_prefix="nc") as pool:
        results = list(pool.map(lambda t: net.nc_from(host, t[1], TALOS_PORTS, opts.probe_timeout), targets))
    ev.put("talos_probes", {name: res for (name, _), res in zip(targets, results)})


# -------------------------------------------------------------------------------------- gather

def gather(site: Site, calls: CallLog, options: Options | None = None,
           progress: Callable[[str], None] | None = None) -> Evidence:
    opts = options or Options()
    ev = provider_evidence(site, **opts.limits)
    ev.put("now", time.time())
    private = _Private()
    px = ProxmoxCluster(site.provider.cluster, site.proxmox[site.provider.cluster], calls)
    host = SSHHost(site.hosts.provider, calls)
    try:
        in_parallel(ev, {
            "omni": lambda e: _omni(e, site, calls),
            "proxmox": lambda e: _proxmox(e, px, opts, private),
            "provider host": lambda e: _provider_host(e, host, site, opts, private),
        }, progress)
        _keep_provider_vms(ev, private)
        in_parallel(ev, {
            "permissions": lambda e: _permissions(e, site, px, calls, private),
            "vm addresses and Talos ports": lambda e: _registration(e, px, host, opts),
        }, progress)
    finally:
        host.close()
    return ev


def _keep_provider_vms(ev: Evidence, private: _Private) -> None:
    """Of all the cluster's VMs, the provider's: named after a request, or tagged by it."""
    if not ev.has("vm_resources"):
        return
    requests = {r["id"] for r in ev.optional("machine_requests") or []}
    vms = {}
    for vm in private.vms:
        tags = str(vm.get("tags") or "").replace(",", ";").split(";")
        if vm["name"] in requests or any(t.startswith(REQUEST_TAG) for t in tags):
            vms[vm["name"]] = {k: v for k, v in vm.items() if k != "name"}
    ev.put("vms", vms)
    private.vms = []
