"""ArgoCD bootstrap (guide: "ArgoCD Bootstrap Issues"): one check per ``argocd.*`` id.

Evidence names (filled by :mod:`runbook_lib.gather.argocd`; objects are summarized there):

``cluster``           ``name``, ``server``, ``version``, ``namespace`` (Argo CD's), ``now`` (Unix s), ``stale_after``
``namespaces``        namespace -> its labels (every namespace)
``pods``              Argo CD's pods: ``name``, ``labels``, ``ip``, ``phase``, ``ready``, ``ready_since``,
                      ``started``, ``ports`` (``[{name, port, protocol}]``)
``services``          Argo CD's Services: ``name``, ``cluster_ip``, ``selector``, ``ports``
                      (``[{name, port, target, protocol}]``)
``endpoints``         Service -> ``{"exists", "ready": [ip], "not_ready": [ip]}`` (Endpoints, else EndpointSlices)
``network_policies``  ``name``, ``labels``, ``pod_selector``, ``types``, ``ingress``, ``egress`` (rules as the API has them)
``applications``      ``name``, ``sync``, ``health``, ``reconciled_at``, ``conditions`` (``[{type, message, since}]``)
``workloads``         Argo CD's Deployments and StatefulSets: ``kind``, ``name``, ``component``
``daemonsets``        every DaemonSet: ``namespace``, ``name``, ``desired``, ``current``, ``ready``
``psa_events``        ``FailedCreate`` events of DaemonSets: ``namespace``, ``object``, ``message``, ``count``, ``last_seen``
``controller_log``    the application controller's log tail: ``lines``, ``errors`` (lines naming a dial error), ``tail``

Argo CD's components find each other through Services. A ``dial tcp <ip>:<port>: connect: operation
not permitted`` in an Application's condition comes from Cilium's socket load-balancer: either the
Service has no backend (:func:`endpoints_none`), or a policy denies the connection
(:func:`networkpolicy_blocking`). When neither is true any more but the condition stays, the
controller is showing a cached error (:func:`stale_error_cache`). Whether a policy allows a path is
decided by :mod:`runbook_lib.netpol`; the paths Argo CD needs by :mod:`runbook_lib.model.argocd`; the
fix plans are built in :mod:`runbook_lib.fixes.argocd`.
"""

from __future__ import annotations

from datetime import datetime, timezone

from ..evidence import Evidence
from ..model.ages import epoch, human_age
from ..model.argocd import (
    CONTROLLER,
    DIAL,
    ERROR_CONDITIONS,
    NAME,
    PSA,
    STALE_AFTER,
    component_paths,
    component_pods,
    enforce_level,
    psa_blocks,
)
from ..netpol import backends, show_labels, target_port
from . import check, ok, problem, unknown


# --- time ---------------------------------------------------------------------------------------
def ago(seconds: float) -> str:
    return human_age(max(0.0, seconds))


def _when(stamp: str | None, now: float) -> str:
    return _when_ts(epoch(stamp), now)


def _when_ts(t: float | None, now: float) -> str:
    """``2026-11-27T10:00:00Z (2.0 h ago)``"""
    if t is None:
        return "an unknown time"
    stamp = datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{stamp} ({ago(now - t)} ago)"


# --- Argo CD's errors -------------------------------------------------------------------------
def ready_backends(ev: Evidence, service: str) -> list[str]:
    entry = (ev.get("endpoints") or {}).get(service) or {}
    return list(entry.get("ready") or [])


def dial_errors(ev: Evidence, required: bool = True) -> list[tuple[dict, dict, str | None]]:
    """(application, condition, Service it names or None) for every error condition.

    ``required=False``: the Applications only corroborate (no Applications read: no errors).
    """
    services = ev.optional("services") or []
    by_ip = {s.get("cluster_ip"): s["name"] for s in services if s.get("cluster_ip")}
    out = []
    for app in ev.get("applications") if required else ev.optional("applications") or []:
        for cond in app.get("conditions") or []:
            if cond.get("type") not in ERROR_CONDITIONS:
                continue
            message = cond.get("message") or ""
            m = DIAL.search(message)
            service = by_ip.get(m.group(1)) if m else None
            if service is None:
                named = [s["name"] for s in services if s["name"] in message]
                service = max(named, key=len) if named else None
            out.append((app, cond, service))
    return out


def _excerpt(message: str, limit: int = 160) -> str:
    m = DIAL.search(message)
    if m:
        return "… " + m.group(0)
    return message if len(message) <= limit else message[: limit - 1] + "…"


# --- argocd.networkpolicy_blocking ------------------------------------------------------------
@check("argocd.networkpolicy_blocking",
       fix="Delete the NetworkPolicies that deny these paths (`kubectl delete networkpolicy -n argocd NAME`) or add "
           "rules that allow them. Policies the argo-cd chart created (>= 10.0.0 creates them by default) come back "
           "on the next upgrade: set the Helm value `global.networkPolicy.create=false` (the chart has no "
           "`networkPolicy.enabled` key).")
