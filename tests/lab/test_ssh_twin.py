"""The twin's SSH hosts end to end: paramiko against the asyncssh server, host keys checked.

Covers what the runbooks' SSH source relies on: exec with separate stdout/stderr and exit codes,
`timeout` on a hanging host, the channel closing stopping a command, probes run from the host,
host-key and client-key rejection, the request log, and a big log streaming in bounded memory.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
import time
from pathlib import Path

import paramiko
import pytest
from aiohttp import web

from runbook_lab import shell
from runbook_lab.certs import CA
from runbook_lab.loop import BackgroundLoop
from runbook_lab.model import RequestLog, TwinContext
from runbook_lab.ssh_lib import asyncssh
from runbook_lab.ssh_server import start_ssh_host

PROVIDER = "omni-provider-proxmox-provider-1"


def provider_host() -> dict:
    return {
        "docker": "up",
        "addresses": ["192.168.3.10/24"],
        "probes": {"omni": "pass", "proxmox": "pass"},
        "files": {"/opt/omni-provider/config.yaml": "proxmox:\n  url: https://pve1:8006/api2/json\n"},
        "containers": {
            PROVIDER: {
                "image": "ghcr.io/siderolabs/omni-infra-provider-proxmox:v0.3.0", "state": "running",
                "started_ago": 259200,
                "compose": {"project": "omni-provider", "service": "proxmox-provider",
                            "working_dir": "/opt/omni-provider"},
                "args": ["--id", "proxmox"], "env": {}, "mounts": [],
                "logs": [{"ago": 60, "level": "info", "caller": "omni-infra-provider-proxmox/main.go:117",
                          "msg": "starting infra provider"},
                         {"ago": 30, "raw": "plain stdout line", "stream": "stdout"}],
            },
        },
    }



@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One loop, a CA, a TLS "Omni" answering /healthz, and a factory of SSH hosts."""
    base = tmp_path_factory.mktemp("ssh")
    loop = BackgroundLoop("test")
    ca = CA.create(base / "pki")
    cert, key = ca.issue("omni")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)

    async def serve_https():
        app = web.Application()
        async def healthz(request):
            return web.Response(text="ok\n")

        app.router.add_get("/healthz", healthz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]

    runner, https_port = loop.run(serve_https())
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key.write_private_key(str(base / "client_key"))
    log = RequestLog(base / "requests.jsonl")
    servers = []

    def start(name: str, host: dict, targets: dict | None = None):
        ctx = TwinContext(now=time.time(), ca_file=Path(ca.cert_path), targets=targets or {})
        server = loop.run(start_ssh_host(name, host, ctx=ctx, log=log, host_key_path=base / f"hostkey_{name}",
                                         authorized_keys=[client_key.export_public_key().decode()]))
        servers.append(server)
        known = base / f"known_hosts_{name}"
        known.write_text(f"[127.0.0.1]:{server.port} {server.host_key_line}\n")
        return server, known

    yield {"loop": loop, "start": start, "key": base / "client_key", "log": log, "base": base,
           "https_port": https_port, "ca": ca}
    for server in servers:
        loop.run(server.stop())
    loop.run(runner.cleanup())
    loop.close()


def connect(server, known: Path, key: Path) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(known))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect("127.0.0.1", port=server.port, username="root", key_filename=str(key), allow_agent=False,
                   look_for_keys=False, timeout=5, banner_timeout=5, auth_timeout=5)
    return client


def run(client: paramiko.SSHClient, command: str, deadline: float = 10) -> tuple[int, str, str, float]:
    """Exec and read both streams to the end: (rc, stdout, stderr, seconds)."""
    start = time.monotonic()
    chan = client.get_transport().open_session()
    chan.settimeout(0.2)
    chan.exec_command(command)
    out, err = bytearray(), bytearray()
    while True:
        if chan.recv_ready():
            out += chan.recv(65536)
        elif chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
        elif chan.exit_status_ready():
            break
        else:
            time.sleep(0.002)
        assert time.monotonic() - start < deadline, f"{command!r} did not finish"
    while chan.recv_ready():
        out += chan.recv(65536)
    while chan.recv_stderr_ready():
        err += chan.recv_stderr(65536)
    rc = chan.recv_exit_status()
    chan.close()
    return rc, out.decode(), err.decode(), time.monotonic() - start


