"""Which addresses of the lab site belong to a Talos machine, and which Talos ports each one serves.

Talos listens on TCP 50000 (apid) on every machine, a machine in maintenance mode included, and
on TCP 50001 (trustd) on control-plane machines only: a worker, or a machine not yet in a
cluster, refuses 50001 by design. The twin's ``nc`` uses this map to answer the Talos ports as the
machines behind them would.

The map is built once, when the twin starts, from two places of the model:

* Omni's ``MachineStatuses``: ``spec.network.addresses`` (CIDRs) and ``spec.role``
  (0 NONE, 1 CONTROL_PLANE, 2 WORKER; ``spec.maintenance: true`` counts as NONE);
* the Proxmox VMs: ``agent_addresses`` (what the guest agent reports) and ``status``. A VM is tied
  to its machine by the request status (``MachineRequestStatuses/<VM name>`` ``spec.id``) or, failing
  that, by the UUID in its ``smbios1``; a VM without a machine status is a Talos machine that has not
  joined anything, so it serves 50000 only.

An address whose VMs are all stopped has nobody behind it (``STOPPED``).
"""

from __future__ import annotations

import ipaddress

CONTROL_PLANE, WORKER, NONE, STOPPED = "controlplane", "worker", "none", "stopped"
APID, TRUSTD = 50000, 50001
_ROLES = {1: CONTROL_PLANE, 2: WORKER}
_RANK = {STOPPED: 0, NONE: 1, WORKER: 2, CONTROL_PLANE: 3}  # several machines on one address: the busiest wins


def serves(role: str, port: int) -> bool:
    """Whether a Talos machine of ``role`` accepts connections on ``port``."""
    if role == STOPPED:
        return False
    return port == APID or (port == TRUSTD and role == CONTROL_PLANE)


def _address(cidr: str) -> str | None:
    try:
        return str(ipaddress.ip_interface(str(cidr)).ip)
    except ValueError:
        return None


def _resources(state: dict, rtype: str) -> dict[str, dict]:
    prefix = f"{rtype}.omni.sidero.dev/"
    resources = ((state.get("omnictl") or {}).get("resources")) or {}
    return {key[len(prefix):]: value or {} for key, value in resources.items() if key.startswith(prefix)}


def _machine_role(status: dict) -> str:
    spec = status.get("spec") or {}
    if spec.get("maintenance"):
        return NONE
    try:
        return _ROLES.get(int(spec.get("role") or 0), NONE)
    except (TypeError, ValueError):
        return NONE


def _smbios_uuid(smbios1: str | None) -> str | None:
    for part in str(smbios1 or "").split(","):
        key, _, value = part.partition("=")
        if key.strip() == "uuid" and value.strip():
            return value.strip().lower()
    return None


def _add(roles: dict[str, str], address: str | None, role: str) -> None:
    if address and _RANK[role] >= _RANK.get(roles.get(address, STOPPED), 0):
        roles[address] = role


def talos_addresses(state: dict) -> dict[str, str]:
    """Address (no prefix) -> ``controlplane``, ``worker``, ``none`` or ``stopped``."""
    statuses = {mid.lower(): s for mid, s in _resources(state, "MachineStatuses").items()}
    request_ids = {name: str((s.get("spec") or {}).get("id") or "").lower()
                   for name, s in _resources(state, "MachineRequestStatuses").items()}
    roles: dict[str, str] = {}
    with_vm: set[str] = set()  # machine ids whose addresses come from a VM
    for cluster in ((state.get("proxmox") or {}).get("clusters") or {}).values():
        for vm in ((cluster or {}).get("guests") or {}).get("vms") or []:
            machine = request_ids.get(str(vm.get("name"))) or _smbios_uuid(vm.get("smbios1"))
            status = statuses.get(machine or "")
            running = str(vm.get("status", "stopped")) == "running"
            cidrs = list(vm.get("agent_addresses") or [])
            if status is not None:
                with_vm.add(machine)
                cidrs += ((status.get("spec") or {}).get("network") or {}).get("addresses") or []
            role = (_machine_role(status) if status is not None else NONE) if running else STOPPED
            for cidr in cidrs:
                _add(roles, _address(cidr), role)
    for machine, status in statuses.items():  # machines the model gives no VM (bare metal, elsewhere)
        if machine in with_vm:
            continue
        for cidr in ((status.get("spec") or {}).get("network") or {}).get("addresses") or []:
            _add(roles, _address(cidr), _machine_role(status))
    return roles
