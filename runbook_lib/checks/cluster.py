"""Clusters (guide: "Cluster Issues"): one check per ``cluster.*`` id.

Creation and health: ``cluster.unhealthy`` is the symptom (the cluster status), the causes are a
machine class that does not exist, machine sets with fewer healthy machines than they ask for, and
etcd losing (or about to lose) quorum. Scaling: a manually allocated class that has no free
matching machines left, a Proxmox cluster without room for the machines the provider is asked for,
and too many machines provisioned at once.

Omni has no events resource (``omnictl get events`` fails: ``resource "events" is not
registered``). What to read instead: ``omnictl cluster status <name>`` (a tree of the cluster, its
machine sets and machines), ``omnictl get clusterstatuses <name> -w`` (changes as they happen),
``omnictl audit-log`` and ``omnictl machine-logs <machine-id>``.

Evidence names (filled by :mod:`runbook_lib.gather.cluster`; Omni resources reduced to what is read):

``expected``                  ``cluster`` (the parameter; empty: all), ``provider_id``, ``proxmox_cluster``,
                              ``max_parallel_provisions``
``clusters``                  id -> ``talosversion``, ``kubernetesversion``, ``phase`` (running, tearingDown)
``cluster_statuses``          id -> ``phase`` (enum below), ``ready``, ``available``, ``machines``
                              {total, healthy, connected, requested}, ``controlplaneready``,
                              ``kubernetesapiready``, ``hasconnectedcontrolplanes``, ``updated``
``machine_sets``              MachineSetStatus id -> ``cluster``, ``role``, ``phase``, ``ready``, ``error``,
                              ``machines``, ``allocation`` {name, machinecount, allocationtype} or None
``controlplane_statuses``     control-plane set id -> ``cluster``, ``conditions`` [{type, status, severity, reason}]
``cluster_machines``          machine id -> ``cluster``, ``machine_set``, ``role``, ``connected``, ``hostname``,
                              ``ready``, ``stage``, ``configapplystatus``, ``lastconfigerror``, ``request``
``machine_classes``           id -> ``matchlabels`` [label queries], ``autoprovision``
                              {providerid, providerdata} or None
``cluster_request_statuses``  id -> ``cluster``, ``machine_set``, ``stage``, ``status``, ``error``
``machine_statuses``          machine id -> ``labels``, ``talosversion``, ``connected``, ``cluster``
``request_sets``              MachineRequestSet id -> ``providerid``, ``machinecount``
``request_statuses``          MachineRequestStatus id -> ``set``, ``provider``, ``stage``, ``status``, ``error``
``proxmox_nodes``             node -> ``online``, ``cpus``, ``mem_total``, ``mem_used``
``proxmox_storage``           online node -> ``/nodes/{node}/storage`` rows, API order
``provider_log``              :meth:`LogScan.summary` of the provider's log (``SUPPLY_CATEGORIES`` of
                              :mod:`runbook_lib.model.provider_log`)

Only what a question needs is read: ``machine_statuses`` when a set waits on a class that picks
machines by label (:func:`manually_waiting`); the last five when a set waits for machines the
provider must create (:func:`autoprovisioned_waiting`). Otherwise they are None.
"""

from __future__ import annotations

import difflib

from ..evidence import Evidence
from ..model.ages import minor
from ..model.capacity import STORAGE_NOTE, headroom
from ..model.labels import label_query_matches, parse_label_query
from ..model.machineclass import GIB, class_needs
from ..model.machinesets import healthy as machine_healthy
from ..model.machinesets import pending, scope, sets_in_scope, waiting_in, wanted
from ..model.omni import (
    ALLOCATABLE,
    CLUSTER_PHASES,
    CLUSTER_REQUEST_PROVISIONED,
    CLUSTER_REQUEST_STAGES,
    CLUSTER_RUNNING,
    CONDITION_ETCD,
    CONDITION_NOT_READY,
    CONDITION_STATUS,
    CONDITION_TYPES,
    CONFIG_APPLY_FAILED,
    MACHINE_STAGES,
    REQUEST_PROVISIONING,
    SET_PHASES,
    SEVERITY,
    stage_name,
)
from . import check, ok, problem, skipped, unknown

MAX_LINES = 12

FIX_SYMPTOM = ("This is the symptom; the other cluster findings name the cause. Look at the whole cluster with "
               "`omnictl cluster status <name>`; there is no `omnictl get events`: follow changes with "
               "`omnictl get clusterstatuses <name> -w` and read `omnictl audit-log`.")


