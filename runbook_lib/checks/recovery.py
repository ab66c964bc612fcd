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

import weakref
from dataclasses import dataclass, field

from ..evidence import Evidence
from ..fixes import PATH, Change, Plan
from ..model.ages import age, human_age
from ..model.omni import REQUEST_PROVISIONED, TEARING_DOWN
from ..model.recovery import (
    CLUSTER_REQUEST_DEPROVISIONING,
    TASK_MIGRATE,
    TEARDOWN_STATUS,
    disks,
    provision_finalizer,
    recorded_node,
    request_set_of,
)
from ..verdict import Finding
from . import check, ok, problem, unknown

DEFAULTS = {"teardown_after": 900, "link_after": 600}
MAX_LINES = 12
CLUSTER_REQUEST_PROVISIONED = 3


def limits(ev: Evidence) -> dict:
    return {**DEFAULTS, **(ev.optional("expected") or {})}


@dataclass
class Drift:
    """One machine request of the provider, with its VM looked up cluster-wide."""

    request: str
    set: str = ""
    phase: str = "running"
    finalizers: list = field(default_factory=list)
    teardown: bool = False  # tearing down, or Omni waits for the provider's teardown
    teardown_age: float | None = None
    cluster_status: str = ""
    stage: int | None = None  # MachineRequestStatus stage
    cluster_stage: int | None = None
    uuid: str = ""
    vm: dict | None = None  # the VM found (by name, else by SMBIOS UUID), on whatever node
    found_by: str = ""
    recorded: str = ""  # the node the provider recorded
    recorded_from: str = ""
    failure: dict | None = None  # the provider's last 'reconcile failed' for the request

    @property
    def provisioned(self) -> bool:
        return self.stage == REQUEST_PROVISIONED or self.cluster_stage == CLUSTER_REQUEST_PROVISIONED


_DRIFT: "weakref.WeakKeyDictionary[Evidence, list]" = weakref.WeakKeyDictionary()


def vm_uuids(ev: Evidence) -> dict[str, dict]:
    """SMBIOS UUID -> VM, for the VMs whose config was read."""
    configs = ev.optional("vm_configs") or {}
    out = {}
    for vm in ev.optional("all_vms") or []:
        uuid = (configs.get(str(vm["vmid"])) or {}).get("uuid")
        if uuid:
            out[uuid] = vm
    return out


def drift(ev: Evidence) -> list[Drift]:
    """Every request of the provider followed to its VM, computed once per evidence object."""
    cached = _DRIFT.get(ev)
    if cached is not None:
        return cached
    requests, vms = ev.get("machine_requests"), ev.optional("all_vms") or []
    now = ev.optional("now", 0.0)
    statuses = ev.optional("request_statuses") or {}
    cluster = ev.optional("cluster_request_statuses") or {}
    log = ev.optional("provider_log") or {}
    tasks = ev.optional("tasks") or []
    by_name = {vm["name"]: vm for vm in vms}
    by_uuid = vm_uuids(ev)
    errors = {k: v.get("error", "") for k, v in (log.get("failures") or {}).items()}
    rows = []
    for req in requests:
        d = Drift(request=req["id"], set=req.get("set", ""), phase=req.get("phase", "running"),
                  finalizers=list(req.get("finalizers") or []))
        st, cst = statuses.get(d.request) or {}, cluster.get(d.request) or {}
        d.stage, d.cluster_stage = st.get("stage"), cst.get("stage")
        d.uuid = st.get("uuid") or cst.get("machineuuid") or ""
        d.cluster_status = cst.get("status", "")
        waiting = cst.get("stage") == CLUSTER_REQUEST_DEPROVISIONING or cst.get("status") == TEARDOWN_STATUS
        d.teardown = d.phase == TEARING_DOWN or waiting
        if d.teardown:
            since = [t for t in ((req.get("updated") if d.phase == TEARING_DOWN else None),
                                 (cst.get("updated") if waiting else None)) if t]
            d.teardown_age = age(now, min(since)) if since else None
        if d.request in by_name:
            d.vm, d.found_by = by_name[d.request], "name"
        elif d.uuid and d.uuid in by_uuid:
            d.vm, d.found_by = by_uuid[d.uuid], "SMBIOS UUID"
        d.recorded, d.recorded_from = recorded_node(d.request, (d.vm or {}).get("vmid"), log.get("picks") or {},
                                                    tasks, errors)
        d.failure = (log.get("failures") or {}).get(d.request)
        rows.append(d)
    _DRIFT[ev] = rows
    return rows


