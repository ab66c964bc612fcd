"""``docker compose`` (v2) on a lab host: ps, logs, up, down, restart, stop, start, version.

Output is the plugin's: ``ps`` JSON lines (compose >= 2.21) or its table, ``logs`` with the
service prefixes padded the way compose pads them and merged in time order, progress lines on
stderr for the actions. Which project a command means comes from ``-p``, ``--project-directory``,
``-f`` or the working directory, as compose decides it; the actions change the model.
"""

from __future__ import annotations

import heapq
import json
import posixpath
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator
from urllib.parse import quote

from .docker_daemon import COMPOSE_VERSION, LISTED_STATES, Container, DockerError, connect, containers
from .docker_flags import Spec, flags, log_window, no_follow, parse_flags
from .docker_format import ps_fields, render_rows
from .logs import LogLine, rfc3339_nano_fixed

if TYPE_CHECKING:
    from .shell import Session

# subcommands that change containers (intent to write, simulated or not)
WRITES = {"up", "down", "restart", "stop", "start", "kill", "rm", "pause", "unpause", "create"}
# the file names compose looks for in a project directory
FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")

COMPOSE = Spec("docker compose", "docker compose [OPTIONS] COMMAND",
               bools=flags("--compatibility:compatibility", "--dry-run:dry_run", "--all-resources:all_resources"),
               values=flags("-f,--file:file", "-p,--project-name:project", "--project-directory:project_directory",
                            "--env-file:env_file", "--profile:profile", "--ansi:ansi", "--progress:progress",
                            "--parallel:parallel"),
               lists={"file", "env_file", "profile"})
PS = Spec("docker compose ps", "docker compose ps [OPTIONS] [SERVICE...]", "List containers",
          bools=flags("-a,--all:all", "-q,--quiet:quiet", "--services:services", "--no-trunc:no_trunc",
                      "--orphans:orphans"),
          values=flags("--format:format", "--status:status", "--filter:filter"), lists={"status"})
LOGS = Spec("docker compose logs", "docker compose logs [OPTIONS] [SERVICE...]", "View output from containers",
            bools=flags("--no-color:no_color", "--no-log-prefix:no_prefix", "-t,--timestamps:timestamps",
                        "-f,--follow:follow"),
            values=flags("-n,--tail:tail", "--since:since", "--until:until", "--index:index"))
_ACTIONS = {
    "up": Spec("docker compose up", "docker compose up [OPTIONS] [SERVICE...]", "Create and start containers",
               bools=flags("-d,--detach:detach", "--no-start:no_start", "--force-recreate:force_recreate",
                           "--no-recreate:no_recreate", "--remove-orphans:remove_orphans", "--wait:wait",
                           "--build:build", "--no-build:no_build", "--quiet-pull:quiet_pull", "--no-deps:no_deps"),
               values=flags("--pull:pull", "-t,--timeout:timeout", "--wait-timeout:wait_timeout")),
    "down": Spec("docker compose down", "docker compose down [OPTIONS] [SERVICES]",
                 "Stop and remove containers, networks",
                 bools=flags("-v,--volumes:volumes", "--remove-orphans:remove_orphans"),
                 values=flags("--rmi:rmi", "-t,--timeout:timeout")),
    "restart": Spec("docker compose restart", "docker compose restart [OPTIONS] [SERVICE...]",
                    "Restart service containers", bools=flags("--no-deps:no_deps"),
                    values=flags("-t,--timeout:timeout")),
    "stop": Spec("docker compose stop", "docker compose stop [OPTIONS] [SERVICE...]", "Stop services",
                 values=flags("-t,--timeout:timeout")),
    "start": Spec("docker compose start", "docker compose start [SERVICE...]", "Start services"),
}


@dataclass
class Project:
    """A compose project: its name, its directory and the containers that belong to it."""

    name: str
    working_dir: str
    members: list[Container]  # every container of the project, absent ones (services not created) included

    def select(self, services: list[str]) -> list[Container]:
        known = {c.compose.get("service") for c in self.members}
        for s in services:
            if s not in known:
                raise DockerError(f"no such service: {s}")
        return [c for c in self.members if not services or c.compose.get("service") in services]


