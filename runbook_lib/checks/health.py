"""Quick health verification (guide: "Health Checks"): one check per ``health.*`` id.

These are the checks `runbook check` runs on a schedule. Each says whether one part of the stack
is up; when it is not, :data:`POINTS_TO` names the runbook that explains why (`runbook triage`
runs them all at once).

Evidence names (filled by :mod:`runbook_lib.gather.health`):

``expected``            site values: ``omni_url``, ``provider_id``, ``omni_services`` (compose
                        services that must run), ``stuck_after`` (seconds), ``guests`` (role ->
                        ``cluster/id`` or ``None`` when the site does not say where it runs)
``omni_healthz``        the probe of Omni's ``/healthz`` (status, kind, error, seconds, tls)
``omni_services``       ``docker compose ps --all`` on the Omni host: service, name, state, health,
                        status, exit_code
``omni_vm``             the Omni VM as ``/cluster/resources`` lists it on its cluster (``None``: not there)
``provider_container``  the provider's row of ``docker ps -a`` (``None``: no such container)
``provider_lxc``        the provider's LXC as ``/cluster/resources`` lists it (``None``: not there)
``infraproviders``      ids from ``omnictl get infraproviders``
``provider_status``     id -> ``connected``, ``initialized``, ``error`` (infraprovidercombinedstatuses)
``proxmox``             cluster -> ``endpoints`` (``GET /version`` per endpoint), ``quorate``,
                        ``nodes`` (name, online), ``status_error``
``machines``            machine statuses: id, hostname, connected, maintenance, cluster, lasterror
``machine_requests``    machine request statuses: id, stage (0-3), status, error, age (seconds)
``clusters``            cluster statuses: id, ready, available, phase, total, healthy, connected
"""

from __future__ import annotations

from ..evidence import Evidence
from ..model.ages import human_age
from ..model.join import status_shows_joined
from ..model.omni import CLUSTER_PHASES, REQUEST_FAILED
from ..outcome import Outcome
from . import check, ok, problem, skipped, unknown

# Which runbook explains a failing health check (the notebook's next step).
POINTS_TO: dict[str, tuple[str, ...]] = {
    "health.omni_reachable": ("omnictl",),
    "health.omni_services": ("omnictl",),
    "health.provider_running": ("provider",),
    "health.provider_registered": ("provider",),
    "health.proxmox_api": ("provider",),
    "health.machines_available": ("provisioning",),
    "health.clusters_healthy": ("cluster",),
}
CERT_WARN_DAYS = 14
_DOWN = (Outcome.UNREACHABLE, Outcome.TIMED_OUT, Outcome.TLS_FAILED)  # endpoint probe kinds that mean "does not answer"


def _guest(ev: Evidence, role: str, what: str):
    """(outcome or None, facts) for the guest that carries a component.

    The outcome is a problem when the guest is stopped or missing; ``None`` when it runs, when
    the site does not say where it is, or when its cluster could not be asked (then a fact says
    why, and the component's own evidence decides).
    """
    where = (ev.optional("expected") or {}).get("guests", {}).get(role)
    if not where:
        return None, []
    if not ev.has(role):
        return None, [f"{what} {where}: could not be read ({ev.error(role) or 'not gathered'})"]
    guest = ev.get(role)
    if guest is None:
        return problem(f"{what} {where} does not exist on its Proxmox cluster",
                       [f"/cluster/resources on {where.split('/')[0]} lists no guest {where.split('/')[1]}"],
                       fix=f"Check the site file's guests entry, or whether the {what} was moved or deleted."), []
    line = (f"{what} {where} ({guest.get('name') or '?'}) on node {guest.get('node') or '?'}: "
            f"status {guest.get('status')}")
    if guest.get("status") != "running":
        kind = "qm" if guest.get("type") == "qemu" else "pct"
        return problem(f"the {what} is {guest.get('status')}", [line],
                       fix=f"Start it (`{kind} start {guest.get('vmid')}` on node {guest.get('node')}) "
                           "and read its task log for why it stopped."), []
    return None, [line]


@check("health.omni_reachable",
       fix="Check the Omni host (VM running, `docker compose ps` in its project directory) and the path to it "
           "(DNS, Tailscale); see the omnictl runbook.")
