"""Bad input gets a clear message naming what is wrong, and nothing is lost."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sitefiles import rewrite_site

from runbook_lab.twin import Twin
from runbook_lib.runner import run_runbook

pytestmark = pytest.mark.runbook


def test_a_missing_secret_reference_names_the_field(tmp_path, monkeypatch):
    monkeypatch.delenv("RUNBOOK_TEST_UNSET_TOKEN", raising=False)
    with Twin() as twin:
        site = rewrite_site(twin.site_file, tmp_path / "site.yaml",
                            lambda d: d["proxmox"]["matrix"].update(token_secret="env:RUNBOOK_TEST_UNSET_TOKEN"))
        res = run_runbook("provider", site_file=site, outputs_dir=tmp_path / "out")
    f = next(f for f in res.verdict.findings if f.id == "provider.proxmox_unreachable")
    assert f.status == "unknown"
    assert any("proxmox.matrix.token_secret" in e and "RUNBOOK_TEST_UNSET_TOKEN" in e for e in f.evidence), f.evidence
    assert res.exit_code == 1  # the rest of the runbook still ran
    assert {x.id for x in res.verdict.findings if x.status == "ok"} >= {"provider.key_invalid", "provider.not_registered"}


def test_a_malformed_site_file_is_refused_by_the_cli_naming_the_field(tmp_path):
    bad = tmp_path / "site.yaml"
    bad.write_text("name: x\nomni: {url: https://omni}\nhosts: {omni: {host: a}, provider: {host: b, port: 0}}\n"
                   "proxmox: {m: {endpoints: [https://a:8006], token_id: a@b!c, token_secret: hunter2-literal}}\n"
                   "provider: {cluster: m}\n")
    proc = subprocess.run([sys.executable, "-m", "runbook_lib.cli", "run", "provider", "--site", str(bad),
                           "--outputs", str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert "hosts.provider.port" in proc.stderr and "proxmox.m.token_secret" in proc.stderr
    assert "hunter2-literal" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_binary_bytes_in_the_provider_log_are_kept_and_counted(tmp_path):
    scenario = {"name": "binary", "summary": "binary bytes in the log", "expect": [], "changes": {"hosts": {"provider": {
        "containers": {"omni-provider-proxmox-provider-1": {"logs": [
            {"ago": 100, "level": "info", "caller": "omni-infra-provider-proxmox/main.go:117", "msg": "starting infra provider"},  # noqa: E501  (a real line, as it is)
            {"ago": 50, "raw": "garbage \udcff\udcfe from a crashed writer"},
            {"ago": 40, "raw": "Error: rpc error: code = Unauthenticated desc = invalid signature"},
        ]}}}}}}
    with Twin(scenario) as twin:
        res = run_runbook("provider", site_file=twin.site_file, outputs_dir=tmp_path / "out")
    assert res.verdict.status_of("provider.key_invalid") == "problem"
    record = json.dumps(json.loads(res.paths["notebook"].read_text()), ensure_ascii=False)
    assert "garbage \ufffd\ufffd from a crashed writer" in record  # the line is kept, its bad bytes marked
    assert "2 undecodable bytes replaced" in record
