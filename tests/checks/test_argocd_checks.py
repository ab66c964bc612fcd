"""The argocd checks and fix plans, judged from evidence dicts alone (no servers).

The last tests run the notebook against twins whose API server cannot be asked: every finding is
`unknown` with the reason, never a traceback.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from runbook_lib.checks import registered, run_checks
from runbook_lib.evidence import Evidence
from runbook_lib.fixes.argocd import plans as fix_plans

NOW = 1_800_000_000.0
IIS = "app.kubernetes.io/instance"
NAME = "app.kubernetes.io/name"
DIAL = ('Failed to load target state: failed to generate manifest for source 1 of 1: rpc error: code = Unavailable '
        'desc = connection error: desc = "transport: Error while dialing: dial tcp 10.96.142.17:8081: connect: '
        'operation not permitted"')


def stamp(seconds_ago: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(NOW - seconds_ago, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(component: str, ip: str, ports: list[tuple[str, int]], *, ready_ago: float = 86400, started_ago=None,
        labels: dict | None = None) -> dict:
    return {"name": f"{component}-0", "labels": labels if labels is not None else {NAME: component, IIS: "argocd"},
            "ip": ip, "phase": "Running", "ready": ready_ago is not None,
            "ready_since": stamp(ready_ago) if ready_ago is not None else None,
            "started": stamp(started_ago if started_ago is not None else (ready_ago or 86400)), "restarts": 0,
            "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports]}


def service(name: str, ip: str, port: int, target) -> dict:
    return {"name": name, "cluster_ip": ip, "selector": {NAME: name, IIS: "argocd"},
            "ports": [{"name": "main", "port": port, "target": target, "protocol": "TCP"}]}


def ingress_policy(name: str, selects_component: str, callers: list[str], port) -> dict:
    return {"name": name, "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "pod_selector": {"matchLabels": {NAME: selects_component, IIS: "argocd"}}, "types": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {NAME: c, IIS: "argocd"}}} for c in callers],
                         "ports": [{"port": port, "protocol": "TCP"}]}], "egress": None}


def app(name: str, *conditions: dict) -> dict:
    return {"name": name, "sync": "Unknown" if conditions else "Synced", "health": "Healthy",
            "reconciled_at": stamp(60), "conditions": list(conditions)}


def healthy() -> dict:
    pods = [pod("argocd-application-controller", "10.244.1.11", [("metrics", 8082)]),
            pod("argocd-repo-server", "10.244.1.23", [("repo-server", 8081), ("metrics", 8084)]),
            pod("argocd-server", "10.244.1.31", [("server", 8080)]),
            pod("argocd-redis", "10.244.1.42", [("redis", 6379)]),
            pod("argocd-applicationset-controller", "10.244.1.57", [("webhook", 7000)])]
    services = [service("argocd-repo-server", "10.96.142.17", 8081, "repo-server"),
                service("argocd-server", "10.96.80.10", 80, 8080),
                service("argocd-redis", "10.96.63.79", 6379, "redis")]
    return {
        "cluster": {"name": "lab", "namespace": "argocd", "now": NOW, "stale_after": 300, "server": "x",
                    "version": "v1.32.3"},
        "namespaces": {"argocd": {"kubernetes.io/metadata.name": "argocd"},
                       "monitoring": {"kubernetes.io/metadata.name": "monitoring",
                                      "pod-security.kubernetes.io/enforce": "privileged"}},
        "pods": pods,
        "services": services,
        "endpoints": {"argocd-repo-server": {"exists": True, "ready": ["10.244.1.23"], "not_ready": []},
                      "argocd-server": {"exists": True, "ready": ["10.244.1.31"], "not_ready": []},
                      "argocd-redis": {"exists": True, "ready": ["10.244.1.42"], "not_ready": []}},
        "network_policies": [
            ingress_policy("argocd-repo-server", "argocd-repo-server",
                           ["argocd-server", "argocd-application-controller", "argocd-applicationset-controller"],
                           "repo-server"),
            ingress_policy("argocd-redis", "argocd-redis",
                           ["argocd-server", "argocd-repo-server", "argocd-application-controller"], "redis")],
        "applications": [app("root"), app("monitoring")],
        "workloads": [{"kind": "StatefulSet", "name": "argocd-application-controller",
                       "component": "argocd-application-controller"}],
        "daemonsets": [{"namespace": "monitoring", "name": "node-exporter", "desired": 3, "current": 3, "ready": 3,
                        "unavailable": 0}],
        "psa_events": [],
        "controller_log": {"pod": "argocd-application-controller-0", "lines": 200, "errors": 0, "tail": []},
    }


def with_(ev: dict, **changes) -> dict:
    out = copy.deepcopy(ev)
    out.update(copy.deepcopy(changes))
    return out


def verdict(items: dict, errors: dict | None = None) -> dict:
    return {f.id: f for f in run_checks("argocd", Evidence(items, errors))}


def statuses(items: dict, errors: dict | None = None) -> dict[str, str]:
    return {i: f.status for i, f in verdict(items, errors).items()}


def error_cond(since_ago: float, message: str = DIAL) -> dict:
    return {"type": "ComparisonError", "message": message, "since": stamp(since_ago)}


# --- registry and healthy ---------------------------------------------------------------------------
def test_every_catalog_id_has_a_check():
    assert set(registered("argocd")) == {"argocd.networkpolicy_blocking", "argocd.endpoints_none",
                                         "argocd.stale_error_cache", "argocd.podsecurity_violation"}


def test_healthy_evidence_is_all_ok():
    assert set(statuses(healthy()).values()) == {"ok"}
    assert fix_plans(Evidence(healthy()), list(verdict(healthy()).values()), "kubernetes lab") == []


# --- NetworkPolicies (their evaluation is tested in tests/test_netpol.py) ---------------------------
def test_egress_default_deny_blocks_and_names_the_policy():
    deny = {"name": "default-deny-egress", "labels": {}, "pod_selector": {}, "types": ["Egress"],
            "ingress": None, "egress": [{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {
                "k8s-app": "kube-dns"}}}], "ports": [{"port": 53, "protocol": "UDP"}]}]}
    ev = healthy()
    ev["network_policies"].append(deny)
    ev["applications"] = [app("monitoring", error_cond(600))]
    found = verdict(ev)
    f = found["argocd.networkpolicy_blocking"]
    assert f.status == "problem"
    assert any("argocd-application-controller -> argocd-repo-server:8081" in e and "default-deny-egress" in e
               for e in f.evidence)
    assert any("operation not permitted" in e for e in f.evidence)
    assert "global.networkPolicy.create=false" in f.fix
    assert found["argocd.stale_error_cache"].status == "ok"  # the cause is current, not cached
    (plan,) = fix_plans(Evidence(ev), list(found.values()), "kubernetes lab")
    assert [(c.verb, c.kind, c.name) for c in plan.changes] == [("delete", "NetworkPolicy", "default-deny-egress")]


def test_ingress_policy_missing_the_controller_is_a_problem_with_the_helm_hint():
    ev = healthy()
    ev["network_policies"][0] = ingress_policy("argocd-repo-server", "argocd-repo-server", ["argocd-server"],
                                               "repo-server")
    f = verdict(ev)["argocd.networkpolicy_blocking"]
    assert f.status == "problem" and "2 of the 6" in f.summary
    assert any("Helm" in e and "argocd-repo-server" in e for e in f.evidence)


def test_no_policies_is_ok():
    f = verdict(with_(healthy(), network_policies=[]))["argocd.networkpolicy_blocking"]
    assert f.status == "ok" and "no NetworkPolicies" in f.summary


# --- endpoints ---------------------------------------------------------------------------------
def test_label_mismatch_names_the_missing_label():
    ev = healthy()
    ev["pods"][1]["labels"] = {NAME: "argocd-repo-server"}
    ev["endpoints"]["argocd-repo-server"] = {"exists": True, "ready": [], "not_ready": []}
    f = verdict(ev)["argocd.endpoints_none"]
    assert f.status == "problem" and "argocd-repo-server" in f.summary
    assert "matches no pod" in f.evidence[0] and "<none>" in f.evidence[0]
    assert "app.kubernetes.io/name=argocd-repo-server" in f.evidence[0]


def test_port_name_mismatch_and_not_ready_pods():
    ev = healthy()
    ev["pods"][1]["ports"] = [{"name": "server", "port": 8081, "protocol": "TCP"}]
    ev["endpoints"]["argocd-repo-server"] = {"exists": True, "ready": [], "not_ready": []}
    f = verdict(ev)["argocd.endpoints_none"]
    assert f.status == "problem" and "targetPort repo-server is not a port" in f.evidence[0]
    ev = healthy()
    ev["pods"][1].update(ready=False, ready_since=None)
    ev["endpoints"]["argocd-repo-server"] = {"exists": True, "ready": [], "not_ready": ["10.244.1.23"]}
    f = verdict(ev)["argocd.endpoints_none"]
    assert f.status == "problem" and "none is Ready" in f.evidence[0] and "only not-ready" in f.evidence[0]


# --- stale error cache --------------------------------------------------------------------------
def stale_evidence(error_ago=7200, recovered_ago=1800, controller_ago=604800) -> dict:
    ev = healthy()
    ev["pods"][1].update(ready_since=stamp(recovered_ago), started=stamp(recovered_ago))
    ev["pods"][0].update(started=stamp(controller_ago), ready_since=stamp(controller_ago))
    ev["applications"] = [app("monitoring", error_cond(error_ago)), app("root")]
    return ev


def test_error_older_than_the_recovery_is_stale():
    found = verdict(stale_evidence())
    f = found["argocd.stale_error_cache"]
    assert f.status == "problem"
    assert "Application monitoring" in f.evidence[0] and "30 min ago" in f.evidence[0]
    assert any("before the recovery" in e for e in f.evidence)
    assert "rollout restart statefulset argocd-application-controller" in f.fix
    assert {i for i, x in found.items() if x.status == "problem"} == {"argocd.stale_error_cache"}
    (plan,) = fix_plans(Evidence(stale_evidence()), list(found.values()), "kubernetes lab")
    assert [(c.verb, c.kind, c.namespace, c.name) for c in plan.changes] == [
        ("restart", "StatefulSet", "argocd", "argocd-application-controller")]
    assert plan.recheck == ("argocd.stale_error_cache",)


@pytest.mark.parametrize("kwargs, status, words", [
    ({"recovered_ago": 120}, "ok", "recovered only"),  # within the grace: the controller has not reconciled
    ({"error_ago": 600, "recovered_ago": 1800}, "unknown", "began after"),  # error newer than the recovery
    ({"controller_ago": 900}, "unknown", "controller restarted after"),  # a fresh controller still sees it
])
def test_errors_that_are_not_a_stale_cache(kwargs, status, words):
    f = verdict(stale_evidence(**kwargs))["argocd.stale_error_cache"]
    assert f.status == status and any(words in e for e in f.evidence), f


def test_error_whose_cause_is_present_is_current():
    ev = stale_evidence()
    ev["endpoints"]["argocd-repo-server"]["ready"] = []
    f = verdict(ev)["argocd.stale_error_cache"]
    assert f.status == "ok" and "still there" in f.evidence[0]


def test_error_found_by_service_name_when_no_ip():
    ev = stale_evidence()
    ev["applications"] = [app("x", error_cond(7200, "rpc error: code = Unavailable desc = argocd-repo-server:8081 "
                                                     "connection refused"))]
    assert verdict(ev)["argocd.stale_error_cache"].status == "problem"


# --- PodSecurity ----------------------------------------------------------------------------------
PSA_MESSAGE = ('Error creating: pods "node-exporter-8xk2p" is forbidden: violates PodSecurity "baseline:latest": '
               'host namespaces (hostNetwork=true, hostPID=true), hostPort (container "node-exporter" uses hostPort 9100)')


def psa_evidence(labels: dict) -> dict:
    ev = healthy()
    ev["namespaces"]["monitoring"] = labels
    ev["daemonsets"][0].update(current=0, ready=0, unavailable=3)
    ev["psa_events"] = [{"namespace": "monitoring", "object": "node-exporter", "kind": "DaemonSet",
                         "reason": "FailedCreate", "message": PSA_MESSAGE, "count": 17, "last_seen": stamp(95)}]
    return ev


def test_podsecurity_without_labels_names_talos_baseline():
    f = verdict(psa_evidence({"kubernetes.io/metadata.name": "monitoring"}))["argocd.podsecurity_violation"]
    assert f.status == "problem" and "monitoring/node-exporter" in f.summary
    assert 'desired 3, ready 0' in f.evidence[0] and 'violates PodSecurity "baseline:latest"' in f.evidence[0]
    assert "Talos enforces baseline" in f.evidence[1]
    assert "pod-security.kubernetes.io/enforce=privileged" in f.fix


def test_podsecurity_with_a_restricted_label_and_its_plan():
    ev = psa_evidence({"pod-security.kubernetes.io/enforce": "restricted"})
    found = verdict(ev)
    assert "label pod-security.kubernetes.io/enforce=restricted" in found["argocd.podsecurity_violation"].evidence[1]
    (plan,) = fix_plans(Evidence(ev), list(found.values()), "kubernetes lab")
    (change,) = plan.changes
    assert (change.verb, change.kind, change.name) == ("patch", "Namespace", "monitoring")
    assert change.body == {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged",
                                                   "pod-security.kubernetes.io/enforce-version": "latest"}}}


def test_daemonset_short_for_another_reason_is_not_podsecurity():
    ev = psa_evidence({})
    ev["psa_events"][0]["message"] = 'Error creating: pods "x" is forbidden: exceeded quota: compute'
    f = verdict(ev)["argocd.podsecurity_violation"]
    assert f.status == "ok" and "no PodSecurity refusal" in f.summary


# --- missing evidence ---------------------------------------------------------------------------
def test_missing_evidence_is_unknown_with_the_reason():
    items = {"cluster": healthy()["cluster"]}
    reason = "kubernetes lab 127.0.0.1:6443: GET /version: connection refused"
    errors = {name: reason for name in ("pods", "services", "endpoints", "network_policies", "applications",
                                        "daemonsets", "psa_events", "namespaces")}
    found = verdict(items, errors)
    assert {f.status for f in found.values()} == {"unknown"}
    assert all(reason in f.evidence for f in found.values())


# --- the notebook when the API cannot be asked -------------------------------------------------
@pytest.mark.runbook
def test_runbook_reports_unknown_not_a_traceback(tmp_path):
    from runbook_lab.twin import Twin
    from runbook_lib.runner import run_runbook

    scenario = {"name": "no-crd", "summary": "Argo CD's CRD is not installed", "expect": [],
                "changes": {"kubernetes": {"crds": []}}}
    with Twin(scenario, workdir=tmp_path / "twin") as twin:
        site = yaml.safe_load(twin.site_file.read_text())
        kubeconfig = yaml.safe_load(Path(site["kubernetes"]["homelab"]["kubeconfig"]).read_text())
        variants = {"crd missing": twin.site_file}
        bad_token = copy.deepcopy(kubeconfig)
        bad_token["users"][0]["user"]["token"] = "not-the-token-0123456789"
        closed = copy.deepcopy(kubeconfig)
        closed["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:9"
        for label, doc in (("401", bad_token), ("unreachable", closed)):
            (tmp_path / label).mkdir()
            (tmp_path / label / "kubeconfig").write_text(yaml.safe_dump(doc))
            variant = copy.deepcopy(site)
            variant["kubernetes"]["homelab"]["kubeconfig"] = str(tmp_path / label / "kubeconfig")
            (tmp_path / label / "site.yaml").write_text(yaml.safe_dump(variant))
            variants[label] = tmp_path / label / "site.yaml"
        results = {k: run_runbook("argocd", site_file=v, outputs_dir=tmp_path / "out") for k, v in variants.items()}
        assert twin.writes() == []
    expected = {"crd missing": ("applications", "page not found"), "401": (None, "401 Unauthorized"),
                "unreachable": (None, "connection refused")}
    for label, res in results.items():
        v = res.verdict
        assert not v.error, v.text()
        by_id = {f.id: f for f in v.findings}
        piece, words = expected[label]
        if label == "crd missing":
            assert by_id["argocd.stale_error_cache"].status == "unknown"
            assert any(words in e and "CRD" in e for e in by_id["argocd.stale_error_cache"].evidence)
            # the rest of the cluster is read: only the check that needs the Applications is unknown
            assert {i for i, f in by_id.items() if f.status == "unknown"} == {"argocd.stale_error_cache"}
            assert res.exit_code == 1
        else:
            assert {f.status for f in v.findings} == {"unknown"}, v.text()
            assert all(any(words in e for e in f.evidence) for f in v.findings), v.text()
            assert res.exit_code == 1