def stuck(ev: Evidence) -> list[Drift]:
    limit = limits(ev)["teardown_after"]
    return [d for d in drift(ev) if d.teardown and d.teardown_age is not None and d.teardown_age > limit]


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
def teardown_stuck(ev: Evidence):
    rows = drift(ev)
    limit = limits(ev)["teardown_after"]
    tearing = [d for d in rows if d.teardown]
    if not tearing:
        return ok("no machine request of the provider is tearing down", [f"{len(rows)} machine request(s)"])
    late = stuck(ev)
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
def teardown_vm_missing(ev: Evidence):
    ev.get("all_vms")
    late = stuck(ev)
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
def teardown_vm_moved(ev: Evidence):
    ev.get("all_vms")
    late = stuck(ev)
    facts = [_scope(ev)]
    moved = moved_vms(ev)
    unknown_record = [f"{d.request}: VM {d.vm['vmid']} on {d.vm['node']}; the node the provider recorded is not "
                      "known (no node-pick line, no qmcreate task)" for d in late if d.vm is not None and not d.recorded]
    if not moved:
        return ok("no stuck teardown's VM has left the node the provider recorded" if late else "no teardown is stuck",
                  facts + unknown_record)
    tasks = ev.optional("tasks") or []
    lines = []
    for d in moved:
        lines.append(f"{d.request}: VM {d.vm['vmid']} ({d.vm['status']}) is on {d.vm['node']}; the provider "
                     f"recorded {d.recorded} ({d.recorded_from}) and addresses /nodes/{d.recorded}/qemu/{d.vm['vmid']}")
        for t in tasks:
            if t["type"] == TASK_MIGRATE and t["id"] == str(d.vm["vmid"]):
                lines.append(f"  Proxmox task {t['type']} of VM {t['id']} on {t['node']} by {t['user']}: "
                             f"{t['status'] or 'running'}")
        lines.append("  " + _failure(d))
    return problem(f"{len(moved)} stuck teardown(s) whose VM was moved to another node than the provider recorded",
                   facts + _bounded(lines, "lines") + unknown_record)


@check("recovery.orphan_vm",
       fix="Check that nothing still needs the VM (no MachineRequest names it, no Omni machine has its UUID), "
           "then stop and destroy it with its disks (the runbook offers that plan, showing name, VMID, node, "
           "disks and sizes first).")
def orphan_vm(ev: Evidence):
    made = [vm for vm in ev.get("all_vms") if request_set_of(vm.get("tags"))]
    orphans = orphan_vms(ev)
    configs = ev.optional("vm_configs") or {}
    facts = [f"{len(made)} VM(s) carry the provider's machine-request.<set> tag; {_scope(ev)}"]
    if not orphans:
        return ok("every VM the provider made belongs to a machine request", facts)
    lines = []
    for vm, uuid in orphans:
        cfg = configs.get(str(vm["vmid"])) or {}
        sizes = ", ".join(f"{d['key']} {d['volume']} {_gib(d['bytes'])}" for d in disks(cfg.get("disks") or {}))
        lines.append(f"VM {vm['vmid']} {vm['name']} on {vm['node']} ({vm['status']}), set "
                     f"{request_set_of(vm['tags'])}, SMBIOS UUID {uuid or '?'}: no MachineRequest {vm['name']}; "
                     f"memory {_gib(vm.get('maxmem'))}, disks: {sizes or _gib(vm.get('maxdisk'))}")
    return problem(f"{len(orphans)} VM(s) made by the provider have no machine request any more", facts + _bounded(lines))


