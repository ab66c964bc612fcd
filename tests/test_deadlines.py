"""A system that hangs or refuses ends as `unknown` with the reason, within the configured budget."""

from __future__ import annotations

import socket
import time

import pytest
from sitefiles import rewrite_site

from runbook_lab.twin import Twin
from runbook_lib.calls import CallLog
from runbook_lib.checks import run_checks
from runbook_lib.gather import provider as gather
from runbook_lib.site import load_site


def judge(site_file):
    calls = CallLog()
    t0 = time.monotonic()
    ev = gather.gather(load_site(site_file), calls)
    elapsed = time.monotonic() - t0
    return {f.id: f for f in run_checks("provider", ev)}, calls, elapsed


def scenario(**changes) -> dict:
    return {"name": "deadline", "summary": "deadline test", "expect": [], "changes": changes}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_proxmox_that_accepts_and_never_answers(tmp_path):
    with Twin(scenario(proxmox={"clusters": {"matrix": {"hang": True}}})) as twin:
        def short(doc):
            doc["proxmox"]["matrix"].update(connect_timeout=1, read_timeout=1)
        findings, calls, elapsed = judge(rewrite_site(twin.site_file, tmp_path / "site.yaml", short))
    f = findings["provider.proxmox_unreachable"]
    assert f.status == "problem"  # every endpoint is down from here
    assert any("timeout" in e for e in f.evidence)
    assert findings["provider.proxmox_auth"].status == "unknown"
    timed_out = [c for c in calls.calls if c.target.startswith("proxmox") and c.outcome == "timeout"]
    assert len(timed_out) >= 3
    # three endpoints, 1 s read each, plus the provider's credentials: well under what a hang would be
    assert elapsed < 12


def test_refused_ssh_port(tmp_path):
    with Twin() as twin:
        port = closed_port()
        site = rewrite_site(twin.site_file, tmp_path / "site.yaml",
                            lambda d: d["hosts"]["provider"].update(port=port))
        findings, calls, elapsed = judge(site)
    f = findings["provider.container_down"]
    assert f.status == "unknown"
    assert any("refused" in e.lower() or "unable to connect" in e.lower() for e in f.evidence), f.evidence
    assert findings["provider.not_registered"].status == "ok"  # Omni could still be asked
    assert elapsed < 10


def test_omnictl_that_hangs(tmp_path):
    with Twin(scenario(omnictl={"hang": True})) as twin:
        site = rewrite_site(twin.site_file, tmp_path / "site.yaml",
                            lambda d: d["omni"]["omnictl"].update(timeout=2))
        findings, calls, elapsed = judge(site)
    f = findings["provider.not_registered"]
    assert f.status == "unknown"
    assert any("2" in e and ("within" in e or "timed out" in e or "deadline" in e) for e in f.evidence), f.evidence
    # the three infra-provider listings are read at once: each times out, together within one deadline
    assert {c.outcome for c in calls.calls if c.target.startswith("omnictl")} == {"timeout"}
    assert elapsed < 8


@pytest.mark.parametrize("mode", ["down"])
def test_docker_daemon_down_is_unknown_with_dockers_words(tmp_path, mode):
    with Twin(scenario(hosts={"provider": {"docker": mode}})) as twin:
        findings, calls, elapsed = judge(twin.site_file)
    f = findings["provider.container_down"]
    assert f.status == "unknown"
    assert any("Cannot connect to the Docker daemon" in e for e in f.evidence)
