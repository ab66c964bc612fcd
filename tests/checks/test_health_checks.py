"""The health checks, judged from evidence dicts alone (no servers), one row per way to fail."""

from __future__ import annotations

import copy

import pytest

from runbook_lib import catalog
from runbook_lib.checks import registered, run_checks
from runbook_lib.checks.health import POINTS_TO
from runbook_lib.evidence import Evidence
from runbook_lib.gather.health import stack_rows

IDS = set(catalog.load().ids("health"))


def endpoint(url: str, ok: bool = True, kind: str = "ok", error: str = "") -> dict:
    return {"url": url, "ok": ok, "status": 200 if ok else None, "seconds": 0.01, "error": error, "kind": kind,
            "version": "9.0.10" if ok else None}


def healthy() -> dict:
    return {
        "expected": {"omni_url": "https://omni.example.org", "provider_id": "proxmox",
                     "omni_services": ["omni", "omni-tailscale"], "stuck_after": 900.0,
                     "guests": {"omni_vm": "quantum/101", "provider_lxc": "matrix/200"}},
        "omni_healthz": {"url": "https://omni.example.org/healthz", "status": 200, "seconds": 0.02, "error": "",
                         "kind": "ok", "tls": {"verified": True, "subject": "CN=omni", "issuer": "CN=CA",
                                               "not_after": "2027-01-01T00:00:00+00:00", "days_left": 200.0,
                                               "error": ""}},
        "omni_services": [
            {"service": "omni", "name": "omni-omni-1", "state": "running", "health": "healthy", "status": "Up 7 days",
             "exit_code": 0},
            {"service": "omni-tailscale", "name": "omni-omni-tailscale-1", "state": "running", "health": "",
             "status": "Up 7 days", "exit_code": 0},
        ],
        "omni_vm": {"vmid": 101, "type": "qemu", "name": "holly", "node": "holly-host", "status": "running"},
        "provider_container": {"name": "omni-provider-proxmox-provider-1",
                               "image": "ghcr.io/siderolabs/omni-infra-provider-proxmox:v0.3.0", "state": "running",
                               "status": "Up 3 days"},
        "containers": [{"Names": "omni-provider-proxmox-provider-1"}],
        "provider_lxc": {"vmid": 200, "type": "lxc", "name": "foxtrot", "node": "pve3", "status": "running"},
        "infraproviders": ["proxmox"],
        "provider_status": {"proxmox": {"connected": True, "initialized": True, "error": ""}},
        "proxmox": {
            "matrix": {"endpoints": [endpoint(f"https://192.0.2.{i}:8006") for i in (5, 6, 7)], "quorate": True,
                       "nodes": [{"name": f"pve{i}", "online": True} for i in (1, 2, 3)], "status_error": ""},
            "quantum": {"endpoints": [endpoint("https://192.0.2.20:8006")], "quorate": True,
                        "nodes": [{"name": "holly-host", "online": True}], "status_error": ""},
        },
        "machines": [{"id": "m1", "hostname": "w1", "connected": True, "maintenance": False, "cluster": "homelab",
                      "lasterror": ""}],
        "machine_requests": [{"id": "homelab-workers-x7kq2m", "stage": 2, "status": "Provision Complete",
                              "error": "", "uuid": "m1", "age": 86400.0}],
        "clusters": [{"id": "homelab", "ready": True, "available": True, "phase": 3, "total": 2, "healthy": 2,
                      "connected": 2}],
    }


def with_(**changes) -> dict:
    ev = copy.deepcopy(healthy())
    ev.update(changes)
    return ev


def findings(items: dict, errors: dict | None = None):
    return {f.id: f for f in run_checks("health", Evidence(items, errors))}


def problems(items: dict, errors: dict | None = None) -> set[str]:
    return {i for i, f in findings(items, errors).items() if f.status == "problem"}


def test_every_catalog_id_has_a_check_and_a_pointer():
    assert set(registered("health")) == IDS
    assert set(POINTS_TO) == IDS


def test_healthy_evidence_is_all_ok():
    assert {f.status for f in findings(healthy()).values()} == {"ok"}


