"""ProxmoxCluster against fakepve served in-process over HTTPS (and a few broken endpoints)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from runbook_lib import redact
from runbook_lib.calls import CallLog
from runbook_lib.errors import (
    AuthFailed,
    CommandFailed,
    Malformed,
    NotFound,
    PermissionDenied,
    TimedOut,
    TLSFailed,
    Unreachable,
)
from runbook_lib.site import ProxmoxCluster as ClusterSpec
from runbook_lib.sources.proxmox import ProxmoxCluster

fakepve = pytest.importorskip("fakepve")
from fakepve import FakePve, settle  # noqa: E402
from fakepve.certs import make_cert  # noqa: E402

TOKEN_ID = "runbook@pve!audit"
TOKEN = "7d1c55a0-runbook-audit-token"


class Served:
    """A FakePve on its own event loop in a daemon thread."""

    def __init__(self, certfile: str, keyfile: str):
        self.pve = FakePve(user="root@pam", password="secret", host="127.0.0.1", port=0)
        self.pve.time_scale = 0
        self.pve.users["runbook@pve"] = "runbook-password"
        self.pve.apitokens[TOKEN_ID] = TOKEN
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.call(self.pve.start(certfile, keyfile))

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def stop(self) -> None:
        try:
            self.call(settle())
            self.call(self.pve.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    certfile, keyfile, _ = make_cert(str(tmp_path_factory.mktemp("pve-tls")), hosts=("127.0.0.1",))
    return certfile, keyfile


@pytest.fixture
def pve(cert):
    served = Served(*cert)
    try:
        yield served.pve
    finally:
        served.stop()


@pytest.fixture
def token_env(monkeypatch):
    monkeypatch.setenv("PVE_AUDIT_TOKEN", TOKEN)
    return "env:PVE_AUDIT_TOKEN"


def spec(endpoints, cafile, token_env="env:PVE_AUDIT_TOKEN", **fields) -> ClusterSpec:
    values = dict(endpoints=endpoints, token_id=TOKEN_ID, token_secret=token_env, ca_file=cafile,
                  connect_timeout=1.0, read_timeout=1.0)
    values.update(fields)
    return ClusterSpec(**values)


def cluster(endpoints, cafile, calls=None, **fields) -> ProxmoxCluster:
    return ProxmoxCluster("matrix", spec(endpoints, cafile, **fields), calls or CallLog())


def test_token_auth_reads_the_api_and_records_the_call(pve, cert, token_env):
    calls = CallLog()
    px = cluster([pve.url], cert[0], calls)
    nodes = px.get("/nodes")
    assert [n["node"] for n in nodes] == ["pve1"]
    storage = px.get("/nodes/pve1/storage", content="images")
    assert {s["storage"] for s in storage} >= {"local-lvm"}
    call = calls.calls[-1]
    assert call.target == f"proxmox matrix 127.0.0.1:{pve.port}"
    assert call.action == "GET /nodes/pve1/storage?content=images"
    assert call.outcome == "ok" and call.bytes_in > 50 and call.bytes_out > 0
    assert TOKEN not in str(calls.to_list())
    assert TOKEN in redact.known_values()
    assert all(m == "GET" for m, _, _ in pve.requests)


def test_password_auth(pve, cert, monkeypatch):
    monkeypatch.setenv("PVE_PW", "runbook-password")
    px = cluster([pve.url], cert[0], token_id=None, token_secret=None,
                 user="runbook@pve", password="env:PVE_PW")
    assert px.get("/version")["version"] == "9.0.10"
    monkeypatch.setenv("PVE_PW", "wrong-password")
    bad = cluster([pve.url], cert[0], token_id=None, token_secret=None,
                  user="runbook@pve", password="env:PVE_PW")
    with pytest.raises(AuthFailed) as err:
        bad.get("/version")
    assert err.value.status == 401 and "runbook@pve" in err.value.reason
    assert "wrong-password" not in str(err.value)


def test_wrong_token_is_auth_failed(pve, cert, monkeypatch, token_env):
    monkeypatch.setenv("PVE_AUDIT_TOKEN", "00000000-wrong-token")
    calls = CallLog()
    with pytest.raises(AuthFailed) as err:
        cluster([pve.url, pve.url], cert[0], calls).get("/nodes")
    assert err.value.status == 401
    assert "authentication failure" in err.value.reason
    assert "00000000-wrong-token" not in str(err.value)
    assert len(calls.calls) == 1, "an answer from the cluster is not a reason to fail over"


def test_failover_from_a_refused_endpoint(pve, cert, token_env, closed_port):
    calls = CallLog()
    px = cluster([f"https://127.0.0.1:{closed_port}", pve.url], cert[0], calls)
    assert px.get("/version")["release"] == "9.0"
    assert [(c.target.split()[-1], c.outcome) for c in calls.calls] == [
        (f"127.0.0.1:{closed_port}", "error"),
        (f"127.0.0.1:{pve.port}", "ok"),
    ]
    assert "refused" in calls.calls[0].detail
    px.get("/nodes")
    assert len(calls.calls) == 3, "the endpoint that answered is tried first next time"


def test_all_endpoints_down_raises_the_last_error(cert, token_env, closed_port, silent_server):
    calls = CallLog()
    px = cluster([f"https://127.0.0.1:{silent_server.port}", f"https://127.0.0.1:{closed_port}"],
                 cert[0], calls, connect_timeout=0.3, read_timeout=0.3)
    with pytest.raises(Unreachable, match="refused"):
        px.get("/version")
    assert [c.outcome for c in calls.calls] == ["timeout", "error"]


def test_accept_and_never_answer_times_out_within_the_budget(pve, cert, token_env, silent_server):
    calls = CallLog()
    px = cluster([f"https://127.0.0.1:{silent_server.port}", pve.url], cert[0], calls,
                 connect_timeout=1.0, read_timeout=1.0)
    start = time.monotonic()
    assert px.get("/version")["version"]  # fails over to the live endpoint
    assert time.monotonic() - start < 1.0 + 0.5
    assert calls.calls[0].outcome == "timeout" and calls.calls[1].outcome == "ok"

    alone = cluster([f"https://127.0.0.1:{silent_server.port}"], cert[0], connect_timeout=1.0,
                    read_timeout=1.0)
    start = time.monotonic()
    with pytest.raises(TimedOut) as err:
        alone.get("/version")
    assert time.monotonic() - start < 1.0 + 0.5
    assert "did not answer" in err.value.reason


def test_tls_without_the_ca_is_tls_failed(pve, token_env):
    calls = CallLog()
    with pytest.raises(TLSFailed) as err:
        cluster([pve.url, pve.url], None, calls).get("/version")
    assert "certificate verify failed" in err.value.reason
    assert len(calls.calls) == 1
    # verification off (explicitly) gets through
    assert cluster([pve.url], None, verify_tls=False).get("/version")["version"]


def test_403_is_permission_denied(pve, cert, token_env):
    pve.fail("GET", "/cluster/resources", 403, "Permission check failed (/, Sys.Audit)")
    with pytest.raises(PermissionDenied) as err:
        cluster([pve.url], cert[0]).get("/cluster/resources", type="vm")
    assert err.value.status == 403
    assert "Permission check failed (/, Sys.Audit)" in err.value.reason


def test_other_http_errors_keep_their_status(pve, cert, token_env):
    px = cluster([pve.url], cert[0])
    with pytest.raises(NotFound) as missing:
        px.get("/nodes/pve1/qemu/999/status/current")
    assert missing.value.status == 500 and "999.conf' does not exist" in missing.value.reason
    pve.add_node("pve2")
    pve.set_node_offline("pve2")
    with pytest.raises(CommandFailed) as offline:
        px.get("/nodes/pve2/status")
    assert offline.value.status == 595 and "No route to host" in offline.value.reason


def test_non_json_body_is_malformed(pve, cert, token_env):
    pve.fail("GET", "/nodes", 200, "<html><body>captive portal</body></html>", html=True)
    with pytest.raises(Malformed, match="not JSON"):
        cluster([pve.url], cert[0]).get("/nodes")


def test_probe_reports_every_endpoint_and_never_raises(pve, cert, token_env, closed_port, silent_server):
    calls = CallLog()
    urls = [pve.url, f"https://127.0.0.1:{closed_port}", f"https://127.0.0.1:{silent_server.port}"]
    probes = cluster(urls, cert[0], calls, connect_timeout=0.5, read_timeout=0.5).probe()
    assert [(p.url, p.ok, p.kind, p.status) for p in probes] == [
        (urls[0], True, "ok", 200),
        (urls[1], False, "unreachable", None),
        (urls[2], False, "timeout", None),
    ]
    assert probes[0].version == "9.0.10" and probes[0].error == ""
    assert "refused" in probes[1].error
    assert all(p.seconds >= 0 for p in probes) and len(calls.calls) == 3


def test_probe_reports_auth_failures_with_status(pve, cert, monkeypatch, token_env):
    monkeypatch.setenv("PVE_AUDIT_TOKEN", "11111111-not-it")
    [probe] = cluster([pve.url], cert[0]).probe()
    assert (probe.ok, probe.kind, probe.status) == (False, "auth", 401)


def test_with_credentials_uses_the_providers_own_token(pve, cert):
    pve.apitokens["omni@pve!provider"] = "provider-token-5f2e9a"
    calls = CallLog()
    px = ProxmoxCluster.with_credentials(
        "matrix", [pve.url], calls, token_id="omni@pve!provider",
        token_secret="provider-token-5f2e9a", verify=cert[0],
    )
    assert [n["node"] for n in px.get("/nodes")] == ["pve1"]
    assert "provider-token-5f2e9a" in redact.known_values()
    assert "provider-token-5f2e9a" not in repr(px._credentials())
    incomplete = ProxmoxCluster.with_credentials("x", [pve.url], calls, token_id="a@pve!b", verify=cert[0])
    with pytest.raises(AuthFailed, match="no secret"):
        incomplete.get("/version")
    [probe] = incomplete.probe()
    assert (probe.ok, probe.kind) == (False, "auth")
    pve_user = ProxmoxCluster.with_credentials("x", [pve.url], calls, user="runbook@pve",
                                               password="runbook-password", verify=cert[0])
    assert pve_user.get("/version")["version"] == "9.0.10"
