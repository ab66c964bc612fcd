"""The ArgoCD notebook's tables: the cluster, Argo CD's pods and Services, the NetworkPolicies and
the connections they allow, the Applications, the DaemonSets."""

from __future__ import annotations

from ..evidence import Evidence
from ..model.argocd import NAME, component_paths, enforce_level
from ..netpol.labels import show_labels
from ..netpol.policy import policy_types
from . import or_reason


def cluster_line(ev: Evidence) -> str:
    c = ev.get("cluster")
    return f"cluster {c['name']} {c['server'] or ''}: Kubernetes {c['version'] or 'not reachable'}"


def plan_target(ev: Evidence) -> str:
    """What a fix plan's changes are made on: the cluster, as the call log names it."""
    return f"kubernetes {ev.get('cluster')['name']}"


def _ports(ports: list[dict]) -> str:
    return ", ".join(f"{q['name'] or '-'}/{q['port']}" for q in ports)


def pods(ev: Evidence) -> list[dict]:
    """Each Argo CD pod: component, address, readiness and ports."""
    rows = [{"pod": x["name"], "component": x["labels"].get(NAME, ""), "ip": x["ip"], "ready": x["ready"],
             "ready since": x["ready_since"], "ports": _ports(x["ports"])} for x in ev.optional("pods") or []]
    return or_reason(rows, ev, "pods", "pod")


def services(ev: Evidence) -> list[dict]:
    """Each Argo CD Service with its selector, ports and the ready pods behind it."""
    endpoints = ev.optional("endpoints") or {}
    rows = [{"service": s["name"], "selector": show_labels(s["selector"]),
             "port": ", ".join(f"{q['port']}->{q['target']}" for q in s["ports"]),
             "ready endpoints": ", ".join(endpoints.get(s["name"], {}).get("ready") or []) or "<none>"}
            for s in ev.optional("services") or []]
    return or_reason(rows, ev, "services", "service")


def network_policies(ev: Evidence) -> list[dict]:
    """The NetworkPolicies in Argo CD's namespace: which pods each selects, for which directions."""
    rows = [{"policy": x["name"], "selects": _selects(x["pod_selector"]),
             "types": ", ".join(policy_types(x)),
             "managed by": x["labels"].get("app.kubernetes.io/managed-by", "")}
            for x in ev.optional("network_policies") or []]
    return or_reason(rows, ev, "network_policies", "NetworkPolicies")


def _selects(selector: dict) -> str:
    labels = selector.get("matchLabels")
    return show_labels(labels) if labels or selector.get("matchExpressions") else "every pod"


def connections(ev: Evidence) -> list[dict]:
    """Every connection Argo CD's components need, judged by those policies."""
    try:
        paths = component_paths(ev)
    except Exception as exc:  # missing evidence: the verdict says why
        return [{"from": "-", "to": "-", "allowed": None, "why not": f"connections not judged: {exc}"}]
    return [{"from": x.caller, "to": f"{x.service}:{x.port}", "allowed": x.allowed, "why not": "; ".join(x.reasons)}
            for x in paths]


def applications(ev: Evidence) -> list[dict]:
    """Each Application's sync and health, with its error conditions and their ages."""
    rows = [{"application": a["name"], "sync": a["sync"], "health": a["health"],
             "condition": "; ".join(f"{x['type']} since {x['since']}" for x in a["conditions"]),
             "message": " | ".join(x["message"][-120:] for x in a["conditions"])}
            for a in ev.optional("applications") or []]
    return or_reason(rows, ev, "applications", "applications")


def daemonsets(ev: Evidence) -> list[dict]:
    """Every DaemonSet, desired against ready, with its namespace's PodSecurity level."""
    namespaces = ev.optional("namespaces") or {}
    rows = [{"daemonset": f"{d['namespace']}/{d['name']}", "desired": d["desired"], "ready": d["ready"],
             "enforce": enforce_level(namespaces.get(d["namespace"]))[0]}
            for d in ev.optional("daemonsets") or []]
    return or_reason(rows, ev, "daemonsets", "daemonsets")
