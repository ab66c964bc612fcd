"""The docker CLI of the lab hosts: real formats, real errors, and writes applied to the model.

Commands run through the host shell without SSH (``shell.capture``); the SSH path is covered in
``test_ssh_twin.py``.
"""

from __future__ import annotations

import asyncio
import calendar
import json
import re
import time
from pathlib import Path

import pytest

from runbook_lab import docker_cli, shell
from runbook_lab.docker_flags import parse_since
from runbook_lab.docker_format import human_duration
from runbook_lab.go_format import tabwriter
from runbook_lab.logs import NS
from runbook_lab.model import TwinContext

DAY, HOUR = 86400, 3600
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")
# keys of `docker compose ps --format json` (compose >= 2.21), from compose's formatter
COMPOSE_KEYS = ["Command", "CreatedAt", "ExitCode", "Health", "ID", "Image", "Labels", "LocalVolumes", "Mounts",
                "Name", "Names", "Networks", "Ports", "Project", "Publishers", "RunningFor", "Service", "Size",
                "State", "Status"]
PS_KEYS = ["Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts", "Names", "Networks",
           "Platform", "Ports", "RunningFor", "Size", "State", "Status"]


def omni(service: str, **spec) -> dict:
    return {"compose": {"project": "omni", "service": service, "working_dir": "/opt/omni"}, "args": [],
            "env": {}, "mounts": [], "logs": [], **spec}


def host_model() -> dict:
    return {
        "docker": "up",
        "containers": {
            "omni-omni-1": omni("omni", image="ghcr.io/siderolabs/omni:v1.3.0", state="running", health="healthy",
                                started_ago=3 * DAY + 100, args=["--account-id=lab", "--name=omni"],
                                ports=["0.0.0.0:443->443/tcp", "[::]:443->443/tcp"],
                                env={"OMNI_KEY": "canary"},
                                mounts=[{"source": "/opt/omni/etcd", "destination": "/_out/etcd"}],
                                logs=[{"ago": 120, "raw": "omni starting", "stream": "stdout"},
                                      {"ago": 60, "level": "warn", "msg": "slow etcd"}]),
            "omni-postgres-1": omni("postgres", image="postgres:16", state="running", health="unhealthy",
                                    started_ago=2 * HOUR + 30, entrypoint="docker-entrypoint.sh", args=["postgres"],
                                    logs=[{"ago": 90, "raw": "ready to accept connections", "stream": "stdout"}]),
            "traefik": {"image": "traefik:v3.1", "state": "restarting", "exit_code": 1, "started_ago": 56,
                        "finished_ago": 12.3, "restart_count": 5, "entrypoint": "/entrypoint.sh", "args": ["traefik"]},
            "backup": {"image": "alpine:3.20", "state": "exited", "exit_code": 137, "started_ago": 2 * DAY,
                       "finished_ago": 5 * HOUR + 60, "oom_killed": True, "entrypoint": "sh",
                       "args": ["-c", "restic backup /data"]},
            "init": {"image": "busybox", "state": "created", "started_ago": 40},
            "frozen": {"image": "busybox", "state": "paused", "started_ago": 70},
            "gone": {"image": "busybox", "state": "absent", "started_ago": 70},
        },
    }


@pytest.fixture
def host():
    return host_model()


def sh(host: dict, command: str) -> tuple[int, str, str]:
    ctx = TwinContext(now=time.time(), ca_file=Path("/nonexistent/ca.pem"), targets={})
    return asyncio.run(shell.capture(command, name="omni", host=host, ctx=ctx))


def ps_rows(host: dict, flags: str = "") -> dict[str, dict]:
    rc, out, err = sh(host, f"docker ps {flags} --format '{{{{json .}}}}'")
    assert (rc, err) == (0, "")
    return {row["Names"]: row for row in map(json.loads, out.splitlines())}


# --- ps ----------------------------------------------------------------------------------------


