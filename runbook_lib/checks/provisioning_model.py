"""What the provisioning checks derive from the evidence: the join chain, capacity, privileges.

Pure functions over plain data, shared by the checks (:mod:`.provisioning`) and the notebook's
tables and plot, so what the verdict says and what the notebook shows are the same numbers.

* :func:`join_chain` ties each machine request to its Proxmox VM and its Omni machine: the
  request id is the VM's name and the Talos hostname; the request status's ``id`` is the VM's
  SMBIOS UUID and the id of the Machine, MachineStatus and Link.
* :func:`capacity` sets each online node's idle CPUs, free memory and pool space against what a
  machine class asks for (``cores``, ``memory`` in MiB, ``disk_size`` in GiB, as Proxmox reads them).
* :func:`effective_privileges` reads ``/access/permissions`` in PVE's shape (every path with the
  privileges that apply there, each flagged with whether it propagates) and in fakepve's (only the
  granting paths).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, field
from typing import Any

GIB = 1024**3
MIB = 1024**2

# MachineRequestStatus.stage and ClusterMachineRequestStatus.stage (omni.md §4.3)
REQUEST_STAGES = {0: "UNKNOWN", 1: "PROVISIONING", 2: "PROVISIONED", 3: "FAILED"}
CLUSTER_REQUEST_STAGES = {0: "UNKNOWN", 1: "PENDING", 2: "PROVISIONING", 3: "PROVISIONED", 4: "DEPROVISIONING",
                          5: "FAILED"}
CLUSTER_MACHINE_STAGES = {0: "UNKNOWN", 1: "BOOTING", 2: "INSTALLING", 3: "CONFIGURING", 4: "RUNNING", 5: "DESTROYING",
                          6: "UPGRADING", 7: "REBOOTING", 8: "SHUTTING_DOWN", 9: "BEFORE_DESTROY", 10: "POWERING_ON",
                          11: "POWERED_OFF"}
CONFIG_APPLY_FAILED = 3  # ClusterMachineStatus.configapplystatus FAILED

REQUIRED_KEYS = ("cores", "memory", "disk_size", "storage_selector")  # the provider's schema `required`
MINIMUMS = {"cores": 1, "memory": 2048, "disk_size": 5}  # the schema's `minimum`s
CAMEL_CASE = {"storageSelector": "storage_selector", "diskSize": "disk_size", "cpu": "cores",
              "networkBridge": "network_bridge", "cpuType": "cpu_type"}


# ------------------------------------------------------------------------------- small helpers

def age(now: float, then: float | None) -> float | None:
    return None if then is None else max(0.0, now - then)


def human_age(seconds: float | None) -> str:
    """``42 s``, ``12 min``, ``3.5 h``, ``2.0 d``."""
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def version_tuple(text: str | None) -> tuple[int, ...] | None:
    """``v1.9.3`` / ``1.9.3`` -> (1, 9, 3); None when it is not a version."""
    m = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", str(text or "").strip())
    return tuple(int(x) for x in m.groups() if x is not None) if m else None


def content_types(storage: dict) -> set[str]:
    return {c.strip() for c in str(storage.get("content") or "").split(",") if c.strip()}


def usable(storage: dict) -> bool:
    """Enabled and active on this node."""
    return bool(int(storage.get("enabled", 1) or 0)) and bool(int(storage.get("active", 0) or 0))


# --------------------------------------------------------------------------------- join chain

@dataclass
class JoinRow:
    """One machine request followed through Proxmox and Omni."""

    request: str
    request_set: str = ""
    age: float | None = None  # since the request was created
    phase: str = "running"  # the request's metadata phase (tearingDown while being deleted)
    talos_wanted: str = ""  # the Talos version the request asks for
    stage: str = ""  # MachineRequestStatus stage name ("" without a status)
    status: str = ""  # MachineRequestStatus status text, e.g. 'Running Step: "syncVM" (4/5)'
    error: str = ""
    status_age: float | None = None  # since the request status last changed
    cluster_stage: str = ""  # ClusterMachineRequestStatus stage name
    uuid: str = ""  # SMBIOS UUID = Omni machine id
    vmid: int | None = None
    node: str = ""
    vm_status: str = ""  # "" when Proxmox has no VM of that name
    vm_uptime: float | None = None
    lock: str = ""
    machine_connected: bool | None = None  # None: Omni has no machine with that id
    link_connected: bool | None = None
    talos_version: str = ""
    maintenance: bool | None = None
    addresses: list[str] = field(default_factory=list)
    address_source: str = ""  # "omni" (MachineStatus) or "guest agent"

    @property
    def connected(self) -> bool:
        return bool(self.machine_connected or self.link_connected)

    @property
    def torn_down(self) -> bool:
        return self.phase == "tearingDown"

    def to_dict(self) -> dict:
        return asdict(self)


def join_chain(ev_get) -> list[JoinRow]:
    """The join table from evidence (``ev_get(name, default)`` reads optional evidence)."""
    now = ev_get("now", 0.0)
    statuses = ev_get("request_statuses", {}) or {}
    cluster_statuses = ev_get("cluster_request_statuses", {}) or {}
    vms = ev_get("vms", {}) or {}
    machine_statuses = ev_get("machine_statuses", {}) or {}
    machines = ev_get("machines", {}) or {}
    links = ev_get("links", {}) or {}
    agent = ev_get("agent_addresses", {}) or {}
    rows = []
    for req in ev_get("machine_requests", []) or []:
        row = JoinRow(request=req["id"], request_set=req.get("set", ""), age=age(now, req.get("created")),
                      phase=req.get("phase", "running"), talos_wanted=req.get("talosversion", ""))
        st = statuses.get(row.request)
        if st:
            row.stage = REQUEST_STAGES.get(st.get("stage"), str(st.get("stage")))
            row.status, row.error, row.uuid = st.get("status", ""), st.get("error", ""), st.get("uuid", "")
            row.status_age = age(now, st.get("updated"))
        cst = cluster_statuses.get(row.request)
        if cst:
            row.cluster_stage = CLUSTER_REQUEST_STAGES.get(cst.get("stage"), str(cst.get("stage")))
            row.uuid = row.uuid or cst.get("machineuuid", "")
        vm = vms.get(row.request)
        if vm:
            row.vmid, row.node, row.vm_status = vm.get("vmid"), vm.get("node", ""), vm.get("status", "")
            row.vm_uptime, row.lock = vm.get("uptime"), vm.get("lock", "")
            row.uuid = row.uuid or vm.get("uuid", "")
        if row.uuid:
            ms = machine_statuses.get(row.uuid)
            if ms:
                row.machine_connected = bool(ms.get("connected"))
                row.talos_version, row.maintenance = ms.get("talosversion", ""), ms.get("maintenance")
                row.addresses, row.address_source = list(ms.get("addresses") or []), "omni"
            if row.uuid in machines:
                row.machine_connected = bool(row.machine_connected or machines[row.uuid].get("connected"))
            if row.uuid in links:
                row.link_connected = bool(links[row.uuid].get("connected"))
        if not row.addresses and isinstance(agent.get(row.request), list):
            row.addresses, row.address_source = list(agent[row.request]), "guest agent"
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------ machine classes

def parse_providerdata(text: Any) -> tuple[dict | None, str]:
    """(the provider data as a mapping, or None; why not)."""
    import yaml

    if text is None or (isinstance(text, str) and not text.strip()):
        return None, "the class has no providerdata"
    if isinstance(text, dict):
        return text, ""
    try:
        data = yaml.safe_load(str(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        return None, f"providerdata is not valid YAML{where}: {getattr(exc, 'problem', exc)}"
    if not isinstance(data, dict):
        return None, f"providerdata is a YAML {type(data).__name__}, not a mapping of settings"
    return data, ""


def class_problems(cls: dict, providers: list[str]) -> list[str]:
    """Why the provider cannot use this machine class (empty: it can)."""
    out = []
    pid = cls.get("providerid") or ""
    if pid not in providers:
        known = ", ".join(providers) or "none"
        out.append(f"autoprovision.providerid is '{pid}', which is not an infra provider in Omni (known: {known})")
    data, why = parse_providerdata(cls.get("providerdata"))
    if data is None:
        out.append(why)
        return out
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        out.append("providerdata lacks required key(s) " + ", ".join(missing))
    camel = [f"{k} (the provider reads {v})" for k, v in CAMEL_CASE.items() if k in data and v not in data]
    if camel:
        out.append("providerdata uses key(s) the provider ignores: " + ", ".join(camel))
    for key, low in MINIMUMS.items():
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            out.append(f"providerdata {key} is {value!r}, not a whole number")
        elif value < low:
            out.append(f"providerdata {key} is {value}, below the minimum {low}")
    return out


def class_needs(data: dict) -> dict | None:
    """What one VM of a class takes: cores, memory (bytes), disks [(selector, bytes)], pinned node."""
    try:
        cores = int(data["cores"]) * max(int(data.get("sockets") or 1), 1)
        memory = int(data["memory"]) * MIB
        disks = [(str(data.get("storage_selector") or ""), int(data["disk_size"]) * GIB)]
        for extra in data.get("additional_disks") or []:
            disks.append((str(extra.get("storage_selector") or ""), int(extra["disk_size"]) * GIB))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return {"cores": cores, "memory": memory, "disks": disks, "node": str(data.get("node") or "")}


# ------------------------------------------------------------------------------ storage selector

def selector_matches(selector: str, storage: dict, node: str) -> bool | None:
    """True/False as the provider would evaluate ``selector`` for this storage; None when the
    expression does not compile or fails to evaluate (the storage runbook explains why)."""
    from .. import cel

    row, why = cel.first_match(selector, node, [storage])
    if row is not None:
        return True
    return False if why == cel.no_match_error(selector) else None


def pick_pool(selector: str, storages: list[dict], node: str) -> tuple[dict | None, str]:
    """The storage the provider would pick on ``node`` (first match in API order), or why none."""
    from .. import cel

    row, why = cel.first_match(selector, node, storages)
    if row is not None:
        return row, ""
    return None, ("no storage matches the selector" if why == cel.no_match_error(selector)
                  else "the selector cannot be evaluated")


# ------------------------------------------------------------------------------------ capacity

@dataclass
class NodeFit:
    """One node against one machine class."""

    machine_class: str
    node: str
    cpu_free: float  # idle logical CPUs
    cpu_need: int
    mem_free: int  # bytes
    mem_need: int
    pool: str  # the storage of the first disk ("" when none is decided)
    disk_free: int | None  # bytes free on that pool (None: undecided)
    disk_need: int  # bytes all disks put on that pool
    short: list[str] = field(default_factory=list)  # what does not fit, in words
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not self.short

    def line(self) -> str:
        disk = (f"{self.pool} {self.disk_free / GIB:.0f} GiB free (needs {self.disk_need / GIB:.0f})"
                if self.disk_free is not None else (self.notes[0] if self.notes else "pool undecided"))
        return (f"{self.node}: {self.cpu_free:.1f} idle CPUs (needs {self.cpu_need}), "
                f"{self.mem_free / GIB:.1f} GiB memory free (needs {self.mem_need / GIB:.1f}), {disk}")

    def to_row(self) -> dict:
        return {"class": self.machine_class, "node": self.node,
                "cpu free": round(self.cpu_free, 1), "cpu needed": self.cpu_need,
                "memory free (GiB)": round(self.mem_free / GIB, 1), "memory needed (GiB)": round(self.mem_need / GIB, 1),
                "pool": self.pool or "-",
                "disk free (GiB)": None if self.disk_free is None else round(self.disk_free / GIB, 1),
                "disk needed (GiB)": round(self.disk_need / GIB, 1), "fits": self.fits,
                "short of": "; ".join(self.short)}


def node_free(status: dict) -> tuple[float, int]:
    """(idle logical CPUs, free memory in bytes) from a ``node_status`` entry."""
    cpus = float(status.get("cpus") or 0)
    cpu_free = cpus * (1.0 - min(max(float(status.get("cpu") or 0.0), 0.0), 1.0))
    mem_free = status.get("mem_available")
    if mem_free is None:
        mem_free = int(status.get("mem_total") or 0) - int(status.get("mem_used") or 0)
    return cpu_free, int(mem_free)


def fit(class_id: str, needs: dict, node: str, status: dict, storages: list[dict]) -> NodeFit:
    cpu_free, mem_free = node_free(status)
    result = NodeFit(class_id, node, cpu_free, needs["cores"], mem_free, needs["memory"], "", None, 0)
    if needs["cores"] > cpu_free:
        result.short.append(f"CPU ({cpu_free:.1f} idle, {needs['cores']} needed)")
    if needs["memory"] > mem_free:
        result.short.append(f"memory ({mem_free / GIB:.1f} GiB free, {needs['memory'] / GIB:.1f} GiB needed)")
    per_pool: dict[str, list] = {}
    for index, (selector, size) in enumerate(needs["disks"]):
        pool, why = pick_pool(selector, storages, node)  # as the provider does: every storage, API order
        if pool is not None and not (usable(pool) and "images" in content_types(pool)):
            pool, why = None, f"it would pick {pool.get('storage')}, which cannot hold VM disks here"
        if pool is None:
            result.notes.append(f"disk {index}: {why} (see the storage runbook)")
            continue
        entry = per_pool.setdefault(pool["storage"], [int(pool.get("avail") or 0), 0])
        entry[1] += size
        if index == 0:
            result.pool = pool["storage"]
    for name, (free, need) in per_pool.items():
        if name == result.pool:
            result.disk_free, result.disk_need = free, need
        if need > free:
            result.short.append(f"space on {name} ({free / GIB:.0f} GiB free, {need / GIB:.0f} GiB needed)")
    if not result.pool:
        result.disk_need = needs["disks"][0][1]
    return result


def capacity(classes: list[dict], node_status: dict, node_storage: dict) -> dict[str, list[NodeFit]]:
    """For each usable machine class: how every online node (or the class's pinned node) fares."""
    out: dict[str, list[NodeFit]] = {}
    for cls in classes:
        data, _ = parse_providerdata(cls.get("providerdata"))
        needs = class_needs(data) if data else None
        if needs is None:
            continue
        fits = []
        for node, status in sorted(node_status.items()):
            if status.get("error") or (needs["node"] and node != needs["node"]):
                continue
            fits.append(fit(cls["id"], needs, node, status, node_storage.get(node) or []))
        out[cls["id"]] = fits
    return out


# ---------------------------------------------------------------------------------- privileges

# What the provider does in Proxmox, and the privileges each needs (any one of a group will do).
# Paths are where PVE checks them; a grant on a parent path that propagates covers them.
PROVIDER_NEEDS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("/nodes", ("Sys.Audit",), "list the nodes and read their status (pickNode)"),
    ("/storage", ("Datastore.Audit",), "list the storages (without it the list is empty)"),
    ("/storage", ("Datastore.AllocateTemplate",), "download the Talos ISO (uploadISO)"),
    ("/nodes", ("Sys.AccessNetwork", "Sys.Modify"), "let the node fetch a URL (download-url, uploadISO)"),
    ("/vms", ("VM.Allocate",), "create and delete the VMs (syncVM, teardown)"),
    ("/storage", ("Datastore.AllocateSpace",), "allocate the VM disks (syncVM)"),
    ("/vms", ("VM.Config.Disk",), "attach the disks"),
    ("/vms", ("VM.Config.CDROM",), "insert the Talos ISO"),
    ("/vms", ("VM.Config.CPU",), "set cores and CPU type"),
    ("/vms", ("VM.Config.Memory",), "set the memory"),
    ("/vms", ("VM.Config.Network",), "add the network interface"),
    ("/vms", ("VM.Config.Options",), "set name, tags, onboot and SMBIOS UUID"),
    ("/vms", ("VM.Config.Cloudinit",), "write the cloud-init drive with the join config"),
    ("/vms", ("VM.Config.HWType",), "set the SCSI controller and machine type"),
    ("/vms", ("VM.PowerMgmt",), "start and stop the VMs (startVM, teardown)"),
    ("/vms", ("VM.Audit",), "read the VMs' configuration and state"),
)
SDN_NEED = ("/sdn/zones/localnetwork", ("SDN.Use",), "attach the NIC to a bridge (Proxmox VE 8 and later)")


