"""The twin's latency knob: every protocol answers at least that late, and waiting blocks nothing else.

One twin with 0.2 s on every kind serves the module; each test opens its connection first and times
one request on it, so a test measures the knob rather than a TLS or SSH handshake.
"""

from __future__ import annotations

import functools
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramiko
import pytest
import requests
import yaml

from runbook_lab import omnictl
from runbook_lab.latency import latencies
from runbook_lab.model import healthy_state, validate_scenario
from runbook_lab.twin import Twin
from runbook_lib.errors import ScenarioError

LATENCY = 0.2
SCENARIO = {"name": "far-away", "summary": "a healthy site behind a slow VPN", "expect": [],
            "changes": {"latency": {"ssh": LATENCY, "api": LATENCY, "omnictl": LATENCY}}}


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    with Twin(SCENARIO, workdir=tmp_path_factory.mktemp("latency") / "twin") as running:
        yield running, yaml.safe_load(running.site_file.read_text())


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def https_session(site: dict) -> requests.Session:
    """A keep-alive session trusting the twin's CA (given per request: a session's own ``verify``
    loses to REQUESTS_CA_BUNDLE)."""
    session = requests.Session()
    session.request = functools.partial(session.request, verify=site["omni"]["ca_file"])
    return session


def test_the_healthy_site_has_no_latency():
    assert latencies(healthy_state()) == {"ssh": 0.0, "api": 0.0, "omnictl": 0.0}


def test_a_scenario_may_set_it_and_bad_values_are_refused():
    assert validate_scenario(SCENARIO)["changes"]["latency"]["ssh"] == LATENCY
    for bad in ({"ssh": -1}, {"ssh": "fast"}, {"vpn": 0.1}, [0.1]):
        with pytest.raises(ValueError, match="latency"):
            latencies({"latency": bad})
    for bad in ({"vpn": 0.1}, {"api": -0.5}):
        with pytest.raises(ScenarioError, match="latency"):
            validate_scenario({**SCENARIO, "changes": {"latency": bad}})


def test_each_ssh_command_waits(twin):
    _, site = twin
    host = site["hosts"]["provider"]
    client = paramiko.SSHClient()
    client.load_host_keys(host["known_hosts"])
    client.connect(host["host"], port=host["port"], username=host["user"], key_filename=host["key_file"],
                   allow_agent=False, look_for_keys=False, timeout=5)
    try:
        def echo():
            _, out, _ = client.exec_command("echo hi", timeout=5)
            assert out.read() == b"hi\n"

        assert timed(echo) >= LATENCY
        assert timed(echo) >= LATENCY  # per command, not per connection
    finally:
        client.close()


@pytest.mark.parametrize("endpoint", [0, 1], ids=["fakepve", "forwarded-endpoint"])
def test_each_proxmox_request_waits(twin, endpoint):
    _, site = twin
    url = site["proxmox"]["matrix"]["endpoints"][endpoint] + "/api2/json/version"
    session = https_session(site)
    session.get(url, timeout=5)  # the TLS connection, kept alive
    assert timed(lambda: session.get(url, timeout=5)) >= LATENCY


def test_each_omni_request_waits(twin):
    _, site = twin
    session = https_session(site)
    url = site["omni"]["url"] + "/healthz"
    assert session.get(url, timeout=5).status_code == 200
    assert timed(lambda: session.get(url, timeout=5)) >= LATENCY


def test_each_kubernetes_request_waits(twin):
    _, site = twin
    config = yaml.safe_load(Path(site["kubernetes"]["homelab"]["kubeconfig"]).read_text(encoding="utf-8"))
    session = https_session(site)
    session.headers["Authorization"] = f"Bearer {config['users'][0]['user']['token']}"
    url = config["clusters"][0]["cluster"]["server"] + "/version"
    assert session.get(url, timeout=5).status_code == 200
    assert timed(lambda: session.get(url, timeout=5)) >= LATENCY


def test_waiting_requests_overlap(twin):
    """The servers wait with asyncio.sleep: four requests at once take about one latency, not four."""
    _, site = twin
    url = site["omni"]["url"] + "/healthz"

    def get(_):
        return requests.get(url, verify=site["omni"]["ca_file"], timeout=5).status_code

    with ThreadPoolExecutor(4) as pool:
        t0 = time.perf_counter()
        assert list(pool.map(get, range(4))) == [200] * 4
        assert time.perf_counter() - t0 < 3 * LATENCY


def test_each_omnictl_call_that_asks_omni_waits(twin):
    running, _ = twin
    state = json.loads((running.workdir / "omni-state.json").read_text())
    assert state["latency"] == LATENCY
    status = []
    assert timed(lambda: status.append(omnictl.run(["get", "clusters", "-o", "json"], state)[0])) >= LATENCY
    assert status == [0]
    assert timed(lambda: omnictl.run(["version"], state)) < LATENCY  # answered locally, as the real one does