def test_ps_lists_running_containers_with_mobys_status_grammar(host):
    rows = ps_rows(host)
    assert {name: row["Status"] for name, row in rows.items()} == {
        "omni-omni-1": "Up 3 days (healthy)",
        "omni-postgres-1": "Up 2 hours (unhealthy)",
        "traefik": "Restarting (1) 12 seconds ago",
        "frozen": "Up About a minute (Paused)",
    }
    assert {name: row["State"] for name, row in rows.items()} == {
        "omni-omni-1": "running", "omni-postgres-1": "running", "traefik": "restarting", "frozen": "paused"}


def test_ps_all_adds_stopped_and_created_but_never_absent(host):
    rows = ps_rows(host, "-a")
    assert set(rows) == {"omni-omni-1", "omni-postgres-1", "traefik", "backup", "init", "frozen"}
    assert rows["backup"]["Status"] == "Exited (137) 5 hours ago"
    assert rows["init"]["Status"] == "Created"
    assert rows["backup"]["RunningFor"] == "2 days ago"


def test_ps_json_has_the_clis_keys_and_display_strings(host):
    rc, out, _ = sh(host, "docker ps --format json")
    assert "\\u003e" in out and "->" not in out  # Go's encoder escapes '>'
    row = {r["Names"]: r for r in map(json.loads, out.splitlines())}["omni-omni-1"]
    assert list(row) == PS_KEYS
    assert row["Platform"] is None and row["Size"] == "0B" and row["LocalVolumes"] == "0"
    assert row["Command"] == '"/omni --account-id=…"'
    assert re.fullmatch(r"[0-9a-f]{12}", row["ID"])
    assert row["Ports"] == "0.0.0.0:443->443/tcp, [::]:443->443/tcp"
    assert row["Mounts"] == "/opt/omni/etcd"
    assert row["Networks"] == "omni_default"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC", row["CreatedAt"])
    labels = row["Labels"].split(",")
    assert labels == sorted(labels)
    assert "com.docker.compose.project.working_dir=/opt/omni" in labels
    assert "com.docker.compose.service=omni" in labels


def test_ps_no_trunc_gives_full_ids_and_commands(host):
    row = ps_rows(host, "--no-trunc")["omni-omni-1"]
    assert re.fullmatch(r"[0-9a-f]{64}", row["ID"])
    assert row["Command"] == '"/omni --account-id=lab --name=omni"'
    assert ps_rows(host)["omni-omni-1"]["ID"] == row["ID"][:12]
    assert ps_rows(host_model(), "--no-trunc")["omni-omni-1"]["ID"] == row["ID"]  # stable: derived from the name


def test_default_table_is_aligned_like_the_cli(host):
    rc, out, _ = sh(host, "docker ps -a")
    lines = out.splitlines()
    header = lines[0]
    assert re.match(r"CONTAINER ID   IMAGE +COMMAND +CREATED +STATUS +PORTS +NAMES$", header)
    cols = [header.index(h) for h in ("IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES")]
    backup = next(line for line in lines if line.rstrip().endswith("backup"))
    assert backup[cols[3]:].startswith("Exited (137) 5 hours ago")
    assert backup[cols[5]:] == "backup"
    assert len(lines) == 7


def test_tabwriter_reproduces_the_real_clis_layout():
    real = (
        "CONTAINER ID   IMAGE          COMMAND                  CREATED          STATUS                          "
        "PORTS      NAMES\n"
        '9e8d7c6b5a41   postgres:16    "docker-entrypoint.s…"   2 hours ago      Up 2 hours (unhealthy)          '
        "5432/tcp   postgres\n"
        '1a2b3c4d5e6f   traefik:v3.1   "/entrypoint.sh trae…"   56 seconds ago   Restarting (1) 12 seconds ago   '
        "           traefik\n"
    )
    rows = [
        ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"],
        ["9e8d7c6b5a41", "postgres:16", '"docker-entrypoint.s…"', "2 hours ago", "Up 2 hours (unhealthy)",
         "5432/tcp", "postgres"],
        ["1a2b3c4d5e6f", "traefik:v3.1", '"/entrypoint.sh trae…"', "56 seconds ago", "Restarting (1) 12 seconds ago",
         "", "traefik"],
    ]
    assert tabwriter(rows) == real


