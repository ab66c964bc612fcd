"""Recovery (guide: "recovery procedures: stuck machines, state drift"): one check per ``recovery.*`` id.

Omni's view of the provider's machines against Proxmox's, every VM looked up cluster-wide.

Evidence names (filled by :mod:`runbook_lib.gather.recovery`; times are Unix seconds):

``expected``                 ``provider_id``, ``cluster``; the limits ``teardown_after`` and ``link_after`` (seconds)
``now``                      when the evidence was gathered
``machine_requests``         the provider's requests: ``id``, ``set``, ``phase``, ``finalizers``, ``created``, ``updated``
``request_statuses``         request id -> ``uuid``, ``stage`` (0-3), ``status``, ``error``, ``updated``
``cluster_request_statuses`` request id -> ``stage`` (0-5), ``status``, ``machineuuid``, ``cluster``, ``updated``
``machines``                 machine id -> ``connected``, ``phase``, ``finalizers``, ``created``, ``updated``
``links``                    machine id -> ``connected``, ``lastendpoint``, ``phase``, ``created``, ``updated``
``machine_statuses``         machine id -> ``connected``, ``cluster``, ``request`` (its machine-request label)
``provider_status``          provider id -> ``connected`` (Omni's InfraProviderCombinedStatus)
``nodes``                    the online Proxmox nodes
``all_vms``                  every QEMU VM of the provider's cluster (``/cluster/resources``): ``name``, ``vmid``,
                             ``node``, ``status``, ``tags``, ``maxmem``, ``maxdisk``, ``maxcpu``, ``lock``
``vm_configs``               VMID -> ``uuid`` (SMBIOS), ``disks`` {key: option} (or ``error``), for the provider's VMs
``tasks``                    ``qmcreate`` / ``qmigrate`` tasks of those VMs, from every online node
``provider_log``             since the provider's last start: ``picks`` (request -> node), ``failures`` (request ->
                             ``count``, ``error``, ``ago``), ``deprovisioned``, ``window``
"""

from __future__ import annotations

from ..evidence import Evidence
from ..model.ages import human_age
from ..model.drift import Drift, drift, limits, moved, orphan_links, orphan_vms, provider_connected, stuck
from ..model.recovery import TASK_MIGRATE, disk_list, gib, provision_finalizer, request_set_of
from . import Derived, check, derive, ok, problem, unknown

MAX_LINES = 12

derive("recovery")(drift)  # every request followed to its VM, once per run


def _stuck(ev: Evidence, derived: Derived) -> list[Drift]:
    return stuck(derived(drift), limits(ev)["teardown_after"])


def _bounded(lines: list[str], what: str = "more") -> list[str]:
    return lines if len(lines) <= MAX_LINES else lines[:MAX_LINES] + [f"... and {len(lines) - MAX_LINES} {what}"]


def _scope(ev: Evidence) -> str:
    vms, nodes = ev.get("all_vms"), ev.optional("nodes") or sorted({v["node"] for v in ev.get("all_vms")})
    return f"looked up among all {len(vms)} VM(s) of cluster {limits(ev).get('cluster') or '?'} " \
           f"(/cluster/resources; nodes {', '.join(nodes) or 'none'})"


def _failure(d: Drift) -> str:
    if not d.failure:
        return "the provider's log since its last start has no failing teardown for it"
    return (f"provider log: reconcile failed {d.failure['count']}x for {d.request}, last "
            f"{human_age(d.failure.get('ago'))} ago: {d.failure.get('error') or '?'}")


def _describe(d: Drift) -> str:
    fin = ", ".join(d.finalizers) or "none"
    return (f"{d.request}: phase {d.phase}, finalizers [{fin}], tearing down for {human_age(d.teardown_age)}"
            + (f"; Omni: {d.cluster_status!r}" if d.cluster_status else ""))


# ------------------------------------------------------------------------------------ symptoms

@check("recovery.teardown_stuck",
       fix="Find why the provider cannot finish: recovery.teardown_vm_missing or recovery.teardown_vm_moved "
           "when the VM is gone or moved, else the provider itself (runbook run provider: is it running and "
           "connected?) and its `reconcile failed` lines.")
