"""http.probe against local HTTPS servers with a private CA (and against broken endpoints)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from runbook_lib.calls import CallLog
from runbook_lib.sources.http import probe


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path == "/healthz":
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            body = b"Internal Server Error: state unavailable\n"
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args):  # keep test output quiet
        pass


class Server:
    def __init__(self, pki=None):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if pki is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(pki.cert_file, pki.key_file)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        scheme = "https" if pki else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(2)


@pytest.fixture(scope="module")
def https(pki):
    server = Server(pki)
    yield server
    server.stop()


@pytest.fixture
def calls():
    return CallLog()


def test_ok_with_the_ca(https, pki, calls):
    result = probe(f"{https.url}/healthz", calls, ca_file=str(pki.ca_file), timeout=3)
    assert (result.kind, result.status, result.error) == ("ok", 200, "")
    assert result.ok and result.seconds < 3
    tls = result.tls
    assert tls.verified and tls.error == ""
    assert tls.subject == "CN=omni.lab.test" and tls.issuer == "CN=Runbook Test CA"
    assert 29 < tls.days_left <= 30
    assert set(tls.sans) == {"localhost", "127.0.0.1"}
    assert len(tls.fingerprint_sha256.split(":")) == 32
    [call] = calls.calls
    assert (call.target, call.action, call.outcome, call.detail) == (
        f"{https.url}/healthz", "GET /healthz", "ok", "HTTP 200")
    assert call.bytes_out > 0


def test_tls_kind_without_the_ca_still_reads_the_certificate(https, calls):
    result = probe(f"{https.url}/healthz", calls, timeout=3)  # system store only
    assert (result.kind, result.status) == ("tls", None)
    assert "certificate verify failed" in result.error
    assert not result.tls.verified and result.tls.error == result.error
    assert result.tls.issuer == "CN=Runbook Test CA"  # fetched unverified for the details
    assert calls.calls[-1].outcome == "error"


def test_a_ca_that_did_not_sign_it(https, pki, calls):
    result = probe(f"{https.url}/healthz", calls, ca_file=str(pki.other_ca_file), timeout=3)
    assert result.kind == "tls" and "unable to get local issuer certificate" in result.error


def test_expired_certificate(pki_factory, calls):
    expired = pki_factory(days=-2)
    server = Server(expired)
    try:
        result = probe(f"{server.url}/healthz", calls, ca_file=str(expired.ca_file), timeout=3)
    finally:
        server.stop()
    assert result.kind == "tls" and "expired" in result.error
    assert result.tls.days_left < -1.9


def test_verification_off(https, calls):
    result = probe(f"{https.url}/healthz", calls, verify=False, timeout=3)
    assert result.kind == "ok" and result.status == 200
    assert result.tls.verified is False and result.tls.subject == "CN=omni.lab.test"


def test_http_error(https, pki, calls):
    result = probe(f"{https.url}/broken", calls, ca_file=str(pki.ca_file), timeout=3)
    assert (result.kind, result.status, result.error) == ("http_error", 500, "HTTP 500")
    assert result.excerpt.startswith("Internal Server Error")
    assert calls.calls[-1].bytes_in == len(result.excerpt)


def test_plain_http(calls):
    server = Server()
    try:
        result = probe(f"{server.url}/healthz", calls, timeout=3)
    finally:
        server.stop()
    assert (result.kind, result.status, result.tls) == ("ok", 200, None)


def test_refused(closed_port, calls):
    start = time.monotonic()
    result = probe(f"https://127.0.0.1:{closed_port}/healthz", calls, timeout=3)
    assert time.monotonic() - start < 1
    assert (result.kind, result.status, result.tls) == ("refused", None, None)
    assert "refused" in result.error
    assert calls.calls[-1].outcome == "error"


def test_accept_and_hang_times_out_within_budget(silent_server, calls):
    start = time.monotonic()
    result = probe(f"https://127.0.0.1:{silent_server.port}/healthz", calls, timeout=1)
    assert time.monotonic() - start < 1 + 0.5
    assert result.kind == "timeout" and result.status is None
    assert calls.calls[-1].outcome == "timeout"
    plain = probe(f"http://127.0.0.1:{silent_server.port}/healthz", calls, timeout=0.5)
    assert plain.kind == "timeout"


def test_dns_failure(monkeypatch, calls):
    def no_such_host(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    result = probe("https://omni.nowhere.test/healthz", calls, timeout=1)
    assert result.kind == "dns" and "omni.nowhere.test" in result.error


def test_unreadable_ca_file_is_a_tls_problem_not_an_exception(https, tmp_path, calls):
    result = probe(f"{https.url}/healthz", calls, ca_file=str(tmp_path / "missing.pem"), timeout=1)
    assert result.kind == "tls" and "CA file" in result.error