def test_ps_filters_and_quiet(host):
    rc, out, _ = sh(host, "docker ps -aq --filter status=exited")
    assert out.split() == [ps_rows(host, "-a")["backup"]["ID"]]
    rc, out, _ = sh(host, "docker ps --filter label=com.docker.compose.project=omni --format '{{.Names}}'")
    assert sorted(out.split()) == ["omni-omni-1", "omni-postgres-1"]
    assert sh(host, "docker ps --filter bogus=1")[::2] == (1, "Error response from daemon: invalid filter 'bogus'\n")


# --- inspect -------------------------------------------------------------------------------------


def test_inspect_shape_follows_the_engine(host):
    rc, out, err = sh(host, "docker inspect omni-omni-1 backup")
    assert (rc, err) == (0, "")
    assert out.startswith('[\n    {\n        "Id": "')  # MarshalIndent with four spaces
    omni_obj, backup = json.loads(out)
    assert omni_obj["Name"] == "/omni-omni-1" and omni_obj["Path"] == "/omni"
    assert omni_obj["Args"] == ["--account-id=lab", "--name=omni"]
    state = omni_obj["State"]
    assert list(state)[:11] == ["Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid", "ExitCode",
                                "Error", "StartedAt", "FinishedAt"]
    assert state["Status"] == "running" and state["Running"] is True and state["Pid"] > 0
    assert state["Health"]["Status"] == "healthy" and state["FinishedAt"] == "0001-01-01T00:00:00Z"
    config = omni_obj["Config"]
    assert config["Entrypoint"] == ["/omni"] and config["Cmd"] == ["--account-id=lab", "--name=omni"]
    assert "OMNI_KEY=canary" in config["Env"] and config["Tty"] is False
    assert config["Labels"]["com.docker.compose.project.working_dir"] == "/opt/omni"
    assert omni_obj["Mounts"] == [{"Type": "bind", "Source": "/opt/omni/etcd", "Destination": "/_out/etcd",
                                   "Mode": "", "RW": True, "Propagation": "rprivate"}]
    assert omni_obj["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert backup["State"]["Status"] == "exited" and backup["State"]["ExitCode"] == 137
    assert backup["State"]["OOMKilled"] is True and backup["State"]["Pid"] == 0
    assert "Health" not in backup["State"]  # no healthcheck: no Health key at all
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", backup["State"]["FinishedAt"])


def test_inspect_missing_object(host):
    assert sh(host, "docker inspect nosuch") == (1, "[]\n", "Error: No such object: nosuch\n")
    assert sh(host, "docker inspect gone")[0] == 1  # absent: the container does not exist
    rc, out, err = sh(host, "docker inspect init nosuch")
    assert rc == 1 and json.loads(out)[0]["State"]["Status"] == "created" and err == "Error: No such object: nosuch\n"


def test_inspect_templates(host):
    assert sh(host, "docker inspect -f '{{.State.Status}} {{.RestartCount}}' traefik") == (0, "restarting 5\n", "")
    rc, out, _ = sh(host, "docker inspect --format '{{json .State}}' traefik")
    assert json.loads(out)["ExitCode"] == 1
    rc, out, err = sh(host, "docker inspect -f '{{.State.Health.Status}}' backup")
    assert rc == 1 and err.endswith('map has no entry for key "Health"\n')


# --- logs ----------------------------------------------------------------------------------------


def test_logs_keep_the_containers_streams(host):
    rc, out, err = sh(host, "docker logs omni-omni-1")
    assert rc == 0
    assert out == "omni starting\n"
    assert json.loads(err)["msg"] == "slow etcd"


def test_logs_timestamps_have_nine_fractional_digits(host):
    rc, out, err = sh(host, "docker logs -t omni-omni-1")
    assert STAMP.match(out) and STAMP.match(err)
    assert out.split(" ", 1)[1] == "omni starting\n"
    written = time.time() - 120  # the entry's `ago`
    stamp = out.split(" ")[0]
    assert abs(calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) - written) < 2


