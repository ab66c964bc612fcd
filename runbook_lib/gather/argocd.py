"""Evidence for the ArgoCD runbook: one cluster's API, read in parallel, summarized for the checks.

``GET /version`` goes first: when the API server cannot be asked (down, 401, bad certificate)
every piece of evidence fails with that one reason instead of each call waiting out its own
deadline. Then four groups run in parallel: Argo CD's namespace (pods, Services, endpoints,
NetworkPolicies, workloads), its Applications (a CRD: a missing one is a plain-text 404), the
cluster's DaemonSets with their PodSecurity events and namespace labels, and the application
controller's log tail. The names are documented in :mod:`runbook_lib.checks.argocd`.

:func:`executor` turns a fix :class:`~runbook_lib.fixes.Change` into the write call it stands for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from ..calls import CallLog
from ..errors import NotFound, RunbookError, SourceError
from ..evidence import Evidence
from ..fixes import Change
from ..model.argocd import CONTROLLER, DIAL, NAME, STALE_AFTER
from ..site import Site
from ..sources.kube import KubeCluster
from . import in_parallel

PIECES = ("namespaces", "pods", "services", "endpoints", "network_policies", "workloads", "applications",
          "daemonsets", "psa_events", "controller_log")


@dataclass
class Options:
    namespace: str = "argocd"  # where Argo CD runs
    stale_after: float = STALE_AFTER  # seconds after a recovery before a lingering error counts as cached
    log_lines: int = 200  # lines of the application controller's log to read (0: none)


def pick_cluster(site: Site, name: str = "") -> str:
    """The site's cluster named ``name``, or its only (first) one."""
    if not site.kubernetes:
        raise RunbookError("the site file has no 'kubernetes:' section: add the cluster's kubeconfig "
                           "(see docs/runbooks/argocd.md)")
    if name:
        if name not in site.kubernetes:
            raise RunbookError(f"the site has no Kubernetes cluster '{name}'; it has: {', '.join(site.kubernetes)}")
        return name
    return next(iter(site.kubernetes))


def connect(site: Site, calls: CallLog, name: str = "") -> KubeCluster:
    cluster = pick_cluster(site, name)
    return KubeCluster(cluster, site.kubernetes[cluster], calls)


def gather_site(site: Site, calls: CallLog, name: str = "", options: Options | None = None,
                progress: Callable[[str], None] | None = None) -> tuple[KubeCluster | None, Evidence]:
    """Connect to the site's cluster ``name`` and gather; without a usable cluster, evidence that says why."""
    opts = options or Options()
    try:
        kube = connect(site, calls, name)
    except RunbookError as exc:
        return None, unavailable(name or "?", opts, str(exc))
    return kube, gather(kube, opts, progress)


def unavailable(name: str, opts: Options, reason: str) -> Evidence:
    """Evidence where every piece failed for one ``reason`` (no cluster, API server down ...)."""
    ev = Evidence()
    ev.put("cluster", {"name": name, "namespace": opts.namespace, "now": time.time(),
                       "stale_after": opts.stale_after, "server": "", "version": ""})
    for piece in PIECES:
        ev.fail(piece, reason)
    return ev


def gather(kube: KubeCluster, options: Options | None = None,
           progress: Callable[[str], None] | None = None) -> Evidence:
    opts = options or Options()
    try:
        version = kube.version()
    except SourceError as exc:
        return unavailable(kube.name, opts, str(exc))
    ev = Evidence()
    cluster = {"name": kube.name, "namespace": opts.namespace, "now": time.time(),
               "stale_after": opts.stale_after, "server": "", "version": ""}
    cluster.update(server=kube.target.split(" ", 2)[-1], version=version.get("gitVersion", ""))
    ev.put("cluster", cluster)
    in_parallel(ev, {
        "argocd namespace": lambda e: _namespace(e, kube, opts.namespace),
        "applications": lambda e: e.collect("applications", _applications, kube, opts.namespace),
        "daemonsets": lambda e: _daemonsets(e, kube),
        "controller log": lambda e: _controller_log(e, kube, opts),
    }, progress)
    return ev


