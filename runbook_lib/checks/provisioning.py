"""Machine provisioning (guide: "Machine Provisioning Issues"): one check per ``provisioning.*`` id.

Evidence names (filled by :mod:`runbook_lib.gather.provisioning`; times are Unix seconds):

``expected``                 ``provider_id``, and the limits: ``vm_grace``, ``join_grace``, ``stuck_after``,
                             ``task_stuck_after`` (seconds), ``min_talos_version``
``now``                      when the evidence was gathered (ages are counted from it)
``machine_classes``          auto-provision classes: ``id``, ``providerid``, ``providerdata`` (the YAML text)
``infraproviders``           ids of the infra providers Omni knows
``machine_requests``         this provider's requests: ``id``, ``set``, ``created``, ``phase``, ``talosversion``
``request_statuses``         request id -> ``uuid``, ``stage`` (0-3), ``status``, ``error``, ``updated``
``cluster_request_statuses`` request id -> ``stage`` (0-5), ``status``, ``error``, ``machineuuid``, ``updated``
``machine_statuses``         machine id -> ``connected``, ``talosversion``, ``addresses``, ``maintenance``,
                             ``lasterror``, ``cluster``
``machines`` / ``links``     machine id -> ``connected`` (links also ``lastendpoint``)
``cluster_machine_statuses`` machine id -> ``stage``, ``configapplystatus``, ``lastconfigerror``
``pve_version``              the Proxmox VE version
``node_status``              online node -> ``cpus``, ``cpu``, ``mem_total``, ``mem_used``, ``mem_available``
                             (from ``/nodes/{node}/status``; ``error`` when it could not be read)
``node_storage``             online node -> ``/nodes/{node}/storage`` rows (``storage``, ``type``, ``content``,
                             ``enabled``, ``active``, ``avail``, ``total``)
``vms``                      VM name -> ``vmid``, ``node``, ``status``, ``lock``, ``uptime``, ``uuid`` for the
                             provider's VMs (named after a request or tagged ``machine-request.*``)
``tasks``                    Proxmox tasks still running or failed: ``node``, ``upid``, ``type``, ``id``,
                             ``user``, ``status``, ``starttime``, ``endtime``
``provider_user``            the Proxmox user or token the provider logs in as (from its config.yaml)
``permissions``              ``who``, ``via``, ``paths`` (``/access/permissions`` as Proxmox answered it)
``provision_log``            the provider's log since its last start: ``failures`` (request, step, count,
                             error, last), ``lines``, ``window``
``provider_addresses``       the provider host's addresses (CIDR), from ``ip -j addr``
``agent_addresses``          VM name -> addresses its guest agent reports (VMs Omni has no address for)
``talos_probes``             VM name -> ``address``, ``ports`` {port: ``ok`` | ``refused`` | ``timeout`` | ...},
                             ``lines`` (what ``nc -z -v`` printed on the provider host)
"""

from __future__ import annotations

from ..evidence import Evidence
from ..model.ages import human_age, version_tuple
from ..model.capacity import capacity
from ..model.join import STILL_BEING_MADE, join_chain, waiting_to_join
from ..model.machineclass import GIB, class_problems, parse_providerdata
from ..model.network import same_segment
from ..model.omni import CONFIG_APPLY_FAILED, MACHINE_STAGES, REQUEST_FAILED, stage_name
from ..model.privileges import missing_privileges
from ..model.storage import content_types, usable
from ..model.talos import judge_ports
from . import Derived, check, derive, ok, problem, skipped, unknown

DEFAULTS = {"vm_grace": 120, "join_grace": 600, "stuck_after": 900, "task_stuck_after": 600,
            "min_talos_version": "1.5.0"}
MAX_LINES = 12  # evidence lines per finding; the record has the whole tables


def limits(ev: Evidence) -> dict:
    return {**DEFAULTS, **(ev.optional("expected") or {})}


@derive("provisioning")
def joins(ev: Evidence):
    """The join chain (requests, their VMs, their machines): built once per run."""
    ev.get("machine_requests")
    ev.get("vms")
    return join_chain(ev.optional)


