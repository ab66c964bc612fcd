"""The twin's Omni /healthz: Omni's answers, certificates and failure modes, over real HTTPS."""

from __future__ import annotations

import time

import pytest
import requests

from runbook_lab.certs import CA
from runbook_lab.loop import BackgroundLoop
from runbook_lab.model import RequestLog
from runbook_lab.omni_server import start_omni


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("omni")
    loop = BackgroundLoop("test")
    yield loop.run, CA.create(base / "pki"), RequestLog(base / "requests.jsonl")
    loop.close()


@pytest.fixture
def omni(env):
    run, ca, log = env
    servers = []

    def _start(**model):
        server = run(start_omni({"healthz": 200, "certificate": "valid", **model}, ca=ca, log=log))
        servers.append(server)
        return server

    yield _start
    for server in servers:
        run(server.stop())


def get(env, url, method="GET", **kw):
    _, ca, _ = env
    return requests.request(method, url, verify=str(ca.cert_path), timeout=kw.pop("timeout", 5), **kw)


def test_healthy_answers_200_with_an_empty_body(env, omni):
    server = omni()
    assert server.url == f"https://127.0.0.1:{server.port}"
    for method in ("GET", "HEAD"):
        reply = get(env, server.url + "/healthz", method)
        assert reply.status_code == 200
        assert reply.content == b""


def test_unhealthy_answers_500(env, omni):
    reply = get(env, omni(healthz=500).url + "/healthz")
    assert reply.status_code == 500
    assert reply.text == "Internal Server Error\n"
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_other_methods_get_405(env, omni):
    url = omni().url + "/healthz"
    for method in ("POST", "PUT", "DELETE"):
        reply = get(env, url, method)
        assert (reply.status_code, reply.text) == (405, "Method not allowed\n")


def test_requests_are_logged(env, omni):
    _, _, log = env
    before = len(log.entries())
    url = omni().url + "/healthz"
    get(env, url)
    get(env, url, "POST")
    assert [(e["kind"], e["target"], e["action"], e["write"]) for e in log.entries()[before:]] == [
        ("omni", "omni", "GET /healthz", False),
        ("omni", "omni", "POST /healthz", True),
    ]


def test_untrusted_certificate_fails_verification(env, omni):
    _, ca, _ = env
    server = omni(certificate="untrusted")
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        get(env, server.url + "/healthz")
    other_ca = ca.directory / "untrusted-ca" / "ca.pem"
    assert requests.get(server.url + "/healthz", verify=str(other_ca), timeout=5).status_code == 200


def test_expired_certificate_fails_verification(env, omni):
    server = omni(certificate="expired")
    with pytest.raises(requests.exceptions.SSLError, match="certificate has expired"):
        get(env, server.url + "/healthz")


def test_down_refuses_connections(env, omni):
    server = omni(healthz="down")
    with pytest.raises(requests.exceptions.ConnectionError, match="Connection refused"):
        get(env, server.url + "/healthz")


def test_hang_accepts_and_never_answers(env, omni):
    server = omni(healthz="hang")
    began = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        get(env, server.url + "/healthz", timeout=(1, 1))
    assert time.monotonic() - began < 1.5


def test_bad_models_are_refused(env):
    run, ca, log = env
    with pytest.raises(ValueError, match="healthz"):
        run(start_omni({"healthz": "sometimes"}, ca=ca, log=log))
    with pytest.raises(ValueError, match="certificate"):
        run(start_omni({"healthz": 200, "certificate": "self-signed"}, ca=ca, log=log))