def test_logs_tail_and_since(host):
    assert sh(host, "docker logs --tail 1 omni-omni-1")[1] == ""  # the last line went to stderr
    assert sh(host, "docker logs --tail=1 omni-omni-1")[2].count("\n") == 1
    assert sh(host, "docker logs -n all omni-omni-1")[1] == "omni starting\n"
    rc, out, err = sh(host, "docker logs --since 100s omni-omni-1")  # the stdout line is 120 s old
    assert (rc, out, json.loads(err)["msg"]) == (0, "", "slow etcd")
    rc, _, err = sh(host, "docker logs --since yesterday omni-omni-1")
    assert rc == 1 and err == 'invalid value for "since": failed to parse value as time or duration: "yesterday"\n'


def test_logs_of_a_missing_container(host):
    assert sh(host, "docker logs nosuch") == (1, "", "Error response from daemon: No such container: nosuch\n")
    assert sh(host, "docker logs")[0] == 1
    assert sh(host, "docker logs -f omni-omni-1")[0] == 1


# --- compose -------------------------------------------------------------------------------------


def test_compose_ps_json_lines(host):
    rc, out, err = sh(host, "docker compose --project-directory /opt/omni ps --format json")
    assert (rc, err) == (0, "")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [list(r) for r in rows] == [COMPOSE_KEYS, COMPOSE_KEYS]
    first = rows[0]
    assert (first["Name"], first["Service"], first["Project"]) == ("omni-omni-1", "omni", "omni")
    assert first["Health"] == "healthy" and first["ExitCode"] == 0
    assert first["Publishers"] == [{"URL": "0.0.0.0", "TargetPort": 443, "PublishedPort": 443, "Protocol": "tcp"},
                                   {"URL": "::", "TargetPort": 443, "PublishedPort": 443, "Protocol": "tcp"}]
    assert rows[1]["Publishers"] is None


def test_compose_finds_the_project_from_cd_or_file(host):
    by_cd = sh(host, "cd /opt/omni && docker compose ps --format json")
    by_file = sh(host, "docker compose -f /opt/omni/compose.yaml ps --format json")
    assert by_cd[0] == 0 and by_cd == by_file
    assert sh(host, "docker compose ps") == (1, "", "no configuration file provided: not found\n")
    assert sh(host, "cd /nowhere && docker compose ps")[2] == "sh: 1: cd: can't cd to /nowhere\n"


def test_compose_logs_prefix_is_padded_to_the_longest_name(host):
    rc, out, err = sh(host, "docker compose --project-directory /opt/omni logs --no-color")
    assert rc == 0
    assert out.splitlines() == ["omni-1      | omni starting", "postgres-1  | ready to accept connections"]
    assert err.startswith("omni-1      | {") and "slow etcd" in err
    rc, out, _ = sh(host, "docker compose --project-directory /opt/omni logs --no-log-prefix -t omni")
    assert STAMP.match(out) and out.endswith(" omni starting\n")
    assert sh(host, "docker compose --project-directory /opt/omni logs nosuch")[2] == "no such service: nosuch\n"


# --- daemon and errors -----------------------------------------------------------------------------


def test_daemon_down_and_denied(host):
    host["docker"] = "down"
    down = (1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                   "Is the docker daemon running?\n")
    assert sh(host, "docker ps") == down
    assert sh(host, "docker compose --project-directory /opt/omni ps") == down
    host["docker"] = "denied"
    rc, out, err = sh(host, "docker ps -a")
    assert rc == 1 and out == ""
    assert err == ("permission denied while trying to connect to the Docker daemon socket at "
                   'unix:///var/run/docker.sock: Get "http://%2Fvar%2Frun%2Fdocker.sock/v1.50/containers/json?all=1": '
                   "dial unix /var/run/docker.sock: connect: permission denied\n")


def test_bad_flags_and_unknown_commands(host):
    rc, _, err = sh(host, "docker ps --bogus")
    assert rc == 125
    assert err == ("unknown flag: --bogus\n\nUsage:  docker ps [OPTIONS]\n\n"
                   "Run 'docker ps --help' for more information\n")
    assert sh(host, "docker ps -z")[2].startswith("unknown shorthand flag: 'z' in -z\n")
    assert sh(host, "docker logs --tail")[2].startswith("flag needs an argument: --tail\n")
    assert sh(host, "docker frob") == (1, "", "docker: 'frob' is not a docker command.\nSee 'docker --help'\n")


