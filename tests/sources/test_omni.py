"""Omnictl with small fake omnictl programs (sh scripts printing omnictl's real output and errors)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

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
from runbook_lib.site import Omni
from runbook_lib.sources.omni import Omnictl, classify, parse_objects

SA_KEY = "eyJuYW1lIjoicnVuYm9vayJ9-service-account-key"

# Two resources as `omnictl get ... -o json` prints them: 4-space indented, concatenated, no array.
GET_OUTPUT = """{
    "metadata": {
        "namespace": "infra-provider-ephemeral",
        "type": "InfraProviderHealthStatuses.omni.sidero.dev",
        "id": "proxmox",
        "version": 2881,
        "owner": "proxmox.ProviderHealthStatusController",
        "phase": "running",
        "created": "2026-02-13T09:00:00Z",
        "updated": "2026-02-14T09:00:00Z",
        "labels": {
            "omni.sidero.dev/infra-provider-id": "proxmox",
            "omni.sidero.dev/connected": null
        }
    },
    "spec": {
        "lastheartbeattimestamp": {
            "seconds": 1771059600,
            "nanos": 123456789
        },
        "error": ""
    }
}
{
    "metadata": {
        "namespace": "ephemeral",
        "type": "InfraProviderCombinedStatuses.omni.sidero.dev",
        "id": "proxmox",
        "version": 12,
        "owner": null,
        "phase": "running",
        "created": "2026-02-13T09:00:00Z",
        "updated": "2026-02-14T09:00:01Z"
    },
    "spec": {
        "name": "Proxmox",
        "description": "Proxmox infrastructure provider",
        "health": {
            "connected": true,
            "error": "",
            "initialized": true
        },
        "version": ""
    }
}
"""

ERRORS = {
    "unauthenticated": (
        "Error: rpc error: code = Unauthenticated desc = invalid signature", AuthFailed),
    "missing_signature": (
        "Error: rpc error: code = Unauthenticated desc = unauthenticated: missing valid signature",
        AuthFailed),
    "permission_denied": (
        'Error: rpc error: code = PermissionDenied desc = unauthorized: access denied: '
        'insufficient role: "Reader"', PermissionDenied),
    "unavailable": (
        'Error: rpc error: code = Unavailable desc = connection error: desc = "transport: Error '
        'while dialing: dial tcp 127.0.0.1:443: connect: connection refused"', Unreachable),
    "x509": (
        'Error: rpc error: code = Unavailable desc = connection error: desc = "transport: '
        'authentication handshake failed: tls: failed to verify certificate: x509: certificate '
        'signed by unknown authority"', TLSFailed),
    "not_found": (
        "Error: rpc error: code = NotFound desc = resource MachineStatuses.omni.sidero.dev"
        "(default/nosuch@undefined) doesn't exist", NotFound),
    "not_registered": ('Error: resource "events" is not registered', NotFound),
    "too_old": (
        "Error: omnictl is too old for this Omni instance, please update omnictl: "
        "client 0.40.0, server 0.48.0", CommandFailed),
    "too_new": (
        "Error: omnictl is newer than this Omni instance, please downgrade omnictl", CommandFailed),
    "no_context": (
        'Error: context "lab" has not been configured, you will need to set it manually',
        CommandFailed),
}


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Write a fake omnictl; returns (Omnictl, where its argv and environment are recorded)."""
    monkeypatch.setenv("OMNI_SA_KEY", SA_KEY)
    record = tmp_path / "record"

    def make(body: str, **omnictl) -> Omnictl:
        binary = script(
            tmp_path / "omnictl",
            f'printf "%s\\n" "$@" > "{record}.argv"\n'
            f'printf "%s\\n%s\\n%s\\n" "$OMNICONFIG" "$OMNI_SERVICE_ACCOUNT_KEY" "$OMNI_ENDPOINT" > "{record}.env"\n'
            + body,
        )
        options = dict(binary=str(binary), config=str(tmp_path / "omniconfig"),
                       service_account_key="env:OMNI_SA_KEY", timeout=5)
        options.update(omnictl)
        spec = Omni(url="https://omni.lab.test:443", omnictl=options)
        return Omnictl(spec, CallLog())

    make.record = record
    return make


def test_get_parses_concatenated_objects_and_passes_credentials_by_env(fake, tmp_path):
    output = tmp_path / "get.json"
    output.write_text(GET_OUTPUT)
    omni = fake(f'cat "{output}"\n')
    items = omni.get("infraproviderhealthstatuses", "proxmox", namespace="infra-provider-ephemeral",
                     selector="omni.sidero.dev/infra-provider-id=proxmox")
    assert [i["metadata"]["type"] for i in items] == [
        "InfraProviderHealthStatuses.omni.sidero.dev", "InfraProviderCombinedStatuses.omni.sidero.dev"]
    assert items[0]["spec"]["lastheartbeattimestamp"]["seconds"] == 1771059600
    assert items[1]["spec"]["health"]["connected"] is True
    argv = (tmp_path / "record.argv").read_text().split("\n")[:-1]
    assert argv == ["get", "infraproviderhealthstatuses", "proxmox", "-n", "infra-provider-ephemeral",
                    "-l", "omni.sidero.dev/infra-provider-id=proxmox", "-o", "json"]
    env = (tmp_path / "record.env").read_text().split("\n")
    assert env[:3] == [str(tmp_path / "omniconfig"), SA_KEY, "https://omni.lab.test:443"]
    [call] = omni.calls.calls
    assert call.target == "omnictl" and call.outcome == "ok" and call.detail == "rc=0"
    assert call.action.startswith("omnictl get infraproviderhealthstatuses proxmox")
    assert call.bytes_in == len(GET_OUTPUT)
    assert SA_KEY not in str(omni.calls.to_list()) and SA_KEY in redact.known_values()