def orphan_vms(ev: Evidence) -> list[tuple[dict, str]]:
    """(VM, its SMBIOS UUID) for every VM with the provider's tag that no request owns, by name or UUID."""
    requests = {r["id"] for r in ev.get("machine_requests")}
    uuids = {d.uuid for d in drift(ev) if d.uuid}
    configs = ev.optional("vm_configs") or {}
    out = []
    for vm in ev.get("all_vms"):
        if not request_set_of(vm.get("tags")):
            continue
        uuid = (configs.get(str(vm["vmid"])) or {}).get("uuid", "")
        if vm["name"] not in requests and not (uuid and uuid in uuids):
            out.append((vm, uuid))
    return out


def _gib(n) -> str:
    return f"{n / (1 << 30):g} GiB" if isinstance(n, (int, float)) and n else "?"


@check("recovery.request_vm_missing",
       fix="The machine's VM is gone while its request still runs: Omni keeps counting the machine. Scale the "
           "machine set down (or delete the machine from the cluster) so the request is torn down, and check "
           "recovery.teardown_* afterwards; the provider does not re-create a VM for a provisioned request.")
def request_vm_missing(ev: Evidence):
    ev.get("all_vms")
    rows = drift(ev)
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
def link_orphan(ev: Evidence):
    """A Link whose Machine is gone, or has been tearing down past the limit.

    A Link without a Machine is also what a node that registered but never brought its tunnel up
    leaves (Omni makes the Machine once it connects): such a Link is claimed by a request that is
    not tearing down and whose VM exists, and is not an orphan (provisioning.vm_cannot_reach_omni).
    """
    links, machines = ev.get("links"), ev.get("machines")
    found, unsure = orphan_links(ev)
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


def orphan_links(ev: Evidence) -> tuple[list[tuple[str, str]], list[str]]:
    """([(Link id, why)], [lines about Links that could not be judged])."""
    links, machines = ev.get("links"), ev.get("machines")
    now = ev.optional("now", 0.0)
    lim = limits(ev)
    statuses = ev.optional("machine_statuses") or {}
    claimed = {d.uuid for d in drift(ev) if d.uuid and not d.teardown and d.vm is not None} \
        if ev.has("machine_requests") and ev.has("all_vms") else None
    orphans, unsure = [], []
    for mid, link in sorted(links.items()):
        m = machines.get(mid)
        link_age = age(now, link.get("created"))
        if m is None and (link_age is None or link_age > lim["link_after"]):
            line = (f"Link {mid}: no Machine {mid} ({'connected' if link['connected'] else 'disconnected'}, "
                    f"last endpoint {link.get('lastendpoint') or 'none'}, {human_age(link_age)} old)")
            if claimed is None:
                unsure.append(line + "; whether a live request claims it is unknown (requests or VMs unread)")
            elif mid not in claimed:
                orphans.append((mid, line + "; no live request with a VM claims it"))
        elif m is not None and m.get("phase") == TEARING_DOWN:
            stuck_for = age(now, m.get("updated"))
            if stuck_for is not None and stuck_for > lim["teardown_after"]:
                req = (statuses.get(mid) or {}).get("request")
                known = {r["id"] for r in ev.optional("machine_requests") or []}
                orphans.append((mid, f"Link {mid}: its Machine has been tearing down for {human_age(stuck_for)} "
                               f"(finalizers [{', '.join(m.get('finalizers') or []) or 'none'}])"
                               + (f", made for request {req}" + ("" if req in known else " (gone)") if req else "")))
    return orphans, unsure


def provider_connected(ev: Evidence) -> bool:
    status = (ev.optional("provider_status") or {}).get(limits(ev).get("provider_id") or "")
    return bool(status and status.get("connected"))


def moved_vms(ev: Evidence) -> list[Drift]:
    """Stuck teardowns whose VM runs on another node than the one the provider recorded."""
    return [d for d in stuck(ev) if d.vm is not None and d.recorded and d.recorded != d.vm["node"]]


# ------------------------------------------------------------------------------------ the table

