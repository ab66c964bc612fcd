"""The provider checks, judged from evidence dicts alone (no servers)."""

from __future__ import annotations

import copy

import pytest
from provider_lines import (
    ID_MUST_MATCH,
    INSECURE,
    INVALID_SIGNATURE,
    NOT_AUTHORIZED,
    NOT_REGISTERED,
    PROXY_403,
    PVE_REFUSED,
    PVE_X509,
    RECONCILE_OK,
    RESOLVER,
    START,
    X509_OMNI,
)

from runbook_lib.checks import registered, run_checks
from runbook_lib.checks.provider import normalize_url
from runbook_lib.evidence import Evidence
from runbook_lib.logscan import LogScan
from runbook_lib.model.provider_log import LOG_CATEGORIES, LOG_TRIGGERS, START_LINE


def scan(*lines: str) -> dict:
    s = LogScan(LOG_CATEGORIES, triggers=LOG_TRIGGERS, reset=START_LINE)
    for line in lines:
        s.feed("stderr", line)
    s_dict = s.summary()
    s_dict["window"] = "test"
    return s_dict


def healthy() -> dict:
    return {
        "expected": {"omni_url": "https://omni.example.org", "provider_id": "proxmox", "cluster": "matrix"},
        "containers": [{"Names": "omni-provider-proxmox-provider-1", "Image": "ghcr.io/siderolabs/omni-infra-provider-proxmox"}],  # noqa: E501  (a real line, as it is)
        "container": {
            "name": "omni-provider-proxmox-provider-1", "image": "ghcr.io/siderolabs/omni-infra-provider-proxmox",
            "state": "running", "running": True, "restarting": False, "exit_code": 0, "restart_count": 0,
            "started_at": "2026-11-24T10:00:00Z", "finished_at": "0001-01-01T00:00:00Z", "health": None,
            "args": [], "env": {}, "mounts": [],
            "flags": {"omni_api_endpoint": "https://omni.example.org/", "id": "proxmox",
                      "config_file": "/config.yaml", "key_set": True},
        },
        "provider_config": {"url": "https://192.0.2.5:8006/api2/json", "login": "token", "tokenID": "omni@pve!provider",
                            "username": "", "realm": "", "insecureSkipVerify": False},
        "logs": scan(START, RECONCILE_OK),
        "infraproviders": ["proxmox"],
        "provider_status": {"proxmox": {"connected": True, "initialized": True, "error": "", "heartbeat_age": 12.0}},
        "omni_probe_from_provider": {"url": "https://omni.example.org/healthz", "code": 200, "rc": 0, "kind": "ok", "error": ""},  # noqa: E501  (a real line, as it is)
        "proxmox_probe_from_provider": {"url": "https://192.0.2.5:8006/api2/json/version", "code": 401, "rc": 0,
                                        "kind": "ok", "error": ""},
        "proxmox_endpoints": [{"url": f"https://192.0.2.{i}:8006", "ok": True, "status": 200, "seconds": 0.01,
                               "error": "", "kind": "ok"} for i in (5, 6, 7)],
        "provider_credentials": {"url": "https://192.0.2.5:8006", "ok": True, "kind": "ok", "error": ""},
    }


def verdict(items: dict, errors: dict | None = None) -> dict[str, str]:
    return {f.id: f.status for f in run_checks("provider", Evidence(items, errors))}


def problems(items: dict, errors: dict | None = None) -> set[str]:
    return {i for i, s in verdict(items, errors).items() if s == "problem"}


def test_every_catalog_id_has_a_check():
    ids = set(registered("provider"))
    assert ids == {
        "provider.container_down", "provider.not_registered", "provider.key_invalid", "provider.omni_unreachable",
        "provider.omni_url_wrong", "provider.omni_tls", "provider.id_mismatch", "provider.unhealthy",
        "provider.proxmox_unreachable", "provider.proxmox_auth", "provider.proxmox_tls",
    }


def test_healthy_evidence_is_all_ok():
    assert set(verdict(healthy()).values()) == {"ok"}


def with_(**changes) -> dict:
    ev = copy.deepcopy(healthy())
    for key, value in changes.items():
        ev[key] = value
    return ev


def container(**changes) -> dict:
    c = copy.deepcopy(healthy()["container"])
    c.update(changes)
    return c