def services(**states) -> list[dict]:
    rows = copy.deepcopy(healthy()["omni_services"])
    for row in rows:
        row.update(states.get(row["service"].replace("-", "_"), {}))
    return rows


def matrix(**changes) -> dict:
    ev = healthy()
    ev["proxmox"]["matrix"].update(changes)
    return ev["proxmox"]


@pytest.mark.parametrize("ev, expected", [
    pytest.param(with_(omni_healthz={**healthy()["omni_healthz"], "status": 500, "kind": "http_error",
                                     "error": "HTTP 500"}), {"health.omni_reachable"}, id="healthz-500"),
    pytest.param(with_(omni_healthz={"url": "u", "status": None, "seconds": 5.0, "kind": "timeout",
                                     "error": "no answer within 5 s", "tls": None}),
                 {"health.omni_reachable"}, id="healthz-timeout"),
    pytest.param(with_(omni_healthz={**healthy()["omni_healthz"], "status": None, "kind": "tls",
                                     "tls": {"verified": False, "error": "certificate has expired"}}),
                 {"health.omni_reachable"}, id="healthz-expired-cert"),
    pytest.param(with_(omni_services=services(omni_tailscale={"state": "exited", "exit_code": 1})),
                 {"health.omni_services"}, id="tailscale-exited"),
    pytest.param(with_(omni_services=services(omni={"health": "unhealthy"})), {"health.omni_services"},
                 id="omni-unhealthy"),
    pytest.param(with_(omni_services=healthy()["omni_services"][:1]), {"health.omni_services"},
                 id="tailscale-missing"),
    pytest.param(with_(omni_vm={**healthy()["omni_vm"], "status": "stopped"}), {"health.omni_services"},
                 id="omni-vm-stopped"),
    pytest.param(with_(omni_vm=None), {"health.omni_services"}, id="omni-vm-gone"),
    pytest.param(with_(provider_container={**healthy()["provider_container"], "state": "restarting",
                                           "status": "Restarting (1) 3 seconds ago"}),
                 {"health.provider_running"}, id="provider-restarting"),
    pytest.param(with_(provider_container=None), {"health.provider_running"}, id="provider-missing"),
    pytest.param(with_(provider_lxc={**healthy()["provider_lxc"], "status": "stopped"}),
                 {"health.provider_running"}, id="provider-lxc-stopped"),
    pytest.param(with_(infraproviders=[]), {"health.provider_registered"}, id="not-registered"),
    pytest.param(with_(provider_status={"proxmox": {"connected": False, "initialized": True, "error": ""}}),
                 {"health.provider_registered"}, id="disconnected"),
    pytest.param(with_(provider_status={"proxmox": {"connected": False, "initialized": False, "error": ""}}),
                 {"health.provider_registered"}, id="never-initialized"),
    pytest.param(with_(proxmox=matrix(endpoints=[endpoint("https://192.0.2.5:8006"),
                                                 endpoint("https://192.0.2.6:8006", False, "unreachable",
                                                          "connection refused")])),
                 {"health.proxmox_api"}, id="endpoint-refused"),
    pytest.param(with_(proxmox=matrix(quorate=False)), {"health.proxmox_api"}, id="no-quorum"),
    pytest.param(with_(machines=[{**healthy()["machines"][0], "connected": False}]),
                 {"health.machines_available"}, id="machine-disconnected"),
    pytest.param(with_(machine_requests=[{"id": "r", "stage": 1, "status": 'Running Step: "syncVM" (4/5)',
                                          "error": "", "age": 3600.0}]),
                 {"health.machines_available"}, id="request-provisioning-too-long"),
    pytest.param(with_(machine_requests=[{"id": "r", "stage": 2, "status": "Provision Complete", "error": "",
                                          "uuid": "new", "age": 2400.0}]),
                 {"health.machines_available"}, id="provisioned-but-never-joined"),
    pytest.param(with_(machine_requests=[{"id": "r", "stage": 3, "status": "", "error": "no matches", "age": 60.0}]),
                 {"health.machines_available"}, id="request-failed"),
    pytest.param(with_(clusters=[{**healthy()["clusters"][0], "ready": False, "phase": 1, "healthy": 1}]),
                 {"health.clusters_healthy"}, id="cluster-scaling-unready"),
    pytest.param(with_(clusters=[{"id": "homelab", "status_missing": True}]), {"health.clusters_healthy"},
                 id="cluster-without-status"),
])
def test_each_way_to_fail(ev, expected):
    assert problems(ev) == expected


