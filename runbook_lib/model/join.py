"""A machine request followed to its Proxmox VM and its Omni machine, with its history.

The keys that tie the chain together (the provider's ``provision.go``): the MachineRequest's id
is the VM's name and the Talos hostname; the MachineRequestStatus's ``spec.id`` is the VM's SMBIOS
UUID and the id of the Machine, MachineStatus, Link and ClusterMachineStatus.

Omni keeps history that tells a machine that never joined from one that lost its connection:

* a Link's ``lastendpoint`` is the WireGuard endpoint its node last spoke from: empty only while
  the node has never brought its tunnel up;
* a MachineStatus reports a Talos version once Omni has polled the machine;
* a machine in a cluster (MachineStatus ``cluster``, a ClusterMachineStatus) was allocated, which
  Omni does only with machines that are connected.

Any of these is evidence that the machine was there. "Never joined" needs all of them absent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .ages import age
from .omni import CLUSTER_REQUEST_STAGES, MACHINE_ROLES, REQUEST_STAGES, TEARING_DOWN, stage_name

STILL_BEING_MADE = ("create", "clone")  # Proxmox locks of a VM it has not finished creating


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
    link_connected: bool | None = None  # None: Omni has no Link with that id
    last_endpoint: str = ""  # the Link's lastendpoint: empty while the node never brought its tunnel up
    cluster: str = ""  # the cluster the machine was allocated to ("" none)
    role: str = ""  # controlplane / worker ("" not known: not in a cluster yet)
    talos_version: str = ""
    maintenance: bool | None = None
    addresses: list[str] = field(default_factory=list)
    address_source: str = ""  # "omni" (MachineStatus) or "guest agent"

    @property
    def connected(self) -> bool:
        return bool(self.machine_connected or self.link_connected)

    @property
    def history(self) -> list[str]:
        """What shows that the machine joined Omni at some time (empty: nothing does)."""
        return history(self.last_endpoint, self.talos_version, self.cluster)

    @property
    def joined(self) -> bool:
        """Connected now, or evidence that it was connected before."""
        return self.connected or bool(self.history)

    @property
    def torn_down(self) -> bool:
        return self.phase == TEARING_DOWN

    def to_dict(self) -> dict:
        return asdict(self)


def history(last_endpoint: str = "", talos_version: str = "", cluster: str = "") -> list[str]:
    """The signs, in Omni's resources, that a machine joined at some time (empty: none)."""
    out = []
    if last_endpoint:
        out.append(f"its Link last spoke from {last_endpoint}")
    if talos_version:
        out.append(f"Omni read its Talos version ({talos_version})")
    if cluster:
        out.append(f"it was allocated to cluster {cluster}")
    return out


def status_shows_joined(status: dict | None) -> bool:
    """Whether a machine status (``connected``, ``talosversion``, ``cluster``) shows a machine that
    joined Omni at some time: the rule of :attr:`JoinRow.joined` for a section without Links."""
    return bool(status and (status.get("connected")
                            or history("", status.get("talosversion", ""), status.get("cluster", ""))))


def join_chain(ev_get) -> list[JoinRow]:
    """The join table from evidence (``ev_get(name, default)`` reads optional evidence)."""
    now = ev_get("now", 0.0)
    statuses = ev_get("request_statuses", {}) or {}
    cluster_statuses = ev_get("cluster_request_statuses", {}) or {}
    vms = ev_get("vms", {}) or {}
    machine_statuses = ev_get("machine_statuses", {}) or {}
    machines = ev_get("machines", {}) or {}
    links = ev_get("links", {}) or {}
    cluster_machines = ev_get("cluster_machine_statuses", {}) or {}
    agent = ev_get("agent_addresses", {}) or {}
    rows = []
    for req in ev_get("machine_requests", []) or []:
        row = JoinRow(request=req["id"], request_set=req.get("set", ""), age=age(now, req.get("created")),
                      phase=req.get("phase", "running"), talos_wanted=req.get("talosversion", ""))
        st = statuses.get(row.request)
        if st:
            row.stage = stage_name(REQUEST_STAGES, st.get("stage"))
            row.status, row.error, row.uuid = st.get("status", ""), st.get("error", ""), st.get("uuid", "")
            row.status_age = age(now, st.get("updated"))
        cst = cluster_statuses.get(row.request)
        if cst:
            row.cluster_stage = stage_name(CLUSTER_REQUEST_STAGES, cst.get("stage"))
            row.uuid = row.uuid or cst.get("machineuuid", "")
        vm = vms.get(row.request)
        if vm:
            row.vmid, row.node, row.vm_status = vm.get("vmid"), vm.get("node", ""), vm.get("status", "")
            row.vm_uptime, row.lock = vm.get("uptime"), vm.get("lock", "")
            row.uuid = row.uuid or vm.get("uuid", "")
        if row.uuid:
            _machine(row, machine_statuses.get(row.uuid), machines.get(row.uuid), links.get(row.uuid),
                     cluster_machines.get(row.uuid))
        if not row.addresses and isinstance(agent.get(row.request), list):
            row.addresses, row.address_source = list(agent[row.request]), "guest agent"
        rows.append(row)
    return rows


def _machine(row: JoinRow, ms: dict | None, machine: dict | None, link: dict | None, cm: dict | None) -> None:
    if ms:
        row.machine_connected = bool(ms.get("connected"))
        row.talos_version, row.maintenance = ms.get("talosversion", ""), ms.get("maintenance")
        row.addresses, row.address_source = list(ms.get("addresses") or []), "omni"
        row.cluster = ms.get("cluster", "")
        row.role = MACHINE_ROLES.get(ms.get("role"), "") if ms.get("role") else ""
        row.role = "" if row.role == "none" else row.role
    if machine:
        row.machine_connected = bool(row.machine_connected or machine.get("connected"))
    if link:
        row.link_connected = bool(link.get("connected"))
        row.last_endpoint = link.get("lastendpoint", "")
    if cm:
        row.cluster = row.cluster or cm.get("cluster", "") or "(a cluster)"
        row.role = row.role or cm.get("role", "")


def waiting_to_join(row: JoinRow) -> bool:
    """Requested, not being torn down, and its machine has never joined Omni (whatever the stage)."""
    return not row.torn_down and not row.joined
