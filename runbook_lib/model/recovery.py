"""Teardown and drift: what Omni's deletion states mean, and how the provider finds a VM again.

Deletion in Omni (COSI resources, as omnictl prints them):

* a resource being deleted has ``metadata.phase: tearingDown``; it stays there, readable, until every
  controller named in ``metadata.finalizers`` has removed its finalizer. A MachineRequest the Proxmox
  provider made a VM for carries ``<provider id>.ProvisionController`` (issue 2702 and
  omni-infra-provider-proxmox issue 75 show it on requests stuck in ``tearingDown``);
* Omni's ClusterMachineRequestStatus of such a request goes to stage 4 (DEPROVISIONING) with the
  status ``Waiting for the infra provider to finish teardown``;
* a Machine whose node Omni can no longer reach stays in ``tearingDown`` too: Omni resets a machine
  through the Talos API before it lets it go, and waits until the node answers or its Link is deleted
  (omni issue 2948: ``omnictl delete link <id>`` was the way out). A Machine cannot be deleted by a
  user (read-only); the Link is the resource a user deletes (siderolabs/docs issue 661).

The provider's own record of where a VM is: its state resource ``Machine.proxmox.infraprovider.sidero.dev``
(namespace ``infra-provider:<id>``; fields ``node``, ``vmid``, ``uuid``) written in step ``pickNode``
and ``syncVM``. Whether ``omnictl get`` can read that namespace is not verified, so the runbook does
not rely on it; the same node shows in the provider's log (the node-pick line of the request) and in
Proxmox's task history (the ``qmcreate`` task of the VM ran on the node it was created on). Teardown
(``Deprovision`` in the provider's ``provision.go``) addresses the VM as
``/nodes/<recorded node>/qemu/<vmid>``, stop then delete, and never looks it up cluster-wide: a VM
migrated to another node, or deleted, makes every attempt fail. Proxmox answers such a path with
HTTP 500 ``Configuration file 'nodes/<node>/qemu-server/<vmid>.conf' does not exist``; go-proxmox
turns a 500 into the status line, which issue 75 saw as ``500 Internal Server Error``. Newer provider
builds treat an error containing ``does not exist`` as already deprovisioned; which builds do, and
whether the status line carries Proxmox's message, is not known: both shapes are read here.
"""

from __future__ import annotations

import re

PROVISION_FINALIZER = "{provider}.ProvisionController"  # the provider's finalizer on a MachineRequest
CLUSTER_REQUEST_DEPROVISIONING = 4  # ClusterMachineRequestStatus.stage DEPROVISIONING
TEARDOWN_STATUS = "Waiting for the infra provider to finish teardown"
REQUEST_TAG = "machine-request."  # the VM tag the provider sets: machine-request.<request set>

# The provider's log: the line that records the node of a request's VM (its `node` field), by build.
NODE_PICK_MESSAGES = ("picked the node for the Proxmox VM", "auto-selected node for the Proxmox VM",
                      "using configured node for the Proxmox VM")
RECONCILE_FAILED = "reconcile failed"  # a teardown error is logged only as this line (no step)
DEPROVISIONED = "machine deprovisioned"
ALREADY_GONE = "VM or its node no longer exists, treating as already deprovisioned"  # newer builds

# Proxmox task types (UPID type field)
TASK_CREATE, TASK_MIGRATE, TASK_DESTROY = "qmcreate", "qmigrate", "qmdestroy"

_CONF_PATH = re.compile(r"nodes/([^/\s']+)/qemu-server/(\d+)\.conf' does not exist")


def provision_finalizer(provider_id: str) -> str:
    return PROVISION_FINALIZER.format(provider=provider_id)


def vm_tags(tags) -> list[str]:
    """Proxmox lists tags separated by ``;`` (older releases wrote ``,`` or spaces)."""
    return [t for t in re.split(r"[;, ]+", str(tags or "")) if t]


def request_set_of(tags) -> str:
    """The machine request set a provider VM's tag names ("" when it has none)."""
    for tag in vm_tags(tags):
        if tag.startswith(REQUEST_TAG):
            return tag[len(REQUEST_TAG):]
    return ""


def smbios_uuid(smbios1: str) -> str:
    """The ``uuid=`` of a VM's ``smbios1`` option (the Omni machine id the provider gave it)."""
    for part in str(smbios1 or "").split(","):
        key, _, value = part.partition("=")
        if key.strip() == "uuid":
            return value.strip().lower()
    return ""


def node_in_error(error: str) -> tuple[str, int | None]:
    """The node and VMID a Proxmox 'config file does not exist' error names (``("", None)``: none)."""
    m = _CONF_PATH.search(str(error or ""))
    return (m.group(1), int(m.group(2))) if m else ("", None)


DISK_KEY = re.compile(r"^(?:scsi|virtio|sata|ide|efidisk|tpmstate)\d+$")
_SIZE = re.compile(r"(?:^|,)size=(\d+(?:\.\d+)?)([KMGT]?)")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def disks(config: dict) -> list[dict]:
    """A VM's disks from its config: ``key``, ``volume``, ``bytes`` (CD-ROMs left out)."""
    out = []
    for key in sorted(config or {}):
        value = str(config[key])
        if not DISK_KEY.match(key) or "media=cdrom" in value or value.startswith("none"):
            continue
        volume = value.split(",", 1)[0]
        m = _SIZE.search(value)
        size = int(float(m.group(1)) * _UNITS[m.group(2)]) if m else None
        out.append({"key": key, "volume": volume, "bytes": size})
    return out


def gib(n) -> str:
    """A size in bytes as GiB (``?`` when unknown)."""
    return f"{n / (1 << 30):g} GiB" if isinstance(n, (int, float)) and n else "?"


def disk_list(config: dict) -> str:
    """A VM's disks in one line: ``scsi0 local-lvm:vm-101-disk-0 32 GiB, ...`` ("" without disks)."""
    return ", ".join(f"{d['key']} {d['volume']} {gib(d['bytes'])}" for d in disks(config))


def recorded_node(request: str, vmid: int | None, picks: dict, tasks: list[dict], errors: dict) -> tuple[str, str]:
    """Where the provider believes a request's VM is: (node, how that is known); ("", "") unknown.

    In order: the provider's node-pick line for the request; the node the VM's ``qmcreate`` task ran
    on; the node its failing teardown addresses (the error text); the source of the VM's first
    migration.
    """
    if picks.get(request):
        return picks[request], "the provider's log (node picked for the request)"
    mine = [t for t in tasks if vmid is not None and str(t.get("id")) == str(vmid)]
    created = sorted((t for t in mine if t.get("type") == TASK_CREATE), key=lambda t: t.get("starttime") or 0)
    if created:
        return created[-1]["node"], f"Proxmox task history ({TASK_CREATE} ran on {created[-1]['node']})"
    node, _ = node_in_error(errors.get(request, ""))
    if node:
        return node, "the provider's failing teardown (the path it addresses)"
    moved = sorted((t for t in mine if t.get("type") == TASK_MIGRATE), key=lambda t: t.get("starttime") or 0)
    if moved:
        return moved[0]["node"], f"Proxmox task history (first {TASK_MIGRATE} left {moved[0]['node']})"
    return "", ""