def _bounded(lines: list[str], what: str = "more") -> list[str]:
    if len(lines) <= MAX_LINES:
        return lines
    return lines[:MAX_LINES] + [f"... and {len(lines) - MAX_LINES} {what}"]


def _active(derived: Derived):
    return [r for r in derived(joins) if not r.torn_down]


def _log_failures(ev: Evidence, needle: str = "") -> list[str]:
    log = ev.optional("provision_log") or {}
    return [f"provider log: {f['request']} step {f['step']} failed {f['count']}x: {f['error']}"
            for f in log.get("failures", []) if needle.lower() in str(f.get("error", "")).lower()]


def _classes(ev: Evidence) -> list[dict]:
    want = ev.get("expected")["provider_id"]
    return [c for c in ev.get("machine_classes") if c.get("providerid") == want]


# ------------------------------------------------------------------------------------ symptoms

@check("provisioning.no_vms",
       fix="Read the failing step in the provider's log (`machine provision failed`) and fix its cause; "
           "if the provider logs nothing for the request, check that it runs and is registered "
           "(`runbook run provider`).")
def no_vms(ev: Evidence, derived: Derived):
    ev.get("machine_requests")
    ev.get("vms")
    grace = limits(ev)["vm_grace"]
    active = _active(derived)
    if not active:
        classes = [c["id"] for c in ev.optional("machine_classes") or []]
        return ok("Omni has requested no machine from the provider",
                  [f"machine classes: {', '.join(classes) or 'none'}; machine requests: none"])
    missing = [r for r in active if not r.vm_status and (r.age is None or r.age >= grace)]
    facts = [f"{len(active)} machine request(s), {sum(1 for r in active if r.vm_status)} with a VM of that name in Proxmox"]
    if missing:
        lines = [f"{r.request} (set {r.request_set or '?'}, {human_age(r.age)} old): no VM named {r.request}; "
                 f"request status: {r.status or r.cluster_stage or 'none'}" for r in missing]
        return problem(f"{len(missing)} machine request(s) have no VM in Proxmox",
                       facts + _bounded(lines, "requests") + _bounded(_log_failures(ev), "log lines"))
    return ok("every machine request has its VM in Proxmox", facts)


@check("provisioning.stuck",
       fix="Follow the request from the oldest stage it stands in: no VM (provisioning.no_vms and the provider's "
           "failing step), a VM that does not run, or a VM that runs but whose machine never joined Omni "
           "(provisioning.vm_cannot_reach_omni, provisioning.firewall).")
def stuck(ev: Evidence, derived: Derived):
    """Stuck means: requested longer ago than the limit, and its machine has never joined Omni.

    Whatever the stage in between (no status yet, PROVISIONING, PROVISIONED, FAILED): for the
    operator the machine is missing until it joins. A machine that joined and later lost its
    connection is not stuck (the cluster and health findings report a lost connection).
    """
    ev.get("machine_requests")
    limit = limits(ev)["stuck_after"]
    late = []
    for r in derived(joins):
        if not waiting_to_join(r) or r.age is None or r.age <= limit:
            continue
        where = ("no VM yet" if not r.vm_status else f"VM {r.vmid} {r.vm_status}" +
                 (", its machine never joined Omni" if r.vm_status == "running" else ""))
        late.append(f"{r.request}: requested {human_age(r.age)} ago, request status {r.stage or 'none'}"
                    + (f" ('{r.status}')" if r.status else "") + f"; {where}"
                    + (f"; cluster request {r.cluster_stage}" if r.cluster_stage else ""))
    if late:
        return problem(f"{len(late)} machine request(s) not joined {human_age(limit)} after they were made",
                       _bounded(late, "requests"))
    waiting = [r for r in derived(joins) if waiting_to_join(r)]
    fact = (f"{len(waiting)} of {len(derived(joins))} request(s) still waiting, the oldest made "
            f"{human_age(max(r.age or 0 for r in waiting))} ago" if waiting
            else f"{len(derived(joins))} request(s), every machine joined Omni")
    return ok(f"no machine request has waited more than {human_age(limit)} for its machine to join", [fact])


# ------------------------------------------------------------------------------- VMs not created

