"""The twin's Kubernetes API server on the wire: formats, errors, selectors, derived endpoints, writes."""

from __future__ import annotations

import http.client
import json
import ssl

import pytest

from runbook_lab.kube import StandaloneKube
from runbook_lab.kube_select import SelectorError, labels_match, parse_fields, parse_labels
from runbook_lab.kube_store import BY_KIND, Store
from runbook_lab.model import healthy_state, merge


def model(**changes) -> dict:
    return merge(healthy_state()["kubernetes"], changes)


class Raw:
    """A bare HTTPS client for the twin: what a request gets on the wire."""

    def __init__(self, kube: StandaloneKube):
        self.kube = kube
        self.ctx = ssl.create_default_context(cafile=str(kube.ca_file))

    def __call__(self, method: str, path: str, body=None, token: str | None = None,
                 content_type: str = "application/merge-patch+json"):
        conn = http.client.HTTPSConnection("127.0.0.1", self.kube.server.port, context=self.ctx, timeout=5)
        headers = {"Authorization": f"Bearer {token or self.kube.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        conn.close()
        ctype = resp.getheader("Content-Type", "")
        return resp.status, ctype, (json.loads(raw) if "json" in ctype else raw.decode())


@pytest.fixture
def kube(tmp_path):
    with StandaloneKube(model(), tmp_path) as k:
        yield k


@pytest.fixture
def raw(kube):
    return Raw(kube)


def test_every_healthy_object_fits_the_37_client_models(kube, raw):
    """Each list the runbook reads deserializes into the client's pydantic models without error."""
    from kubernetes import client
    from kubernetes.client.api_client import ApiClient

    api = ApiClient()
    for path, klass in [("/api/v1/namespaces", "V1NamespaceList"), ("/api/v1/pods", "V1PodList"),
                        ("/api/v1/services", "V1ServiceList"), ("/api/v1/endpoints", "V1EndpointsList"),
                        ("/api/v1/events", "CoreV1EventList"), ("/apis/apps/v1/deployments", "V1DeploymentList"),
                        ("/apis/apps/v1/statefulsets", "V1StatefulSetList"),
                        ("/apis/apps/v1/daemonsets", "V1DaemonSetList"),
                        ("/apis/discovery.k8s.io/v1/endpointslices", "V1EndpointSliceList"),
                        ("/apis/networking.k8s.io/v1/networkpolicies", "V1NetworkPolicyList"),
                        ("/version", "VersionInfo")]:
        status, ctype, body = raw("GET", path)
        assert status == 200 and ctype.startswith("application/json"), path
        obj = api._ApiClient__deserialize(body, klass)
        assert isinstance(obj, getattr(client, klass)), path
        if klass.endswith("List"):
            assert obj.items, f"{path} is empty"
            assert "kind" not in body["items"][0]  # a real server leaves it out of list items
    status, _, apps = raw("GET", "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications")
    assert status == 200 and apps["kind"] == "ApplicationList"
    assert all(a["kind"] == "Application" and a["apiVersion"] == "argoproj.io/v1alpha1" for a in apps["items"])


def test_errors_look_like_the_apiserver(kube, raw):
    status, ctype, body = raw("GET", "/api/v1/namespaces/argocd/pods/nosuch")
    assert status == 404 and body["kind"] == "Status" and body["reason"] == "NotFound"
    assert body["message"] == 'pods "nosuch" not found'
    status, ctype, body = raw("GET", "/apis/cilium.io/v2/namespaces/argocd/ciliumnetworkpolicies")
    assert (status, body) == (404, "404 page not found\n") and ctype.startswith("text/plain")
    status, _, body = raw("GET", "/api/v1/namespaces", token="wrong")
    assert status == 401 and body["reason"] == "Unauthorized" and body["code"] == 401
    status, _, body = raw("GET", "/api/v1/pods?fieldSelector=spec.nope%3Dx")
    assert status == 400 and body["message"] == "field label not supported: spec.nope"
    status, _, body = raw("GET", "/api/v1/pods?labelSelector=a%20in%20b")
    assert status == 400


def test_a_crd_that_is_not_installed_is_a_plain_404(tmp_path):
    with StandaloneKube(model(crds=[]), tmp_path) as bare:
        status, ctype, body = Raw(bare)("GET", "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications")
    assert (status, body) == (404, "404 page not found\n") and ctype.startswith("text/plain")


def test_selectors():
    labels = {"app": "web", "tier": "front"}
    assert labels_match(parse_labels("app=web,tier!=back"), labels)
    assert labels_match(parse_labels("app in (web, api),!missing"), labels)
    assert not labels_match(parse_labels("tier notin (front)"), labels)
    assert not labels_match(parse_labels("missing"), labels)
    assert labels_match(parse_labels(""), {})
    with pytest.raises(SelectorError):
        parse_labels("!app in (x)")
    event = {"involvedObject": {"kind": "DaemonSet", "name": "x"}, "reason": "FailedCreate",
             "source": {"component": "daemonset-controller"}, "metadata": {"name": "e"}}
    assert parse_fields("involvedObject.kind=DaemonSet,reason==FailedCreate", "Event")(event)
    assert parse_fields("source=daemonset-controller,reason!=Other", "Event")(event)
    assert not parse_fields("metadata.name=f", "Event")(event)
    with pytest.raises(SelectorError, match="field label not supported: reason"):
        parse_fields("reason=x", "Pod")


def test_endpoints_follow_services_and_pods(tmp_path):
    relabelled = {"objects": {"Pod/argocd/argocd-repo-server-6f8c9d7b5-k2x9q": {
        "metadata": {"labels": {"app.kubernetes.io/instance": None}}}}}
    store = Store(model(**relabelled), now=1_800_000_000)
    eps = {e["metadata"]["name"]: e for e in store.list(BY_KIND["Endpoints"], "argocd")}
    assert "subsets" not in eps["argocd-repo-server"]  # kubectl: ENDPOINTS <none>
    assert eps["argocd-redis"]["subsets"][0]["addresses"][0]["ip"] == "10.244.1.42"
    assert eps["argocd-redis"]["subsets"][0]["ports"] == [{"name": "tcp-redis", "port": 6379, "protocol": "TCP"}]
    (repo_slice,) = store.list(BY_KIND["EndpointSlice"], "argocd",
                               label_selector="kubernetes.io/service-name=argocd-repo-server")
    assert repo_slice["endpoints"] is None
    not_ready = {"objects": {"Pod/argocd/argocd-redis-5c7f9b8d4-p6r2s": {"status": {"conditions": [
        {"type": "Ready", "status": "False", "lastTransitionTime": 1_799_999_000}]}}}}
    store = Store(model(**not_ready), now=1_800_000_000)
    (redis,) = store.list(BY_KIND["Endpoints"], "argocd", field_selector="metadata.name=argocd-redis")
    assert "addresses" not in redis["subsets"][0] and redis["subsets"][0]["notReadyAddresses"][0]["ip"]
    pod = store.get(BY_KIND["Pod"], "argocd", "argocd-redis-5c7f9b8d4-p6r2s")
    assert pod["status"]["containerStatuses"][0]["ready"] is False
    assert pod["status"]["conditions"][0]["lastTransitionTime"] == "2027-01-15T07:43:20Z"


def test_reads_are_logged_as_reads_and_every_other_method_as_a_write(kube, raw):
    raw("GET", "/api/v1/namespaces/argocd/pods")
    assert kube.writes() == []
    raw("PATCH", "/api/v1/namespaces/nosuch", {"metadata": {"labels": {"a": "b"}}})
    raw("POST", "/api/v1/namespaces", {"metadata": {"name": "x"}})
    raw("PATCH", "/api/v1/namespaces/argocd/endpoints/argocd-redis", {"metadata": {"labels": {"a": "b"}}})
    writes = kube.writes()
    assert [(w["action"].split(" ")[0], w["status"]) for w in writes] == [("PATCH", 404), ("POST", 405),
                                                                          ("PATCH", 405)]
    assert all(w["target"] == "kubernetes homelab" and w["kind"] == "kubernetes" for w in writes)


def test_patch_kinds(kube, raw):
    status, _, ns = raw("PATCH", "/api/v1/namespaces/monitoring",
                        {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": None, "team": "ops"}}})
    assert status == 200 and ns["metadata"]["labels"] == {"pod-security.kubernetes.io/enforce-version": "latest",
                                                          "kubernetes.io/metadata.name": "monitoring", "team": "ops"}
    status, _, ns = raw("PATCH", "/api/v1/namespaces/monitoring",
                        [{"op": "replace", "path": "/metadata/labels/team", "value": "dev"}],
                        content_type="application/json-patch+json")
    assert status == 200 and ns["metadata"]["labels"]["team"] == "dev"
    status, _, body = raw("PATCH", "/api/v1/namespaces/monitoring", {"a": 1}, content_type="application/json")
    assert status == 415


def test_restarting_the_controller_clears_only_cached_errors(tmp_path):
    condition = {"type": "ComparisonError", "message": "dial tcp 10.96.142.17:8081: connect: operation not permitted",
                 "lastTransitionTime": "${ago:7200}"}
    m = model(cached_errors=["monitoring"], objects={
        "Application/argocd/monitoring": {"status": {"sync": {"status": "Unknown"}, "conditions": [condition]}},
        "Application/argocd/cert-manager": {"status": {"sync": {"status": "Unknown"}, "conditions": [condition]}}})
    with StandaloneKube(m, tmp_path) as kube:
        raw = Raw(kube)
        _, _, before = raw("GET", "/api/v1/namespaces/argocd/pods/argocd-application-controller-0")
        body = {"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": "2026-11-27T10:00:00Z"}}}}}
        status, _, sts = raw("PATCH", "/apis/apps/v1/namespaces/argocd/statefulsets/argocd-application-controller",
                             body, content_type="application/strategic-merge-patch+json")
        assert status == 200 and sts["metadata"]["generation"] == 2 and sts["status"]["observedGeneration"] == 2
        _, _, after = raw("GET", "/api/v1/namespaces/argocd/pods/argocd-application-controller-0")
        _, _, apps = raw("GET", "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications")
    assert after["metadata"]["uid"] != before["metadata"]["uid"]
    assert after["status"]["startTime"] > before["status"]["startTime"]
    by_name = {a["metadata"]["name"]: a["status"] for a in apps["items"]}
    assert "conditions" not in by_name["monitoring"] and by_name["monitoring"]["sync"]["status"] == "Synced"
    assert by_name["cert-manager"]["conditions"][0]["type"] == "ComparisonError"  # its error is not cached