def _provider(ev: Evidence) -> str:
    return (ev.optional("expected") or {}).get("provider_id") or "proxmox"


def autoprovisioned_waiting(ev: Evidence) -> list[tuple[str, dict, str, dict]]:
    """(set id, set, class id, class) for every set in scope waiting for machines the site's provider must create."""
    return waiting_in(ev.optional, _provider(ev))


def manually_waiting(ev: Evidence) -> list[tuple[str, dict, str, dict]]:
    """(set id, set, class id, class) for every set in scope waiting on a class that picks machines by label."""
    return waiting_in(ev.optional, None)


def machine_line(mid: str, m: dict) -> str:
    name = f"{m['hostname']} ({mid[:8]})" if m["hostname"] else mid
    parts = [f"stage {stage_name(MACHINE_STAGES, m['stage'])}", f"ready={str(m['ready']).lower()}",
             "connected" if m["connected"] else "DISCONNECTED"]
    if m["configapplystatus"] == CONFIG_APPLY_FAILED:
        parts.append(f"config apply FAILED: {m['lastconfigerror'] or '?'}")
    return f"  machine {name}: " + ", ".join(parts)


def _bounded(lines: list[str]) -> list[str]:
    return lines if len(lines) <= MAX_LINES else lines[:MAX_LINES] + [f"... {len(lines) - MAX_LINES} more"]


def _needs_line(class_id: str, needs: dict) -> str:
    disks = " + ".join(f"{size // GIB} GiB (`{sel}`)" for sel, size in needs["disks"])
    return f"class {class_id}: {needs['cores']} vCPUs, {needs['memory'] / GIB:g} GiB memory, disks {disks} per VM"


def _log_lines(ev: Evidence, category: str) -> list[str]:
    log = ev.optional("provider_log")
    if not log:
        return []
    hits = log["categories"][category]
    if not hits["count"]:
        return []
    return [f"{hits['count']} matching line(s) in the provider's log since its last start ({log['window']}):",
            *hits["examples"]]


# ------------------------------------------------------------------------------ the checks


@check("cluster.unhealthy", fix=FIX_SYMPTOM)
def unhealthy(ev: Evidence):
    clusters, statuses = ev.get("clusters"), ev.get("cluster_statuses")
    looked_at = scope(ev)
    if not looked_at:
        return skipped("Omni has no clusters")
    bad, facts = [], []
    for cid in looked_at:
        st = statuses.get(cid)
        if cid not in clusters and st is None:
            close = difflib.get_close_matches(cid, list(clusters), n=1)
            return problem(f"Omni has no cluster '{cid}'",
                           [f"omnictl get clusters: {', '.join(sorted(clusters)) or 'none'}"],
                           fix=f"Check the name{f' (did you mean {close[0]}?)' if close else ''}, or create the "
                               "cluster from its template: `omnictl cluster template sync -f <template>`.")
        if st is None:
            bad.append(cid)
            facts.append(f"cluster {cid}: Omni has no ClusterStatus for it yet")
            continue
        m = st["machines"]
        facts.append(f"clusterstatuses {cid}: phase {CLUSTER_PHASES.get(st['phase'], st['phase'])}, "
                     f"ready={str(st['ready']).lower()}, available={str(st['available']).lower()}, "
                     f"machines {m['healthy']}/{m['total']} healthy ({m['connected']} connected, "
                     f"{m['requested']} requested), control plane ready={str(st['controlplaneready']).lower()}, "
                     f"Kubernetes API ready={str(st['kubernetesapiready']).lower()}")
        if (clusters.get(cid) or {}).get("phase") == "tearingDown":
            facts.append(f"cluster {cid} is being torn down")
        if (not st["ready"] or st["phase"] != CLUSTER_RUNNING or not st["available"] or m["healthy"] < m["total"]
                or not st["controlplaneready"] or not st["kubernetesapiready"]):
            bad.append(cid)
    if bad:
        return problem(f"cluster {', '.join(bad)} is not ready and healthy", facts)
    return ok(f"{len(looked_at)} cluster(s) ready: {', '.join(looked_at)}", facts)


@check("cluster.machineclass_missing",
       fix="Create the machine class (`omnictl apply -f <machineclass.yaml>`), or correct `machineClass.name` "
           "in the cluster template and sync it (`omnictl cluster template sync -f <template>`).")