def networkpolicy_blocking(ev: Evidence):
    policies = ev.get("network_policies")
    paths = component_paths(ev)
    ns = ev.get("cluster")["namespace"]
    eperm = [(a, c, s) for a, c, s in dial_errors(ev, required=False)
             if "operation not permitted" in (c.get("message") or "")]
    denied = [p for p in paths if not p.allowed]
    if denied:
        facts = [f"{p.caller} -> {p.service}:{p.port} is denied: {'; '.join(p.reasons)}" for p in denied]
        helm = sorted({pol["name"] for pol in policies
                       if any(pol["name"] in p.denying for p in denied)
                       and (pol.get("labels") or {}).get("app.kubernetes.io/managed-by") == "Helm"})
        if helm:
            facts.append(f"created by Helm (global.networkPolicy.create): {', '.join(helm)}")
        for app, cond, svc in eperm[:5]:
            facts.append(f"Application {app['name']}: {cond['type']}: {_excerpt(cond.get('message', ''))}")
        return problem(f"NetworkPolicies in {ns} block {len(denied)} of the {len(paths)} connections Argo CD's "
                       "components need", facts)
    facts = [f"{len(policies)} NetworkPolicies in {ns}: {', '.join(p['name'] for p in policies) or 'none'}",
             f"{len(paths)} component connections checked, all allowed"]
    if eperm:
        facts.append(f"{len(eperm)} Application condition(s) say 'operation not permitted', but no NetworkPolicy "
                     "denies the path: a Service without endpoints (argocd.endpoints_none) or a "
                     "CiliumNetworkPolicy (not read by this runbook)")
    if not policies:
        return ok(f"no NetworkPolicies in {ns}", facts)
    return ok("the NetworkPolicies allow every connection Argo CD's components need", facts)


# --- argocd.endpoints_none --------------------------------------------------------------------
def why_no_endpoints(service: dict, pods: list[dict]) -> str:
    """The reason a Service has no ready backend, read from its selector, ports and the pods."""
    selected = backends(service, pods)
    selector = show_labels(service.get("selector"))
    if not selected:
        kin = component_pods(pods, service["name"])
        if kin:
            return (f"its selector {selector} matches no pod; the component's pod {kin[0]['name']} has labels "
                    f"{show_labels(kin[0].get('labels'))}")
        return f"its selector {selector} matches no pod, and no pod is labelled {NAME}={service['name']}"
    resolved = [p for p in selected if target_port(service, p) is not None]
    if not resolved:
        sp = (service.get("ports") or [{}])[0]
        have = ", ".join(f"{x.get('name') or '-'}/{x.get('port')}" for x in selected[0].get("ports") or []) or "none"
        return (f"targetPort {sp.get('target')} is not a port of the selected pods "
                f"({selected[0]['name']} has {have})")
    ready = [p for p in resolved if p.get("ready")]
    if not ready:
        return f"{len(resolved)} pod(s) match but none is Ready ({', '.join(p['name'] for p in resolved)})"
    return "the pods match and are Ready, yet no endpoint is listed (the endpoints controller may be behind)"


@check("argocd.endpoints_none",
       fix="Make the Service and its pods agree: install all of Argo CD from the Helm chart rather than mixing it with "
           "raw manifests, or patch the Service's selector/targetPort (or the Deployment's pod labels and port names) "
           "to match; `kubectl get endpoints -n argocd SERVICE` must then list the pod.")
def endpoints_none(ev: Evidence):
    services = [s for s in ev.get("services") if s.get("selector")]
    pods = ev.get("pods")
    ns = ev.get("cluster")["namespace"]
    if not services:
        return problem(f"no Argo CD Service with a selector exists in {ns}",
                       [f"kubectl get services -n {ns}: none with a selector"])
    empty = [s for s in services if not ready_backends(ev, s["name"])]
    if empty:
        facts = []
        for s in empty:
            entry = (ev.get("endpoints") or {}).get(s["name"]) or {}
            shown = "<none>" if not entry.get("not_ready") else f"only not-ready {', '.join(entry['not_ready'])}"
            facts.append(f"endpoints {s['name']}: {shown}; {why_no_endpoints(s, pods)}")
        for app, cond, svc in dial_errors(ev, required=False):
            if svc in {s["name"] for s in empty}:
                facts.append(f"Application {app['name']}: {cond['type']}: {_excerpt(cond.get('message', ''))}")
        names = ", ".join(s["name"] for s in empty)
        return problem(f"{len(empty)} Argo CD Service(s) have no ready endpoints: {names}", facts)
    return ok(f"all {len(services)} Argo CD Services have ready endpoints",
              [f"{s['name']}: {', '.join(ready_backends(ev, s['name']))}" for s in services])


# --- argocd.stale_error_cache -----------------------------------------------------------------
def recovered_at(ev: Evidence, service: str) -> float | None:
    """When the Service last got a ready backend: the earliest Ready transition of its ready pods."""
    svc = next((s for s in ev.get("services") if s["name"] == service), None)
    if svc is None:
        return None
    times = [epoch(p.get("ready_since")) for p in backends(svc, ev.get("pods")) if p.get("ready")]
    times = [t for t in times if t is not None]
    return min(times) if times else None