def _granted(value: Any) -> bool:
    return value not in (None, 0, "0", False, "")


def effective_privileges(paths: dict, path: str) -> set[str]:
    """The privileges that apply on ``path``: those listed for the path itself (whatever their
    propagate flag) plus those on any parent path that propagate. Works for PVE's answer (every
    default path listed, values 1/0 = propagate) and fakepve's (granting paths, values 1)."""
    held: set[str] = set()
    path = "/" + path.strip("/")
    for granted, privs in (paths or {}).items():
        base = "/" + str(granted).strip("/")
        if not isinstance(privs, dict):
            continue
        if base == path:
            held.update(privs)
        elif base == "/" or path.startswith(base.rstrip("/") + "/"):
            held.update(p for p, v in privs.items() if _granted(v))
    return held


def missing_privileges(paths: dict, pve_version: str | None = None) -> list[tuple[str, tuple[str, ...], str]]:
    """The provider's needs that the permissions do not cover."""
    needs = list(PROVIDER_NEEDS)
    version = version_tuple(pve_version)
    if version is None or version >= (8,):
        needs.append(SDN_NEED)
    out = []
    cache: dict[str, set[str]] = {}
    for path, privs, why in needs:
        held = cache.setdefault(path, effective_privileges(paths, path))
        if not any(p in held for p in privs):
            out.append((path, privs, why))
    return out


# ------------------------------------------------------------------------------- networks

def networks(addresses: list[str]) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    """The addresses (CIDR) that place a host on a segment: global scope, not loopback or link-local."""
    out = []
    for text in addresses or []:
        try:
            iface = ipaddress.ip_interface(str(text))
        except ValueError:
            continue
        ip = iface.ip
        if ip.is_loopback or ip.is_link_local or (ip.version == 6 and ip in _SIDEROLINK):
            continue
        out.append(iface)
    return out


_SIDEROLINK = ipaddress.ip_network("fdae:41e4:649b:9303::/64")


def same_segment(host_addresses: list[str], vm_addresses: list[str]) -> bool | None:
    """True when a VM address lies in a network of the host; None when either side has none."""
    host, vm = networks(host_addresses), networks(vm_addresses)
    if not host or not vm:
        return None
    return any(v.ip in h.network for h in host for v in vm if h.version == v.version)


def probe_address(addresses: list[str]) -> str | None:
    """The address to probe a VM on: its first global IPv4, else its first global IPv6."""
    usable_ = networks(addresses)
    for iface in usable_:
        if iface.version == 4:
            return str(iface.ip)
    return str(usable_[0].ip) if usable_ else None
