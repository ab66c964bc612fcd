"""What the notebooks show (runbook_lib/views): evidence laid out as rows and
lines, also when it could not be gathered. Every scenario's notebooks run them on real evidence
(tests/test_runbooks.py); here, the cases a scenario may not reach."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from runbook_lib import views
from runbook_lib.evidence import Evidence
from runbook_lib.verdict import Finding, Verdict
from runbook_lib.views import provisioning as provisioning_views

REASON = "ssh provider: connection refused"
MODULES = [importlib.import_module(f"runbook_lib.views.{m.name}") for m in pkgutil.iter_modules(views.__path__)]
# pieces every gathering puts whatever else fails
ALWAYS = {"expected": {"binary": "omnictl", "context": "", "endpoint": "https://omni", "key": "", "provider_id": "proxmox",
                       "guests": {}, "candidate": None},
          "cluster": {"name": "homelab", "server": "", "version": "", "namespace": "argocd", "now": 0.0}}
PIECES = ("container", "provider_config", "logs", "infraproviders", "provider_status", "proxmox_endpoints",
          "omni_probe_from_provider", "proxmox_probe_from_provider", "pods", "services", "endpoints",
          "network_policies", "applications", "daemonsets", "namespaces", "cluster_statuses", "machine_sets",
          "clusters", "cluster_machines", "controlplane_statuses", "request_statuses", "proxmox_nodes", "machines",
          "machine_requests", "proxmox", "binary", "config", "client_version", "key", "omnictl", "machineclasses",
          "storages", "storage_errors", "nodes", "permissions", "provision_log", "provider_addresses", "tasks", "vms")

# views that show nothing of a missing piece, because another view beside them says why (or the
# piece is always there: the cluster, what was expected)
QUIET = ("cluster_line", "plan_target", "binary", "path_to_omni", "log_causes", "log_tail", "pick_tables",
         "connections", "last_lines_html", "errors",
         "failure_rows", "privilege_rows")  # provisioning: provision_log_line and permissions_line say why


def failed() -> Evidence:
    return Evidence(dict(ALWAYS), {piece: REASON for piece in PIECES})


def views_of(module) -> list:
    return [f for name, f in inspect.getmembers(module, inspect.isfunction)
            if f.__module__ == module.__name__ and not name.startswith("_")
            and list(inspect.signature(f).parameters) == ["ev"]]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_every_view_says_why_when_its_evidence_is_missing(module):
    ev = failed()
    for view in views_of(module):
        shown = view(ev)
        assert isinstance(shown, (str, dict, list)), view
        text = repr(shown)
        if view.__name__ not in QUIET:
            assert REASON in text, (view.__name__, shown)


def test_a_table_is_never_empty_without_saying_so():
    ev = Evidence(dict(ALWAYS))  # gathered, but nothing there
    from runbook_lib.views import argocd, cluster, health, provider, storage

    assert argocd.pods(ev) == [{"pod": "none"}]
    assert cluster.proxmox_nodes(ev) == [{"node": "Proxmox not read: no machine set waits for the provider"}]
    assert health.proxmox(ev) == [{"cluster": "-", "error": "no Proxmox cluster"}]
    assert provider.omni_view(ev) == [{"id": "-", "registered": "none"}]
    assert storage.pools(ev) == [{"node": "-", "storage": "no online node answered"}]
    assert storage.unread_nodes(Evidence({"storages": {"pve1": []}})) == "every online node's storages were read"


def test_the_provider_views():
    from runbook_lib.views import provider

    ev = Evidence({"container": {"name": "p", "state": "running", "env": {"KEY": "x"}, "mounts": []},
                   "logs": {"lines": 12, "window": "tail 5000", "restarts": 1, "replaced": 0,
                            "categories": {"key_invalid": {"count": 2, "examples": ["a", "b"]}},
                            "tail": [str(i) for i in range(20)]},
                   "proxmox_endpoints": [{"url": "https://pve1:8006", "status": 200, "kind": "ok", "error": ""}]},
                  {"omni_probe_from_provider": REASON})
    assert provider.container(ev) == {"name": "p", "state": "running"}  # no environment, no mounts
    assert provider.log_summary(ev).startswith("scanned 12 lines (tail 5000), 1 start(s)")
    assert provider.log_causes(ev) == [{"cause": "key_invalid", "lines": 2, "example": "b"}]
    assert provider.log_tail(ev).splitlines() == [str(i) for i in range(10, 20)]
    probes = provider.reachability(ev)
    assert [p["probe"] for p in probes] == ["omni_probe_from_provider", "proxmox_probe_from_provider",
                                             "proxmox endpoint from here"]
    assert probes[0]["error"] == REASON and probes[2]["code"] == 200


def test_a_policy_without_a_selector_selects_every_pod():
    from runbook_lib.views import argocd

    ev = Evidence({"network_policies": [
        {"name": "deny", "pod_selector": {}, "labels": {}, "egress": []},
        {"name": "redis", "pod_selector": {"matchLabels": {"app": "redis"}}, "labels": {}, "types": ["Ingress"]}]})
    rows = argocd.network_policies(ev)
    assert [(r["selects"], r["types"]) for r in rows] == [("every pod", "Ingress"), ("app=redis", "Ingress")]
    assert argocd.connections(Evidence())[0]["why not"].startswith("connections not judged:")


def test_health_names_the_runbook_to_open_next():
    from runbook_lib.views import health

    verdict = Verdict("health", [Finding("health.proxmox_api", "unknown", "could not ask", fix=""),
                                 Finding("health.clusters_healthy", "problem", "homelab not ready", fix="Look.")])
    assert health.next_steps(verdict).splitlines() == [
        "health.proxmox_api (unknown): could not ask", "    next: runbook run provider",
        "health.clusters_healthy (problem): Look.", "    next: runbook run cluster"]
    assert health.next_steps(Verdict("health", [])) == "Everything answers. Nothing to do."


def test_storage_lists_the_nodes_it_could_not_read():
    from runbook_lib.views import storage

    ev = Evidence({"storages": {"pve1": []}, "storage_errors": {"pve2": "timed out"},
                   "nodes": [{"node": "pve1", "status": "online"}, {"node": "pve3", "status": "offline"}]})
    assert storage.unread_nodes(ev).splitlines() == ["pve2: not read: timed out",
                                                     "offline (the provider places no VM there): pve3"]
    assert storage.pick_tables(Evidence()) == []


def test_provisioning_lines_say_what_was_not_read():
    ev = Evidence({}, {"permissions": "401 Unauthorized", "provision_log": REASON, "provider_addresses": REASON})
    assert provisioning_views.permissions_line(ev) == "not read: 401 Unauthorized"
    assert provisioning_views.privilege_rows(ev) == [] and provisioning_views.failure_rows(ev) == []
    assert provisioning_views.provision_log_line(ev) == f"provider log not read: {REASON}"
    assert provisioning_views.provider_addresses(ev) == f"provider host: {REASON}"
