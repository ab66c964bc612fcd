"""ArgoCD on a Talos cluster: its components, the paths between them, and the messages that name a cause.

Whether a path is open is decided by :mod:`runbook_lib.netpol` (Kubernetes' own rules); which paths
Argo CD needs, and what PodSecurity admission does to a DaemonSet, is here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..netpol import Port, backends, connection_verdict, target_port
from .ages import epoch

NAME = "app.kubernetes.io/name"
CONTROLLER = "argocd-application-controller"
# which component must reach which Service: destination -> callers
PATHS: dict[str, tuple[str, ...]] = {
    "argocd-repo-server": (CONTROLLER, "argocd-server", "argocd-applicationset-controller"),
    "argocd-redis": (CONTROLLER, "argocd-server", "argocd-repo-server"),
    "argocd-dex-server": ("argocd-server",),
}
ERROR_CONDITIONS = ("ComparisonError", "InvalidSpecError", "SyncError", "UnknownError")
DIAL = re.compile(r"dial tcp ([0-9.]+):(\d+):? ?(?:connect: )?(operation not permitted|connection refused|i/o timeout)")
PSA = re.compile(r'violates PodSecurity "(\w+):([\w.]+)": (.*)')
PSA_ENFORCE = "pod-security.kubernetes.io/enforce"
TALOS_DEFAULT_LEVEL = "baseline"
STALE_AFTER = 300.0  # seconds a recovered component is given before a lingering error counts as cached


# --- the Argo CD topology (reads the argocd section's evidence, ``ev``: names in runbook_lib.checks.argocd) ---
def component_pods(pods: list[dict], component: str) -> list[dict]:
    """The pods of one Argo CD component (its ``app.kubernetes.io/name`` label)."""
    return [p for p in pods if (p.get("labels") or {}).get(NAME) == component]


@dataclass
class Path:
    """A caller component's connection to a Service, as the NetworkPolicies judge it."""

    caller: str
    service: str
    allowed: bool
    reasons: list[str]
    denying: list[str]
    port: Port


def component_paths(ev) -> list[Path]:
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


# --- PodSecurity admission ------------------------------------------------------------------------
def psa_blocks(ev) -> list[dict]:
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