def _project(sh: "Session", opts: dict) -> Project:
    """Which project a compose command means: -p, --project-directory, -f, or the working directory."""
    files = sh.host.get("files") or {}
    members = [c for c in containers(sh) if c.compose]
    if opts.get("project") and not opts["file"] and not opts.get("project_directory"):
        mine = [c for c in members if c.compose.get("project") == opts["project"]]
        wd = mine[0].compose.get("working_dir", sh.cwd) if mine else sh.cwd
        return Project(opts["project"], wd, mine)
    if opts.get("project_directory"):
        wd = sh.abspath(opts["project_directory"])
    elif opts["file"]:
        wd = posixpath.dirname(sh.abspath(opts["file"][0]))
    else:
        wd = sh.cwd
    mine = [c for c in members if posixpath.normpath(str(c.compose.get("working_dir", ""))) == wd]
    has_file = any(posixpath.join(wd, f) in files for f in FILES)
    if opts["file"]:
        path = sh.abspath(opts["file"][0])
        if path not in files and not (mine and posixpath.basename(path) in FILES):
            raise DockerError(f"open {path}: no such file or directory")
    elif not mine and not has_file:
        raise DockerError("no configuration file provided: not found")
    name = opts.get("project") or (mine[0].compose.get("project") if mine else posixpath.basename(wd))
    return Project(str(name), wd, mine)


def _display_name(c: Container) -> str:
    """The name compose prints: the container name without its project prefix."""
    project, service = c.compose.get("project", ""), c.compose.get("service", "")
    for sep in ("-", "_"):
        if c.name.startswith(f"{project}{sep}{service}{sep}"):
            return c.name[len(project) + 1:]
    return c.name


def _publishers(ports: list[str]) -> list[dict] | None:
    out = []
    for p in ports:
        m = re.match(r"^(?:\[?([^\]]*?)\]?:(\d+)->)?(\d+)/(\w+)$", p)
        if m:
            out.append({"URL": m.group(1) or "", "TargetPort": int(m.group(3)),
                        "PublishedPort": int(m.group(2) or 0), "Protocol": m.group(4)})
    return out or None


def _ps_row(c: Container, now: float, trunc: bool) -> dict:
    base = ps_fields(c, now, trunc)
    return {
        "Command": base["Command"], "CreatedAt": base["CreatedAt"], "ExitCode": c.exit_code,
        "Health": c.health or "", "ID": base["ID"], "Image": c.image, "Labels": base["Labels"],
        "LocalVolumes": base["LocalVolumes"], "Mounts": base["Mounts"], "Name": c.name, "Names": c.name,
        "Networks": base["Networks"], "Ports": base["Ports"], "Project": c.compose.get("project", ""),
        "Publishers": _publishers(c.ports), "RunningFor": base["RunningFor"], "Service": c.compose.get("service", ""),
        "Size": base["Size"], "State": c.state, "Status": base["Status"],
    }


_PS_TABLE = "table {{.Name}}\t{{.Image}}\t{{.Command}}\t{{.Service}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}"


async def _ps(project: Project, args: list[str], sh: "Session") -> int:
    opts, services = parse_flags(PS, args)
    chosen = [c for c in project.select(services) if c.exists]
    if opts["status"]:
        chosen = [c for c in chosen if c.state in opts["status"]]
    elif not opts.get("all"):
        chosen = [c for c in chosen if c.state in LISTED_STATES]
    chosen.sort(key=lambda c: c.name)
    trunc = not opts.get("no_trunc")
    if opts.get("services"):
        for s in dict.fromkeys(c.compose.get("service", "") for c in chosen):
            await sh.io.out(s + "\n")
    elif opts.get("quiet"):
        for c in chosen:
            await sh.io.out((c.id[:12] if trunc else c.id) + "\n")
    else:
        now = time.time()
        await sh.io.out(render_rows([_ps_row(c, now, trunc) for c in chosen], opts.get("format"),
                                    _PS_TABLE, "formatter.ContainerContext"))
    return 0


