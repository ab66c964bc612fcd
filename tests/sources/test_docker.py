"""docker.py: parsing real CLI output, classifying its errors, and the commands it sends over SSH."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook_lib.calls import CallLog
from runbook_lib.errors import CommandFailed, Malformed, NotFound, PermissionDenied, Unreachable
from runbook_lib.sources import CommandResult, docker
from runbook_lib.sources.ssh import SSHHost

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "docker"

DAEMON_DOWN = (
    "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
    "Is the docker daemon running?"
)
SOCKET_DENIED = (
    "permission denied while trying to connect to the Docker daemon socket at "
    'unix:///var/run/docker.sock: Get "http://%2Fvar%2Frun%2Fdocker.sock/v1.50/containers/json": '
    "dial unix /var/run/docker.sock: connect: permission denied"
)


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


# --- parsing ----------------------------------------------------------------------------------
def test_parse_ps_json_lines():
    rows = docker.parse_ps(sample("docker_ps_a.jsonl"))
    assert [r["Names"] for r in rows] == ["omni", "postgres", "traefik", "backup", "vault-init"]
    by_name = {r["Names"]: r for r in rows}
    assert by_name["postgres"]["Status"] == "Up 2 hours (unhealthy)"
    assert by_name["traefik"]["State"] == "restarting"
    assert by_name["omni"]["Ports"].startswith("0.0.0.0:443->443/tcp")  # \u003e decoded
    assert by_name["omni"]["Platform"] is None


def test_parse_ps_empty_and_malformed():
    assert docker.parse_ps("") == []
    assert docker.parse_ps("\n\n") == []
    with pytest.raises(Malformed, match="line 2"):
        docker.parse_ps('{"Names":"a"}\nCONTAINER ID   IMAGE\n')
    with pytest.raises(Malformed, match="not a JSON object"):
        docker.parse_ps('["a"]\n')


def test_parse_inspect_array():
    objects = docker.parse_inspect(sample("docker_inspect.json"))
    assert [o["Name"] for o in objects] == ["/postgres", "/traefik", "/backup"]
    assert objects[0]["State"]["Health"]["Status"] == "unhealthy"
    assert "Health" not in objects[1]["State"]  # no healthcheck: the key is absent
    assert objects[2]["State"]["OOMKilled"] is True
    assert docker.parse_inspect("[]") == []
    with pytest.raises(Malformed):
        docker.parse_inspect('{"Id": "x"}')


def test_compose_ps_array_and_json_lines_parse_the_same():
    old = docker.parse_compose_ps(sample("compose_ps_pre2.21.json"))
    new = docker.parse_compose_ps(sample("compose_ps_v2.21plus.jsonl"))
    assert old == new
    assert [(c["Service"], c["State"], c["Health"]) for c in new] == [
        ("omni", "running", "healthy"),
        ("postgres", "running", "unhealthy"),
        ("backup", "exited", ""),
    ]
    assert new[2]["ExitCode"] == 137 and new[2]["Publishers"] is None


def test_compose_ps_edge_cases():
    assert docker.parse_compose_ps("") == []
    assert docker.parse_compose_ps("[]\n") == []
    one = json.dumps({"Service": "omni", "State": "running"})
    assert docker.parse_compose_ps(f"  \n{one}\n") == [{"Service": "omni", "State": "running"}]
    with pytest.raises(Malformed):
        docker.parse_compose_ps("NAME   IMAGE   COMMAND   SERVICE\n")
    with pytest.raises(Malformed):
        docker.parse_compose_ps('[{"Service": "omni"}')


# --- error classification ---------------------------------------------------------------------
def result(stderr: str, rc: int = 1, argv=("docker", "ps", "-a")) -> CommandResult:
    return CommandResult(argv=list(argv), rc=rc, stdout="", stderr=stderr, seconds=0.1)


@pytest.mark.parametrize(
    "stderr, rc, kind, reason",
    [
        (DAEMON_DOWN + "\n", 1, Unreachable, DAEMON_DOWN),
        (SOCKET_DENIED + "\n", 1, PermissionDenied, SOCKET_DENIED),
        (sample("docker_logs_missing.stderr"), 1, NotFound, "No such container: nosuch"),
        ("Error: No such object: nosuch\n", 1, NotFound, "No such object: nosuch"),
        ("sh: 1: docker: not found\n", 127, NotFound, "docker is not installed on the host"),
    ],
)
def test_errors_keep_dockers_own_words(stderr, rc, kind, reason):
    err = docker.error_for("docker on provider", result(stderr, rc))
    assert type(err) is kind
    assert err.target == "docker on provider"
    assert reason in err.reason


def test_other_failures_are_command_failed_with_rc_and_stderr():
    err = docker.error_for("docker on x", result('unknown flag: --bogus\nSee "docker ps --help".\n', 125))
    assert isinstance(err, CommandFailed)
    assert err.rc == 125 and "unknown flag: --bogus" in err.reason and "See" in err.stderr
    compose = docker.error_for("docker on x", result("docker: 'compose' is not a docker command.\n"))
    assert isinstance(compose, CommandFailed) and "compose v2 plugin" in compose.reason


# --- the commands, against a docker shim behind a real sshd -----------------------------------
SHIM = r"""#!/bin/sh
printf '%s\n' "$*" >> "{log}"
if [ -f "{down}" ]; then
  echo "{daemon_down}" >&2; exit 1
