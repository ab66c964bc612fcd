"""One Proxmox VE cluster of the lab twin, served in-process by fakepve.

The model is one ``proxmox.clusters.<name>`` mapping of ``healthy.yaml`` (placeholders filled).
Endpoint 0 is fakepve itself; every further endpoint is a TCP forwarder to it, so all endpoints
present the same certificate (signed by the twin CA, valid for 127.0.0.1) and the same cluster.
An endpoint listed in ``down_endpoints`` keeps its port reserved but refuses connections; with
``hang: true`` every endpoint accepts TCP connections and never answers.

fakepve needs careful seeding (see the research notes): storages are raw dicts that must carry
``files`` and ``active``, and ``used`` is the sum of the storage's volumes, so a synthetic volume
makes ``used + avail == total``. Every request fakepve records goes to the twin's request log.

fakepve hard-codes node metrics and answers ``/nodes/{node}/status`` with schema filler, so the
twin serves a small subclass, :class:`LabPve`, whose nodes carry the model's figures (CPUs, load,
memory, root file system) in ``/nodes``, the node rows of ``/cluster/resources`` and a
``/nodes/{node}/status`` shaped like PVE's. The model may also grant privileges (``acl``, which
switches fakepve's permission checks on), seed task history (``tasks``), give a VM a guest agent
that reports addresses (``agent_addresses``) and say how long a running VM has been up (``uptime``).

The ``down`` and ``hang`` endpoints and the forwarders are the loopback helpers of :mod:`.net`.
"""

from __future__ import annotations

import json
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from fakepve import FakePve
from fakepve import server as fakepve_server
from fakepve import shapes as fakepve_shapes
from fakepve.model import PveError

from .certs import CA
from .latency import delay_app
from .net import HOST, Forwarder, HangListener, Listener, port_of, reserve_port

if TYPE_CHECKING:
    from .model import RequestLog

GIB = 1024**3
API_PREFIX = "/api2/json"
# Holds the space a storage reports as used; its content type is one no storage lists, so it is
# counted in `used` but never shows up in a content listing.
USED_SPACE_VOLUME = "lab-used-space"
_STORAGE_MODEL_KEYS = ("total_gib", "avail_gib", "enabled", "active", "shared")
_VM_KWARGS = ("template", "lock", "pool", "qmpstatus")
_CT_KWARGS = ("template", "lock", "pool", "ostemplate")
_NODE_KEYS = {"cpus", "cpu", "mem_gib", "mem_used_gib", "rootfs_gib", "rootfs_used_gib", "uptime"}
# what fakepve's own (hard-coded) node metrics are: a node the model gives no figures keeps them
NODE_DEFAULTS = {"cpus": 4, "cpu": 0.02, "mem_gib": 8, "mem_used_gib": 2, "rootfs_gib": 64, "rootfs_used_gib": 4,
                 "uptime": 3600}


# ----------------------------------------------------------------------------------- the cluster


def api_path(path: str) -> str:
    """The request path without PVE's ``/api2/json`` prefix: ``/nodes/pve1/storage``."""
    if path.startswith(API_PREFIX + "/") or path == API_PREFIX:
        return path[len(API_PREFIX):] or "/"
    return path


def is_write(method: str, path: str) -> bool:
    """Anything but a read changes the cluster, except logging in (``POST /access/ticket``)."""
    if method in ("GET", "HEAD", "OPTIONS"):
        return False
    return not api_path(path).rstrip("/").endswith("/access/ticket")


class _RecordedRequests(list):
    """fakepve's own request record (``pve.requests``), each entry also passed to a callback."""

    def __init__(self, on_request: Callable[[str, str], None]) -> None:
        super().__init__()
        self._on_request = on_request

    def append(self, item: tuple) -> None:  # fakepve records (method, path, redacted body)
        super().append(item)
        self._on_request(item[0], item[1])


