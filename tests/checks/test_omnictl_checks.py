"""The omnictl checks, judged from evidence dicts; omnictl's real error lines go through the same
classification the source applies. (What gathering makes of the key: tests/gather/test_omnictl_gather.py;
the key reader: tests/test_openpgp.py.)"""

from __future__ import annotations

import copy

import pytest

from runbook_lab.omnictl import Invocation, connection_error
from runbook_lib.checks import registered, run_checks
from runbook_lib.evidence import Evidence
from runbook_lib.gather.omnictl import error_detail
from runbook_lib.sources.omni import classify

URL = "https://omni.example.org"
CANARY = "CANARY-not-a-real-key-5b1f0c"


def healthy() -> dict:
    return {
        "expected": {"omni_url": URL, "endpoint": URL, "binary": "omnictl", "context": "",
                     "key": "env:OMNI_KEY", "insecure": False, "timeout": 30},
        "binary": {"configured": "omnictl", "path": "/usr/local/bin/omnictl", "found": True, "error": "",
                   "searched": ""},
        "client_version": "v1.3.0",
        "omnictl": {"command": "omnictl get clusters -o json", "ok": True, "kind": "ok", "detail": "", "line": "",
                    "count": 1},
        "config": {"path": "/home/op/.talos/omni/config", "source": "default", "site_set": False, "exists": False,
                   "contexts": [], "current": "", "url": "", "identity": "", "error": ""},
        "key": {"kind": "service account key", "where": "env:OMNI_KEY", "identity": "runbook", "readable": True,
                "created": "2026-11-01T00:00:00Z", "expires": "2027-11-01T00:00:00Z", "days_left": 339.0,
                "note": ""},
        "endpoint": {"url": URL, "host": "omni.example.org", "port": 443},
        "dns": {"host": "omni.example.org", "addresses": ["100.101.0.5"], "seconds": 0.003, "error": ""},
        "tcp": {"address": "100.101.0.5:443", "ok": True, "kind": "ok", "error": "", "seconds": 0.002},
        "healthz": {"url": URL + "/healthz", "status": 200, "seconds": 0.01, "error": "", "kind": "ok",
                    "excerpt": "",
                    "tls": {"verified": True, "subject": "CN=omni.example.org", "issuer": "CN=Lab CA",
                            "not_after": "2027-03-01T00:00:00+00:00", "days_left": 94.0, "error": "",
                            "sans": ["omni.example.org"], "fingerprint_sha256": "ab:cd"}},
    }


def verdict(items: dict, errors: dict | None = None):
    return {f.id: f for f in run_checks("omnictl", Evidence(items, errors))}


def statuses(items: dict, errors: dict | None = None) -> dict[str, str]:
    return {i: f.status for i, f in verdict(items, errors).items()}


def failed_run(stderr: str) -> dict:
    """The `omnictl` evidence for a failed call, classified exactly as the source does."""
    err = classify(stderr, 1)
    return {"command": "omnictl get clusters -o json", "ok": False, "kind": err.kind,
            "detail": error_detail(err.reason), "line": err.reason, "count": None}


def standin_line(mode: str) -> str:
    """The Error: line the lab's omnictl prints for an error mode (omnictl's real wording)."""
    if mode == "no_context":
        return 'Error: context "default" has not been configured, you will need to set it manually\n'
    return f"Error: {connection_error({'error': mode, 'omni_url': URL}, Invocation(['get', 'clusters']))}\n"


def with_(**changes) -> dict:
    ev = copy.deepcopy(healthy())
    ev.update(changes)
    return ev


def test_every_catalog_id_has_a_check():
    assert set(registered("omnictl")) == {"omnictl.unauthorized", "omnictl.connection_refused", "omnictl.missing"}


def test_healthy_evidence_is_all_ok():
    assert set(statuses(healthy()).values()) == {"ok"}


@pytest.mark.parametrize("mode, finding", [
    ("unauthenticated", "omnictl.unauthorized"),
    ("permission_denied", "omnictl.unauthorized"),
    ("unavailable", "omnictl.connection_refused"),
    ("x509", "omnictl.connection_refused"),
    ("too_old", "omnictl.missing"),
    ("too_new", "omnictl.missing"),
    ("no_context", "omnictl.missing"),
])
def test_each_real_error_line_names_one_cause(mode, finding):
    got = verdict(with_(omnictl=failed_run(standin_line(mode))))
    assert [i for i, f in got.items() if f.status == "problem"] == [finding]
    f = got[finding]
    assert any("Error:" in line for line in f.evidence) and f.fix


def test_role_is_named_from_the_permission_denied_line():
    f = verdict(with_(omnictl=failed_run(standin_line("permission_denied"))))["omnictl.unauthorized"]
    assert '"Reader"' in f.summary and "--role" in f.fix


def test_html_403_from_a_proxy_is_a_connection_problem_not_a_role_problem():
    line = ('Error: rpc error: code = PermissionDenied desc = unexpected HTTP status code received from server: '
            '403 (Forbidden); transport: received unexpected content-type "text/html"\n')
    got = verdict(with_(omnictl=failed_run(line)))
    assert got["omnictl.connection_refused"].status == "problem"
    assert "proxy" in got["omnictl.connection_refused"].fix
    assert got["omnictl.unauthorized"].status == "unknown"