# --- writes ----------------------------------------------------------------------------------------


def test_lifecycle_commands_change_the_model(host):
    containers = host["containers"]
    assert sh(host, "docker restart backup") == (0, "backup\n", "")
    assert containers["backup"]["state"] == "running" and containers["backup"]["exit_code"] == 0
    assert ps_rows(host)["backup"]["Status"] == "Up Less than a second"
    assert ps_rows(host, "-a")["backup"]["RunningFor"] == "2 days ago"  # creation time does not move
    assert sh(host, "docker stop backup")[0] == 0 and containers["backup"]["state"] == "exited"
    rc, _, err = sh(host, "docker rm omni-omni-1")
    assert rc == 1 and "container is running" in err and containers["omni-omni-1"]["state"] == "running"
    assert sh(host, "docker rm -f omni-omni-1")[0] == 0
    assert "omni-omni-1" not in ps_rows(host, "-a")
    assert sh(host, "docker start nosuch")[2] == "Error response from daemon: No such container: nosuch\n"


def test_compose_down_and_up_recreate_the_project(host):
    rc, _, err = sh(host, "docker compose --project-directory /opt/omni down")
    assert rc == 0 and " Container omni-omni-1  Removed" in err
    assert {"omni-omni-1", "omni-postgres-1"}.isdisjoint(ps_rows(host, "-a"))
    rc, _, err = sh(host, "docker compose --project-directory /opt/omni up -d")
    assert rc == 0 and " Container omni-postgres-1  Started" in err
    rows = ps_rows(host)
    assert rows["omni-omni-1"]["State"] == "running" and rows["omni-omni-1"]["RunningFor"] == "Less than a second ago"
    assert sh(host, "docker logs omni-omni-1")[1:] == ("", "")  # a new container has a new log


@pytest.mark.parametrize("args, write", [
    ("restart x", True), ("container restart x", True), ("rm -f x", True), ("kill x", True),
    ("compose up -d", True), ("compose --project-directory /opt/omni down", True), ("compose restart omni", True),
    ("ps -a", False), ("logs x", False), ("inspect x", False), ("compose ps", False), ("compose logs", False),
    ("--bogus restart", False), ("-H unix:///x.sock stop x", True),
])
def test_is_write(args, write):
    assert docker_cli.is_write(args.split()) is write
    assert shell.is_write(f"timeout -k 2 20 docker {args}") is write


# --- formatting helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize("seconds, text", [
    (0.4, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"), (119, "About a minute"),
    (120, "2 minutes"), (3599, "59 minutes"), (3600, "About an hour"), (5399, "About an hour"), (5400, "2 hours"),
    (47 * HOUR, "47 hours"), (48 * HOUR, "2 days"), (13 * DAY, "13 days"), (14 * DAY, "2 weeks"),
    (59 * DAY, "8 weeks"), (60 * DAY, "2 months"), (729 * DAY, "24 months"), (731 * DAY, "2 years"),
])
def test_human_duration_is_go_units(seconds, text):
    assert human_duration(seconds) == text


def test_since_accepts_durations_timestamps_and_unix_seconds():
    now = 1_764_237_793.75
    assert parse_since("10m", now) == (1_764_237_793 - 600) * NS  # the CLI sends whole seconds
    assert parse_since("1h30m", now) == (1_764_237_793 - 5400) * NS
    assert parse_since("2025-11-27T10:03:13Z", now) == 1_764_237_793 * NS
    assert parse_since("2025-11-27T10:03:13.5+00:00", now) == 1_764_237_793 * NS + NS // 2
    assert parse_since("1764237793.000000001", now) == 1_764_237_793 * NS + 1
    assert parse_since("2025-11-27", now) == 1_764_201_600 * NS
    with pytest.raises(ValueError, match="failed to parse value as time or duration"):
        parse_since("soon", now)