def teardown_stuck(ev: Evidence, derived: Derived):
    rows = derived(drift)
    limit = limits(ev)["teardown_after"]
    tearing = [d for d in rows if d.teardown]
    if not tearing:
        return ok("no machine request of the provider is tearing down", [f"{len(rows)} machine request(s)"])
    late = _stuck(ev, derived)
    if not late:
        return ok(f"{len(tearing)} request(s) tearing down, none for longer than {human_age(limit)}",
                  [_describe(d) for d in tearing])
    mine = provision_finalizer(limits(ev).get("provider_id") or "")
    lines = []
    for d in late:
        where = ("its VM was not looked up (Proxmox could not be read)" if not ev.has("all_vms") else
                 f"its VM {d.vm['vmid']} is on {d.vm['node']}" if d.vm else "its VM is on no node")
        held = (f"; only the provider's teardown releases {mine}" if mine in d.finalizers else "")
        lines += [_describe(d) + f"; {where}{held}", "  " + _failure(d)]
    return problem(f"{len(late)} machine request(s) stuck tearing down for more than {human_age(limit)}: "
                   "their finalizers hold them, and with them their machine set and cluster",
                   _bounded(lines, "lines"))


@check("recovery.teardown_vm_missing",
       fix="The provider addresses the VM on the node it recorded and, in the builds issue 75 shows, treats "
           "'not found' as an error, so it retries forever. Upgrade the provider to a build that treats a "
           "missing VM as deprovisioned, then restart it. A user cannot remove the provider's finalizer or "
           "its MachineRequestStatus (read-only for users); the Link of the machine can be deleted "
           "(recovery.link_orphan). The last resort, deleting the InfraProvider registration, removes every "
           "request of the provider with it: see docs/runbooks/recovery.md; the runbook offers no plan for it.")
def teardown_vm_missing(ev: Evidence, derived: Derived):
    ev.get("all_vms")
    late = _stuck(ev, derived)
    gone = [d for d in late if d.vm is None]
    facts = [_scope(ev)]
    if not gone:
        return ok("every teardown stuck past the limit still has its VM" if late else "no teardown is stuck",
                  facts)
    lines = []
    for d in gone:
        lines += [f"{d.request}: no VM named {d.request}" + (f" and none with SMBIOS UUID {d.uuid}" if d.uuid else "")
                  + (f"; the provider recorded node {d.recorded} ({d.recorded_from})" if d.recorded else ""),
                  "  " + _failure(d)]
    return problem(f"{len(gone)} stuck teardown(s) whose VM exists on no node: never created, or deleted "
                   "outside Omni", facts + _bounded(lines, "lines"))


@check("recovery.teardown_vm_moved",
       fix="Migrate the VM back to the node the provider recorded (the runbook offers that plan), and teardown "
           "proceeds on its next retry; or upgrade to a provider build that looks VMs up cluster-wide.")
def teardown_vm_moved(ev: Evidence, derived: Derived):
    ev.get("all_vms")
    late = _stuck(ev, derived)
    facts = [_scope(ev)]
    moved_ = moved(late)
    unknown_record = [f"{d.request}: VM {d.vm['vmid']} on {d.vm['node']}; the node the provider recorded is not "
                      "known (no node-pick line, no qmcreate task)" for d in late if d.vm is not None and not d.recorded]
    if not moved_:
        return ok("no stuck teardown's VM has left the node the provider recorded" if late else "no teardown is stuck",
                  facts + unknown_record)
    tasks = ev.optional("tasks") or []
    lines = []
    for d in moved_:
        lines.append(f"{d.request}: VM {d.vm['vmid']} ({d.vm['status']}) is on {d.vm['node']}; the provider "
                     f"recorded {d.recorded} ({d.recorded_from}) and addresses /nodes/{d.recorded}/qemu/{d.vm['vmid']}")
        for t in tasks:
            if t["type"] == TASK_MIGRATE and t["id"] == str(d.vm["vmid"]):
                lines.append(f"  Proxmox task {t['type']} of VM {t['id']} on {t['node']} by {t['user']}: "
                             f"{t['status'] or 'running'}")
        lines.append("  " + _failure(d))
    return problem(f"{len(moved_)} stuck teardown(s) whose VM was moved to another node than the provider recorded",
                   facts + _bounded(lines, "lines") + unknown_record)


