"""ArgoCD bootstrap (guide: "ArgoCD Bootstrap Issues"): one check per ``argocd.*`` id, and fix plans.

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
controller is showing a cached error (:func:`stale_error_cache`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timezone

from ..evidence import Evidence
from ..fixes import Change, Plan
from ..model.ages import epoch, human_age
from ..model.argocd import (
    CONTROLLER,
    DIAL,
    ERROR_CONDITIONS,
    NAME,
    PATHS,
    PSA,
    PSA_ENFORCE,
    STALE_AFTER,
    TALOS_DEFAULT_LEVEL,
)
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


# --- label selectors --------------------------------------------------------------------------
def selects(selector: dict | None, labels: dict | None) -> bool:
    """A LabelSelector (``matchLabels`` + ``matchExpressions``) against labels; ``{}`` selects all."""
    labels = labels or {}
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def matches_map(selector: dict | None, labels: dict | None) -> bool:
    """A Service's plain ``selector`` map against labels (an empty map selects nothing)."""
    if not selector:
        return False
    return all((labels or {}).get(k) == v for k, v in selector.items())


def show_labels(labels: dict | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "(none)"


# --- NetworkPolicy evaluation -----------------------------------------------------------------
@dataclass
class Port:
    number: int
    name: str
    protocol: str = "TCP"

    def __str__(self) -> str:
        return f"{self.number}" + (f" ({self.name}/{self.protocol})" if self.name else f"/{self.protocol}")


def policy_types(policy: dict) -> list[str]:
    """``policyTypes``, defaulted as the API does: Ingress, plus Egress when egress rules exist."""
    if policy.get("types"):
        return list(policy["types"])
    return ["Ingress"] + (["Egress"] if policy.get("egress") else [])


def _peer_matches(peer: dict, pod: dict, namespace_labels: dict) -> bool:
    if "ipBlock" in peer and peer["ipBlock"]:
        block = peer["ipBlock"]
        try:
            ip = ipaddress.ip_address(pod.get("ip") or "")
        except ValueError:
            return False
        if ip not in ipaddress.ip_network(block.get("cidr", "0.0.0.0/0"), strict=False):
            return False
        return not any(ip in ipaddress.ip_network(x, strict=False) for x in block.get("except") or [])
    if "namespaceSelector" in peer and peer["namespaceSelector"] is not None:
        if not selects(peer["namespaceSelector"], namespace_labels):
            return False
        return selects(peer.get("podSelector"), pod.get("labels"))
    # a podSelector alone selects pods in the policy's own namespace (every pod here is)
    return selects(peer.get("podSelector"), pod.get("labels"))


def _port_matches(rule_ports: list[dict] | None, port: Port) -> bool:
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != port.protocol:
            continue
        want = p.get("port")
        if want is None:
            return True
        if isinstance(want, int) or (isinstance(want, str) and want.isdigit()):
            low = int(want)
            if low <= port.number <= int(p.get("endPort") or low):
                return True
        elif want == port.name:
            return True
    return False


def _rule_allows(rules: list[dict] | None, peer_key: str, other: dict, port: Port, ns_labels: dict) -> bool:
    for rule in rules or []:
        peers = rule.get(peer_key)
        if peers and not any(_peer_matches(peer, other, ns_labels) for peer in peers):
            continue
        if _port_matches(rule.get("ports"), port):
            return True
    return False


def connection_verdict(src: dict, dst: dict, port: Port, policies: list[dict],
                       ns_labels: dict) -> tuple[bool, list[str], list[str]]:
    """Whether ``src`` may open ``port`` on ``dst``: (allowed, reasons, names of denying policies).

    Policies are additive: a direction is open when no policy selects the pod for it, or when any
    of those that do has a rule allowing the peer and port.
    """
    reasons: list[str] = []
    denying: list[str] = []
    ingress = [p for p in policies if "Ingress" in policy_types(p) and selects(p.get("pod_selector"), dst.get("labels"))]
    if ingress and not any(_rule_allows(p.get("ingress"), "from", src, port, ns_labels) for p in ingress):
        names = [p["name"] for p in ingress]
        denying += names
        reasons.append(f"ingress to {dst['name']} is limited by {', '.join(names)}, and none allows "
                       f"{src['name']} on port {port}")
    egress = [p for p in policies if "Egress" in policy_types(p) and selects(p.get("pod_selector"), src.get("labels"))]
    if egress and not any(_rule_allows(p.get("egress"), "to", dst, port, ns_labels) for p in egress):
        names = [p["name"] for p in egress]
        denying += names
        reasons.append(f"egress from {src['name']} is limited by {', '.join(names)}, and none allows "
                       f"{dst['name']} on port {port}")
    return not reasons, reasons, denying


# --- the Argo CD topology ---------------------------------------------------------------------
def component_pods(pods: list[dict], component: str) -> list[dict]:
    return [p for p in pods if (p.get("labels") or {}).get(NAME) == component]


def backends(service: dict, pods: list[dict]) -> list[dict]:
    return [p for p in pods if matches_map(service.get("selector"), p.get("labels"))]


def target_port(service: dict, pod: dict) -> Port | None:
    """The pod port the Service's first port leads to (a name is looked up in the pod's ports)."""
    ports = service.get("ports") or []
    if not ports:
        return None
    sp = ports[0]
    target = sp.get("target", sp.get("port"))
    protocol = sp.get("protocol", "TCP")
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        number = int(target)
        name = next((p.get("name") or "" for p in pod.get("ports") or [] if p.get("port") == number), "")
        return Port(number, name, protocol)
    for p in pod.get("ports") or []:
        if p.get("name") == target and p.get("protocol", "TCP") == protocol:
            return Port(p["port"], target, protocol)
    return None


@dataclass
class Path:
    caller: str
    service: str
    allowed: bool
    reasons: list[str]
    denying: list[str]
    port: Port


def component_paths(ev: Evidence) -> list[Path]:
    """Every caller -> Service path of :data:`PATHS` whose two ends exist, judged by the policies."""
    pods = ev.get("pods")
    policies = ev.get("network_policies")
    ns = ev.get("cluster")["namespace"]
    ns_labels = (ev.optional("namespaces") or {}).get(ns) or {"kubernetes.io/metadata.name": ns}
    services = {s["name"]: s for s in ev.get("services")}
    out = []
    for dest, callers in PATHS.items():
        svc = services.get(dest)
        if svc is None:
            continue
        dst_pods = backends(svc, pods) or component_pods(pods, dest)
        if not dst_pods:
            continue
        dst = dst_pods[0]
        port = target_port(svc, dst)
        if port is None:
            continue
        for caller in callers:
            src_pods = component_pods(pods, caller)
            if not src_pods:
                continue
            allowed, reasons, denying = connection_verdict(src_pods[0], dst, port, policies, ns_labels)
            out.append(Path(caller, dest, allowed, reasons, denying, port))
    return out


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
def psa_blocks(ev: Evidence) -> list[dict]:
    """DaemonSets short of pods with a ``violates PodSecurity`` FailedCreate event, newest event first."""
    events = ev.get("psa_events")
    out = []
    for ds in ev.get("daemonsets"):
        if ds["desired"] <= ds["ready"]:
            continue
        mine = [e for e in events if e["namespace"] == ds["namespace"] and e["object"] == ds["name"]
                and PSA.search(e.get("message") or "")]
        if mine:
            mine.sort(key=lambda e: epoch(e.get("last_seen")) or 0, reverse=True)
            out.append({**ds, "events": mine})
    return out


def enforce_level(labels: dict | None) -> tuple[str, str]:
    """(level, where it comes from): the namespace label, else Talos's cluster-wide default."""
    level = (labels or {}).get(PSA_ENFORCE)
    if level:
        version = (labels or {}).get(PSA_ENFORCE + "-version", "latest")
        return level, f"label {PSA_ENFORCE}={level} (version {version})"
    return TALOS_DEFAULT_LEVEL, (f"no {PSA_ENFORCE} label: Talos enforces {TALOS_DEFAULT_LEVEL} on every namespace "
                                 "but kube-system by default")


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


# --- fix plans ----------------------------------------------------------------------------------
def fix_plans(ev: Evidence, findings: list, target: str) -> list[Plan]:
    """The guarded fixes for this run's problems (:mod:`runbook_lib.fixes`); ``target`` names the cluster."""
    problems = {f.id for f in findings if f.status == "problem"}
    ns = ev.get("cluster")["namespace"] if ev.has("cluster") else "argocd"
    plans: list[Plan] = []
    if "argocd.stale_error_cache" in problems:
        workload = next((w for w in ev.optional("workloads") or [] if w.get("component") == CONTROLLER
                         or w["name"] == CONTROLLER), {"kind": "StatefulSet", "name": CONTROLLER})
        plans.append(Plan(
            finding="argocd.stale_error_cache",
            title="Restart the Argo CD application controller (kubectl rollout restart)",
            changes=(Change(target, "restart", workload["kind"], workload["name"], ns,
                            why="a new controller process has no cached comparison errors"),),
            recheck=("argocd.stale_error_cache",),
            note="The controller's pod is replaced; Applications are compared again within a few minutes."))
    if "argocd.networkpolicy_blocking" in problems:
        names = sorted({n for p in component_paths(ev) if not p.allowed for n in p.denying})
        plans.append(Plan(
            finding="argocd.networkpolicy_blocking",
            title=f"Delete the NetworkPolicies that block Argo CD ({', '.join(names)})",
            changes=tuple(Change(target, "delete", "NetworkPolicy", n, ns, why="it denies a connection Argo CD "
                                                                               "needs") for n in names),
            recheck=("argocd.networkpolicy_blocking",),
            note="Policies created by Helm return on the next upgrade unless global.networkPolicy.create=false."))
    if "argocd.podsecurity_violation" in problems:
        spaces = sorted({d["namespace"] for d in psa_blocks(ev)})
        plans.append(Plan(
            finding="argocd.podsecurity_violation",
            title=f"Let privileged pods run in {', '.join(spaces)}",
            changes=tuple(Change(target, "patch", "Namespace", n, None,
                                 body={"metadata": {"labels": {PSA_ENFORCE: "privileged",
                                                               PSA_ENFORCE + "-version": "latest"}}},
                                 why="PodSecurity refuses the DaemonSet's pods at the current level")
                          for n in spaces),
            recheck=("argocd.podsecurity_violation",),
            note="Every pod in these namespaces may then use host namespaces, host paths and privileged mode."))
    return plans
