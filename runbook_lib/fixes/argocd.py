"""The ArgoCD runbook's fix plans: restart the application controller, delete the NetworkPolicies
that block Argo CD, let privileged pods run in a namespace PodSecurity refuses them in."""

from __future__ import annotations

from ..evidence import Evidence
from ..model.argocd import CONTROLLER, PSA_ENFORCE, component_paths, psa_blocks
from ..verdict import Finding
from . import Change, Plan


def plans(ev: Evidence, findings: list[Finding], target: str) -> list[Plan]:
    """The guarded fixes for this run's problems; ``target`` names the cluster."""
    problems = {f.id for f in findings if f.status == "problem"}
    ns = ev.get("cluster")["namespace"] if ev.has("cluster") else "argocd"
    out: list[Plan] = []
    if "argocd.stale_error_cache" in problems:
        workload = next((w for w in ev.optional("workloads") or [] if w.get("component") == CONTROLLER
                         or w["name"] == CONTROLLER), {"kind": "StatefulSet", "name": CONTROLLER})
        out.append(Plan(
            finding="argocd.stale_error_cache",
            title="Restart the Argo CD application controller (kubectl rollout restart)",
            changes=(Change(target, "restart", workload["kind"], workload["name"], ns,
                            why="a new controller process has no cached comparison errors"),),
            recheck=("argocd.stale_error_cache",),
            note="The controller's pod is replaced; Applications are compared again within a few minutes."))
    if "argocd.networkpolicy_blocking" in problems:
        names = sorted({n for p in component_paths(ev) if not p.allowed for n in p.denying})
        out.append(Plan(
            finding="argocd.networkpolicy_blocking",
            title=f"Delete the NetworkPolicies that block Argo CD ({', '.join(names)})",
            changes=tuple(Change(target, "delete", "NetworkPolicy", n, ns, why="it denies a connection Argo CD "
                                                                               "needs") for n in names),
            recheck=("argocd.networkpolicy_blocking",),
            note="Policies created by Helm return on the next upgrade unless global.networkPolicy.create=false."))
    if "argocd.podsecurity_violation" in problems:
        spaces = sorted({d["namespace"] for d in psa_blocks(ev)})
        out.append(Plan(
            finding="argocd.podsecurity_violation",
            title=f"Let privileged pods run in {', '.join(spaces)}",
            changes=tuple(Change(target, "patch", "Namespace", n, None,
                                 body={"metadata": {"labels": {PSA_ENFORCE: "privileged",
                                                               PSA_ENFORCE + "-version": "latest"}}},
                                 why="PodSecurity refuses the DaemonSet's pods at the current level")
                          for n in spaces),
            recheck=("argocd.podsecurity_violation",),
            note="Every pod in these namespaces may then use host namespaces, host paths and privileged mode."))
    return out
