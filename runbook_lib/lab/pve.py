"""One Proxmox VE cluster of the lab twin, served in-process by fakepve.

The model is one ``proxmox.clusters.<name>`` mapping of ``healthy.yaml`` (placeholders filled).
Endpoint 0 is fakepve itself; every further endpoint is a TCP forwarder to it, so all endpoints
present the same certificate (signed by the twin CA, valid for 127.0.0.1) and the same cluster.
An endpoint listed in ``down_endpoints`` keeps its port reserved but refuses connections; with
``hang: true`` every endpoint accepts TCP connections and never answers.

fakepve needs careful seeding (see the research notes): storages are raw dicts that must carry
``files`` and ``active``, and ``used`` is the sum of the storage's volumes, so a synthetic volume
makes ``used + avail == total``. Every request fakepve records goes to the twin's request log.

The ``down`` and ``hang`` endpoints and the forwarders are the loopback helpers of :mod:`.net`.
"""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from fakepve import FakePve

from .certs import CA
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


async def start_cluster(name: str, model: dict, *, ca: CA, log: "RequestLog") -> PveCluster:
    """Seed a fakepve from ``model``, serve it with a certificate from ``ca`` and open its endpoints."""
    count = int(model.get("endpoints", 1))
    if count < 1:
        raise ValueError(f"proxmox cluster {name}: needs at least one endpoint, got {count}")
    down = {int(i) for i in model.get("down_endpoints") or []}
    hang = bool(model.get("hang"))

    pve = FakePve(user="root@pam", password=secrets.token_urlsafe(24), host=HOST, port=0)
    pve.time_scale = 0
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
    """Replace fakepve's default inventory with the model's nodes, tokens, storages and guests."""
    nodes = [str(n) for n in model.get("nodes") or []]
    for default in [n for n in pve.nodes if n not in nodes]:
        del pve.nodes[default]
    for node in nodes:
        pve.add_node(node)
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
    default_node = nodes[0] if nodes else "pve1"
    for spec in guests.get("vms") or []:
        vmid, name, node, status, kwargs, config = _guest_fields(spec, _VM_KWARGS, default_node, cluster)
        if kwargs.get("lock"):
            config["lock"] = kwargs["lock"]
        pve.add_vm(vmid, name, node=node, status=status, config=config, **kwargs)
    for spec in guests.get("cts") or []:
        vmid, name, node, status, kwargs, config = _guest_fields(spec, _CT_KWARGS, default_node, cluster)
        pve.add_ct(vmid, name, node=node, status=status, config=config, **kwargs)
    _check_unique_vmids(pve, cluster)


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