# --- summaries -------------------------------------------------------------------------------------
def _condition(obj: dict, kind: str) -> dict | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), None)


def summarize_pod(pod: dict) -> dict:
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    ready = _condition(pod, "Ready") or {}
    return {
        "name": meta.get("name", ""),
        "labels": meta.get("labels") or {},
        "ip": status.get("podIP") or "",
        "phase": status.get("phase") or "",
        "ready": ready.get("status") == "True",
        "ready_since": ready.get("lastTransitionTime") if ready.get("status") == "True" else None,
        "started": status.get("startTime"),
        "restarts": sum(c.get("restartCount") or 0 for c in status.get("containerStatuses") or []),
        "ports": [{"name": p.get("name") or "", "port": p.get("containerPort"), "protocol": p.get("protocol") or "TCP"}
                  for c in spec.get("containers") or [] for p in c.get("ports") or []],
    }


def summarize_service(svc: dict) -> dict:
    spec = svc.get("spec") or {}
    return {
        "name": (svc.get("metadata") or {}).get("name", ""),
        "cluster_ip": spec.get("clusterIP") or "",
        "selector": spec.get("selector") or {},
        "ports": [{"name": p.get("name") or "", "port": p.get("port"), "target": p.get("targetPort", p.get("port")),
                   "protocol": p.get("protocol") or "TCP"} for p in spec.get("ports") or []],
    }