@check("provisioning.insufficient_resources",
       fix="Free CPU, memory or pool space on a node (stop or move VMs, grow the pool), add a node, or "
           "shrink the machine class (cores, memory, disk_size).")
def insufficient_resources(ev: Evidence):
    classes = _classes(ev)
    node_status = ev.get("node_status")
    fits = capacity(classes, node_status, ev.get("node_storage"))
    if not fits:
        return skipped("no machine class of this provider states cores, memory and disk_size")
    verdicts, details, short = [], [], []
    for class_id, nodes in fits.items():
        if not nodes:
            short.append(class_id)
            verdicts.append(f"class {class_id}: no online node to place it on")
            continue
        need = nodes[0]
        wants = f"{need.cpu_need} cores, {need.mem_need / GIB:.1f} GiB memory, {need.disk_need / GIB:.0f} GiB disk"
        if any(n.fits for n in nodes):
            verdicts.append(f"class {class_id} ({wants}) fits on {', '.join(n.node for n in nodes if n.fits)}")
        else:
            short.append(class_id)
            verdicts.append(f"class {class_id} ({wants}) fits nowhere: "
                            + "; ".join(f"{n.node} short of {', '.join(n.short)}" for n in nodes))
        details += [f"{class_id} on {n.line()}" for n in nodes]
    if short:
        return problem(f"no online node can host a VM of class {', '.join(short)}",
                       verdicts + details + _bounded(_log_failures(ev), "log lines"))
    return ok("every machine class fits on at least one node", verdicts + details)


@check("provisioning.machineclass_invalid",
       fix="Edit the machine class: autoprovision.providerid must be the provider's --id and providerdata must "
           "be YAML with snake_case keys cores, memory (MiB, >= 2048), disk_size (GiB, >= 5) and "
           "storage_selector; apply it again with omnictl.")
def machineclass_invalid(ev: Evidence):
    classes = ev.get("machine_classes")
    providers = ev.get("infraproviders")
    if not classes:
        return skipped("Omni has no auto-provision machine class")
    bad, classes_bad = [], set()
    for cls in classes:
        for why in class_problems(cls, providers, (ev.optional("expected") or {}).get("provider_id", "")):
            bad.append(f"machine class {cls['id']}: {why}")
            classes_bad.add(cls["id"])
    if bad:
        return problem(f"{len(classes_bad)} machine class(es) cannot be provisioned", bad)
    return ok(f"{len(classes)} auto-provision class(es) name a known provider and give every required setting",
              [f"machine class {c['id']}: provider {c.get('providerid')}" for c in classes])


@check("provisioning.permission_denied",
       fix="Grant the provider's Proxmox user the missing privileges, e.g. `pveum role add OmniProvider "
           "-privs \"...\"` then `pveum acl modify / -user <user> -role OmniProvider` (a token with privilege "
           "separation needs the ACL on the token too).")
def permission_denied(ev: Evidence):
    perms = ev.get("permissions")
    missing = missing_privileges(perms.get("paths") or {}, ev.optional("pve_version"))
    facts = [f"GET /access/permissions for {perms.get('who') or '?'} ({perms.get('via')})"]
    if missing:
        lines = [f"missing {' or '.join(privs)} on {path}: needed to {why}" for path, privs, why in missing]
        return problem(f"the provider's Proxmox user {perms.get('who') or ''} lacks {len(missing)} privilege(s)",
                       facts + lines + _bounded(_log_failures(ev, "not authorized"), "log lines"))
    return ok("the provider's Proxmox user holds every privilege provisioning needs", facts)


@check("provisioning.no_iso_storage",
       fix="Enable `ISO image` content on a storage every node can use (Datacenter > Storage > Edit > "
           "Content), e.g. `pvesm set local --content iso,vztmpl,backup`.")
