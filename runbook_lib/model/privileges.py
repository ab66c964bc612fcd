"""The Proxmox privileges the provider needs, and which ones a user holds on a path.

:func:`effective_privileges` reads ``/access/permissions`` in PVE's shape (every path with the
privileges that apply there, each flagged with whether it propagates) and in fakepve's (only the
granting paths).
"""

from __future__ import annotations

from typing import Any

from .ages import version_tuple

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