def omni_reachable(ev: Evidence):
    p = ev.get("omni_healthz")
    # evidence lines hold no timings: `runbook records diff` compares them between runs
    facts = [f"GET {p['url']}: " + (f"HTTP {p['status']}" if p.get("status") else f"{p['kind']} - {p['error']}")]
    tls = p.get("tls") or {}
    if tls:
        facts.append(f"certificate of {tls.get('subject') or '?'} issued by {tls.get('issuer') or '?'}, "
                     f"expires {tls.get('not_after') or '?'}"
                     + ("" if tls.get("verified") else f"; NOT verified: {tls.get('error') or 'verification off'}"))
    kind = p["kind"]
    if kind == Outcome.TLS_FAILED:
        return problem("Omni's TLS certificate is not valid for this site", facts,
                       fix="Renew Omni's certificate or give the site the CA that signs it (omni.ca_file).")
    if kind in (Outcome.REFUSED, Outcome.DNS_FAILED, Outcome.TIMED_OUT):
        return problem(f"Omni does not answer ({kind})", facts)
    if kind == Outcome.HTTP_ERROR or p.get("status") != 200:
        return problem(f"Omni answers /healthz with HTTP {p.get('status')}: its state store is failing", facts,
                       fix="Read Omni's log (`docker compose logs omni` on the Omni host) for "
                           "'unexpected error on health check', and restart Omni once the cause is fixed.")
    if tls.get("days_left") is not None and tls["days_left"] < CERT_WARN_DAYS:
        return ok(f"Omni answers, but its certificate expires in {tls['days_left']:.0f} days", facts)
    return ok("Omni answers /healthz with HTTP 200", facts)


@check("health.omni_services",
       fix="On the Omni host: `docker compose up -d` in Omni's project directory, then `docker compose logs` "
           "for the service that stopped.")
def omni_services(ev: Evidence):
    vm_problem, facts = _guest(ev, "omni_vm", "Omni VM")
    if vm_problem is not None:
        return vm_problem
    rows = ev.get("omni_services")
    want = ev.get("expected")["omni_services"]
    by_service = {r["service"]: r for r in rows}
    facts.append("docker compose ps: " + (", ".join(f"{r['service']} {_state(r)}" for r in rows) or "no services"))
    missing = [s for s in want if s not in by_service]
    down = [r["service"] for r in rows if r["state"] != "running" or r.get("health") == "unhealthy"]
    if missing or down:
        parts = [f"{', '.join(down)} not running" if down else "", f"{', '.join(missing)} missing" if missing else ""]
        return problem("Omni's compose services are not all up: " + "; ".join(p for p in parts if p), facts)
    return ok(f"every Omni compose service is running ({', '.join(sorted(by_service))})", facts)


def _state(row: dict) -> str:
    state = row["state"]
    if row.get("health"):
        state += f" ({row['health']})"
    elif state != "running" and row.get("exit_code") not in (None, 0):
        state += f" (exit {row['exit_code']})"
    return state


@check("health.provider_running",
       fix="On the provider host: `docker compose up -d` in the provider's directory; if it stops again, "
           "run the provider runbook.")
def provider_running(ev: Evidence):
    lxc_problem, facts = _guest(ev, "provider_lxc", "provider LXC")
    if lxc_problem is not None:
        return lxc_problem
    c = ev.get("provider_container")
    if c is None:
        names = [r.get("Names", "?") for r in ev.optional("containers") or []]
        return problem("there is no provider container on the provider host",
                       facts + ["docker ps -a lists: " + (", ".join(names) or "no containers")])
    facts.append(f"docker ps -a: {c['name']} ({c['image']}) {c['state']}, {c['status']}")
    if c["state"] != "running":
        return problem(f"the provider container is {c['state']}", facts)
    return ok(f"the provider container {c['name']} is running", facts)


@check("health.provider_registered",
       fix="Run the provider runbook: it tells a missing registration from a rejected key, a wrong URL or "
           "a provider that cannot reach Omni.")
def provider_registered(ev: Evidence):
    want = ev.get("expected")["provider_id"]
    ids = ev.get("infraproviders")
    facts = [f"omnictl get infraproviders: {', '.join(ids) or 'none'}"]
    if want not in ids:
        return problem(f"Omni has no infra provider '{want}'", facts)
    status = ev.get("provider_status").get(want)
    if status is None:
        return problem(f"Omni has no status for infra provider '{want}'", facts)
    facts.append(f"infraprovidercombinedstatuses {want}: connected={status['connected']}, "
                 f"initialized={status['initialized']}, error={status['error'] or '-'}")
    if not status["connected"] or status["error"] or not status["initialized"]:
        why = "has never connected" if not status["initialized"] else "is not connected"
        return problem(f"infra provider '{want}' {why}" + (f": {status['error']}" if status["error"] else ""), facts)
    return ok(f"infra provider '{want}' is registered and connected", facts)


@check("health.proxmox_api",
       fix="Bring the failing node's API back (`systemctl status pveproxy pve-cluster corosync` on it); "
           "without quorum, see `pvecm status`.")
