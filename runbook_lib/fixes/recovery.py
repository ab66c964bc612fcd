"""The recovery runbook's fix plans: migrate a VM back to the node the provider recorded, delete the
Links whose machine is gone, stop and destroy the provider's VMs no request owns.

None for a finding whose only remedy is drastic (a missing VM's stuck teardown: see
docs/runbooks/recovery.md).
"""

from __future__ import annotations

import functools

from ..evidence import Evidence
from ..model.drift import drift, limits, moved, orphan_links, orphan_vms, provider_connected, stuck
from ..model.recovery import disk_list
from ..verdict import Finding
from . import PATH, Change, Plan


def plans(ev: Evidence, findings: list[Finding]) -> list[Plan]:
    """The guarded plans for this run's problems, each with its exact calls (none for a finding
    whose only remedy is drastic: a missing VM's stuck teardown)."""
    problems = {f.id for f in findings if f.status == "problem"}
    target = f"proxmox {limits(ev).get('cluster') or '?'}"
    rows = functools.cache(lambda: drift(ev))  # the requests followed to their VMs, when a plan needs them
    out = []
    if "recovery.teardown_vm_moved" in problems:
        changes = []
        for d in moved(stuck(rows(), limits(ev)["teardown_after"])):
            vm = d.vm
            body = {"target": d.recorded, **({"online": 1} if vm["status"] == "running" else {})}
            changes.append(Change(target, "post", PATH, f"/nodes/{vm['node']}/qemu/{vm['vmid']}/migrate", body=body,
                                  why=f"VM {vm['vmid']} {vm['name']} back to {d.recorded}, where the provider's "
                                      f"teardown addresses it"))
        if changes:
            out.append(Plan("recovery.teardown_vm_moved", f"migrate {len(changes)} VM(s) back to the node the "
                            "provider recorded", tuple(changes), ("recovery.teardown_vm_moved",),
                            note="touches only these VMs (a running VM migrates live; its disks must be on "
                                 "shared storage, else Proxmox refuses it and nothing changes); nothing in Omni "
                                 "is written. Once a VM is back, the provider's next teardown retry (about a "
                                 "minute) stops and deletes it, as Omni asked. Needs the site's fix token "
                                 "(VM.Migrate)."))
    if "recovery.link_orphan" in problems and provider_connected(ev):
        found, _ = orphan_links(ev, rows)
        changes = [Change("omni", "delete", "Link", mid, why=why) for mid, why in found]
        if changes:
            out.append(Plan("recovery.link_orphan", f"delete {len(changes)} Link(s) whose machine is gone or stuck",
                            tuple(changes), ("recovery.link_orphan",),
                            note="a Machine is read-only for users; deleting its Link lets Omni release the "
                                 "machine. Only offered while the provider is connected: its finalizers on a "
                                 "machine it owns are released by the running provider, else the machine is "
                                 "left half-deleted. omnictl waits until each Link is destroyed. A machine that "
                                 "comes back registers a new Link."))
    if "recovery.orphan_vm" in problems:
        changes = []
        configs = ev.optional("vm_configs") or {}
        for vm, uuid in orphan_vms(ev, rows()):
            path = f"/nodes/{vm['node']}/qemu/{vm['vmid']}"
            held = disk_list((configs.get(str(vm["vmid"])) or {}).get("disks") or {}) or "no disk read"
            what = f"VM {vm['vmid']} {vm['name']} on {vm['node']} (SMBIOS UUID {uuid or '?'}; disks: {held})"
            if vm["status"] == "running":
                changes.append(Change(target, "post", PATH, path + "/status/stop", why=f"stop {what}"))
            changes.append(Change(target, "delete", PATH, path, body={"purge": 1, "destroy-unreferenced-disks": 1},
                                  why=f"destroy {what} with its disks"))
        if changes:
            out.append(Plan("recovery.orphan_vm", "stop and destroy the provider's VMs no request owns, with their "
                            "disks", tuple(changes), ("recovery.orphan_vm",),
                            note="irreversible: the VMs and their disks are gone afterwards (back them up first "
                                 "if in doubt). Nothing in Omni refers to them (no MachineRequest of their name, "
                                 "no machine with their SMBIOS UUID). Needs the site's fix token (VM.PowerMgmt, "
                                 "VM.Allocate, Datastore.Allocate)."))
    return out
