"""The docker CLI (28.x) on a lab host, answered from the host's model (see :mod:`.docker_daemon`).

Output formats are the real CLI's, checked against output captured from docker 28.2: ``ps`` JSON
lines with Go's HTML escaping and moby's status grammar, the default ``ps`` table, ``inspect``'s
indented array, ``logs`` split over stdout/stderr with ``-t`` stamps of nine fractional digits.
Errors are docker's lines and exit codes: 1 for a daemon answer, 125 for a bad flag. Commands that
change state (restart, stop, start, kill, rm) change the model.

Known commands: ps, inspect, logs, restart, stop, start, kill, rm, version, compose (see
:mod:`.compose_cli`), and their ``docker container ...`` forms. Anything else gets docker's "is not
a docker command". ``logs --follow`` is refused: it never ends, and the runbooks must read bounded
logs.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from . import compose_cli
from .docker_daemon import API_VERSION, DOCKER_VERSION, LISTED_STATES, Container, DockerError, connect, containers, find
from .docker_flags import Spec, flags, log_window, need_args, no_follow, parse_flags
from .docker_format import ps_fields, render_rows, render_template
from .go_format import go_json
from .logs import rfc3339_nano_fixed

if TYPE_CHECKING:
    from .shell import Session

WRITE_COMMANDS = {"restart", "stop", "start", "kill", "rm", "pause", "unpause"}  # intent to write, simulated or not

PS = Spec("docker ps", "docker ps [OPTIONS]", "List containers",
          bools=flags("-a,--all:all", "-q,--quiet:quiet", "--no-trunc:no_trunc", "-s,--size:size",
                      "-l,--latest:latest"),
          values=flags("--format:format", "-f,--filter:filter", "-n,--last:last"), lists={"filter"})
INSPECT = Spec("docker inspect", "docker inspect [OPTIONS] NAME|ID [NAME|ID...]",
               "Return low-level information on Docker objects",
               bools=flags("-s,--size:size"), values=flags("-f,--format:format", "--type:type"))
LOGS = Spec("docker logs", "docker logs [OPTIONS] CONTAINER", "Fetch the logs of a container",
            bools=flags("-t,--timestamps:timestamps", "-f,--follow:follow", "--details:details"),
            values=flags("-n,--tail:tail", "--since:since", "--until:until"))
_LIFECYCLE = {
    "restart": Spec("docker restart", "docker restart [OPTIONS] CONTAINER [CONTAINER...]",
                    "Restart one or more containers", values=flags("-t,--timeout,--time:time", "-s,--signal:signal")),
    "stop": Spec("docker stop", "docker stop [OPTIONS] CONTAINER [CONTAINER...]", "Stop one or more running containers",
                 values=flags("-t,--timeout,--time:time", "-s,--signal:signal")),
    "start": Spec("docker start", "docker start [OPTIONS] CONTAINER [CONTAINER...]",
                  "Start one or more stopped containers",
                  bools=flags("-a,--attach:attach", "-i,--interactive:interactive")),
    "kill": Spec("docker kill", "docker kill [OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers",
                 values=flags("-s,--signal:signal")),
    "rm": Spec("docker rm", "docker rm [OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers",
               bools=flags("-f,--force:force", "-v,--volumes:volumes", "-l,--link:link")),
}
VERSION = Spec("docker version", "docker version [OPTIONS]", "Show the Docker version information",
               values=flags("-f,--format:format"))
GLOBAL = Spec("docker", "docker [OPTIONS] COMMAND",
              bools=flags("-D,--debug:debug", "--tls:tls", "--tlsverify:tlsverify", "-v,--version:version"),
              values=flags("-H,--host:host", "-c,--context:context", "-l,--log-level:log_level", "--config:config",
                           "--tlscacert:tlscacert", "--tlscert:tlscert", "--tlskey:tlskey"))
_CONTAINER_ALIASES = {"ls": "ps", "list": "ps", "ps": "ps", "inspect": "inspect", "logs": "logs",
                      **{k: k for k in _LIFECYCLE}, "remove": "rm"}


def is_write(args: list[str]) -> bool:
    """True for docker arguments that change containers."""
    try:
        _, rest = parse_flags(GLOBAL, args, interspersed=False)
    except DockerError:
        return False
    if not rest:
        return False
    if rest[0] == "container" and len(rest) > 1:
        return _CONTAINER_ALIASES.get(rest[1], rest[1]) in WRITE_COMMANDS
    if rest[0] == "compose":
        return compose_cli.is_write(rest[1:])
    return rest[0] in WRITE_COMMANDS


async def main(args: list[str], sh: "Session") -> int:
    """Run ``docker ARGS``; returns the exit status."""
    try:
        opts, rest = parse_flags(GLOBAL, args, interspersed=False)
        if opts.get("version"):
            await sh.io.out(f"Docker version {DOCKER_VERSION}, build e6534b4\n")
            return 0
        if not rest:
            await sh.io.err("Usage:  docker [OPTIONS] COMMAND\n\nA self-sufficient runtime for containers\n")
            return 0
        command, sub = rest[0], rest[1:]
        if command == "container" and sub and sub[0] in _CONTAINER_ALIASES:
            command, sub = _CONTAINER_ALIASES[sub[0]], sub[1:]
        handler = _COMMANDS.get(command)
        if handler is None:
            raise DockerError(f"docker: '{command}' is not a docker command.\nSee 'docker --help'")
        return await handler(command, sub, sh)
    except DockerError as exc:
        await sh.io.err(exc.message.rstrip("\n") + "\n")
        return exc.rc


# --- ps ----------------------------------------------------------------------------------------

_PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"

def _ps_filter(c: Container, filters: list[str]) -> bool:
    for f in filters:
        key, _, value = f.partition("=")
        if key == "name":
            ok = re.search(value, c.name) is not None
        elif key == "status":
            ok = c.state == value
        elif key == "id":
            ok = c.id.startswith(value)
        elif key == "label":
            k, eq, v = value.partition("=")
            labels = c.labels()
            ok = k in labels and (not eq or labels[k] == v)
        elif key == "ancestor":
            ok = c.image == value or c.image.rsplit(":", 1)[0] == value
        else:
            raise DockerError(f"Error response from daemon: invalid filter '{key}'")
        if not ok:
            return False
    return True


async def _ps(command: str, args: list[str], sh: "Session") -> int:
    opts, rest = parse_flags(PS, args)
    if rest:
        raise DockerError(f'"docker ps" accepts no arguments.\nSee \'docker ps --help\'.\n\n'
                          f"Usage:  {PS.use}\n\n{PS.short}")
    connect(sh, "Get", "/containers/json" + ("?all=1" if opts.get("all") else ""))
    now = time.time()
    found = [c for c in containers(sh) if c.exists and (opts.get("all") or c.state in LISTED_STATES)]
    found = [c for c in found if _ps_filter(c, opts["filter"])]
    found.sort(key=lambda c: (-c.created_ns, c.name))
    if opts.get("latest"):
        found = found[:1]
    elif opts.get("last"):
        found = found[: int(opts["last"])]
    trunc = not opts.get("no_trunc")
    if opts.get("quiet"):
        for c in found:
            await sh.io.out((c.id[:12] if trunc else c.id) + "\n")
        return 0
    await sh.io.out(render_rows([ps_fields(c, now, trunc) for c in found], opts.get("format"), _PS_TABLE,
                                "*formatter.ContainerContext"))
    return 0


# --- inspect -------------------------------------------------------------------------------------


async def _inspect(command: str, args: list[str], sh: "Session") -> int:
    opts, names = parse_flags(INSPECT, args)
    need_args(INSPECT, names, at_least=1)
    connect(sh, "Get", f"/containers/{quote(names[0], safe='')}/json")
    found, missing = [], []
    for name in names:
        c = find(sh, name) if opts.get("type") in (None, "container") else None
        (found if c else missing).append(c or name)
    fmt = opts.get("format")
    if fmt:
        for c in found:
            await sh.io.out(render_template(fmt, c.inspect(), "inspect") + "\n")
    else:
        objects = [c.inspect() for c in found]
        await sh.io.out((go_json(objects, indent=4) if objects else "[]") + "\n")
    for name in missing:
        await sh.io.err(f"Error: No such object: {name}\n")
    return 1 if missing else 0


# --- logs --------------------------------------------------------------------------------------


async def _logs(command: str, args: list[str], sh: "Session") -> int:
    opts, names = parse_flags(LOGS, args)
    need_args(LOGS, names, exactly=1)
    if opts.get("follow"):
        raise no_follow("docker logs")
    query = {"stderr": "1", "stdout": "1", "tail": opts.get("tail") or "all"}
    connect(sh, "Get", f"/containers/{quote(names[0], safe='')}/logs?" + "&".join(f"{k}={v}" for k, v in query.items()))
    c = find(sh, names[0])
    if c is None:
        raise DockerError(f"Error response from daemon: No such container: {names[0]}")
    log = c.log()
    window = log_window(log, opts, time.time())
    stamp = bool(opts.get("timestamps"))
    for line in log.lines(window):
        text = f"{rfc3339_nano_fixed(line.ts_ns)} {line.text}\n" if stamp else line.text + "\n"
        await sh.io.write(line.stream, text)
    return 0


# --- lifecycle -----------------------------------------------------------------------------------


async def _lifecycle(command: str, args: list[str], sh: "Session") -> int:
    spec = _LIFECYCLE[command]
    opts, names = parse_flags(spec, args)
    need_args(spec, names, at_least=1)
    connect(sh, "Post", f"/containers/{quote(names[0], safe='')}/{'kill' if command == 'kill' else command}")
    rc = 0
    for name in names:
        c = find(sh, name)
        if c is None:
            await sh.io.err(f"Error response from daemon: No such container: {name}\n")
            rc = 1
            continue
        running = c.state in LISTED_STATES
        if command == "restart" or (command == "start" and not running):
            c.start()
        elif command == "stop" and running:
            c.stop()
        elif command == "kill":
            if not running:
                await sh.io.err(f"Error response from daemon: cannot kill container: {name}: "
                                f"container {c.id} is not running\n")
                rc = 1
                continue
            c.stop(137)
        elif command == "rm":
            if running and not opts.get("force"):
                await sh.io.err(f'Error response from daemon: cannot remove container "/{c.name}": container is '
                                "running: stop the container before removing or force remove\n")
                rc = 1
                continue
            c.spec["state"] = "absent"
        await sh.io.out(name + "\n")
    return rc


# --- version -------------------------------------------------------------------------------------


def _version_info(server: bool) -> dict:
    client = {"Platform": {"Name": "Docker Engine - Community"}, "Version": DOCKER_VERSION, "ApiVersion": API_VERSION,
              "DefaultAPIVersion": API_VERSION, "GitCommit": "e6534b4", "GoVersion": "go1.24.3", "Os": "linux",
              "Arch": "amd64", "BuildTime": "Fri May 30 12:07:26 2025", "Context": "default"}
    info: dict[str, Any] = {"Client": client}
    if server:
        info["Server"] = {"Platform": {"Name": "Docker Engine - Community"}, "Version": DOCKER_VERSION,
                          "ApiVersion": API_VERSION, "MinAPIVersion": "1.24", "GitCommit": "45873be",
                          "GoVersion": "go1.24.3", "Os": "linux", "Arch": "amd64", "KernelVersion": "6.8.12-4-pve",
                          "BuildTime": "2025-05-30T12:07:26.000000000+00:00"}
    return info


async def _version(command: str, args: list[str], sh: "Session") -> int:
    opts, _ = parse_flags(VERSION, args)
    try:
        connect(sh, "Get", "/version")
        error = None
    except DockerError as exc:
        error = exc
    info = _version_info(error is None)
    if opts.get("format"):
        await sh.io.out(render_template(opts["format"], info, "inspect") + "\n")
    else:
        c = info["Client"]
        await sh.io.out(f"Client: {c['Platform']['Name']}\n Version:           {c['Version']}\n"
                        f" API version:       {c['ApiVersion']}\n Go version:        {c['GoVersion']}\n"
                        f" Git commit:        {c['GitCommit']}\n Built:             {c['BuildTime']}\n"
                        f" OS/Arch:           linux/amd64\n Context:           default\n")
        if error is None:
            s = info["Server"]
            await sh.io.out(f"\nServer: {s['Platform']['Name']}\n Engine:\n  Version:          {s['Version']}\n"
                            f"  API version:      {s['ApiVersion']} (minimum version {s['MinAPIVersion']})\n"
                            f"  Go version:       {s['GoVersion']}\n  Git commit:       {s['GitCommit']}\n"
                            f"  OS/Arch:          linux/amd64\n  Experimental:     false\n")
    if error is not None:
        raise error
    return 0


# --- compose -------------------------------------------------------------------------------------


async def _compose(command: str, args: list[str], sh: "Session") -> int:
    return await compose_cli.run(args, sh)


_COMMANDS = {"ps": _ps, "inspect": _inspect, "logs": _logs, "version": _version, "compose": _compose,
             **{k: _lifecycle for k in _LIFECYCLE}}