class LabPve(FakePve):
    """fakepve with node metrics the model sets: ``node_metrics[node]`` holds the figures of
    :data:`NODE_DEFAULTS`. Only answers are changed; routing, authentication, permission checks
    and request records stay fakepve's own."""

    STATUS_TEMPLATE = "/nodes/{node}/status"
    MIGRATE_TEMPLATE = "/nodes/{node}/qemu/{vmid}/migrate"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.node_metrics: dict[str, dict] = {}
        self.latency = 0.0  # seconds every request waits (the twin's knob; fakepve's own is off at time_scale 0)

    def _build_app(self):
        return delay_app(super()._build_app(), self.latency)

    def metrics(self, node: str) -> dict:
        return {**NODE_DEFAULTS, **self.node_metrics.get(node, {})}

    def usage(self, node: str) -> dict:
        """The usage fields ``/nodes`` and ``/cluster/resources`` show for an online node."""
        m = self.metrics(node)
        return {"cpu": float(m["cpu"]), "maxcpu": int(m["cpus"]), "mem": _bytes(m["mem_used_gib"]),
                "maxmem": _bytes(m["mem_gib"]), "disk": _bytes(m["rootfs_used_gib"]),
                "maxdisk": _bytes(m["rootfs_gib"]), "uptime": int(m["uptime"])}

    def node_status(self, node: str) -> dict:
        """``GET /nodes/{node}/status`` as PVE 9 answers it, from the node's figures."""
        m = self.metrics(node)
        cpus = int(m["cpus"])
        mem, mem_used = _bytes(m["mem_gib"]), _bytes(m["mem_used_gib"])
        root, root_used = _bytes(m["rootfs_gib"]), _bytes(m["rootfs_used_gib"])
        load = float(m["cpu"]) * cpus
        kernel = "6.14.8-2-pve"
        return {
            "uptime": int(m["uptime"]), "idle": 0, "wait": 0.0,
            "cpu": float(m["cpu"]),
            "loadavg": [f"{load:.2f}", f"{load * 0.9:.2f}", f"{load * 0.8:.2f}"],
            "cpuinfo": {"cpus": cpus, "cores": max(cpus // 2, 1), "sockets": 1, "model": "AMD EPYC 7302P 16-Core Processor",
                        "mhz": "2994.374", "hvm": "1", "user_hz": 100, "flags": "fpu vme de pse tsc msr pae"},
            "memory": {"total": mem, "used": mem_used, "free": mem - mem_used, "available": mem - mem_used},
            "swap": {"total": 8 * GIB, "used": 0, "free": 8 * GIB},
            "rootfs": {"total": root, "used": root_used, "free": root - root_used, "avail": root - root_used},
            "ksm": {"shared": 0},
            "kversion": f"Linux {kernel} #1 SMP PREEMPT_DYNAMIC PMX {kernel[:-4]}",
            "current-kernel": {"sysname": "Linux", "release": kernel, "machine": "x86_64",
                               "version": f"#1 SMP PREEMPT_DYNAMIC PMX {kernel[:-4]}"},
            "boot-info": {"mode": "efi", "secureboot": 0},
            "pveversion": f"pve-manager/{self.version}/fakepve",
        }

    async def _generic(self, request):
        match = request[fakepve_server.GENERIC]
        if request.method == "GET" and match is not None and match.template == self.STATUS_TEMPLATE:
            async def answer(m, values):
                return self.node_status(values["node"])

            params = await fakepve_server.params(request)
            data = await self.answer(request, match, params, request[fakepve_server.USER], call=answer)
            return fakepve_server.ok(data)
        if request.method == "POST" and match is not None and match.template == self.MIGRATE_TEMPLATE:
            user = request[fakepve_server.USER]
            params = await fakepve_server.params(request)
            data = await self.answer(request, match, params, user,
                                     call=lambda m, values: self.migrate_request(values, user))
            return fakepve_server.ok(data)
        return await super()._generic(request)

    async def migrate_request(self, values: dict, user: str) -> str:
        """``POST /nodes/{node}/qemu/{vmid}/migrate`` (fakepve answers it from the schema only): the
        VM must be on that node; the target another online node of the cluster; a running VM needs
        ``online``. The VM then lives on the target (fakepve's ``migrate``: a ``qmigrate`` task on the
        source node). PVE's own checks of local disks and resources are not modelled."""
        vm = self.find(values["node"], values["vmid"])
        target = str(values.get("target") or "")
        if target == vm.node:
            raise PveError(400, "Parameter verification failed.", {"target": "target is local node."})
        if target not in self.nodes:
            raise PveError(500, f"no such cluster node '{target}'")
        if not self.nodes[target].get("online", True):
            raise PveError(500, f"target node '{target}' is not online")
        if vm.status == "running" and not values.get("online"):
            raise PveError(500, "can't migrate running VM without --online")
        return await self.migrate(vm.vmid, target, user=user)

    async def _nodes(self, request):
        return self._with_usage(await super()._nodes(request), "node")

    async def _resources(self, request):
        response = await super()._resources(request)
        if request.query.get("type") not in (None, "node"):
            return response
        return self._with_usage(response, "node", only_type="node")

    def _with_usage(self, response, key: str, only_type: str | None = None):
        """The same answer with each online node's usage fields replaced by the model's."""
        if response.status != 200:
            return response
        body = json.loads(response.text)
        for item in body.get("data") or []:
            if only_type and item.get("type") != only_type:
                continue
            if item.get("status") == "online" and item.get(key) in self.nodes:
                item.update(self.usage(item[key]))
        return fakepve_server.ok(body.get("data"))


def _bytes(gib: float) -> int:
    return int(float(gib) * GIB)


@dataclass
class PveCluster:
    """A running cluster: ``endpoints`` are its API URLs, ``pve`` the fakepve behind them."""

    name: str
    pve: FakePve
    endpoints: list[str]
    _listeners: list[Listener] = field(default_factory=list, repr=False)
    _reserved: list[socket.socket] = field(default_factory=list, repr=False)

    def requests(self) -> list[dict]:
        """Every request the cluster received, oldest first: ``method``, ``path``, ``write``."""
        return [{"method": method, "path": api_path(path), "write": is_write(method, path)}
                for method, path, _body in list(self.pve.requests)]

    async def stop(self) -> None:
        for listener in self._listeners:
            await listener.stop()
        self._listeners.clear()
        for sock in self._reserved:
            sock.close()
        self._reserved.clear()
        await self.pve.stop()


async def start_cluster(name: str, model: dict, *, ca: CA, log: "RequestLog", latency: float = 0.0) -> PveCluster:
    """Seed a fakepve from ``model``, serve it with a certificate from ``ca`` and open its endpoints;
    every request waits ``latency`` seconds (the forwarders pass bytes to the same application)."""
    count = int(model.get("endpoints", 1))
    if count < 1:
        raise ValueError(f"proxmox cluster {name}: needs at least one endpoint, got {count}")
    down = {int(i) for i in model.get("down_endpoints") or []}
    hang = bool(model.get("hang"))

    pve = LabPve(user="root@pam", password=secrets.token_urlsafe(24), host=HOST, port=0)
    pve.time_scale = 0
    pve.latency = latency
    pve.cluster_name = name
    seed(pve, model, cluster=name)

    def record(method: str, path: str) -> None:
        log.add("proxmox", name, f"{method} {api_path(path)}", write=is_write(method, path))

    pve.requests = _RecordedRequests(record)
    cert, key = ca.issue(f"pve-{name}", [HOST, "localhost"])
    await pve.start(str(cert), str(key))
    cluster = PveCluster(name, pve, [])
    try:
        for index in range(count):
            if hang:
                listener: Listener = HangListener(lambda: log.add("proxmox", name, "CONNECT (never answered)"))
                port = await listener.start()
                cluster._listeners.append(listener)
            elif index in down:
                sock = reserve_port()
                cluster._reserved.append(sock)
                port = port_of(sock)
            elif index == 0:
                port = pve.port
            else:
                listener = Forwarder(pve.port)
                port = await listener.start()
                cluster._listeners.append(listener)
            cluster.endpoints.append(f"https://{HOST}:{port}")
    except BaseException:
        await cluster.stop()
        raise
    return cluster


# ------------------------------------------------------------------------------------- seeding


def seed(pve: FakePve, model: dict, *, cluster: str = "cluster") -> None:
    """Replace fakepve's default inventory with the model's nodes, tokens, storages and guests,
    then its permissions (``acl``) and task history (``tasks``)."""
    metrics = node_models(model.get("nodes"), cluster)
    for default in [n for n in pve.nodes if n not in metrics]:
        del pve.nodes[default]
    for node, figures in metrics.items():
        pve.add_node(node)
        if figures and hasattr(pve, "node_metrics"):
            pve.node_metrics[node] = figures
    for node in model.get("offline_nodes") or []:
        pve.set_node_offline(str(node))

    for tokenid, secret in (model.get("tokens") or {}).items():
        user, sep, _token = str(tokenid).partition("!")
        if not sep:
            raise ValueError(f"proxmox cluster {cluster}: token {tokenid!r} is not 'user@realm!id'")
        pve.apitokens[str(tokenid)] = str(secret)
        # the user exists, but nobody knows a password for it
        pve.users.setdefault(user, secrets.token_urlsafe(24))

    pve.storages.clear()
    for storage, spec in (model.get("storages") or {}).items():
        pve.storages[str(storage)] = storage_entry(spec or {})

    guests = model.get("guests") or {}
    default_node = next(iter(metrics), "pve1")
    for spec in guests.get("vms") or []:
        spec = dict(spec)
        addresses = spec.pop("agent_addresses", None)
        uptime = spec.pop("uptime", None)
        vmid, name, node, status, kwargs, config = _guest_fields(spec, _VM_KWARGS, default_node, cluster)
        if kwargs.get("lock"):
            config["lock"] = kwargs["lock"]
        if addresses is not None:
            config.setdefault("agent", "enabled=1")
        vm = pve.add_vm(vmid, name, node=node, status=status, config=config, **kwargs)
        if addresses is not None:
            vm.agent = {"interfaces": agent_interfaces(addresses, vmid)}
        if uptime is not None and status == "running":
            vm.started_at = time.time() - float(uptime)
    for spec in guests.get("cts") or []:
        vmid, name, node, status, kwargs, config = _guest_fields(spec, _CT_KWARGS, default_node, cluster)
        pve.add_ct(vmid, name, node=node, status=status, config=config, **kwargs)
    _check_unique_vmids(pve, cluster)
    grant(pve, model.get("acl"), cluster)
    seed_tasks(pve, model.get("tasks") or [], cluster)


def node_models(nodes: Any, cluster: str = "cluster") -> dict[str, dict]:
    """The model's nodes as ``{name: figures}``. Three spellings are accepted: a list of names
    (``[pve1, pve2]``), a list mixing names and mappings with a ``name``, or a mapping
    ``{pve1: {cpus: 16, mem_gib: 64, ...}}``; a node without figures gets fakepve's defaults."""
    out: dict[str, dict] = {}
    if isinstance(nodes, dict):
        entries = [dict(v or {}, name=k) for k, v in nodes.items()]
    else:
        entries = [e if isinstance(e, dict) else {"name": e} for e in nodes or []]
    for entry in entries:
        entry = dict(entry)
        name = str(entry.pop("name", "") or "")
        if not name:
            raise ValueError(f"proxmox cluster {cluster}: a node without a name: {entry!r}")
        unknown = set(entry) - _NODE_KEYS
        if unknown:
            raise ValueError(f"proxmox cluster {cluster}: node {name}: unknown field(s) {sorted(unknown)}; "
                             f"known: {sorted(_NODE_KEYS)}")
        figures = {**NODE_DEFAULTS, **entry}
        if float(figures["mem_used_gib"]) > float(figures["mem_gib"]) or \
                float(figures["rootfs_used_gib"]) > float(figures["rootfs_gib"]):
            raise ValueError(f"proxmox cluster {cluster}: node {name} uses more than it has")
        if not 0 <= float(figures["cpu"]) <= 1:
            raise ValueError(f"proxmox cluster {cluster}: node {name}: cpu is a load fraction between 0 and 1")
        out[name] = figures if entry else {}
    return out


def grant(pve: FakePve, acl: dict | None, cluster: str = "cluster") -> None:
    """Give each user or token the privileges the model lists, per ACL path.

    ``acl`` maps ``user@realm`` or ``user@realm!token`` to ``{path: privileges}``; privileges are a
    list of names or one of fakepve's built-in role names (``Administrator``, ``PVEAuditor``,
    ``NoAccess``). The first grant switches fakepve's permission checks on; without ``acl`` every
    authenticated user holds every privilege.
    """
    if not acl:
        return
    known = set(fakepve_shapes.PRIVILEGES)
    for who, paths in acl.items():
        for path, privs in (paths or {}).items():
            if isinstance(privs, str):
                if privs not in fakepve_shapes.ROLES:
                    raise ValueError(f"proxmox cluster {cluster}: acl {who} {path}: unknown role {privs!r}; "
                                     f"known: {sorted(fakepve_shapes.ROLES)}")
                privs = list(fakepve_shapes.ROLES[privs])
            unknown = set(privs) - known
            if unknown:
                raise ValueError(f"proxmox cluster {cluster}: acl {who} {path}: unknown privilege(s) {sorted(unknown)}")
            pve.grant(str(who), str(path), *privs)
        if not paths:
            pve.grant(str(who), "/")  # known, with nothing granted


def seed_tasks(pve: FakePve, tasks: list[dict], cluster: str = "cluster") -> None:
    """Task history: ``{node, type, id, user, ago, duration, status, log}`` each.

    ``ago`` is when the task started (seconds before now); a task without ``duration`` is still
    running. ``status`` is ``OK`` or the error a failed task ended with; ``log`` its lines.
    """
    now = int(time.time())
    for index, spec in enumerate(tasks):
        node = str(spec.get("node") or next(iter(pve.nodes)))
        if node not in pve.nodes:
            raise ValueError(f"proxmox cluster {cluster}: task {index} runs on unknown node {node!r}")
        ttype, tid = str(spec.get("type", "qmstart")), str(spec.get("id", ""))
        user = str(spec.get("user", "root@pam"))
        start = now - int(spec.get("ago", 60))
        pid = 0x10000 + index
        upid = f"UPID:{node}:{pid:08X}:{pid * 7:08X}:{start:08X}:{ttype}:{tid}:{user}:"
        record = {"upid": upid, "node": node, "pid": pid, "pstart": pid * 7, "starttime": start, "type": ttype,
                  "id": tid, "user": user, "status": "running", "log": [str(x) for x in spec.get("log") or []]}
        if spec.get("duration") is not None:
            status = str(spec.get("status", "OK"))
            record.update(status="stopped", exitstatus=status, endtime=start + int(spec["duration"]))
            record["log"].append("TASK OK" if status == "OK" else f"TASK ERROR: {status}")
        pve.tasks[upid] = record
        pve.tasklog.append(record)


def agent_interfaces(addresses: list[str], vmid: int) -> list[dict]:
    """What ``agent/network-get-interfaces`` reports for a guest with these addresses (CIDR)."""
    import ipaddress

    ips = []
    for text in addresses:
        iface = ipaddress.ip_interface(str(text))
        ips.append({"ip-address": str(iface.ip), "ip-address-type": f"ipv{iface.version}",
                    "prefix": iface.network.prefixlen})
    mac = f"bc:24:11:{(vmid >> 16) & 0xFF:02x}:{(vmid >> 8) & 0xFF:02x}:{vmid & 0xFF:02x}"
    return [{"name": "lo", "hardware-address": "00:00:00:00:00:00",
             "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
                              {"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128}]},
            {"name": "eth0", "hardware-address": mac, "ip-addresses": ips}]


def storage_entry(spec: dict) -> dict:
    """A fakepve storage dict from a model entry: ``type``, ``content``, ``shared``, ``enabled``,
    ``active``, ``total_gib``/``avail_gib``, and any other storage.cfg option passed through."""
    store: dict[str, Any] = {k: v for k, v in spec.items() if k not in _STORAGE_MODEL_KEYS}
    store.setdefault("type", "dir")
    store.setdefault("content", "images,rootdir")
    store["files"] = set()
    store["volumes"] = {}
    store["active"] = 1 if spec.get("active", True) else 0
    store["shared"] = 1 if spec.get("shared") else 0
    if not spec.get("enabled", True):
        store["disable"] = 1
    total, avail = spec.get("total_gib"), spec.get("avail_gib")
    if total is not None or avail is not None:
        total_b = int(float(total if total is not None else avail) * GIB)
        avail_b = int(float(avail if avail is not None else total) * GIB)
        if avail_b > total_b:
            raise ValueError(f"storage: avail_gib ({avail}) is more than total_gib ({total})")
        store["total"], store["avail"] = total_b, avail_b
        if total_b > avail_b:
            store["volumes"][USED_SPACE_VOLUME] = {"content": "lab-used-space", "format": "raw",
                                                   "size": total_b - avail_b, "ctime": 0}
    return store


def _guest_fields(spec: dict, kwarg_keys: tuple[str, ...], default_node: str, cluster: str):
    rest = dict(spec)
    if "vmid" not in rest:
        raise ValueError(f"proxmox cluster {cluster}: a guest without vmid: {spec!r}")
    vmid = int(rest.pop("vmid"))
    name = str(rest.pop("name", f"guest{vmid}"))
    node = str(rest.pop("node", default_node))
    status = str(rest.pop("status", "stopped"))
    kwargs = {k: rest.pop(k) for k in kwarg_keys if k in rest}
    return vmid, name, node, status, kwargs, rest  # what is left is guest config (cores, memory, tags ...)


def _check_unique_vmids(pve: FakePve, cluster: str) -> None:
    seen: set[int] = set()
    for guest in list(pve.vms) + list(getattr(pve, "cts", [])):
        if guest.vmid in seen:
            raise ValueError(f"proxmox cluster {cluster}: vmid {guest.vmid} is used twice")
        seen.add(guest.vmid)
