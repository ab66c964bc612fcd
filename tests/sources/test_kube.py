"""The Kubernetes source against the twin's API server: reads, writes, deadlines, every error kind."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest
import yaml

from runbook_lab.kube import StandaloneKube
from runbook_lab.model import healthy_state, merge
from runbook_lib import redact
from runbook_lib.calls import CallLog
from runbook_lib.errors import AuthFailed, CommandFailed, Malformed, NotFound, TimedOut, TLSFailed, Unreachable
from runbook_lib.site import KubeCluster as KubeSpec
from runbook_lib.sources.kube import KubeCluster, restart_body


def kube_model(**changes) -> dict:
    return merge(healthy_state()["kubernetes"], changes)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model = kube_model(pod_logs={"argocd/argocd-repo-server-6f8c9d7b5-k2x9q": [
        {"ago": 30, "level": "info", "msg": '{"json": "looking", "n": 1}', "fields": {"grpc.code": "OK"}},
        {"ago": 20, "level": "warning", "msg": "plain line"},
        {"ago": 10, "level": "error", "msg": "last line", "fields": {"error": "dial tcp 10.96.142.17:8081: i/o timeout"}},
    ]})
    with StandaloneKube(model, tmp_path_factory.mktemp("kube")) as kube:
        yield kube


def cluster(kubeconfig, calls=None, **kw) -> KubeCluster:
    return KubeCluster("lab", KubeSpec(kubeconfig=str(kubeconfig)), calls or CallLog(), **kw)


def test_version_and_target(server):
    calls = CallLog()
    with cluster(server.kubeconfig, calls) as k:
        assert k.version()["gitVersion"] == "v1.32.3"
        assert k.target == f"kubernetes lab 127.0.0.1:{server.server.port}"
    (call,) = calls.calls
    assert call.action == "GET /version" and call.outcome == "ok" and call.detail == "v1.32.3"
    assert call.bytes_in > 100 and not call.write


def test_lists_are_plain_dicts_with_selectors(server):
    calls = CallLog()
    with cluster(server.kubeconfig, calls) as k:
        pods = k.list("Pod", "argocd", label_selector="app.kubernetes.io/name in (argocd-server,argocd-redis)")
        assert sorted(p["metadata"]["labels"]["app.kubernetes.io/name"] for p in pods) == ["argocd-redis",
                                                                                          "argocd-server"]
        assert all(p["kind"] == "Pod" and isinstance(p["status"]["startTime"], str) for p in pods)
        assert json.loads(json.dumps(pods)) == pods  # JSON-shaped: evidence can hold it
        none = k.list("Pod", "argocd", label_selector="app.kubernetes.io/name,!app.kubernetes.io/name")
        assert none == []
        events = k.list("Event", field_selector="involvedObject.kind=DaemonSet,reason=SuccessfulCreate")
        assert [e["involvedObject"]["name"] for e in events] == ["node-exporter"]
        daemonsets = k.list("DaemonSet")  # all namespaces
        assert {d["metadata"]["namespace"] for d in daemonsets} == {"monitoring", "kube-system"}
        apps = k.list("Application", "argocd")
        assert {a["metadata"]["name"] for a in apps} == {"root", "monitoring", "cert-manager"}
        assert k.get("Namespace", "monitoring")["metadata"]["labels"]["kubernetes.io/metadata.name"] == "monitoring"
    assert [c.action for c in calls.calls][0] == (
        "GET /api/v1/namespaces/argocd/pods?labelSelector=app.kubernetes.io/name in (argocd-server,argocd-redis)")
    assert calls.calls[0].detail == "HTTP 200, 2 items"
    assert all(c.outcome == "ok" and c.bytes_out > 0 for c in calls.calls)


def test_pod_log_is_text_as_written(server):
    with cluster(server.kubeconfig) as k:
        text = k.pod_log("argocd-repo-server-6f8c9d7b5-k2x9q", "argocd", tail_lines=2)
    lines = text.splitlines()
    assert len(lines) == 2 and lines[0].endswith('level=warning msg="plain line"')
    assert 'error="dial tcp 10.96.142.17:8081: i/o timeout"' in lines[1]
    with cluster(server.kubeconfig) as k:
        first = k.pod_log("argocd-repo-server-6f8c9d7b5-k2x9q", "argocd", tail_lines=None).splitlines()[0]
    # a JSON-looking message stays JSON (the 35/36 clients turned it into a Python repr)
    assert 'msg="{\\"json\\": \\"looking\\", \\"n\\": 1}"' in first and "b'" not in first


def test_pod_log_keeps_the_newest_bytes(server):
    calls = CallLog()
    with cluster(server.kubeconfig, calls) as k:
        text = k.pod_log("argocd-repo-server-6f8c9d7b5-k2x9q", "argocd", tail_lines=None, max_bytes=120)
    assert text.endswith("i/o timeout\"\n") and len(text) <= 120
    assert calls.calls[-1].truncated


def test_not_found_object_and_missing_crd(server, tmp_path):
    with cluster(server.kubeconfig) as k:
        with pytest.raises(NotFound) as exc:
            k.get("Pod", "nosuch", "argocd")
        assert 'pods "nosuch" not found' in exc.value.reason and exc.value.status == 404
    with StandaloneKube(kube_model(crds=[]), tmp_path) as bare:
        with cluster(bare.kubeconfig) as k:
            with pytest.raises(NotFound) as exc:
                k.list("Application", "argocd")
    assert "404 page not found" in exc.value.reason and "CRD" in exc.value.reason


def test_bad_field_selector_is_a_command_failure(server):
    with cluster(server.kubeconfig) as k, pytest.raises(CommandFailed) as exc:
        k.list("Pod", "argocd", field_selector="spec.containers=x")
    assert exc.value.status == 400 and "field label not supported: spec.containers" in exc.value.reason


def test_rejected_token_is_auth_failed_and_never_shown(tmp_path):
    calls = CallLog()
    with StandaloneKube(kube_model(token="stale"), tmp_path) as bad:
        with cluster(bad.kubeconfig, calls) as k, pytest.raises(AuthFailed) as exc:
            k.list("Pod", "argocd")
        token = bad.token
    assert "401" in exc.value.reason
    assert token not in str(exc.value) and token not in json.dumps(calls.to_list())
    assert redact.default().text(f"token {token}") != f"token {token}"  # registered when loaded


def test_unreachable_and_hung_server(tmp_path):
    with StandaloneKube(kube_model(apiserver="down"), tmp_path / "down") as down:
        with cluster(down.kubeconfig) as k, pytest.raises(Unreachable) as exc:
            k.version()
    assert "connection refused" in exc.value.reason
    with StandaloneKube(kube_model(apiserver="hang"), tmp_path / "hang") as hung:
        calls = CallLog()
        start = time.monotonic()
        with cluster(hung.kubeconfig, calls, connect_timeout=1, read_timeout=0.5) as k, pytest.raises(TimedOut):
            k.version()
    assert time.monotonic() - start < 3  # one attempt, no client-side retries
    assert calls.calls[0].outcome == "timeout"


def test_untrusted_certificate_is_tls_failed(tmp_path):
    with StandaloneKube(kube_model(certificate="untrusted"), tmp_path) as kube:
        with cluster(kube.kubeconfig) as k, pytest.raises(TLSFailed) as exc:
            k.version()
    assert "certificate" in exc.value.reason


def test_missing_or_broken_kubeconfig(tmp_path):
    with pytest.raises(NotFound) as exc:
        cluster(tmp_path / "nosuch").version()
    assert "omnictl kubeconfig --service-account" in exc.value.reason
    broken = tmp_path / "broken"
    broken.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": [], "contexts": [],
                                      "users": [], "current-context": "nowhere"}))
    calls = CallLog()
    with pytest.raises(Malformed) as exc:
        cluster(broken, calls).version()
    assert exc.value.reason.startswith("kubeconfig: ")
    assert calls.calls[0].outcome == "error"


def test_writes_are_recorded_on_both_sides(tmp_path):
    with StandaloneKube(kube_model(), tmp_path) as kube:
        calls = CallLog()
        with cluster(kube.kubeconfig, calls) as k:
            at = datetime(2026, 11, 27, 10, 0, 0, tzinfo=timezone.utc)
            sts = k.restart("StatefulSet", "argocd-application-controller", "argocd", at=at)
            assert sts["spec"]["template"]["metadata"]["annotations"] == {
                "kubectl.kubernetes.io/restartedAt": "2026-11-27T10:00:00Z"}
            ns = k.patch("Namespace", "monitoring", None, {"metadata": {"labels": {"team": "ops"}}})
            assert ns["metadata"]["labels"]["team"] == "ops"
            k.delete("NetworkPolicy", "argocd-redis", "argocd")
            with pytest.raises(NotFound):
                k.delete("NetworkPolicy", "argocd-redis", "argocd")
            assert [p["metadata"]["name"] for p in k.list("NetworkPolicy", "argocd")] == [
                "argocd-application-controller", "argocd-repo-server", "argocd-server"]
        writes = [c for c in calls.calls if c.write]
        assert [c.action.split(" ")[0] for c in writes] == ["PATCH", "PATCH", "DELETE", "DELETE"]
        assert [c.outcome for c in writes] == ["ok", "ok", "ok", "error"]
        logged = kube.writes()
    assert [(w["action"].split(" ")[0], w["status"]) for w in logged] == [
        ("PATCH", 200), ("PATCH", 200), ("DELETE", 200), ("DELETE", 404)]
    assert logged[0]["action"] == "PATCH /apis/apps/v1/namespaces/argocd/statefulsets/argocd-application-controller"


def test_restart_body_is_what_kubectl_sends():
    body = restart_body(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    assert body == {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-01-02T03:04:05Z"}}}}}