def no_iso_storage(ev: Evidence):
    storages = ev.get("node_storage")
    pinned = {c.get("node") for c in _pinned(ev)}
    nodes = sorted(n for n in storages if not pinned or n in pinned)
    facts, lacking = [], []
    for node in nodes:
        iso = [s["storage"] for s in storages[node] if "iso" in content_types(s) and usable(s)]
        facts.append(f"{node}: {', '.join(iso) or 'no enabled, active storage with iso content'}")
        if not iso:
            lacking.append(node)
    if not nodes:
        return unknown("no online node's storage could be read")
    if lacking:
        return problem(f"node(s) {', '.join(lacking)} have no storage for the Talos ISO (uploadISO fails there)",
                       facts + _bounded(_log_failures(ev, "failed to get storage"), "log lines"))
    return ok("every node has an enabled storage that holds ISO images", facts)


def _pinned(ev: Evidence) -> list[dict]:
    out = []
    for cls in _classes(ev):
        data, _ = parse_providerdata(cls.get("providerdata"))
        if data and data.get("node"):
            out.append({"class": cls["id"], "node": str(data["node"])})
    return out


@check("provisioning.step_failed",
       fix="Fix the error of the failing step (the provider retries it every minute): pickNode is node "
           "access, uploadISO the ISO storage, syncVM the VM settings and storage, startVM the VM start.")
def step_failed(ev: Evidence):
    log = ev.optional("provision_log")
    statuses = ev.optional("request_statuses") or {}
    if log is None and not ev.has("request_statuses"):
        return unknown("neither the provider's log nor the request statuses could be read",
                       [ev.error("provision_log") or "", ev.error("request_statuses") or ""])
    lines = []
    for f in (log or {}).get("failures", []):
        if f["count"] >= 2:
            lines.append(f"{f['request']}: step {f['step']} failed {f['count']} times since the provider started, "
                         f"last {human_age(f.get('ago'))} ago: {f['error']}")
    for rid, st in sorted(statuses.items()):
        if st.get("stage") == REQUEST_FAILED:
            lines.append(f"machinerequeststatus {rid}: stage FAILED, error: {st.get('error') or '-'}")
    facts = [f"scanned {log['lines']} provider log line(s) ({log.get('window', '')})"] if log else \
        [f"provider log not read: {ev.error('provision_log')}"]
    if lines:
        return problem("a provision step keeps failing", facts + _bounded(lines, "failures"))
    return ok("no provision step failed repeatedly", facts)


@check("provisioning.waiting_resources",
       fix="Let the running task finish or stop it (Proxmox task list, `qm unlock <vmid>` once nothing holds "
           "the lock); a download that never ends usually means the node cannot reach the image factory.")
def waiting_resources(ev: Evidence, derived: Derived):
    tasks = ev.get("tasks")
    now = ev.get("now")
    limit = limits(ev)["task_stuck_after"]
    vmids = {str(r.vmid) for r in derived(joins) if r.vmid is not None}
    user = str(ev.optional("provider_user") or "")
    lines = []
    for r in _active(derived):
        if r.lock:
            lines.append(f"VM {r.vmid} ({r.request}) on {r.node} is locked: lock={r.lock}")
    for t in tasks:
        mine = t.get("id") in vmids or (user and t.get("user", "").split("!")[0] == user.split("!")[0])
        running = t.get("status") == "running"
        old = (now - float(t.get("starttime") or now)) > limit
        if mine and running and old:
            lines.append(f"task {t['type']} {t.get('id') or ''} on {t['node']} by {t.get('user')} running for "
                         f"{human_age(now - float(t['starttime']))}: {t['upid']}")
    if lines:
        return problem("provisioning waits on a Proxmox lock or task", _bounded(lines, "more"))
    running = sum(1 for t in tasks if t.get("status") == "running")
    return ok("no provider VM is locked and no task of the provider has been running long",
              [f"{running} task(s) running on the cluster's nodes"])


# ----------------------------------------------------------------------------- not registering

@check("provisioning.vm_not_running",
       fix="Start the VM in Proxmox (`qm start <vmid>`) and read the start task's log if it fails; the "
           "provider also retries startVM.")