def drift_rows(ev: Evidence) -> list[dict]:
    """One row per machine request: Omni's view against Proxmox's (the notebook's table)."""
    try:
        rows = drift(ev)
    except Exception as exc:  # missing evidence: the verdict says why
        return [{"request": "-", "phase": f"not read: {exc}"}]
    return [{"request": d.request, "phase": d.phase, "finalizers": ", ".join(d.finalizers),
             "tearing down for": human_age(d.teardown_age) if d.teardown else "",
             "Omni says": d.cluster_status, "machine": d.uuid,
             "VM": f"{d.vm['vmid']} on {d.vm['node']} ({d.vm['status']})" if d.vm else "none on any node",
             "found by": d.found_by, "provider recorded": d.recorded, "recorded from": d.recorded_from,
             "provider's last teardown error": (d.failure or {}).get("error", "")} for d in rows]


# ------------------------------------------------------------------------------------ fix plans

def fix_plans(ev: Evidence, findings: list[Finding]) -> list[Plan]:
    """The guarded plans for this run's problems, each with its exact calls (none for a finding
    whose only remedy is drastic: a missing VM's stuck teardown)."""
    problems = {f.id for f in findings if f.status == "problem"}
    target = f"proxmox {limits(ev).get('cluster') or '?'}"
    plans = []
    if "recovery.teardown_vm_moved" in problems:
        changes = []
        for d in moved_vms(ev):
            vm = d.vm
            body = {"target": d.recorded, **({"online": 1} if vm["status"] == "running" else {})}
            changes.append(Change(target, "post", PATH, f"/nodes/{vm['node']}/qemu/{vm['vmid']}/migrate", body=body,
                                  why=f"VM {vm['vmid']} {vm['name']} back to {d.recorded}, where the provider's "
                                      f"teardown addresses it"))
        if changes:
            plans.append(Plan("recovery.teardown_vm_moved", f"migrate {len(changes)} VM(s) back to the node the "
                              "provider recorded", tuple(changes), ("recovery.teardown_vm_moved",),
                              note="touches only these VMs (a running VM migrates live; its disks must be on "
                                   "shared storage, else Proxmox refuses it and nothing changes); nothing in Omni "
                                   "is written. Once a VM is back, the provider's next teardown retry (about a "
                                   "minute) stops and deletes it, as Omni asked. Needs the site's fix token "
                                   "(VM.Migrate)."))
    if "recovery.link_orphan" in problems and provider_connected(ev):
        found, _ = orphan_links(ev)
        changes = [Change("omni", "delete", "Link", mid, why=why) for mid, why in found]
        if changes:
            plans.append(Plan("recovery.link_orphan", f"delete {len(changes)} Link(s) whose machine is gone or stuck",
                              tuple(changes), ("recovery.link_orphan",),
                              note="a Machine is read-only for users; deleting its Link lets Omni release the "
                                   "machine. Only offered while the provider is connected: its finalizers on a "
                                   "machine it owns are released by the running provider, else the machine is "
                                   "left half-deleted. omnictl waits until each Link is destroyed. A machine that "
                                   "comes back registers a new Link."))
    if "recovery.orphan_vm" in problems:
        changes = []
        configs = ev.optional("vm_configs") or {}
        for vm, uuid in orphan_vms(ev):
            path = f"/nodes/{vm['node']}/qemu/{vm['vmid']}"
            held = ", ".join(f"{d['key']} {d['volume']} {_gib(d['bytes'])}"
                             for d in disks((configs.get(str(vm["vmid"])) or {}).get("disks") or {})) or "no disk read"
            what = f"VM {vm['vmid']} {vm['name']} on {vm['node']} (SMBIOS UUID {uuid or '?'}; disks: {held})"
            if vm["status"] == "running":
                changes.append(Change(target, "post", PATH, path + "/status/stop", why=f"stop {what}"))
            changes.append(Change(target, "delete", PATH, path, body={"purge": 1, "destroy-unreferenced-disks": 1},
                                  why=f"destroy {what} with its disks"))
        if changes:
            plans.append(Plan("recovery.orphan_vm", "stop and destroy the provider's VMs no request owns, with their "
                              "disks", tuple(changes), ("recovery.orphan_vm",),
                              note="irreversible: the VMs and their disks are gone afterwards (back them up first "
                                   "if in doubt). Nothing in Omni refers to them (no MachineRequest of their name, "
                                   "no machine with their SMBIOS UUID). Needs the site's fix token (VM.PowerMgmt, "
                                   "VM.Allocate, Datastore.Allocate)."))
    return plans