fi
case "$1" in
  ps) cat "{data}/docker_ps_a.jsonl" ;;
  inspect)
    if [ "$2" = postgres ]; then cat "{data}/docker_inspect.json"
    else echo '[]'; echo "Error: No such object: $2" >&2; exit 1; fi ;;
  logs)
    for last; do :; done
    if [ "$last" = postgres ]; then
      cat "{data}/docker_logs_t.stdout"; cat "{data}/docker_logs_t.stderr" >&2
    else cat "{data}/docker_logs_missing.stderr" >&2; exit 1; fi ;;
  compose)
    case "$*" in
      *" ps "*) cat "{data}/compose_ps_pre2.21.json" ;;
      *" logs "*) echo "omni up"; echo "omni warn" >&2 ;;
    esac ;;
  *) echo "docker: '$1' is not a docker command." >&2; exit 1 ;;
esac
"""


@pytest.fixture
def fake_docker(sshd, tmp_path):
    log, down = tmp_path / "docker-argv.log", tmp_path / "daemon-down"
    sshd.add_shim(
        "docker",
        SHIM.format(log=log, down=down, data=SAMPLES, daemon_down=DAEMON_DOWN),
    )
    calls = CallLog()
    host = SSHHost(sshd.target(), calls)
    yield host, log, down, calls
    host.close()
    sshd.remove_shim("docker")


def test_commands_send_the_documented_argv(fake_docker):
    host, log, _, calls = fake_docker
    assert len(docker.ps(host)) == 5
    assert docker.inspect(host, "postgres")["Name"] == "/postgres"
    assert len(docker.compose_ps(host, "/opt/omni")) == 3
    lines = []
    docker.compose_logs(host, "/opt/omni", "omni", lambda s, t: lines.append((s, t)), tail=50)
    assert lines == [("stdout", "omni up"), ("stderr", "omni warn")]
    assert log.read_text().splitlines() == [
        "ps -a --no-trunc --format {{json .}}",
        "inspect postgres",
        "compose --project-directory /opt/omni ps --all --format json",
        "compose --project-directory /opt/omni logs --no-color --no-log-prefix --tail 50 omni",
    ]
    assert [c.action.split()[:2] for c in calls.calls[1:]] == [["docker", "ps"], ["docker", "inspect"],
                                                              ["docker", "compose"], ["docker", "compose"]]


def test_logs_stream_both_streams_with_options(fake_docker):
    host, log, _, _ = fake_docker
    seen = []
    res = docker.logs(host, "postgres", lambda s, t: seen.append((s, t)), tail=200, since="10m",
                      timestamps=True)
    assert res.rc == 0 and (res.stdout_lines, res.stderr_lines) == (1, 1)
    assert seen[0][0] == "stdout" and seen[0][1].endswith("database system is ready to accept connections")
    assert seen[1][0] == "stderr" and 'password authentication failed for user "omni"' in seen[1][1]
    assert log.read_text().splitlines()[-1] == "logs --tail 200 --since 10m --timestamps postgres"


def test_missing_container_is_not_found(fake_docker):
    host, *_ = fake_docker
    with pytest.raises(NotFound, match="No such object: nosuch"):
        docker.inspect(host, "nosuch")
    with pytest.raises(NotFound, match="No such container: nosuch"):
        docker.logs(host, "nosuch", lambda s, t: None)
    with pytest.raises(NotFound):
        docker.inspect(host, "--format")  # never passed on as an option


def test_daemon_down_is_unreachable(fake_docker):
    host, _, down, _ = fake_docker
    down.write_text("")
    with pytest.raises(Unreachable) as err:
        docker.ps(host)
    assert err.value.reason == DAEMON_DOWN
    assert err.value.target == f"docker on {host.label}"


def test_read_file(fake_docker, tmp_path):
    host, *_ = fake_docker
    path = tmp_path / "config.yaml"
    path.write_text("proxmox:\n  url: https://pve:8006\n" + "# pad\n" * 1000)
    assert docker.read_file(host, str(path)).startswith("proxmox:\n  url:")
    assert docker.read_file(host, str(path), max_bytes=8) == "proxmox:"
    with pytest.raises(NotFound, match="No such file"):
        docker.read_file(host, str(tmp_path / "missing.yaml"))