def proxmox_api(ev: Evidence):
    clusters = ev.get("proxmox")
    facts, down, lost, unsure = [], [], [], []
    for name, c in sorted(clusters.items()):
        for p in c.get("endpoints") or []:
            facts.append(f"{name} {p['url']}: " + (f"answers (PVE {p.get('version') or '?'})" if p["ok"]
                                                    else f"{p['kind']} - {p['error']}"))
            if not p["ok"]:
                (down if p["kind"] in _DOWN else unsure).append(f"{name} {p['url']}")
        if c.get("endpoints_error"):
            facts.append(f"{name}: endpoints not probed: {c['endpoints_error']}")
            unsure.append(name)
        if c.get("quorate") is None:
            facts.append(f"{name}: quorum unknown ({c.get('status_error') or 'no answer'})")
            unsure.append(f"{name} quorum")
        else:
            offline = [n["name"] for n in c.get("nodes") or [] if not n["online"]]
            facts.append(f"{name}: {'quorate' if c['quorate'] else 'NOT quorate'}, "
                         f"{len(c.get('nodes') or [])} node(s)" + (f", offline: {', '.join(offline)}" if offline else ""))
            if not c["quorate"]:
                lost.append(name)
    if down or lost:
        parts = ([f"{len(down)} endpoint(s) do not answer ({', '.join(down)})"] if down else []) + \
                ([f"no quorum on {', '.join(lost)}"] if lost else [])
        return problem("the Proxmox API is degraded: " + "; ".join(parts), facts)
    if unsure:
        return unknown(f"the Proxmox API could not be fully checked ({', '.join(unsure)})", facts)
    return ok(f"every endpoint answers and every cluster is quorate ({', '.join(sorted(clusters))})", facts)


@check("health.machines_available",
       fix="Run the provisioning runbook: it follows each machine from its request to the VM and Omni.")
def machines_available(ev: Evidence):
    machines = ev.get("machines")
    requests = ev.optional("machine_requests") or []
    stuck_after = ev.get("expected")["stuck_after"]
    if not machines and not requests:
        return skipped("Omni knows no machines and no machine requests")
    facts = [f"omnictl get machinestatuses: {len(machines)} machine(s), "
             f"{sum(m['connected'] for m in machines)} connected"]
    if ev.error("machine_requests"):
        facts.append(f"machine requests could not be read: {ev.error('machine_requests')}")
    disconnected = [m for m in machines if not m["connected"]]
    for m in disconnected:
        facts.append(f"machine {m['id']} ({m.get('hostname') or 'no hostname'}) is not connected"
                     + (f"; last error: {m['lasterror']}" if m.get("lasterror") else ""))
    by_id = {m["id"]: m for m in machines}
    failed = [r for r in requests if r["stage"] == REQUEST_FAILED]
    slow = [r for r in requests if r["stage"] != REQUEST_FAILED and (r.get("age") or 0) > stuck_after
            and not status_shows_joined(by_id.get(r.get("uuid") or ""))]
    for r in failed:
        facts.append(f"machine request {r['id']}: FAILED" + (f": {r['error']}" if r.get("error") else ""))
    for r in slow:
        facts.append(f"machine request {r['id']}: its machine has not joined {human_age(r['age'])} after the request"
                     + (f" ({r['status']})" if r.get("status") else ""))
    if disconnected or failed or slow:
        parts = ([f"{len(disconnected)} machine(s) disconnected"] if disconnected else []) + \
                ([f"{len(failed) + len(slow)} request(s) stuck"] if failed or slow else [])
        return problem("machines are not all available: " + ", ".join(parts), facts)
    return ok(f"{len(machines)} machine(s) connected, no request stuck", facts)


@check("health.clusters_healthy",
       fix="Run the cluster runbook: it checks machine sets, classes, capacity and etcd for the cluster.")
def clusters_healthy(ev: Evidence):
    clusters = ev.get("clusters")
    if not clusters:
        return skipped("Omni manages no clusters")
    facts, bad = [], []
    for c in clusters:
        phase = CLUSTER_PHASES.get(c.get("phase"), str(c.get("phase")))
        if c.get("status_missing"):
            facts.append(f"cluster {c['id']}: Omni has no status for it")
            bad.append(c["id"])
            continue
        facts.append(f"cluster {c['id']}: phase {phase}, ready={c['ready']}, available={c['available']}, "
                     f"machines healthy {c['healthy']}/{c['total']} (connected {c['connected']})")
        if not (c["ready"] and c["available"] and c["healthy"] >= c["total"]):
            bad.append(c["id"])
    if bad:
        return problem(f"cluster(s) not healthy: {', '.join(bad)}", facts)
    return ok(f"{len(clusters)} cluster(s) ready with every machine healthy", facts)

