"""A host key that does not match known_hosts is a security event, reported once, exit 2.

The twin's known_hosts is given another key for the provider host, as an interception would look
from here. The provider runbook must not repeat the same sentence under every finding it could
not check: one `security.host_key_mismatch` problem comes first, and the others point to it.
"""

from __future__ import annotations

import pytest

from runbook_lib.errors import HostKeyMismatch, TLSFailed
from runbook_lib.runner import run_runbook
from runbook_lib.verdict import HOST_KEY_MISMATCH, Finding, Verdict, with_security_events


def test_the_mismatch_is_raised_once_and_the_findings_point_to_it():
    reason = "host key of 127.0.0.1:2222 does not match known_hosts (got ssh-ed25519 SHA256:x): ..."
    calls = [{"target": "ssh provider", "action": "connect", "outcome": "error", "error_kind": "host_key",
              "detail": f"ssh provider: {reason}"}] * 3
    findings = [Finding(f"provider.check{i}", "unknown", "could not ask", [f"ssh provider: {reason}", "other"])
                for i in range(9)] + [Finding("provider.omni", "ok", "fine", ["GET x: 200"])]
    out = with_security_events(findings, calls)
    v = Verdict("provider", out)
    first = v.sorted_findings()[0]
    assert first.id == HOST_KEY_MISMATCH and first.status == "problem" and first.evidence == [f"ssh provider: {reason}"]
    assert v.exit_code() == 2
    assert sum(reason in line for f in out for line in f.evidence) == 1  # said once, not ten times
    assert all(f.evidence[0] == f"not checked: see {HOST_KEY_MISMATCH}" for f in out[1:10])
    assert out[10].evidence == ["GET x: 200"]
    assert with_security_events(findings, [{**calls[0], "error_kind": "unreachable"}]) == findings


def test_a_host_key_mismatch_is_its_own_kind_of_tls_failure():
    err = HostKeyMismatch("ssh provider", "host key differs")
    assert isinstance(err, TLSFailed) and err.kind == "host_key"


@pytest.mark.runbook
def test_an_intercepted_provider_host_is_one_security_problem(tmp_path):
    from runbook_lab.ssh_lib import asyncssh
    from runbook_lab.twin import Twin

    with Twin() as twin:
        known = twin.workdir / "known_hosts"
        other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()[:2]
        provider = f"[127.0.0.1]:{twin.hosts['provider'].port}"
        forged = []
        for line in known.read_text().splitlines():
            fields = line.split()
            if fields[0] == provider:  # the provider host answers with a key we never saw
                fields[1:3] = other
            forged.append(" ".join(fields))
        known.write_text("\n".join(forged) + "\n")
        result = run_runbook("provider", site_file=twin.site_file, outputs_dir=tmp_path / "outputs")
    v = result.verdict
    assert result.exit_code == 2
    first = v.sorted_findings()[0]
    assert first.id == HOST_KEY_MISMATCH and first.status == "problem"
    assert "does not match known_hosts" in " ".join(first.evidence)
    repeated = [f.id for f in v.findings[1:] for line in f.evidence if "does not match known_hosts (got" in line]
    assert repeated == []
    assert v.text().splitlines()[1].startswith(f"  Fix first: {HOST_KEY_MISMATCH}: ")  # looked at before any other fix
