"""Network probes (runbook_lib.sources.net): DNS and TCP from here against loopback, and how curl's and
netcat's answers on a remote host are read; every outcome an Outcome with the words the evidence keeps."""

from __future__ import annotations

import errno
import json
import socket
import time

import pytest

from runbook_lib.calls import CallLog
from runbook_lib.errors import Unreachable
from runbook_lib.outcome import Outcome
from runbook_lib.sources import CommandResult, net

TALOS = (50000, 50001)


# ------------------------------------------------------------------------------- from here


def test_resolving_an_address_and_a_name_that_does_not_resolve():
    calls = CallLog()
    got = net.resolve("127.0.0.1", 443, calls, timeout=5)
    assert got["addresses"] == ["127.0.0.1"] and got["error"] == ""
    bad = net.resolve("no-such-host.invalid", 443, calls, timeout=5)
    assert bad["addresses"] == [] and bad["error"]
    assert [(c.target, c.action, c.outcome) for c in calls.calls] == [
        ("dns 127.0.0.1", "getaddrinfo 127.0.0.1:443", "ok"),
        ("dns no-such-host.invalid", "getaddrinfo no-such-host.invalid:443", "error")]


def test_a_resolver_that_does_not_answer_is_cut_off_at_the_deadline(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: time.sleep(2))
    start = time.monotonic()
    got = net.resolve("slow.example.org", 443, CallLog(), timeout=0.2)
    assert time.monotonic() - start < 1.5
    assert got["error"] == "no answer from the resolver within 0.2 s"


def test_connect_ok_and_refused():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        calls = CallLog()
        up = net.connect("127.0.0.1", port, calls, timeout=5)
    down = net.connect("127.0.0.1", port, calls, timeout=5)  # closed now: a RST answers
    assert up["ok"] and up["kind"] is Outcome.OK and up["address"] == f"127.0.0.1:{port}"
    assert not down["ok"] and down["kind"] is Outcome.REFUSED and down["error"] == f"connection to 127.0.0.1:{port} refused"
    assert [(c.target, c.detail, c.outcome) for c in calls.calls] == [
        (f"tcp 127.0.0.1:{port}", "connected", "ok"), (f"tcp 127.0.0.1:{port}", down["error"], "error")]
    assert json.loads(json.dumps(down))["kind"] == "refused"  # the evidence JSON keeps the word


@pytest.mark.parametrize("raised, kind, outcome", [
    (socket.timeout("timed out"), Outcome.TIMED_OUT, "timeout"),
    (OSError(errno.EHOSTUNREACH, "No route to host"), Outcome.UNREACHABLE, "error"),
])
def test_connect_timeout_and_no_route(monkeypatch, raised, kind, outcome):
    def fail(*args, **kwargs):
        raise raised

    monkeypatch.setattr(socket, "create_connection", fail)
    calls = CallLog()
    got = net.connect("2001:db8::5", 50000, calls, timeout=1)
    assert got["kind"] is kind and got["address"] == "[2001:db8::5]:50000"
    assert calls.calls[0].outcome == outcome


# ------------------------------------------------------------------------ from a remote host


class Host:
    """An SSH host that answers one command with a fixed result (or error), and remembers it."""

    def __init__(self, rc: int = 0, stdout: str = "", stderr: str = "", error: Exception | None = None):
        self.result, self.error, self.runs = (rc, stdout, stderr), error, []

    def run(self, argv, timeout=None):
        self.runs.append((argv, timeout))
        if self.error:
            raise self.error
        rc, out, err = self.result
        return CommandResult(argv, rc, out, err, 0.01)


@pytest.mark.parametrize("rc, stdout, stderr, kind, code", [
    (0, "200", "", Outcome.OK, 200),
    (0, "503", "", Outcome.OK, 503),  # an answer: what its status means is for the checks
    (6, "000", "curl: (6) Could not resolve host: omni.example.org", Outcome.DNS_FAILED, None),
    (7, "000", "curl: (7) Failed to connect to omni.example.org port 443: Connection refused", Outcome.REFUSED, None),
    (28, "000", "curl: (28) Connection timed out after 5001 milliseconds", Outcome.TIMED_OUT, None),
    (60, "000", "curl: (60) SSL certificate problem: unable to get local issuer certificate\nMore details here: "
                "https://curl.se/docs/sslcerts.html", Outcome.TLS_FAILED, None),
    (127, "", "sh: 1: curl: not found", Outcome.ERROR, None),
])
def test_curl_on_a_host(rc, stdout, stderr, kind, code):
    host = Host(rc, stdout, stderr)
    got = net.curl_from(host, "https://omni.example.org/healthz", timeout=5)
    assert got["kind"] is kind and got["code"] == code and got["rc"] == rc
    assert host.runs == [(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                           "https://omni.example.org/healthz"], 10)]
    if rc == 60:
        assert got["error"].startswith("curl: (60) SSL certificate problem") and "More details" not in got["error"]
    if rc == 127:
        assert got["error"] == "curl is not installed on the host"


def test_curl_on_a_host_that_cannot_be_reached_raises_the_ssh_error():
    with pytest.raises(Unreachable):
        net.curl_from(Host(error=Unreachable("ssh root@provider", "connection refused")), "https://omni/healthz")


def test_nc_output():
    text = ("Connection to 192.168.3.51 50000 port [tcp/*] succeeded!\n"
            "nc: connect to 192.168.3.51 port 50001 (tcp) failed: Connection refused\n")
    assert net.parse_nc(text, TALOS) == {"50000": "ok", "50001": "refused"}
    assert net.parse_nc("nc: connect to h port 50000 (tcp) timed out: Operation now in progress\n"
                        "nc: connect to h port 50001 (tcp) failed: No route to host\n", TALOS) == {
        "50000": "timeout", "50001": "unreachable"}
    assert net.parse_nc("", TALOS) == {"50000": "no answer", "50001": "no answer"}
    assert net.parse_nc("nc: connect to h port 50000 (tcp) failed: Network is down\n", TALOS)["50000"] is Outcome.ERROR


def test_nc_on_a_host():
    stderr = ("Connection to 10.0.0.5 50000 port [tcp/*] succeeded!\n"
              "nc: connect to 10.0.0.5 port 50001 (tcp) failed: Connection refused\n")
    host = Host(1, "", stderr)
    got = net.nc_from(host, "10.0.0.5", TALOS, timeout=3)
    assert got == {"address": "10.0.0.5", "ports": {"50000": "ok", "50001": "refused"},
                   "lines": stderr.strip().splitlines()}
    assert host.runs == [(["nc", "-z", "-v", "-w", "3", "10.0.0.5", "50000", "50001"], 11)]


@pytest.mark.parametrize("host, error", [
    (Host(127, "", "sh: 1: nc: not found"), "nc is not installed on the provider host (netcat-openbsd)"),
    (Host(1, "", "nc: getaddrinfo for host \"10.0.0.5\" port 50000: Name or service not known"),
     "nc gave no verdict (rc 1): nc: getaddrinfo for host \"10.0.0.5\" port 50000: Name or service not known"),
    (Host(error=Unreachable("ssh root@provider", "connection refused")), "ssh root@provider: connection refused"),
])
def test_nc_that_gives_no_verdict_says_why(host, error):
    assert net.nc_from(host, "10.0.0.5", TALOS, timeout=3) == {"address": "10.0.0.5", "error": error}