def machineclass_missing(ev: Evidence):
    classes = ev.get("machine_classes")
    facts, missing = [], []
    for sid, ms in sets_in_scope(ev).items():
        alloc = ms.get("allocation")
        if not alloc:
            continue
        if alloc["name"] in classes:
            facts.append(f"machine set {sid} allocates from class {alloc['name']} (exists)")
            continue
        close = difflib.get_close_matches(alloc["name"], list(classes), n=1)
        missing.append(sid)
        facts.append(f"machine set {sid} asks for {wanted(ms)} machine(s) of class '{alloc['name']}', which does "
                     f"not exist" + (f" (did you mean {close[0]}?)" if close else ""))
        if ms["error"]:
            facts.append(f"  MachineSetStatus error: {ms['error']}")
    if missing:
        facts.append(f"omnictl get machineclasses: {', '.join(sorted(classes)) or 'none'}")
        return problem(f"machine set {', '.join(missing)} references a machine class that does not exist", facts)
    if not facts:
        return ok("no machine set allocates from a machine class (machines are assigned by hand)")
    return ok("every machine class the machine sets use exists", facts)


@check("cluster.insufficient_machines",
       fix="Bring the machines listed back (power and network; `omnictl get machinestatuses <id> -o yaml` shows "
           "their last error), or supply new ones: the machine class, capacity and rate findings say why none "
           "arrive.")
def insufficient_machines(ev: Evidence):
    machines = ev.get("cluster_machines")
    requests = ev.optional("cluster_request_statuses") or {}
    facts, short, lines = [], [], []
    for sid, ms in sets_in_scope(ev).items():
        want, m = wanted(ms), ms["machines"]
        line = (f"machine set {sid}: {m['healthy']} of {want} machine(s) healthy ({m['total']} allocated, "
                f"{m['connected']} connected), phase {SET_PHASES.get(ms['phase'], ms['phase'])}")
        if m["healthy"] >= want:
            facts.append(line)
            continue
        short.append(sid)
        lines.append(line + (f", error: {ms['error']}" if ms["error"] else ""))
        if pending(ms):
            lines.append(f"  {pending(ms)} machine(s) not allocated at all yet")
            lines += [f"  request {rid}: {stage_name(CLUSTER_REQUEST_STAGES, r['stage'])}"
                      + (f", {r['status']}" if r["status"] else "") + (f", error: {r['error']}" if r["error"] else "")
                      for rid, r in sorted(requests.items())
                      if r["machine_set"] == sid and r["stage"] != CLUSTER_REQUEST_PROVISIONED]
        lines += [machine_line(mid, cm) for mid, cm in sorted(machines.items())
                  if cm["machine_set"] == sid and not machine_healthy(cm)]
    if short:
        return problem(f"{len(short)} machine set(s) have fewer healthy machines than they ask for: "
                       f"{', '.join(short)}", _bounded(lines))
    if not facts:
        return ok("no machine sets in scope")
    return ok("every machine set has the healthy machines it asks for", facts)


@check("cluster.etcd_quorum",
       fix="Bring the failed control planes back first (power, network) and remove none while quorum is short; "
           "keep an odd number of control planes (1, 3, 5): set the control-plane count in the cluster template "
           "and sync it. If quorum is lost for good, restore etcd from a backup.")