async def _logs(project: Project, args: list[str], sh: "Session") -> int:
    opts, services = parse_flags(LOGS, args)
    if opts.get("follow"):
        raise no_follow("docker compose logs")
    chosen = sorted((c for c in project.select(services) if c.exists), key=lambda c: c.name)
    names = {c.name: _display_name(c) for c in chosen}
    width = max((len(n) for n in names.values()), default=0) + 1
    now = time.time()

    def tagged(c: Container) -> Iterator[tuple[LogLine, str]]:
        prefix = "" if opts.get("no_prefix") else f"{names[c.name]:<{width}} | "
        log = c.log()
        for line in log.lines(log_window(log, opts, now)):
            yield line, prefix

    streams = [tagged(c) for c in chosen]
    stamp = bool(opts.get("timestamps"))
    for line, prefix in heapq.merge(*streams, key=lambda item: item[0].ts_ns):
        text = f"{rfc3339_nano_fixed(line.ts_ns)} {line.text}" if stamp else line.text
        await sh.io.write(line.stream, f"{prefix}{text}\n")
    return 0


async def _action(action: str, project: Project, args: list[str], sh: "Session") -> int:
    spec = _ACTIONS[action]
    opts, services = parse_flags(spec, args)
    chosen = sorted(project.select(services), key=lambda c: c.name)

    async def say(c: Container, *verbs: str) -> None:
        for verb in verbs:
            await sh.io.err(f" Container {c.name}  {verb}\n")

    for c in chosen:
        running = c.state in LISTED_STATES
        if action == "up":
            if c.exists and running and not opts.get("force_recreate"):
                await say(c, "Running")
                continue
            if not c.exists or opts.get("force_recreate"):
                c.create()
                await say(c, "Creating", "Created")
            if not opts.get("no_start"):
                c.start()
                await say(c, "Starting", "Started")
        elif not c.exists:
            continue
        elif action == "restart":
            c.start()
            await say(c, "Restarting", "Started")
        elif action == "start" and not running:
            c.start()
            await say(c, "Starting", "Started")
        elif action in ("stop", "down"):
            if running:
                c.stop()
                await say(c, "Stopping", "Stopped")
            if action == "down":
                c.spec["state"] = "absent"
                await say(c, "Removing", "Removed")
    if action == "down":
        await sh.io.err(f" Network {project.name}_default  Removing\n Network {project.name}_default  Removed\n")
    return 0


def is_write(args: list[str]) -> bool:
    """True for ``docker compose`` arguments (what follows ``compose``) that change containers."""
    try:
        _, sub = parse_flags(COMPOSE, args, interspersed=False)
    except DockerError:
        return False
    return bool(sub) and sub[0] in WRITES


async def run(args: list[str], sh: "Session") -> int:
    """Run ``docker compose ARGS``: the exit status, or :class:`DockerError` for docker to report."""
    opts, rest = parse_flags(COMPOSE, args, interspersed=False)
    if not rest:
        await sh.io.out("Usage:  docker compose [OPTIONS] COMMAND\n\n"
                        "Define and run multi-container applications with Docker\n")
        return 0
    sub, sub_args = rest[0], rest[1:]
    if sub == "version":
        await sh.io.out(f"Docker Compose version v{COMPOSE_VERSION}\n")
        return 0
    if sub not in ("ps", "logs", *_ACTIONS):
        raise DockerError(f"unknown docker command: \"compose {sub}\"")
    spec = {"ps": PS, "logs": LOGS}.get(sub) or _ACTIONS[sub]
    parse_flags(spec, sub_args)  # a bad flag is reported before the project is looked for
    project = _project(sh, opts)
    filters = quote(json.dumps({"label": {f"com.docker.compose.project={project.name}": True}}, separators=(",", ":")))
    connect(sh, "Get", f"/containers/json?all=1&filters={filters}")
    if sub == "ps":
        return await _ps(project, sub_args, sh)
    if sub == "logs":
        return await _logs(project, sub_args, sh)
    return await _action(sub, project, sub_args, sh)