def vm_not_running(ev: Evidence, derived: Derived):
    ev.get("vms")
    with_vm = [r for r in _active(derived) if r.vm_status]
    down = [r for r in with_vm if r.vm_status != "running" and r.lock not in STILL_BEING_MADE]
    if down:
        tasks = {}
        for t in ev.optional("tasks") or []:  # oldest first: the last one per VM wins
            if t.get("status") not in ("running", "OK"):
                tasks[t.get("id")] = t
        lines = []
        for r in down:
            lines.append(f"VM {r.vmid} {r.request} on {r.node}: {r.vm_status}" + (f", lock {r.lock}" if r.lock else ""))
            if (t := tasks.get(str(r.vmid))) is not None:
                lines.append(f"  last failed task {t['type']} ({t['upid']}): {t['status']}")
        return problem(f"{len(down)} provider VM(s) exist but do not run", _bounded(lines, "lines"))
    if not with_vm:
        return skipped("the provider has no VM yet")
    return ok(f"all {len(with_vm)} provider VM(s) run")


def _running_vms(derived: Derived):
    return [r for r in _active(derived) if r.vm_status == "running"]


@check("provisioning.l2_adjacency",
       fix="Put the Talos VMs on the provider host's segment (the class's network_bridge/vlan), or move "
           "the provider next to them: SideroLink needs them on one layer-2 network.")
def l2_adjacency(ev: Evidence, derived: Derived):
    host = ev.get("provider_addresses")
    vms = [r for r in _running_vms(derived) if r.addresses]
    if not _running_vms(derived):
        return skipped("no provider VM runs")
    if not vms:
        return unknown("no running VM's address is known (Omni has none, the guest agent gave none)")
    host_line = f"provider host (ip -j addr): {', '.join(host) or 'no global address'}"
    apart, together = [], []
    for r in vms:
        line = f"{r.request}: {', '.join(r.addresses)} (from {r.address_source})"
        (apart if same_segment(host, r.addresses) is False else together).append(line)
    if apart:
        return problem(f"{len(apart)} VM(s) are not on the provider host's network segment",
                       [host_line] + [f"{line}: another segment" for line in apart]
                       + _bounded([f"{line}: same segment" for line in together], "VMs"))
    return ok("the provider host shares a network with every running VM", _bounded([host_line] + together))


@check("provisioning.talos_version",
       fix="Boot the version Omni expects: set the cluster's Talos version (and so the requests') to one "
           "Omni supports, and let the provider re-create the VM with the matching ISO.")
def talos_version(ev: Evidence, derived: Derived):
    ev.get("machine_statuses")
    floor = version_tuple(limits(ev)["min_talos_version"])
    seen, bad = [], []
    for r in _active(derived):
        have = version_tuple(r.talos_version)
        if have is None:
            continue
        want = version_tuple(r.talos_wanted)
        line = f"{r.request}: boots Talos {r.talos_version}, request asks for {r.talos_wanted or '-'}"
        seen.append(line)
        if floor and have < floor:
            bad.append(line + f" (Omni accepts {'.'.join(map(str, floor))} and later)")
        elif want and have[:2] != want[:2]:
            bad.append(line + " (the ISO is not the requested version)")
    if bad:
        return problem(f"{len(bad)} machine(s) boot a Talos version Omni does not accept", bad)
    if not seen:
        return skipped("no provider machine has reported its Talos version to Omni yet")
    return ok("every provider machine boots the requested Talos version", _bounded(seen))


@check("provisioning.firewall",
       fix="Open TCP 50000 (every node) and 50001 (control planes) from the provider host to the VMs: the "
           "Proxmox firewall on the VM's NIC (the provider creates net0 with firewall=1), the node's or a "
           "network firewall in between. A time-out means packets are dropped, a refusal of 50000 a REJECT rule.")