@check("recovery.orphan_vm",
       fix="Check that nothing still needs the VM (no MachineRequest names it, no Omni machine has its UUID), "
           "then stop and destroy it with its disks (the runbook offers that plan, showing name, VMID, node, "
           "disks and sizes first).")
def orphan_vm(ev: Evidence, derived: Derived):
    made = [vm for vm in ev.get("all_vms") if request_set_of(vm.get("tags"))]
    orphans = orphan_vms(ev, derived(drift))
    configs = ev.optional("vm_configs") or {}
    facts = [f"{len(made)} VM(s) carry the provider's machine-request.<set> tag; {_scope(ev)}"]
    if not orphans:
        return ok("every VM the provider made belongs to a machine request", facts)
    lines = []
    for vm, uuid in orphans:
        cfg = configs.get(str(vm["vmid"])) or {}
        sizes = disk_list(cfg.get("disks") or {})
        lines.append(f"VM {vm['vmid']} {vm['name']} on {vm['node']} ({vm['status']}), set "
                     f"{request_set_of(vm['tags'])}, SMBIOS UUID {uuid or '?'}: no MachineRequest {vm['name']}; "
                     f"memory {gib(vm.get('maxmem'))}, disks: {sizes or gib(vm.get('maxdisk'))}")
    return problem(f"{len(orphans)} VM(s) made by the provider have no machine request any more", facts + _bounded(lines))


@check("recovery.request_vm_missing",
       fix="The machine's VM is gone while its request still runs: Omni keeps counting the machine. Scale the "
           "machine set down (or delete the machine from the cluster) so the request is torn down, and check "
           "recovery.teardown_* afterwards; the provider does not re-create a VM for a provisioned request.")
def request_vm_missing(ev: Evidence, derived: Derived):
    ev.get("all_vms")
    rows = derived(drift)
    gone = [d for d in rows if not d.teardown and d.provisioned and d.vm is None]
    facts = [f"{sum(1 for d in rows if not d.teardown and d.provisioned)} provisioned request(s); {_scope(ev)}"]
    if not gone:
        return ok("every provisioned request has its VM", facts)
    machines = ev.optional("machines") or {}
    lines = []
    for d in gone:
        m = machines.get(d.uuid)
        held = (f"Omni still has machine {d.uuid} ({'connected' if m['connected'] else 'disconnected'})" if m
                else f"machine {d.uuid or '?'}")
        lines.append(f"{d.request}: provisioned, no VM named {d.request}" +
                     (f" and none with SMBIOS UUID {d.uuid}" if d.uuid else "") + f"; {held}")
    return problem(f"{len(gone)} provisioned request(s) whose VM exists on no node", facts + _bounded(lines))


@check("recovery.link_orphan",
       fix="While the provider runs and is connected, delete the Link (`omnictl delete link <id>`; the runbook "
           "offers that plan): a Machine is read-only, the Link is what a user deletes, and the provider's "
           "finalizers are only released by the running provider.")
def link_orphan(ev: Evidence, derived: Derived):
    """A Link whose Machine is gone, or has been tearing down past the limit.

    A Link without a Machine is also what a node that registered but never brought its tunnel up
    leaves (Omni makes the Machine once it connects): such a Link is claimed by a request that is
    not tearing down and whose VM exists, and is not an orphan (provisioning.vm_cannot_reach_omni).
    """
    links, machines = ev.get("links"), ev.get("machines")
    found, unsure = orphan_links(ev, lambda: derived(drift))
    orphans = [line for _, line in found]
    if orphans and not provider_connected(ev):
        unsure.append("no plan is offered: the provider is not connected to Omni, and deleting a Link while it "
                      "is down leaves a provider-owned machine half-deleted (siderolabs/docs issue 661)")
    facts = [f"{len(links)} Link(s), {len(machines)} Machine(s)"]
    if orphans:
        return problem(f"{len(orphans)} Link(s) whose machine is gone or stuck tearing down",
                       facts + _bounded(orphans) + unsure)
    if unsure:
        return unknown("Links without a Machine, and the requests or VMs that could claim them were not read",
                       facts + unsure)
    return ok("every Link has a live Machine, or a live request whose VM is still joining", facts)