@pytest.fixture(scope="module")
def provider(lab):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens here: a real refusal
    host = provider_host()
    targets = {f"127.0.0.1:{lab['https_port']}": "omni", f"127.0.0.1:{closed_port}": "proxmox"}
    server, known = lab["start"]("provider", host, targets)
    client = connect(server, known, lab["key"])
    yield {"client": client, "host": host, "server": server, "known": known, "closed_port": closed_port}
    client.close()


def test_docker_ps_over_ssh_is_json_lines_of_the_model(provider):
    rc, out, err, _ = run(provider["client"], "docker ps -a --no-trunc --format '{{json .}}'")
    assert (rc, err) == (0, "")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["Names"] for r in rows] == [PROVIDER]
    assert rows[0]["State"] == "running" and rows[0]["Status"] == "Up 3 days"
    assert len(rows[0]["ID"]) == 64


def test_exit_codes_and_separate_streams(provider):
    client = provider["client"]
    rc, out, err, _ = run(client, "docker logs nosuch")
    assert (rc, out, err) == (1, "", "Error response from daemon: No such container: nosuch\n")
    rc, out, err, _ = run(client, f"docker logs {PROVIDER}")
    assert rc == 0
    assert out == "plain stdout line\n"
    assert json.loads(err)["msg"] == "starting infra provider"
    assert run(client, "frobnicate --now")[:3] == (127, "", "sh: 1: frobnicate: not found\n")
    assert run(client, "cat /opt/omni-provider/config.yaml")[1].startswith("proxmox:")
    assert run(client, "timeout -k 2 5 cat /etc/shadow")[:3] == (1, "", "cat: /etc/shadow: No such file or directory\n")


def test_timeout_kills_a_hanging_host_with_124(lab):
    server, known = lab["start"]("hung", {**provider_host(), "hang": True})
    client = connect(server, known, lab["key"])
    try:
        rc, out, err, seconds = run(client, "timeout 1 docker ps")
        assert (rc, out, err) == (124, "", "")
        assert 0.9 <= seconds < 2.5
    finally:
        client.close()


def _command_tasks(lab, prefix: str) -> list[str]:
    async def names():
        return [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith(prefix)]

    return lab["loop"].run(names())


def test_closing_the_channel_stops_the_command(lab):
    server, known = lab["start"]("closer", {**provider_host(), "hang": True})
    client = connect(server, known, lab["key"])
    try:
        chan = client.get_transport().open_session()
        chan.exec_command("docker ps")
        deadline = time.monotonic() + 5
        while not _command_tasks(lab, "ssh closer: docker ps") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _command_tasks(lab, "ssh closer: docker ps"), "the command never started"
        chan.close()
        while _command_tasks(lab, "ssh closer: docker ps") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _command_tasks(lab, "ssh closer: docker ps") == []
    finally:
        client.close()


@pytest.mark.parametrize("mode, command, rc, stdout, stderr", [
    ("pass", "curl -sS -o /dev/null -w '%{http_code}' https://127.0.0.1:{omni}/healthz", 0, "200", ""),
    ("pass", "curl -sS https://localhost:{omni}/healthz", 0, "ok\n", ""),
    ("refused", "curl -sS -w '%{http_code}' https://127.0.0.1:{omni}/healthz", 7, "000",
     "curl: (7) Failed to connect to 127.0.0.1 port {omni} after 0 ms: Couldn't connect to server\n"),
    ("dns", "curl -s -S https://127.0.0.1:{omni}/healthz", 6, "", "curl: (6) Could not resolve host: 127.0.0.1\n"),
    ("untrusted", "curl -sS https://127.0.0.1:{omni}/healthz", 60, "",
     "curl: (60) SSL certificate problem: unable to get local issuer certificate\n"),
    ("untrusted", "curl -sSk -o /dev/null -w '%{http_code}' https://127.0.0.1:{omni}/healthz", 0, "200", ""),
    ("refused", "curl -s -w '%{http_code}' https://127.0.0.1:{omni}/healthz", 7, "000", ""),
])
def test_curl_probe_modes(lab, provider, mode, command, rc, stdout, stderr):
    provider["host"]["probes"]["omni"] = mode
    try:
        port = lab["https_port"]
        got_rc, out, err, _ = run(provider["client"], command.replace("{omni}", str(port)))
    finally:
        provider["host"]["probes"]["omni"] = "pass"
    assert (got_rc, out) == (rc, stdout)
    assert err.startswith(stderr.replace("{omni}", str(port))) if stderr else err == ""