def summarize_endpoints(endpoints: list[dict], slices: list[dict] | None) -> dict:
    """Service -> ready / not-ready addresses, from Endpoints (EndpointSlices when they are missing)."""
    out: dict[str, dict] = {}
    for ep in endpoints:
        ready, not_ready = [], []
        for subset in ep.get("subsets") or []:
            ready += [a.get("ip") for a in subset.get("addresses") or []]
            not_ready += [a.get("ip") for a in subset.get("notReadyAddresses") or []]
        out[(ep.get("metadata") or {}).get("name", "")] = {"exists": True, "ready": ready, "not_ready": not_ready,
                                                         "source": "Endpoints"}
    for sl in slices or []:
        svc = ((sl.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name")
        if not svc or svc in out and out[svc]["source"] == "Endpoints":
            continue
        entry = out.setdefault(svc, {"exists": True, "ready": [], "not_ready": [], "source": "EndpointSlice"})
        for e in sl.get("endpoints") or []:
            ready = (e.get("conditions") or {}).get("ready") is not False
            entry["ready" if ready else "not_ready"] += list(e.get("addresses") or [])
    return out


def summarize_policy(pol: dict) -> dict:
    spec = pol.get("spec") or {}
    return {"name": (pol.get("metadata") or {}).get("name", ""), "labels": (pol.get("metadata") or {}).get("labels") or {},
            "pod_selector": spec.get("podSelector") or {}, "types": spec.get("policyTypes") or [],
            "ingress": spec.get("ingress"), "egress": spec.get("egress")}


def summarize_application(app: dict) -> dict:
    status = app.get("status") or {}
    return {
        "name": (app.get("metadata") or {}).get("name", ""),
        "sync": (status.get("sync") or {}).get("status") or "",
        "health": (status.get("health") or {}).get("status") or "",
        "reconciled_at": status.get("reconciledAt"),
        "conditions": [{"type": c.get("type", ""), "message": c.get("message", ""), "since": c.get("lastTransitionTime")}
                       for c in status.get("conditions") or []],
    }


def summarize_daemonset(ds: dict) -> dict:
    meta, status = ds.get("metadata") or {}, ds.get("status") or {}
    return {"namespace": meta.get("namespace", ""), "name": meta.get("name", ""),
            "desired": status.get("desiredNumberScheduled") or 0, "current": status.get("currentNumberScheduled") or 0,
            "ready": status.get("numberReady") or 0, "unavailable": status.get("numberUnavailable") or 0}


def summarize_event(e: dict) -> dict:
    """A core/v1 event; "last seen" falls back through series and eventTime as kubectl does."""
    meta, obj = e.get("metadata") or {}, e.get("involvedObject") or {}
    last = (e.get("lastTimestamp") or (e.get("series") or {}).get("lastObservedTime") or e.get("eventTime")
            or meta.get("creationTimestamp"))
    count = e.get("count") or (e.get("series") or {}).get("count") or 1
    return {"namespace": obj.get("namespace") or meta.get("namespace", ""), "object": obj.get("name", ""),
            "kind": obj.get("kind", ""), "reason": e.get("reason", ""), "message": e.get("message", ""),
            "count": count, "last_seen": last}


# --- groups -----------------------------------------------------------------------------------------
def _namespace(ev: Evidence, kube: KubeCluster, ns: str) -> None:
    pods = ev.collect("pods", lambda: [summarize_pod(p) for p in kube.list("Pod", ns)])
    ev.collect("services", lambda: [summarize_service(s) for s in kube.list("Service", ns)])
    try:
        endpoints = kube.list("Endpoints", ns)
        slices = kube.list("EndpointSlice", ns)
        ev.put("endpoints", summarize_endpoints(endpoints, slices))
    except RunbookError as exc:
        ev.fail("endpoints", str(exc))
    ev.collect("network_policies", lambda: [summarize_policy(p) for p in kube.list("NetworkPolicy", ns)])
    try:
        workloads = [{"kind": w["kind"], "name": w["metadata"]["name"],
                      "component": (w["metadata"].get("labels") or {}).get(NAME, "")}
                     for kind in ("StatefulSet", "Deployment") for w in kube.list(kind, ns)]
        ev.put("workloads", workloads)
    except RunbookError as exc:
        ev.fail("workloads", str(exc))
    if pods == []:
        ev.fail("pods", f"no pods in namespace {ns}: is Argo CD installed there? (see the namespace parameter)")


def _applications(kube: KubeCluster, ns: str) -> list[dict]:
    return [summarize_application(a) for a in kube.list("Application", ns)]


def _daemonsets(ev: Evidence, kube: KubeCluster) -> None:
    ev.collect("daemonsets", lambda: [summarize_daemonset(d) for d in kube.list("DaemonSet")])
    ev.collect("psa_events", lambda: [summarize_event(e) for e in kube.list(
        "Event", field_selector="involvedObject.kind=DaemonSet,reason=FailedCreate")])
    ev.collect("namespaces", lambda: {n["metadata"]["name"]: n["metadata"].get("labels") or {}
                                      for n in kube.list("Namespace")})


def _controller_log(ev: Evidence, kube: KubeCluster, opts: Options) -> None:
    if opts.log_lines <= 0:
        ev.fail("controller_log", "not read (log_lines is 0)")
        return
    try:
        pods = kube.list("Pod", opts.namespace, label_selector=f"{NAME}={CONTROLLER}")
        if not pods:
            raise NotFound(kube.target, f"no pod labelled {NAME}={CONTROLLER} in {opts.namespace}")
        pod = pods[0]
        containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        text = kube.pod_log(pod["metadata"]["name"], opts.namespace, container=containers[0] if containers else None,
                            tail_lines=opts.log_lines)
    except RunbookError as exc:
        ev.fail("controller_log", str(exc))
        return
    lines = text.splitlines()
    errors = [line for line in lines if DIAL.search(line)]
    ev.put("controller_log", {"pod": pod["metadata"]["name"], "lines": len(lines), "errors": len(errors),
                              "tail": lines[-10:], "error_examples": errors[-3:]})


# --- fixes -----------------------------------------------------------------------------------------
def executor(kube: KubeCluster) -> Callable[[Change], str]:
    """One fix change as the write call it describes (recorded by the source with ``write=True``)."""

    def execute(change: Change) -> str:
        if change.verb == "restart":
            obj = kube.restart(change.kind, change.name, change.namespace)
        elif change.verb == "patch":
            obj = kube.patch(change.kind, change.name, change.namespace, change.body or {})
        else:
            kube.delete(change.kind, change.name, change.namespace)
            return "deleted"
        return f"resourceVersion {((obj or {}).get('metadata') or {}).get('resourceVersion', '?')}"

    return execute