def test_refused_connection_points_at_the_failing_layer():
    ev = with_(omnictl=failed_run(standin_line("unavailable")),
               tcp={"address": "100.101.0.5:443", "ok": False, "kind": "refused", "seconds": 0.001,
                    "error": "connection to 100.101.0.5:443 refused"},
               healthz={"url": URL + "/healthz", "status": None, "seconds": 0.001, "kind": "refused",
                        "error": "connection to omni.example.org:443 refused", "tls": None, "excerpt": ""})
    f = verdict(ev)["omnictl.connection_refused"]
    assert f.status == "problem"
    assert "TCP 100.101.0.5:443: connection to 100.101.0.5:443 refused" in f.evidence
    assert "nothing listens on omni.example.org:443" in f.fix


def test_unresolvable_name_is_reported_at_the_dns_layer():
    ev = with_(omnictl=failed_run("Error: rpc error: code = Unavailable desc = name resolver error: "
                                  "produced zero addresses\n"),
               dns={"host": "omni.example.org", "addresses": [], "seconds": 0.01,
                    "error": "cannot resolve omni.example.org: Name or service not known"},
               tcp={"address": "", "ok": False, "kind": "skipped", "error": "no address", "seconds": 0.0},
               healthz={"url": URL + "/healthz", "status": None, "seconds": 0.01, "kind": "dns",
                        "error": "cannot resolve omni.example.org", "tls": None, "excerpt": ""})
    f = verdict(ev)["omnictl.connection_refused"]
    assert f.status == "problem" and "does not resolve" in f.fix
    assert not any(line.startswith("TCP") for line in f.evidence)


def test_expired_certificate_shows_in_the_tls_evidence():
    ev = with_(omnictl=failed_run("Error: rpc error: code = Unavailable desc = connection error: desc = \"transport: "
                                  "authentication handshake failed: tls: failed to verify certificate: x509: "
                                  "certificate has expired or is not yet valid\"\n"))
    ev["healthz"].update(status=None, kind="tls", error="certificate verify failed: certificate has expired")
    ev["healthz"]["tls"].update(verified=False, days_left=-3.2, not_after="2026-11-24T00:00:00+00:00",
                                error="certificate verify failed: certificate has expired")
    f = verdict(ev)["omnictl.connection_refused"]
    assert f.summary == "omnictl does not trust Omni's certificate"
    assert any("expired 3 days ago (2026-11-24)" in line for line in f.evidence)


def test_missing_binary_still_probes_the_network_and_leaves_credentials_unknown():
    ev = with_(binary={"configured": "omnictl", "path": "", "found": False, "searched": "/usr/bin:/bin",
                       "error": "the omnictl binary 'omnictl' was not found (set omni.omnictl.binary to its path)"})
    del ev["omnictl"], ev["client_version"]
    errors = {"omnictl": "omnictl was not run: not found", "client_version": "omnictl was not run: not found"}
    got = statuses(ev, errors)
    assert got == {"omnictl.missing": "problem", "omnictl.unauthorized": "unknown",
                   "omnictl.connection_refused": "ok"}
    ev["healthz"].update(status=None, kind="timeout", error="no answer within 5 s", tls=None)
    assert statuses(ev, errors)["omnictl.connection_refused"] == "problem"


def test_an_expired_key_is_a_problem_even_when_omnictl_cannot_run():
    ev = with_(binary={"configured": "omnictl", "path": "", "found": False, "searched": "", "error": "not found"})
    ev["key"].update(days_left=-2.5, expires="2026-11-25T00:00:00Z")
    del ev["omnictl"]
    f = verdict(ev, {"omnictl": "omnictl was not run"})["omnictl.unauthorized"]
    assert f.status == "problem" and "expired 2.5 days ago" in " ".join(f.evidence)


def test_rejected_key_that_has_expired_says_so():
    ev = with_(omnictl=failed_run(standin_line("unauthenticated")))
    ev["key"].update(days_left=-1.0)
    f = verdict(ev)["omnictl.unauthorized"]
    assert "has expired" in f.summary and "serviceaccount renew" in f.fix


def test_a_key_close_to_expiry_is_ok_with_a_warning():
    ev = with_()
    ev["key"]["days_left"] = 2.0
    f = verdict(ev)["omnictl.unauthorized"]
    assert f.status == "ok" and "renew it soon" in f.summary


def test_unreadable_key_is_evidence_not_a_problem():
    ev = with_()
    ev["key"] = {"kind": "service account key", "where": "file:/x", "identity": "", "readable": False,
                 "note": "expiry not readable: the key is not base64 JSON (an Omni service account key is)"}
    f = verdict(ev)["omnictl.unauthorized"]
    assert f.status == "ok" and any("expiry not readable" in line for line in f.evidence)


def test_site_config_that_does_not_exist_is_missing_config():
    ev = with_(omnictl=failed_run('Error: rpc error: code = Unavailable desc = connection error: desc = "transport: '
                                  'Error while dialing: dial tcp 127.0.0.1:443: connect: connection refused"\n'))
    ev["config"].update(site_set=True, source="site file (omni.omnictl.config)", path="/etc/omni/config")
    assert verdict(ev)["omnictl.missing"].status == "problem"


def test_a_call_that_times_out_while_the_network_is_fine_points_at_omni_itself():
    ev = with_(omnictl={"command": "omnictl get clusters -o json", "ok": False, "kind": "timeout", "detail": "",
                        "line": "omnictl did not finish within 15 s (killed)", "count": None})
    f = verdict(ev)["omnictl.connection_refused"]
    assert f.status == "problem" and f.summary == "Omni does not answer omnictl in time"
    assert "does not finish" in f.fix and verdict(ev)["omnictl.unauthorized"].status == "unknown"