def etcd_quorum(ev: Evidence):
    machines = ev.get("cluster_machines")
    cp_status = ev.get("controlplane_statuses")
    facts, failing, tolerance = [], [], []
    for sid, ms in sets_in_scope(ev).items():
        if ms["role"] != "controlplane":
            continue
        members = {mid: m for mid, m in machines.items() if m["machine_set"] == sid}
        total = len(members) or ms["machines"]["total"]
        healthy = sum(machine_healthy(m) for m in members.values()) if members else ms["machines"]["healthy"]
        quorum = total // 2 + 1
        conditions = (cp_status.get(sid) or {}).get("conditions", [])
        etcd = next((c for c in conditions if c["type"] == CONDITION_ETCD), None)
        shown = "; ".join(f"{CONDITION_TYPES.get(c['type'], c['type'])} "
                          f"{CONDITION_STATUS.get(c['status'], c['status'])}"
                          + (f" ({SEVERITY.get(c['severity'], c['severity'])}): {c['reason']}" if c["reason"] else "")
                          for c in conditions) or "no ControlPlaneStatus"
        facts.append(f"controlplanestatuses {sid}: {shown}")
        facts.append(f"{sid}: {healthy} of {total} control plane(s) healthy; etcd needs {quorum} for quorum")
        reasons = []
        if etcd is not None and etcd["status"] == CONDITION_NOT_READY:
            reasons.append("Omni's etcd check fails")
        if total and healthy < quorum:
            reasons.append(f"quorum is lost ({healthy} of {total}, needs {quorum})")
        elif total and healthy == quorum and healthy < total:
            reasons.append("one more failed control plane ends quorum")
        elif total > 1 and total % 2 == 0:
            reasons.append(f"{total} members tolerate no more failures than {total - 1} would")
        if not total:
            tolerance.append(f"{sid} has no members yet")
            continue
        if reasons:
            failing.append(f"{sid}: " + "; ".join(reasons))
            facts += [machine_line(mid, m) for mid, m in sorted(members.items()) if not machine_healthy(m)]
        else:
            tolerance.append(f"{sid} {healthy}/{total} healthy, tolerates {max(healthy - quorum, 0)} more failure(s)")
    if failing:
        return problem("etcd " + ("has lost quorum" if any("lost" in f for f in failing) else "is about to lose quorum")
                       + ": " + " | ".join(failing), _bounded(facts))
    if not facts:
        return skipped("no control-plane machine set in scope")
    return ok("etcd has quorum: " + "; ".join(tolerance), facts)


@check("cluster.machineclass_exhausted",
       fix="Make more machines match the class (boot Talos machines into Omni and give them the class's labels), "
           "widen the class's matchLabels, or lower the machine set's count in the cluster template.")
def machineclass_exhausted(ev: Evidence):
    classes, clusters = ev.get("machine_classes"), ev.get("clusters")
    facts, short = [], []
    for sid, ms in sets_in_scope(ev).items():
        alloc = ms.get("allocation")
        cls = classes.get(alloc["name"]) if alloc else None
        if cls is None or not pending(ms):
            continue
        if cls["autoprovision"]:
            facts.append(f"machine set {sid} waits for {pending(ms)} machine(s) of class {alloc['name']}, which "
                         f"auto-provisions through provider {cls['autoprovision']['providerid']} (its supply is "
                         "Proxmox capacity: see cluster.provider_capacity)")
            continue
        statuses = ev.get("machine_statuses")
        try:
            queries = [parse_label_query(q) for q in cls["matchlabels"]]
        except ValueError as exc:
            return unknown(f"class {alloc['name']}'s matchLabels cannot be read", [str(exc)])
        version = minor((clusters.get(ms["cluster"]) or {}).get("talosversion", ""))
        matching = {mid: s for mid, s in statuses.items()
                    if any(label_query_matches(s["labels"], q) for q in queries)}
        free = [mid for mid, s in matching.items() if all(k in s["labels"] for k in ALLOCATABLE)
                and (version is None or (minor(s["talosversion"]) or (0, 0)) <= version)]
        taken = [mid for mid, s in matching.items() if s["cluster"]]
        line = (f"machine set {sid} waits for {pending(ms)} more machine(s) of class {alloc['name']} "
                f"(matchLabels {cls['matchlabels']}): {len(matching)} machine(s) match, {len(taken)} already in a "
                f"cluster, {len(free)} free to allocate")
        facts.append(line)
        if len(free) < pending(ms):
            short.append(sid)
            unusable = [mid for mid in matching if mid not in free and not statuses[mid]["cluster"]]
            facts += [f"  {mid}: not allocatable ({_why_not_allocatable(statuses[mid], version)})"
                      for mid in sorted(unusable)]
    if short:
        return problem(f"machine class exhausted: machine set {', '.join(short)} asks for more machines than "
                       "the class can supply", _bounded(facts))
    if not facts:
        return ok("no machine set waits for machines from a machine class")
    return ok("no machine set waits on a class that has run out of matching machines", facts)


def _why_not_allocatable(status: dict, cluster_version: tuple[int, ...] | None) -> str:
    lacking = [k.split("/")[1] for k in ALLOCATABLE if k not in status["labels"]]
    if lacking:
        return "not " + ", not ".join(lacking)
    shown = ".".join(map(str, cluster_version)) if cluster_version else "?"
    return f"runs Talos {status['talosversion']}, newer than the cluster's {shown}"