@pytest.mark.parametrize("ev, expected", [
    pytest.param(with_(container=None), {"provider.container_down"}, id="missing"),
    pytest.param(with_(container=container(state="exited", running=False, exit_code=2)), {"provider.container_down"},
                 id="exited"),
    pytest.param(with_(container=container(state="restarting", restarting=True), logs=scan(START, INVALID_SIGNATURE)),
                 {"provider.container_down", "provider.key_invalid"}, id="restart-loop-invalid-key"),
    pytest.param(with_(container=container(flags={**healthy()["container"]["flags"], "key_set": False})),
                 {"provider.key_invalid"}, id="no-key"),
    pytest.param(with_(infraproviders=[], provider_status={}, logs=scan(START, NOT_REGISTERED)),
                 {"provider.not_registered"}, id="not-registered"),
    pytest.param(with_(provider_status={"proxmox": {"connected": False, "initialized": False, "error": "",
                                                    "heartbeat_age": None}}),
                 {"provider.not_registered", "provider.unhealthy"}, id="never-initialized"),
    pytest.param(with_(logs=scan(START, ID_MUST_MATCH)), {"provider.id_mismatch"}, id="id-must-match"),
    pytest.param(with_(container=container(flags={**healthy()["container"]["flags"], "id": "proxmox-lab"})),
                 {"provider.id_mismatch"}, id="id-flag-differs"),
    pytest.param(with_(logs=scan(START, RESOLVER)), {"provider.omni_unreachable"}, id="resolver"),
    pytest.param(with_(logs=scan(START, PROXY_403)), {"provider.omni_unreachable"}, id="proxy-403-is-not-the-key"),
    pytest.param(with_(omni_probe_from_provider={"url": "u", "code": None, "rc": 28, "kind": "timeout",
                                                 "error": "curl: (28) Connection timed out after 5001 milliseconds"}),
                 {"provider.omni_unreachable"}, id="probe-timeout"),
    pytest.param(with_(logs=scan(START, X509_OMNI)), {"provider.omni_tls"}, id="omni-x509"),
    pytest.param(with_(container=container(flags={**healthy()["container"]["flags"],
                                                  "omni_api_endpoint": "https://omni.old.example.org"})),
                 {"provider.omni_url_wrong"}, id="url-differs"),
    pytest.param(with_(provider_status={"proxmox": {"connected": False, "initialized": True, "error": "",
                                                    "heartbeat_age": 600.0}}),
                 {"provider.unhealthy"}, id="stale-heartbeat"),
    pytest.param(with_(logs=scan(START, PVE_REFUSED)), {"provider.proxmox_unreachable"}, id="pve-refused-in-log"),
    pytest.param(with_(proxmox_probe_from_provider={"url": "u", "code": None, "rc": 7, "kind": "refused", "error": "x"}),
                 {"provider.proxmox_unreachable"}, id="pve-refused-from-provider-host"),
    pytest.param(with_(logs=scan(START, NOT_AUTHORIZED), provider_credentials=None), {"provider.proxmox_auth"},
                 id="not-authorized"),
    pytest.param(with_(logs=scan(START, NOT_AUTHORIZED)), set(), id="not-authorized-but-login-works"),
    pytest.param(with_(provider_credentials={"url": "u", "ok": False, "kind": "auth", "error": "401"}),
                 {"provider.proxmox_auth"}, id="credentials-401"),
    pytest.param(with_(provider_config={**healthy()["provider_config"], "insecureSkipVerify": True},
                       logs=scan(INSECURE, START)), {"provider.proxmox_tls"}, id="insecure"),
    pytest.param(with_(logs=scan(START, PVE_X509)), {"provider.proxmox_tls"}, id="pve-x509"),
])
def test_each_cause(ev, expected):
    assert problems(ev) == expected


def test_errors_before_the_last_start_are_history():
    ev = with_(logs=scan(START, INVALID_SIGNATURE, START, RECONCILE_OK))
    assert "provider.key_invalid" not in problems(ev)
    assert ev["logs"]["restarts"] == 2


def test_evidence_lines_are_shown_compactly_and_decide():
    f = next(f for f in run_checks("provider", Evidence(with_(logs=scan(START, NOT_AUTHORIZED), provider_credentials=None)))
             if f.id == "provider.proxmox_auth")
    assert any("machine provision failed" in e and "step=pickNode" in e and "not authorized" in e for e in f.evidence)
    assert not any("stacktrace" in e for e in f.evidence)
    assert f.fix


def test_unreachable_sources_give_unknown_with_the_reason():
    items = healthy()
    for name in ("container", "logs", "provider_config", "containers", "omni_probe_from_provider",
                 "proxmox_probe_from_provider", "provider_credentials"):
        items.pop(name)
    reason = "ssh root@192.0.2.10: connection refused"
    errors = {n: reason for n in ("container", "logs", "provider_config", "containers", "omni_probe_from_provider",
                                  "proxmox_probe_from_provider", "provider_credentials")}
    findings = {f.id: f for f in run_checks("provider", Evidence(items, errors))}
    assert findings["provider.container_down"].status == "unknown"
    assert reason in findings["provider.container_down"].evidence[0]
    assert findings["provider.key_invalid"].status == "unknown"
    assert findings["provider.not_registered"].status == "ok"  # Omni's view still works


def test_a_crashing_check_is_unknown_not_a_traceback():
    items = with_(provider_status={"proxmox": "not a mapping"})
    f = next(f for f in run_checks("provider", Evidence(items)) if f.id == "provider.unhealthy")
    assert f.status == "unknown" and "failed" in f.summary


@pytest.mark.parametrize("a, b, same", [
    ("https://omni.example.org", "https://omni.example.org:443/", True),
    ("https://Omni.Example.org/", "https://omni.example.org", True),
    ("https://omni.example.org", "http://omni.example.org", False),
    ("https://omni.example.org:8443", "https://omni.example.org", False),
])
def test_normalize_url(a, b, same):
    assert (normalize_url(a) == normalize_url(b)) is same
