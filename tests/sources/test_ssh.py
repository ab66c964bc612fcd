"""SSHHost against a real OpenSSH sshd on loopback (see tests/sshd.py)."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from runbook_lib import redact
from runbook_lib.calls import CallLog
from runbook_lib.errors import AuthFailed, TimedOut, TLSFailed, Unreachable
from runbook_lib.sources import LineSplitter
from runbook_lib.sources.ssh import SSHHost, remote_command, resolve_endpoint
from tests.sshd import new_key

pytestmark = pytest.mark.sshd


@pytest.fixture
def calls() -> CallLog:
    return CallLog()


@pytest.fixture
def host(sshd, calls):
    h = SSHHost(sshd.target(), calls)
    yield h
    h.close()


# --- commands ---------------------------------------------------------------------------------
def test_run_returns_exit_code_and_both_streams(host, calls):
    result = host.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.rc, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert not result.ok
    assert result.bytes_in == len("out\nerr\n")
    ok = host.run(["true"])
    assert ok.rc == 0 and ok.ok
    connects = [c for c in calls.calls if c.action.startswith("connect ")]
    assert len(connects) == 1, "one connection is reused for every command"


def test_output_on_stderr_only(host):
    result = host.run(["sh", "-c", "echo 'Error response from daemon: No such container: x' >&2; exit 1"])
    assert result.stdout == ""
    assert result.stderr == "Error response from daemon: No such container: x\n"
    assert result.rc == 1


def test_argv_is_quoted_not_interpreted(host):
    result = host.run(["printf", "%s|", "a b", "$HOME", "it's", "; rm -rf /nothing", "*"])
    assert result.stdout == "a b|$HOME|it's|; rm -rf /nothing|*|"


def test_stream_of_20mb_keeps_memory_bounded(host):
    line = "x" * 99  # 100 bytes with the newline
    seen = {"stdout": 0, "stderr": 0, "last": ""}

    def on_line(stream, text):
        seen[stream] += 1
        seen["last"] = text

    command = (
        f"yes {line} | head -n 200000; echo done >&2; "
        "head -c 300000 /dev/zero | tr '\\0' y; echo; echo tail-line"
    )
    tracemalloc.start()
    try:
        result = host.stream(["sh", "-c", command], on_line, max_line=4096, timeout=30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.rc == 0
    assert result.bytes_in == 200_000 * 100 + len("done\n") + 300_000 + 1 + len("tail-line\n")
    assert seen["stdout"] == 200_000 + 2 and seen["stderr"] == 1
    assert (result.stdout_lines, result.stderr_lines) == (200_002, 1)
    assert result.cut_lines == 1 and result.truncated
    assert seen["last"] == "tail-line"
    # the result keeps short tails, not the 20 MB
    assert result.stdout.endswith("tail-line") and len(result.stdout) < 20_000
    assert result.stderr == "done"
    assert peak < 8 * 1024 * 1024, f"peak traced memory {peak} bytes"


def test_stream_cuts_long_lines_and_flags_them(host):
    lines = []
    result = host.stream(
        ["sh", "-c", "printf 'short\\n'; head -c 5000 /dev/zero | tr '\\0' a; printf '\\nafter\\n'"],
        lambda s, t: lines.append(t),
        max_line=1000,
    )
    assert lines[0] == "short" and lines[2] == "after"
    assert lines[1].startswith("a" * 1000) and lines[1].endswith("[4000 bytes cut]")
    assert result.cut_lines == 1 and result.truncated


def test_binary_output_is_decoded_with_replacements_counted(host):
    command = ["printf", "ok \\377\\376 caf\\303\\251 \\357\\277\\275\\n"]  # two bad bytes, é, a real U+FFFD
    result = host.run(command)
    assert result.stdout == "ok \ufffd\ufffd caf\u00e9 \ufffd\n"
    assert result.replaced == 2
    streamed = []
    sresult = host.stream(command, lambda s, t: streamed.append(t))
    assert streamed == ["ok \ufffd\ufffd caf\u00e9 \ufffd"]
    assert sresult.replaced == 2


def test_run_keeps_at_most_max_bytes(host, calls):
    result = host.run(["sh", "-c", "head -c 100000 /dev/zero | tr '\\0' z"], max_bytes=1000)
    assert result.stdout == "z" * 1000 and result.truncated
    assert result.bytes_in == 100000
    assert calls.calls[-1].truncated and calls.calls[-1].bytes_in == 100000


# --- deadlines --------------------------------------------------------------------------------
def test_remote_timeout_stops_a_long_command(host, calls):
    start = time.monotonic()
    with pytest.raises(TimedOut) as err:
        host.run(["sleep", "30"], timeout=1)
    assert time.monotonic() - start < 1.9, "the remote timeout stops it before the local deadline"
    assert err.value.target == host.name
    assert "did not finish within 1 s (stopped by timeout)" in err.value.reason
    assert calls.calls[-1].outcome == "timeout"
    assert host.run(["echo", "still usable"]).stdout == "still usable\n"


def test_local_deadline_when_the_command_ignores_termination(host, calls):
    start = time.monotonic()
    with pytest.raises(TimedOut) as err:
        host.stream(["sh", "-c", "trap '' TERM; echo started; sleep 30"], lambda s, t: None, timeout=1)
    elapsed = time.monotonic() - start
    assert 1.0 <= elapsed < 2.8, elapsed  # the remote timeout's KILL comes only at 3 s
    assert "stopped by timeout" not in err.value.reason
    assert calls.calls[-1].outcome == "timeout" and calls.calls[-1].bytes_in == len("started\n")


def test_remote_command_wraps_in_timeout():
    assert remote_command(["docker", "ps", "--format", "{{json .}}"], 30) == (
        "timeout -k 2 30 docker ps --format '{{json .}}'"
    )
    assert remote_command(["true"], 2.5) == "timeout -k 2 3 true"
    assert remote_command(["true"], 0.5) == "timeout -k 2 0.5 true"


# --- connection failures ----------------------------------------------------------------------
def test_refused_port_is_unreachable_fast(sshd, calls, closed_port):
    start = time.monotonic()
    with pytest.raises(Unreachable) as err:
        SSHHost(sshd.target(port=closed_port), calls).run(["true"])
    assert time.monotonic() - start < 1
    assert "refused" in err.value.reason and str(closed_port) in err.value.reason
    assert calls.calls[-1].outcome == "error" and calls.calls[-1].action.startswith("connect ")


def test_no_banner_is_unreachable_within_the_connect_timeout(sshd, calls, silent_server):
    start = time.monotonic()
    with pytest.raises(Unreachable) as err:
        SSHHost(sshd.target(port=silent_server.port, connect_timeout=0.5), calls).run(["true"])
    assert time.monotonic() - start < 2
    assert "banner" in err.value.reason.lower()


def test_unknown_host_key_is_refused(sshd, calls, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(TLSFailed) as err:
        SSHHost(sshd.target(known_hosts=str(empty)), calls).run(["true"])
    assert "host key" in err.value.reason and "not in known_hosts" in err.value.reason


def test_changed_host_key_is_refused(sshd, calls, tmp_path):
    other = new_key(tmp_path / "other")
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {other}\n")
    with pytest.raises(TLSFailed) as err:
        SSHHost(sshd.target(known_hosts=str(known)), calls).run(["true"])
    assert "host key" in err.value.reason and "does not match" in err.value.reason


def test_host_key_checking_off_only_when_explicit(sshd, calls, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    host = SSHHost(sshd.target(known_hosts=str(empty), strict_host_keys=False), calls)
    assert host.run(["echo", "hi"]).stdout == "hi\n"
    host.close()
    assert empty.read_text() == "", "the known_hosts file is never written"


def test_wrong_key_is_auth_failed(sshd, calls, tmp_path):
    new_key(tmp_path / "stranger")
    with pytest.raises(AuthFailed) as err:
        SSHHost(sshd.target(key_file=str(tmp_path / "stranger")), calls).run(["true"])
    assert sshd.user in err.value.reason


def test_missing_key_file_is_auth_failed(sshd, calls, tmp_path):
    with pytest.raises(AuthFailed, match="does not exist"):
        SSHHost(sshd.target(key_file=str(tmp_path / "nope")), calls).run(["true"])


def test_encrypted_key_uses_the_passphrase_reference(sshd, calls, tmp_path, monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "locked"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.BestAvailableEncryption(b"open-sesame-42"),
        )
    )
    path.chmod(0o600)
    sshd.authorize(
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    with pytest.raises(AuthFailed, match="no key_passphrase"):
        SSHHost(sshd.target(key_file=str(path)), calls).run(["true"])
    monkeypatch.setenv("TEST_KEY_PASSPHRASE", "not-the-passphrase")
    with pytest.raises(AuthFailed, match="wrong key_passphrase"):
        SSHHost(sshd.target(key_file=str(path), key_passphrase="env:TEST_KEY_PASSPHRASE"), calls).run(
            ["true"]
        )
    monkeypatch.setenv("TEST_KEY_PASSPHRASE", "open-sesame-42")
    host = SSHHost(sshd.target(key_file=str(path), key_passphrase="env:TEST_KEY_PASSPHRASE"), calls)
    assert host.run(["echo", "unlocked"]).stdout == "unlocked\n"
    host.close()
    assert "open-sesame-42" in redact.known_values()
    assert all("open-sesame-42" not in str(c.to_dict()) for c in calls.calls)


# --- ssh_config -------------------------------------------------------------------------------
def test_ssh_config_alias_is_resolved(sshd, calls, tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text(
        "Host provider-lxc\n"
        "    HostName 127.0.0.1\n"
        f"    Port {sshd.port}\n"
        f"    User {sshd.user}\n"
        f"    IdentityFile {sshd.client_key}\n"
        "    IdentitiesOnly yes\n"
        f"    UserKnownHostsFile {sshd.known_hosts}\n"
        "Host *\n"
        "    Port 1\n"
    )
    from runbook_lib.site import SSHTarget

    target = SSHTarget(alias="provider-lxc", ssh_config=str(config))
    ep = resolve_endpoint(target)
    assert (ep.hostname, ep.port, ep.user) == ("127.0.0.1", sshd.port, sshd.user)
    assert ep.known_hosts == (str(sshd.known_hosts),) and ep.identities_only
    host = SSHHost(target, calls)
    assert host.run(["echo", "via alias"]).stdout == "via alias\n"
    host.close()
    assert calls.calls[0].target == "ssh provider-lxc"

    # the site's explicit fields win over ssh_config
    wrong = tmp_path / "wrong_config"
    wrong.write_text(config.read_text().replace(f"Port {sshd.port}", "Port 1"))
    fixed = SSHTarget(alias="provider-lxc", ssh_config=str(wrong), port=sshd.port)
    assert resolve_endpoint(fixed).port == sshd.port
    host = SSHHost(fixed, calls)
    assert host.run(["true"]).rc == 0
    host.close()
    # and a site known_hosts written in the site file replaces UserKnownHostsFile
    explicit = SSHTarget(alias="provider-lxc", ssh_config=str(config), known_hosts=str(tmp_path / "kh"))
    assert resolve_endpoint(explicit).known_hosts == (str(tmp_path / "kh"),)


# --- provenance -------------------------------------------------------------------------------
def test_every_call_is_recorded_with_its_outcome(sshd, closed_port):
    calls = CallLog()
    host = SSHHost(sshd.target(), calls)
    host.run(["sh", "-c", "echo abc; exit 2"])
    with pytest.raises(TimedOut):
        host.run(["sleep", "5"], timeout=0.5)
    host.close()
    with pytest.raises(Unreachable):
        SSHHost(sshd.target(port=closed_port), calls).run(["true"])
    summary = [(c.action.split(" ")[0], c.outcome) for c in calls.calls]
    assert summary == [("connect", "ok"), ("sh", "ok"), ("sleep", "timeout"), ("connect", "error")]
    run = calls.calls[1]
    assert run.detail == "rc=2" and run.bytes_in == 4 and run.bytes_out > len("sh -c")
    assert run.target == f"ssh {sshd.user}@127.0.0.1"
    assert all(c.seconds > 0 for c in calls.calls)


def test_secret_flags_are_masked_in_the_recorded_action(host, calls):
    host.run(["echo", "--password", "hunter2-very-secret"])
    assert "hunter2-very-secret" not in calls.calls[-1].action
    assert "--password '***'" in calls.calls[-1].action


# --- the line splitter on its own ------------------------------------------------------------
@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_line_splitter_is_independent_of_chunking(size):
    data = b"a\r\nlong line here\nno\xffpe\n" + "\u00e9".encode() * 6 + b"\nlast"
    out: list[str] = []
    splitter = LineSplitter(out.extend, max_line=8)
    for i in range(0, len(data), size):
        splitter.feed(data[i : i + size])
    splitter.close()
    assert out == [
        "a",
        "long lin \u2026[6 bytes cut]",
        "no\ufffdpe",
        "\u00e9\u00e9\u00e9\u00e9 \u2026[4 bytes cut]",
        "last",
    ]
    assert (splitter.lines, splitter.cut, splitter.replaced) == (5, 2, 1)


def test_ssh_config_proxy_command(sshd, calls, tmp_path):
    """ProxyCommand from ssh_config is honoured (here: OpenSSH's ssh -W through the same sshd)."""
    import shutil

    if shutil.which("ssh") is None:
        pytest.skip("needs the OpenSSH client")
    config = tmp_path / "ssh_config"
    jump = (
        f"ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -i {sshd.client_key} "
        f"-o UserKnownHostsFile={sshd.known_hosts} -o StrictHostKeyChecking=yes "
        f"-p {sshd.port} -W %h:%p {sshd.user}@127.0.0.1"
    )
    config.write_text(
        "Host behind-jump\n"
        "    HostName 127.0.0.1\n"
        f"    Port {sshd.port}\n"
        f"    User {sshd.user}\n"
        f"    IdentityFile {sshd.client_key}\n"
        "    IdentitiesOnly yes\n"
        f"    UserKnownHostsFile {sshd.known_hosts}\n"
        f"    ProxyCommand {jump}\n"
    )
    from runbook_lib.site import SSHTarget

    target = SSHTarget(alias="behind-jump", ssh_config=str(config))
    assert resolve_endpoint(target).proxy_command.endswith(f"-W 127.0.0.1:{sshd.port} {sshd.user}@127.0.0.1")
    host = SSHHost(target, calls)
    assert host.run(["echo", "through the jump"]).stdout == "through the jump\n"
    host.close()


def test_proxy_jump_becomes_ssh_w(tmp_path):
    from runbook_lib.site import SSHTarget

    config = tmp_path / "ssh_config"
    config.write_text("Host inner\n    HostName 10.0.0.5\n    ProxyJump ops@bastion1,bastion2:2222\n")
    ep = resolve_endpoint(SSHTarget(alias="inner", ssh_config=str(config)))
    assert ep.proxy_command == "ssh -W '[10.0.0.5]:22' -J ops@bastion1 bastion2:2222"


def test_broken_ssh_config_is_malformed(tmp_path):
    from runbook_lib.errors import Malformed
    from runbook_lib.site import SSHTarget

    config = tmp_path / "ssh_config"
    config.write_text("Host x\n    Port twenty-two\n")
    with pytest.raises(Malformed, match="Port"):
        resolve_endpoint(SSHTarget(alias="x", ssh_config=str(config)))


def test_an_exception_in_on_line_is_the_callers_and_the_connection_survives(host, calls):
    def on_line(stream, text):
        raise OSError("disk full while saving evidence")

    with pytest.raises(OSError, match="disk full"):
        host.stream(["echo", "x"], on_line)
    assert calls.calls[-1].outcome == "error"
    assert host.run(["echo", "again"]).stdout == "again\n"
    assert [c.action.split()[0] for c in calls.calls].count("connect") == 1