def test_curl_timeout_mode_waits_max_time(lab, provider):
    provider["host"]["probes"]["omni"] = "timeout"
    try:
        rc, out, err, seconds = run(provider["client"],
                                    f"curl -sS -m 1 -w '%{{http_code}}' https://127.0.0.1:{lab['https_port']}/healthz")
    finally:
        provider["host"]["probes"]["omni"] = "pass"
    assert (rc, out) == (28, "000")
    assert err.startswith("curl: (28) Connection timed out after 1")
    assert 0.9 <= seconds < 2.5


def test_curl_pass_really_connects(lab, provider):
    """`pass` is a real connection: a closed port refuses and a foreign CA fails verification."""
    client = provider["client"]
    rc, _, err, _ = run(client, f"curl -sS https://127.0.0.1:{provider['closed_port']}/")
    assert rc == 7
    assert err == (f"curl: (7) Failed to connect to 127.0.0.1 port {provider['closed_port']} after "
                   f"{err.split(' after ')[1].split(' ms')[0]} ms: Couldn't connect to server\n")
    other = CA.create(lab["base"] / "other-ca")
    provider["host"]["files"]["/etc/ssl/other.pem"] = Path(other.cert_path).read_text()
    rc, _, err, _ = run(client, f"curl -sS --cacert /etc/ssl/other.pem https://127.0.0.1:{lab['https_port']}/healthz")
    assert rc == 60 and "SSL certificate problem" in err and "More details here" in err


def test_unknown_host_key_is_rejected(lab, provider):
    empty = lab["base"] / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        connect(provider["server"], empty, lab["key"])
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()
    wrong = lab["base"] / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{provider['server'].port} {other[0]} {other[1]}\n")
    with pytest.raises(paramiko.BadHostKeyException):
        connect(provider["server"], wrong, lab["key"])


def test_wrong_client_key_is_rejected(lab, provider):
    stranger = lab["base"] / "stranger_key"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(stranger))
    with pytest.raises(paramiko.AuthenticationException):
        connect(provider["server"], provider["known"], stranger)


def test_commands_are_logged_and_writes_change_the_model(lab, provider):
    client = provider["client"]
    provider["host"]["containers"][PROVIDER]["state"] = "exited"
    assert run(client, f"timeout -k 2 10 docker restart {PROVIDER}")[:2] == (0, PROVIDER + "\n")
    assert provider["host"]["containers"][PROVIDER]["state"] == "running"
    entries = [e for e in lab["log"].entries() if e["target"] == "provider"]
    restart = [e for e in entries if "restart" in e["action"]]
    assert restart and restart[-1]["write"] is True and restart[-1]["kind"] == "ssh"
    assert all(not e["write"] for e in entries if "docker ps" in e["action"])


def _rss() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_fifty_megabytes_of_logs_stream_in_bounded_memory(lab):
    line = {"ago": 0, "level": "error", "caller": "controllers/provision.go:335", "msg": "machine provision failed",
            "context": {"id": "homelab-workers-x7kq2m"}, "fields": {"error": "not authorized to access endpoint",
                                                                   "step": "pickNode"}, "every": 0.001}
    host = provider_host()
    host["containers"][PROVIDER]["logs"] = [dict(line, repeat=1)]
    server, known = lab["start"]("big", host)
    client = connect(server, known, lab["key"])
    probe = run(client, f"docker logs {PROVIDER}")[2]
    copies = 50 * 1024 * 1024 // len(probe) + 1
    host["containers"][PROVIDER]["logs"] = [dict(line, repeat=copies)]

    peak, base, stop = [0], _rss(), threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    received = lines = 0
    try:
        chan = client.get_transport().open_session()
        chan.settimeout(5)
        chan.exec_command(f"docker logs {PROVIDER}")
        while True:
            if chan.recv_stderr_ready():
                data = chan.recv_stderr(1 << 20)
                received += len(data)
                lines += data.count(b"\n")
            elif chan.recv_ready():
                chan.recv(1 << 20)
            elif chan.exit_status_ready():
                break
            else:
                time.sleep(0.001)
        assert chan.recv_exit_status() == 0
    finally:
        stop.set()
        sampler.join()
        client.close()
    assert lines == copies and received > 50_000_000
    assert peak[0] - base < 60 * 1024 * 1024, f"RSS grew by {(peak[0] - base) >> 20} MiB"