def firewall(ev: Evidence, derived: Derived):
    """Judge each probed node by its role: apid (50000) must answer everywhere, trustd (50001)
    on control planes only; a worker refusing 50001 is how Talos is built."""
    probes = ev.get("talos_probes")
    if not probes:
        return skipped("no running provider VM with a known address to probe")
    known = {r.request: r for r in derived(joins)} if ev.has("machine_requests") else {}  # unknown role: 50000 only
    answered, blocked, failed, down = [], [], [], []
    for name, p in sorted(probes.items()):
        if p.get("error"):
            failed.append(f"{name} {p.get('address')}: {p['error']}")
            continue
        row = known.get(name)
        judged = judge_ports(row.role if row else "", p["ports"])
        role = judged.role or "role not known yet (judged on 50000)"
        line = f"{name} ({role}) at {p['address']}, nc -z from the provider host: {judged.describe()}"
        if judged.nobody_there and row is not None and not row.connected:
            down.append(line + "; Omni does not hear from it either: the node itself is down, not filtered")
        else:
            (answered if judged.reachable else blocked).append(line)
    if blocked:
        return problem(f"Talos ports do not answer from the provider host on {len(blocked)} VM(s)",
                       _bounded(blocked + down + failed + answered))
    if failed and not answered and not down:
        return unknown("the Talos ports could not be probed from the provider host", failed)
    summary = "every probed VM answers on the Talos ports its role serves"
    if down:
        summary = f"no firewall seen; {len(down)} node(s) answer nothing at all (down, see the cluster findings)"
    return ok(summary, _bounded(down + answered + failed))


@check("provisioning.bootstrap_failed",
       fix="Open the VM console in Proxmox and `omnictl get machinestatus <id> -o yaml`; fix the reported "
           "error (install disk, config) and reset the machine.")
def bootstrap_failed(ev: Evidence, derived: Derived):
    statuses = ev.get("machine_statuses")
    cms = ev.optional("cluster_machine_statuses") or {}
    mine = {r.uuid: r.request for r in _active(derived) if r.uuid}
    bad, failed = [], set()
    for uuid, request in sorted(mine.items(), key=lambda kv: kv[1]):
        ms = statuses.get(uuid) or {}
        if ms.get("lasterror"):
            bad.append(f"{request} ({uuid}): machine status lasterror: {ms['lasterror']}")
            failed.add(uuid)
        cm = cms.get(uuid) or {}
        if cm.get("configapplystatus") == CONFIG_APPLY_FAILED or cm.get("lastconfigerror"):
            stage = stage_name(MACHINE_STAGES, cm.get("stage"))
            bad.append(f"{request} ({uuid}): cluster machine stage {stage}, config apply FAILED: "
                       f"{cm.get('lastconfigerror') or '-'}")
            failed.add(uuid)
    if bad:
        return problem(f"Talos on {len(failed)} machine(s) came up but did not bootstrap", bad)
    if not any(uuid in statuses for uuid in mine):
        return skipped("no provider machine has reached Omni yet")
    return ok("no provider machine reports an install or configuration error")


@check("provisioning.vm_cannot_reach_omni",
       fix="From the VM's network, check the route to Omni's SideroLink endpoints (UDP 50180 WireGuard, TCP "
           "8090 machine API): DNS, default gateway, firewall; the VM console shows the join attempts.")
def vm_cannot_reach_omni(ev: Evidence, derived: Derived):
    """A running VM whose machine never joined Omni. "Never" rests on Omni's history
    (:mod:`runbook_lib.model.join`): a machine that was there and lost its connection is not this."""
    ev.get("machine_statuses")
    ev.get("links")
    grace = limits(ev)["join_grace"]
    running = _running_vms(derived)
    if not running:
        return skipped("no provider VM runs")
    lonely, lost = [], []
    for r in running:
        if r.connected:
            continue
        if r.joined:
            lost.append(f"{r.request}: not connected now, but {'; '.join(r.history)}: a lost connection "
                        "(see the cluster and health findings)")
            continue
        waited = r.vm_uptime if r.vm_uptime else r.status_age
        if waited is not None and waited < grace:
            continue
        link = "no Link" if r.link_connected is None else "a Link that never reported an endpoint"
        lonely.append(f"{r.request} (VM {r.vmid}, up {human_age(r.vm_uptime)}, machine {r.uuid or '?'}): Omni has "
                      f"{link}, no Talos version read and no cluster for it; cluster request {r.cluster_stage or '-'}")
    if lonely:
        return problem(f"{len(lonely)} running VM(s) never joined Omni", _bounded(lonely + lost))
    return ok(f"every running provider VM joined Omni ({len(running)})", _bounded(lost))