@check("cluster.provider_capacity",
       fix="Make room in the Proxmox cluster (stop or move VMs, grow the storage, add a node) or lower the "
           "machine set's count to what fits; the provider retries each step every minute once room appears.")
def provider_capacity(ev: Evidence):
    waiting = autoprovisioned_waiting(ev)
    if not waiting:
        ev.get("machine_sets")  # an unavailable machine set list is unknown, not ok
        return ok(f"no machine set waits for machines from provider {_provider(ev)}")
    nodes, storage = ev.get("proxmox_nodes"), ev.get("proxmox_storage")
    facts, short = [], []
    per_class: dict[str, tuple[dict, int, list[str]]] = {}
    for sid, ms, class_id, cls in waiting:
        needs = class_needs(cls["autoprovision"]["providerdata"])
        if needs is None:
            return unknown(f"class {class_id}'s providerdata cannot be read (see provisioning.machineclass_invalid)")
        _, count, sets = per_class.get(class_id, (needs, 0, []))
        asked = (ev.optional("request_sets") or {}).get(sid)
        asked_text = f" (its request set asks {asked['providerid']} for {asked['machinecount']})" if asked else ""
        per_class[class_id] = (needs, count + pending(ms), sets + [f"{sid} waits for {pending(ms)}{asked_text}"])
    cluster = (ev.optional("expected") or {}).get("proxmox_cluster", "")
    undecided = []
    for class_id, (needs, want, sets) in per_class.items():
        room, per_node, notes = headroom(needs, nodes, storage, want)
        if room < want and any(STORAGE_NOTE in note for note in notes):
            undecided.append(class_id)
        facts.append(_needs_line(class_id, needs) + f"; {', '.join(sets)}")
        mem = ", ".join(f"{node} {(n['mem_total'] - n['mem_used']) / GIB:.0f} GiB free"
                        for node, n in sorted(nodes.items()) if n["online"])
        placed = ", ".join(f"{k} {v}" for k, v in per_node.items()) or "no node qualifies"
        facts.append(f"Proxmox {cluster}: room for {room} of {want} ({placed}); memory: {mem}")
        facts += [f"  {note}" for note in notes]
        if room < want:
            short.append(class_id)
    log = _log_lines(ev, "capacity")
    if undecided and not log:
        return unknown(f"the storage selector of class {', '.join(undecided)}, not capacity, keeps its VMs off "
                       "some nodes", _bounded(facts))
    if short or log:
        what = ", ".join(short) or ", ".join(per_class)
        return problem(f"Proxmox cluster {cluster} has no room for the machines asked of class {what}",
                       _bounded(facts) + log)
    return ok(f"Proxmox cluster {cluster} has room for every machine waited for", facts)


@check("cluster.rate_limited",
       fix="Scale up in smaller steps (raise the machine set's count a few at a time) and let the running "
           "provisions finish; parallel VM creation contends for Proxmox's config and storage locks.")
def rate_limited(ev: Evidence):
    provider = _provider(ev)
    limit = int((ev.optional("expected") or {}).get("max_parallel_provisions") or 4)
    waiting = autoprovisioned_waiting(ev)
    if not waiting:
        ev.get("machine_sets")  # an unavailable machine set list is unknown, not ok
        return ok(f"no machine set waits for machines from provider {provider}")
    statuses = ev.get("request_statuses")
    in_flight = sorted(rid for rid, r in statuses.items()
                       if r["provider"] == provider and r["stage"] == REQUEST_PROVISIONING)
    facts = [f"{len(in_flight)} machine request(s) of provider {provider} provisioning at once "
             f"(limit {limit}): {', '.join(in_flight) or 'none'}"]
    failing = [f"  {rid}: {statuses[rid]['status'] or '-'}" + (f", error: {statuses[rid]['error']}"
                                                                 if statuses[rid]["error"] else "")
               for rid in in_flight if statuses[rid]["error"]]
    log = _log_lines(ev, "rate_limited")
    if len(in_flight) > limit or log:
        why = (f"{len(in_flight)} machines provisioning at once (more than {limit})" if len(in_flight) > limit
               else "the provider's requests hit rate limits or lock timeouts")
        return problem(f"too many machines are provisioned at once: {why}", _bounded(facts + failing) + log)
    return ok(f"{len(in_flight)} machine(s) provisioning at once, within the limit of {limit}", facts)