# --- the host shell, without SSH ------------------------------------------------------------------


def shell_run(command: str, host: dict | None = None) -> tuple[int, str, str]:
    ctx = TwinContext(now=time.time(), ca_file=Path("/nonexistent/ca.pem"), targets={})
    return asyncio.run(shell.capture(command, name="provider", host=host or provider_host(), ctx=ctx))


@pytest.mark.parametrize("command, expected", [
    ("timeout 5 true", (0, "", "")),
    ("timeout 0.2 sleep 5", (124, "", "")),
    ("timeout -s KILL -k 1 0.2 sleep 5", (124, "", "")),
    ("timeout --preserve-status 0.2 sleep 5", (143, "", "")),
    ("timeout 1 nosuch", (127, "", "timeout: failed to run command 'nosuch': No such file or directory\n")),
    ("timeout soon true", (125, "", "timeout: invalid time interval 'soon'\n"
                                    "Try 'timeout --help' for more information.\n")),
    ("timeout 5", (125, "", "timeout: missing operand\nTry 'timeout --help' for more information.\n")),
])
def test_gnu_timeout(command, expected):
    assert shell_run(command) == expected


@pytest.mark.parametrize("command, expected", [
    ("false || echo 'a && b'", (0, "a && b\n", "")),
    ("true && echo one; echo two", (0, "one\ntwo\n", "")),
    ("false && echo never", (1, "", "")),
    ('sh -c "cd /opt/omni-provider && cat config.yaml"', (0, "proxmox:\n  url: https://pve1:8006/api2/json\n", "")),
    ("echo \"it's\" \\& done", (0, "it's & done\n", "")),
    ("docker ps | grep x", (2, "", "sh: 1: Syntax error: '|': pipes and redirections are not simulated by the lab "
                                    "twin\n")),
    ("echo 'open", (2, "", "sh: 1: Syntax error: Unterminated quoted string\n")),
    ("/usr/bin/hostname", (0, "provider\n", "")),
    ("hostname -I", (0, "192.168.3.10 \n", "")),
])
def test_shell_parsing(command, expected):
    assert shell_run(command) == expected


def test_ip_json_lists_lo_and_the_hosts_addresses():
    rc, out, err = shell_run("ip -j addr show")
    assert (rc, err) == (0, "")
    ifaces = json.loads(out)
    assert [i["ifname"] for i in ifaces] == ["lo", "eth0"]
    eth = ifaces[1]["addr_info"][0]
    assert (eth["family"], eth["local"], eth["prefixlen"], eth["broadcast"]) == ("inet", "192.168.3.10", 24,
                                                                                "192.168.3.255")
    assert shell_run("ip -j address")[1] == out
    assert shell_run("ip -4 addr show dev eth0")[1].splitlines()[2] == \
        "    inet 192.168.3.10/24 brd 192.168.3.255 scope global eth0"


def test_curl_usage_errors():
    assert shell_run("curl -sS")[0] == 2
    rc, _, err = shell_run("curl --bogus http://127.0.0.1:1/")
    assert rc == 2 and err.startswith("curl: option --bogus: is unknown\n")
    rc, out, err = shell_run("curl -s -w '%{http_code} %{nonsense}\\n' http://127.0.0.1:1/")
    assert (rc, out, err) == (7, "000 \n", "curl: unknown --write-out variable: 'nonsense'\n")