def test_a_privileged_label_admits_the_blocked_daemonset(tmp_path):
    m = model(objects={
        "Namespace/monitoring": {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": None}}},
        "DaemonSet/monitoring/node-exporter": {"status": {"currentNumberScheduled": 0, "numberReady": 0}},
        "Event/monitoring/node-exporter.1": {
            "type": "Warning", "reason": "FailedCreate", "involvedObject": {"kind": "DaemonSet", "name": "node-exporter",
                                                                            "namespace": "monitoring"},
            "message": 'Error creating: pods "n" is forbidden: violates PodSecurity "baseline:latest": host namespaces'}})
    with StandaloneKube(m, tmp_path) as kube:
        raw = Raw(kube)
        _, _, ds = raw("GET", "/apis/apps/v1/namespaces/monitoring/daemonsets/node-exporter")
        assert ds["status"]["numberReady"] == 0 and ds["status"]["numberUnavailable"] == 3
        raw("PATCH", "/api/v1/namespaces/monitoring", {"metadata": {"labels": {
            "pod-security.kubernetes.io/enforce": "privileged"}}})
        _, _, ds = raw("GET", "/apis/apps/v1/namespaces/monitoring/daemonsets/node-exporter")
    assert ds["status"]["numberReady"] == 3 and "numberUnavailable" not in ds["status"]


def test_pod_log_needs_a_container_name_when_there_are_several(tmp_path):
    m = model(objects={"Pod/argocd/two": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]},
                                          "status": {"podIP": "10.244.9.9"}}},
              pod_logs={"argocd/two": [{"ago": 5, "msg": "hello", "fields": {"k": "v w"}}]})
    with StandaloneKube(m, tmp_path) as kube:
        raw = Raw(kube)
        status, _, body = raw("GET", "/api/v1/namespaces/argocd/pods/two/log")
        assert status == 400 and "choose one of: [a b]" in body["message"]
        status, ctype, text = raw("GET", "/api/v1/namespaces/argocd/pods/two/log?container=b&tailLines=5")
    assert status == 200 and ctype.startswith("text/plain")
    assert text.endswith('level=info msg="hello" k="v w"\n') and text.startswith('time="')