def test_empty_output_is_no_resources(fake):
    assert fake("exit 0\n").get("machinestatuses") == []


def test_context_and_insecure_flags(fake, tmp_path):
    omni = fake("exit 0\n", context="lab", insecure_skip_tls_verify=True)
    omni.get("clusters")
    argv = (tmp_path / "record.argv").read_text().split()
    assert argv[:3] == ["--context", "lab", "--insecure-skip-tls-verify"]
    assert argv[3:] == ["get", "clusters", "-o", "json"]


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_errors_are_classified(fake, name):
    line, kind = ERRORS[name]
    omni = fake(f"cat >&2 <<'EOF'\n{line}\nEOF\nexit 1\n")
    with pytest.raises(kind) as err:
        omni.get("machinestatuses", "nosuch")
    assert type(err.value) is kind
    assert err.value.target == "omnictl"
    assert err.value.reason.endswith(line[len("Error: "):])
    assert omni.calls.calls[-1].outcome == "error"


def test_classify_reasons_say_which_failure():
    assert "versions do not match" in classify(ERRORS["too_old"][0], 1).reason
    assert "no omnictl context" in classify(ERRORS["no_context"][0], 1).reason
    other = classify("Error: something else entirely\n", 1)
    assert type(other) is CommandFailed and other.rc == 1 and other.reason == "something else entirely"
    assert classify("", 2).reason == "exit code 2"


def test_hang_is_killed_with_its_whole_group(fake, tmp_path):
    pids = tmp_path / "pids"
    omni = fake(f'sleep 60 &\necho "$$ $!" > "{pids}"\nwait\n', timeout=1)
    start = time.monotonic()
    with pytest.raises(TimedOut) as err:
        omni.get("machines")
    assert time.monotonic() - start < 1.0 + 0.5
    assert "did not finish within 1 s" in err.value.reason
    assert omni.calls.calls[-1].outcome == "timeout"
    for pid in map(int, pids.read_text().split()):
        assert not _alive(pid), f"process {pid} outlived the deadline"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"  # a zombie waiting for init to reap it is gone too


def test_missing_binary_is_not_found(tmp_path):
    spec = Omni(url="https://omni.lab.test", omnictl={"binary": str(tmp_path / "nope" / "omnictl")})
    calls = CallLog()
    with pytest.raises(NotFound) as err:
        Omnictl(spec, calls).get("machines")
    assert err.value.target == "omnictl" and "not found" in err.value.reason
    assert calls.calls[-1].outcome == "error"
    on_path = Omni(url="https://omni.lab.test", omnictl={"binary": "omnictl-not-on-any-path"})
    with pytest.raises(NotFound, match="not found"):
        Omnictl(on_path, calls).version()


def test_not_executable_is_not_found(tmp_path):
    binary = tmp_path / "omnictl"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o644)
    spec = Omni(url="https://omni.lab.test", omnictl={"binary": str(binary)})
    with pytest.raises(NotFound, match="not executable"):
        Omnictl(spec, CallLog()).version()


def test_garbage_output_is_malformed(fake):
    with pytest.raises(Malformed):
        fake("echo 'NAMESPACE   TYPE   ID   VERSION'\n").get("machines")


def test_parse_objects():
    assert parse_objects("") == [] and parse_objects(" \n") == []
    assert parse_objects('{"a": 1}{"b": 2}\n{"c":\n 3}') == [{"a": 1}, {"b": 2}, {"c": 3}]
    with pytest.raises(Malformed):
        parse_objects('{"a": 1}\n[1, 2]')
    with pytest.raises(Malformed):
        parse_objects('{"a": 1}\n{"b":')
    many = "".join(json.dumps({"metadata": {"id": str(i)}}, indent=4) + "\n" for i in range(500))
    assert [o["metadata"]["id"] for o in parse_objects(many)] == [str(i) for i in range(500)]


def test_run_without_check_returns_the_failure(fake):
    result = fake("echo 'Error: boom' >&2\nexit 1\n").run(["get", "x"], check=False)
    assert (result.rc, result.stderr) == (1, "Error: boom\n")
    assert result.argv[0] == "omnictl" and not result.ok


def test_environment_is_not_inherited_secret_in_argv(fake, tmp_path):
    omni = fake("exit 0\n")
    omni.version()
    assert SA_KEY not in (tmp_path / "record.argv").read_text()
    assert os.environ.get("OMNI_SERVICE_ACCOUNT_KEY") != SA_KEY, "the test process env is untouched"