def test_a_machine_that_joined_and_lost_its_connection_is_disconnected_not_stuck():
    ev = with_(machines=[{**healthy()["machines"][0], "connected": False, "talosversion": "v1.9.3"}])
    f = findings(ev)["health.machines_available"]
    assert f.status == "problem" and "1 machine(s) disconnected" in f.summary and "stuck" not in f.summary


def test_a_request_still_provisioning_within_the_limit_is_fine():
    ev = with_(machine_requests=[{"id": "r", "stage": 1, "status": "Running", "error": "", "age": 120.0}])
    assert problems(ev) == set()


def test_a_certificate_close_to_expiry_is_ok_but_said():
    ev = with_(omni_healthz={**healthy()["omni_healthz"],
                             "tls": {**healthy()["omni_healthz"]["tls"], "days_left": 3.2}})
    f = findings(ev)["health.omni_reachable"]
    assert f.status == "ok" and "expires in 3 days" in f.summary


def test_a_stopped_guest_decides_even_when_its_host_cannot_be_asked():
    items = with_(provider_lxc={**healthy()["provider_lxc"], "status": "stopped"})
    del items["provider_container"]
    f = findings(items, {"provider_container": "ssh root@192.0.2.10: connection refused"})["health.provider_running"]
    assert f.status == "problem" and "stopped" in f.summary and "pct start 200" in f.fix


def test_sites_that_do_not_place_the_guests_skip_that_part():
    items = healthy()
    items["expected"]["guests"] = {"omni_vm": None, "provider_lxc": None}
    del items["omni_vm"], items["provider_lxc"]
    got = findings(items)
    assert got["health.omni_services"].status == "ok"
    assert not any("VM" in e for e in got["health.omni_services"].evidence)


def test_an_unreadable_guest_is_said_but_does_not_decide():
    items = healthy()
    del items["omni_vm"]
    f = findings(items, {"omni_vm": "proxmox quantum: connection refused"})["health.omni_services"]
    assert f.status == "ok" and any("could not be read" in e for e in f.evidence)


def test_empty_omni_skips_machines_and_clusters():
    got = findings(with_(machines=[], machine_requests=[], clusters=[]))
    assert got["health.machines_available"].status == "skipped"
    assert got["health.clusters_healthy"].status == "skipped"


def test_rejected_proxmox_credentials_are_unknown_not_down():
    ev = with_(proxmox=matrix(endpoints=[endpoint("https://192.0.2.5:8006", False, "auth", "401")], quorate=None,
                              status_error="token rejected"))
    assert findings(ev)["health.proxmox_api"].status == "unknown"


def test_unreachable_sources_give_unknown_with_the_reason():
    items = healthy()
    reason = "omnictl: rpc error: code = Unauthenticated desc = invalid signature"
    for name in ("infraproviders", "provider_status", "machines", "machine_requests", "clusters"):
        items.pop(name)
    got = findings(items, {n: reason for n in ("infraproviders", "provider_status", "machines", "machine_requests",
                                               "clusters")})
    for fid in ("health.provider_registered", "health.machines_available", "health.clusters_healthy"):
        assert got[fid].status == "unknown" and reason in got[fid].evidence[0]
    assert got["health.omni_reachable"].status == "ok"


def test_the_stack_overview_shows_each_part_and_why_one_is_missing():
    items = healthy()
    del items["provider_container"]
    rows = {r["what"]: r for r in stack_rows(Evidence(items, {"provider_container": "ssh: connection refused"}))}
    assert rows["Omni /healthz"]["state"] == "HTTP 200"
    assert rows["compose service omni-tailscale"]["state"] == "running"
    assert rows["provider container"] == {"what": "provider container", "state": "unknown",
                                          "detail": "ssh: connection refused"}
    assert rows["Omni VM quantum/101"]["detail"] == "holly on node holly-host"
    assert rows["provider LXC matrix/200"]["state"] == "running"