def controller_started(ev: Evidence) -> float | None:
    times = [epoch(p.get("started")) for p in component_pods(ev.get("pods"), CONTROLLER)]
    times = [t for t in times if t is not None]
    return min(times) if times else None


@check("argocd.stale_error_cache",
       fix="Restart the application controller so it drops its cached state: `kubectl rollout restart statefulset "
           "argocd-application-controller -n argocd` (the notebook shows this as a fix plan it can apply), then "
           "check that the Applications' conditions clear.")
def stale_error_cache(ev: Evidence):
    cluster = ev.get("cluster")
    now = float(cluster["now"])
    grace = float(cluster.get("stale_after") or STALE_AFTER)
    errors = dial_errors(ev)
    if not errors:
        return ok("no Application shows an error condition", [f"{len(ev.get('applications'))} Applications read"])
    paths = component_paths(ev)
    started = controller_started(ev)
    stale, current, waiting, unexplained = [], [], [], []
    for app, cond, svc in errors:
        since = epoch(cond.get("since"))
        line = f"Application {app['name']}: {cond['type']} since {_when(cond.get('since'), now)}: " \
               f"{_excerpt(cond.get('message', ''))}"
        if svc is None:
            unexplained.append(line + "; it names no Argo CD Service")
            continue
        blocked = [p for p in paths if p.service == svc and p.caller == CONTROLLER and not p.allowed]
        if not ready_backends(ev, svc) or blocked:
            current.append(line + f"; the cause is still there ({svc} has no ready endpoint or a policy denies it)")
            continue
        back = recovered_at(ev, svc)
        if back is None or since is None:
            unexplained.append(line + f"; when {svc} recovered cannot be read")
        elif since >= back:
            unexplained.append(line + f"; it began after {svc} was ready ({_when_ts(back, now)}), and nothing "
                                      "this runbook reads explains it now")
        elif started is not None and started > back:
            unexplained.append(line + f"; the controller restarted after {svc} recovered, so this is not its cache")
        elif now - back < grace:
            waiting.append(line + f"; {svc} recovered only {ago(now - back)} ago")
        else:
            stale.append(line + f"; {svc} has had a ready backend since {_when_ts(back, now)}, and no policy "
                                "denies the path now")
    log = ev.optional("controller_log")
    if stale:
        facts = stale + ([f"the controller ({CONTROLLER}) started {_when_ts(started, now)}, before the recovery"]
                         if started is not None else [])
        if log is not None:
            facts.append(f"the controller's last {log['lines']} log lines name a dial error {log['errors']} time(s)")
        return problem(f"{len(stale)} Application error(s) outlived the component's recovery "
                       f"(older than {ago(grace)} after it): the controller shows a cached error", facts)
    if unexplained:
        return unknown(f"{len(unexplained)} Application error(s) have a cause this runbook cannot see",
                       unexplained + current + waiting)
    if waiting:
        return ok("the component recovered recently; the controller has not reconciled yet", waiting + current)
    return ok("the Applications' errors are current: their cause is still there", current)


# --- argocd.podsecurity_violation -------------------------------------------------------------
@check("argocd.podsecurity_violation",
       fix="Label the namespace so its pods may run: `kubectl label namespace NAMESPACE "
           "pod-security.kubernetes.io/enforce=privileged` (Talos enforces baseline even without a label), or make "
           "the DaemonSet's pods meet the namespace's level.")
def podsecurity_violation(ev: Evidence):
    daemonsets = ev.get("daemonsets")
    namespaces = ev.get("namespaces")
    blocked = psa_blocks(ev)
    if blocked:
        facts = []
        for ds in blocked:
            e = ds["events"][0]
            level, version, details = PSA.search(e["message"]).groups()
            now = float(ev.get("cluster")["now"])
            facts.append(f"DaemonSet {ds['namespace']}/{ds['name']}: desired {ds['desired']}, ready {ds['ready']}; "
                         f"FailedCreate x{e.get('count') or 1}, last {_when(e.get('last_seen'), now)}: "
                         f"violates PodSecurity \"{level}:{version}\": {details}")
            facts.append(f"namespace {ds['namespace']}: {enforce_level(namespaces.get(ds['namespace']))[1]}")
        names = ", ".join(f"{d['namespace']}/{d['name']}" for d in blocked)
        return problem(f"PodSecurity admission stops {len(blocked)} DaemonSet(s) from creating pods: {names}", facts)
    short = [d for d in daemonsets if d["desired"] > d["ready"]]
    if short:
        return ok(f"{len(short)} DaemonSet(s) lack ready pods, but no PodSecurity refusal is recorded for them",
                  [f"{d['namespace']}/{d['name']}: desired {d['desired']}, ready {d['ready']}" for d in short])
    return ok(f"all {len(daemonsets)} DaemonSets have their pods ready",
              [f"{d['namespace']}/{d['name']}: {d['ready']}/{d['desired']}" for d in daemonsets])
