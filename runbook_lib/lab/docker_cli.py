"""The docker CLI (28.x) and its compose plugin (v2) on a lab host, answered from the host's model.

Output formats are the real CLI's, checked against output captured from docker 28.2: ``ps`` JSON
lines with Go's HTML escaping and moby's status grammar, the default ``ps`` table, ``inspect``'s
indented array, ``logs`` split over stdout/stderr with ``-t`` stamps of nine fractional digits,
compose ``ps`` JSON lines (compose >= 2.21) and compose ``logs`` prefixes padded the way compose
pads them. Errors are docker's lines and exit codes: 1 for a daemon answer, 125 for a bad flag.

The host model says whether the daemon is ``up``, ``down`` or ``denied`` (user not in the docker
group) and holds the containers, by name::

    image, state (running|exited|restarting|created|paused|absent), health, exit_code,
    restart_count, started_ago, created_ago, finished_ago, compose {project, service, working_dir},
    args, env, mounts [{source, destination, type, name, read_only}], ports ["0.0.0.0:443->443/tcp"],
    entrypoint, labels, restart_policy, oom_killed, error, logs (see :mod:`.logs`)

``*_ago`` are seconds before the twin started. ``absent`` means the container does not exist (a
compose service that was never created or was removed). Commands that change state (restart,
stop, start, kill, rm, compose up/down/restart/stop/start) change the model.

Known commands: ps, inspect, logs, restart, stop, start, kill, rm, version, compose {ps, logs, up,
down, restart, stop, start, version}, and their ``docker container ...`` forms. Anything else gets
docker's "is not a docker command". ``logs --follow`` is refused: it never ends, and the runbooks
must read bounded logs.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import posixpath
import re
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import quote

from .logs import NS, ContainerLog, LogLine, rfc3339_nano_fixed

if TYPE_CHECKING:
    from .shell import Session

DOCKER_VERSION = "28.2.2"
API_VERSION = "1.50"
COMPOSE_VERSION = "2.36.2"
SOCKET = "unix:///var/run/docker.sock"
ZERO_TIME = "0001-01-01T00:00:00Z"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LISTED_STATES = {"running", "restarting", "paused"}  # what `docker ps` shows without -a
WRITE_COMMANDS = {"restart", "stop", "start", "kill", "rm", "pause", "unpause"}  # intent to write, simulated or not
COMPOSE_WRITES = {"up", "down", "restart", "stop", "start", "kill", "rm", "pause", "unpause", "create"}
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
_ENTRYPOINTS = {  # image repository -> the entrypoint its Dockerfile sets
    "ghcr.io/siderolabs/omni-infra-provider-proxmox": "/omni-infra-provider-proxmox",
    "ghcr.io/siderolabs/omni": "/omni",
    "tailscale/tailscale": "/usr/local/bin/containerboot",
}


class DockerError(Exception):
    """A docker command failed: ``message`` goes to stderr, ``rc`` is the exit status."""

    def __init__(self, message: str, rc: int = 1):
        super().__init__(message)
        self.message = message
        self.rc = rc


# --- Go's formatting ---------------------------------------------------------------------------


def go_json(obj: Any, indent: int | None = None) -> str:
    """encoding/json output: HTML characters escaped, non-ASCII kept, MarshalIndent's spacing."""
    text = json.dumps(obj, ensure_ascii=False, indent=indent,
                      separators=(",", ":") if indent is None else (",", ": "))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def go_quote(s: str) -> str:
    """strconv.Quote for the characters container commands contain."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def ellipsis(s: str, width: int) -> str:
    """The CLI's truncation: ``width - 1`` characters and an ellipsis."""
    return s if len(s) <= width else s[: width - 1] + "…"


def human_duration(seconds: float) -> str:
    """go-units HumanDuration, which docker's "Up 3 days" and "2 hours ago" come from."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = math.floor(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def rfc3339_nano(ts_ns: int) -> str:
    """Go's RFC3339Nano in UTC: trailing zeros of the fraction dropped."""
    secs, frac = divmod(ts_ns, NS)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return text + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"


def tabwriter(rows: list[list[str]], minwidth: int = 10, padding: int = 3) -> str:
    """text/tabwriter as the CLI configures it; the last cell of a line is never padded."""
    if not rows:
        return ""
    ncols = max(len(r) for r in rows)
    widths = [max(minwidth, max((len(r[c]) for r in rows if c < len(r) - 1), default=0) + padding)
              for c in range(ncols)]
    out = []
    for r in rows:
        cells = [cell.ljust(widths[c]) for c, cell in enumerate(r[:-1])] + r[-1:]
        out.append("".join(cells))
    return "\n".join(out) + "\n"


# --- containers ------------------------------------------------------------------------------


@dataclass
class Container:
    """A container of the model with everything docker derives from it."""

    name: str
    spec: dict
    now: float  # the twin's start time: `*_ago` fields count back from it

    @property
    def state(self) -> str:
        return str(self.spec.get("state", "running"))

    @property
    def exists(self) -> bool:
        return self.state != "absent"

    @property
    def id(self) -> str:
        return hashlib.sha256(f"container:{self.name}".encode()).hexdigest()

    @property
    def image(self) -> str:
        return str(self.spec.get("image", "scratch"))

    @property
    def image_id(self) -> str:
        return "sha256:" + hashlib.sha256(f"image:{self.image}".encode()).hexdigest()

    def _ns(self, key: str, default: float) -> int:
        return int(round((self.now - float(self.spec.get(key, default))) * NS))

    @property
    def started_ns(self) -> int:
        return self._ns("started_ago", 0)

    @property
    def created_ns(self) -> int:
        return self._ns("created_ago", float(self.spec.get("started_ago", 0)) + 1)

    @property
    def finished_ns(self) -> int:
        return self._ns("finished_ago", max(float(self.spec.get("started_ago", 0)) - 1, 0))

    @property
    def compose(self) -> dict:
        return self.spec.get("compose") or {}

    @property
    def entrypoint(self) -> str:
        if self.spec.get("entrypoint"):
            return str(self.spec["entrypoint"])
        repo = self.image.rsplit(":", 1)[0] if ":" in self.image.rsplit("/", 1)[-1] else self.image
        return _ENTRYPOINTS.get(repo, "/" + repo.rsplit("/", 1)[-1])

    @property
    def args(self) -> list[str]:
        return [str(a) for a in self.spec.get("args") or []]

    @property
    def command(self) -> str:
        return " ".join([self.entrypoint, *self.args])

    @property
    def health(self) -> str | None:
        return self.spec.get("health")

    @property
    def exit_code(self) -> int:
        return int(self.spec.get("exit_code", 0))

    def labels(self) -> dict[str, str]:
        labels: dict[str, str] = {}
        c = self.compose
        if c:
            wd = c.get("working_dir", "")
            number = self.name.rsplit("-", 1)[-1] if self.name.rsplit("-", 1)[-1].isdigit() else "1"
            config_hash = hashlib.sha256(f"{c.get('project')}/{c.get('service')}".encode()).hexdigest()
            labels.update({
                "com.docker.compose.config-hash": config_hash,
                "com.docker.compose.container-number": number,
                "com.docker.compose.depends_on": "",
                "com.docker.compose.image": self.image_id,
                "com.docker.compose.oneoff": "False",
                "com.docker.compose.project": str(c.get("project", "")),
                "com.docker.compose.project.config_files": c.get("file") or posixpath.join(wd, "compose.yaml"),
                "com.docker.compose.project.working_dir": wd,
                "com.docker.compose.service": str(c.get("service", "")),
                "com.docker.compose.version": COMPOSE_VERSION,
            })
        labels.update({str(k): str(v) for k, v in (self.spec.get("labels") or {}).items()})
        return dict(sorted(labels.items()))

    def mounts(self) -> list[dict]:
        out = []
        for m in self.spec.get("mounts") or []:
            rw = not m.get("read_only", False)
            if m.get("type") == "volume" or m.get("name"):
                vol = m.get("name") or m.get("source")
                out.append({"Type": "volume", "Name": vol, "Source": f"/var/lib/docker/volumes/{vol}/_data",
                            "Destination": m["destination"], "Driver": "local", "Mode": "z", "RW": rw,
                            "Propagation": ""})
            else:
                out.append({"Type": "bind", "Source": m["source"], "Destination": m["destination"], "Mode": "",
                            "RW": rw, "Propagation": "rprivate"})
        return out

    @property
    def network(self) -> str:
        return f"{self.compose['project']}_default" if self.compose.get("project") else "bridge"

    @property
    def ports(self) -> list[str]:
        return [str(p) for p in self.spec.get("ports") or []]

    def status(self, now: float) -> str:
        """moby's State.String(): the STATUS column."""
        state = self.state
        if state in ("running", "paused"):
            up = human_duration(now - self.started_ns / NS)
            if state == "paused":
                return f"Up {up} (Paused)"
            if self.health:
                return f"Up {up} ({'health: starting' if self.health == 'starting' else self.health})"
            return f"Up {up}"
        if state == "restarting":
            return f"Restarting ({self.exit_code}) {human_duration(now - self.finished_ns / NS)} ago"
        if state == "dead":
            return "Dead"
        if state == "removing":
            return "Removal In Progress"
        if state == "created":
            return "Created"
        return f"Exited ({self.exit_code}) {human_duration(now - self.finished_ns / NS)} ago"

    def ps_fields(self, now: float, trunc: bool = True) -> dict[str, Any]:
        """The fields of `docker ps --format` (all display strings, as the CLI has them)."""
        mounts = [m.get("Name") or m["Source"] for m in self.mounts()]
        return {
            "Command": go_quote(ellipsis(self.command, 20) if trunc else self.command),
            "CreatedAt": datetime.fromtimestamp(self.created_ns // NS, timezone.utc).strftime(
                "%Y-%m-%d %H:%M:%S +0000 UTC"),  # Go's time.Time.String() in the host's zone, UTC
            "ID": self.id[:12] if trunc else self.id,
            "Image": self.image,
            "Labels": ",".join(sorted(f"{k}={v}" for k, v in self.labels().items())),  # the CLI sorts k=v
            "LocalVolumes": str(sum(1 for m in self.mounts() if m["Type"] == "volume")),
            "Mounts": ",".join(ellipsis(m, 15) if trunc else m for m in mounts),
            "Names": self.name,
            "Networks": self.network,
            "Platform": None,
            "Ports": ", ".join(self.ports),
            "RunningFor": human_duration(now - self.created_ns / NS) + " ago",
            "Size": "0B",
            "State": self.state,
            "Status": self.status(now),
        }

    def inspect(self) -> dict[str, Any]:
        """`docker inspect`'s object, in the engine's key order."""
        state = self.state
        running = state in ("running", "restarting", "paused")
        started = self.started_ns if state != "created" else None
        finished = self.finished_ns if state in ("exited", "restarting", "dead") else None
        st: dict[str, Any] = {
            "Status": state, "Running": running, "Paused": state == "paused", "Restarting": state == "restarting",
            "OOMKilled": bool(self.spec.get("oom_killed", False)), "Dead": state == "dead",
            "Pid": 1000 + zlib.crc32(self.name.encode()) % 60000 if state in ("running", "paused") else 0,
            "ExitCode": self.exit_code, "Error": str(self.spec.get("error", "")),
            "StartedAt": rfc3339_nano(started) if started is not None else ZERO_TIME,
            "FinishedAt": rfc3339_nano(finished) if finished is not None else ZERO_TIME,
        }
        if self.health:
            streak = int(self.spec.get("failing_streak", 3 if self.health == "unhealthy" else 0))
            log = []
            if self.health != "starting":
                end = self.now - 1
                log.append({"Start": rfc3339_nano(int((end - 0.05) * NS)), "End": rfc3339_nano(int(end * NS)),
                            "ExitCode": 1 if self.health == "unhealthy" else 0,
                            "Output": str(self.spec.get("health_output", ""))})
            st["Health"] = {"Status": self.health, "FailingStreak": streak, "Log": log}
        cid = self.id
        env = [f"{k}={v}" for k, v in (self.spec.get("env") or {}).items()]
        if not any(e.startswith("PATH=") for e in env):
            env.append(f"PATH={DEFAULT_PATH}")
        config: dict[str, Any] = {
            "Hostname": cid[:12], "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
            "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": env,
            "Cmd": self.args or None, "Image": self.image, "Volumes": None, "WorkingDir": "",
            "Entrypoint": [self.entrypoint], "OnBuild": None, "Labels": self.labels(),
        }
        if self.health:
            config["Healthcheck"] = {"Test": ["CMD", self.entrypoint, "healthcheck"], "Interval": 10_000_000_000,
                                     "Timeout": 5_000_000_000, "Retries": 3}
        base = f"/var/lib/docker/containers/{cid}"
        return {
            "Id": cid, "Created": rfc3339_nano(self.created_ns), "Path": self.entrypoint, "Args": self.args,
            "State": st, "Image": self.image_id, "ResolvConfPath": f"{base}/resolv.conf",
            "HostnamePath": f"{base}/hostname", "HostsPath": f"{base}/hosts", "LogPath": f"{base}/{cid}-json.log",
            "Name": "/" + self.name, "RestartCount": int(self.spec.get("restart_count", 0)), "Driver": "overlay2",
            "Platform": "linux", "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": None,
            "HostConfig": {
                "NetworkMode": self.network, "LogConfig": {"Type": "json-file", "Config": {}},
                "RestartPolicy": {"Name": str(self.spec.get("restart_policy", "unless-stopped")),
                                  "MaximumRetryCount": 0},
                "AutoRemove": False, "Privileged": False,
            },
            "Mounts": self.mounts(), "Config": config,
            "NetworkSettings": {"Networks": {self.network: {
                "IPAddress": f"172.18.0.{2 + zlib.crc32(self.name.encode()) % 200}", "Gateway": "172.18.0.1",
                "Aliases": [self.name, self.compose["service"]] if self.compose.get("service") else None}}},
        }

    def log(self) -> ContainerLog:
        return ContainerLog(self.spec.get("logs"), self.now)

    # state changes -----------------------------------------------------------------------
    def _ago_now(self) -> float:
        return self.now - time.time()

    def _pin(self) -> None:
        """Fix the times derived from ``started_ago`` before it changes."""
        self.spec.setdefault("created_ago", float(self.spec.get("started_ago", 0)) + 1)
        if self.state in ("exited", "restarting"):
            self.spec.setdefault("finished_ago", max(float(self.spec.get("started_ago", 0)) - 1, 0))

    def start(self) -> None:
        self._pin()
        self.spec.update(state="running", started_ago=self._ago_now(), exit_code=0)

    def stop(self, exit_code: int = 0) -> None:
        self._pin()
        self.spec.update(state="exited", finished_ago=self._ago_now(), exit_code=exit_code)

    def create(self) -> None:
        self.spec.update(state="created", created_ago=self._ago_now(), logs=[], restart_count=0)
        self.spec.pop("finished_ago", None)


def containers(sh: "Session") -> list[Container]:
    return [Container(n, spec, sh.ctx.now) for n, spec in (sh.host.get("containers") or {}).items()]


def find(sh: "Session", ref: str) -> Container | None:
    """A container by name, /name, full ID or unique ID prefix, as the daemon resolves them."""
    live = [c for c in containers(sh) if c.exists]
    for c in live:
        if ref in (c.name, "/" + c.name, c.id):
            return c
    matches = [c for c in live if len(ref) >= 1 and c.id.startswith(ref)]
    return matches[0] if len(matches) == 1 else None


# --- flags (pflag's rules and messages) -----------------------------------------------------------


@dataclass
class Spec:
    """A (sub)command's usage line and flags: ``{"-a": "all", "--all": "all"}``."""

    path: str
    use: str
    short: str = ""
    bools: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)
    lists: set = field(default_factory=set)  # value flags that may repeat


def flag_error(spec: Spec, message: str) -> DockerError:
    return DockerError(f"{message}\n\nUsage:  {spec.use}\n\nRun '{spec.path} --help' for more information", 125)


def parse_flags(spec: Spec, args: list[str], *, interspersed: bool = True) -> tuple[dict, list[str]]:
    opts: dict[str, Any] = {name: [] for name in spec.lists}
    positional: list[str] = []
    args = list(args)

    def setvalue(name: str, value: str) -> None:
        if name in spec.lists:
            opts[name].append(value)
        else:
            opts[name] = value

    while args:
        a = args.pop(0)
        if a == "--":
            positional += args
            break
        if a.startswith("--") and len(a) > 2:
            flag, eq, value = a.partition("=")
            if flag in spec.bools:
                if eq and value.lower() not in ("true", "false", "1", "0", "t", "f"):
                    raise flag_error(spec, f'invalid argument "{value}" for "{flag}" flag: strconv.ParseBool: '
                                           f'parsing "{value}": invalid syntax')
                opts[spec.bools[flag]] = not eq or value.lower() in ("true", "1", "t")
            elif flag in spec.values:
                if not eq:
                    if not args:
                        raise flag_error(spec, f"flag needs an argument: {flag}")
                    value = args.pop(0)
                setvalue(spec.values[flag], value)
            else:
                raise flag_error(spec, f"unknown flag: {flag}")
        elif a.startswith("-") and len(a) > 1:
            chars = a[1:]
            for i, ch in enumerate(chars):
                flag = "-" + ch
                if flag in spec.bools:
                    opts[spec.bools[flag]] = True
                elif flag in spec.values:
                    value = chars[i + 1:].removeprefix("=")
                    if not value:
                        if not args:
                            raise flag_error(spec, f"flag needs an argument: '{ch}' in {a}")
                        value = args.pop(0)
                    setvalue(spec.values[flag], value)
                    break
                else:
                    raise flag_error(spec, f"unknown shorthand flag: '{ch}' in {a}")
        else:
            positional.append(a)
            if not interspersed:
                positional += args
                break
    return opts, positional


def _need_args(spec: Spec, args: list[str], exactly: int | None = None, at_least: int | None = None) -> None:
    if exactly is not None and len(args) != exactly:
        what = f"exactly {exactly} argument{'s' if exactly != 1 else ''}"
    elif at_least is not None and len(args) < at_least:
        what = f"at least {at_least} argument{'s' if at_least != 1 else ''}"
    else:
        return
    raise DockerError(f'"{spec.path}" requires {what}.\nSee \'{spec.path} --help\'.\n\n'
                      f"Usage:  {spec.use}\n\n{spec.short}")


def _flags(*pairs: str) -> dict:
    """``_flags("-a,--all:all", "--no-trunc:no_trunc")`` -> {"-a": "all", "--all": "all", ...}."""
    out = {}
    for pair in pairs:
        names, _, key = pair.partition(":")
        out.update({n: key for n in names.split(",")})
    return out


PS = Spec("docker ps", "docker ps [OPTIONS]", "List containers",
          bools=_flags("-a,--all:all", "-q,--quiet:quiet", "--no-trunc:no_trunc", "-s,--size:size",
                       "-l,--latest:latest"),
          values=_flags("--format:format", "-f,--filter:filter", "-n,--last:last"), lists={"filter"})
INSPECT = Spec("docker inspect", "docker inspect [OPTIONS] NAME|ID [NAME|ID...]",
               "Return low-level information on Docker objects",
               bools=_flags("-s,--size:size"), values=_flags("-f,--format:format", "--type:type"))
LOGS = Spec("docker logs", "docker logs [OPTIONS] CONTAINER", "Fetch the logs of a container",
            bools=_flags("-t,--timestamps:timestamps", "-f,--follow:follow", "--details:details"),
            values=_flags("-n,--tail:tail", "--since:since", "--until:until"))
_LIFECYCLE = {
    "restart": Spec("docker restart", "docker restart [OPTIONS] CONTAINER [CONTAINER...]",
                    "Restart one or more containers", values=_flags("-t,--timeout,--time:time", "-s,--signal:signal")),
    "stop": Spec("docker stop", "docker stop [OPTIONS] CONTAINER [CONTAINER...]", "Stop one or more running containers",
                 values=_flags("-t,--timeout,--time:time", "-s,--signal:signal")),
    "start": Spec("docker start", "docker start [OPTIONS] CONTAINER [CONTAINER...]",
                  "Start one or more stopped containers",
                  bools=_flags("-a,--attach:attach", "-i,--interactive:interactive")),
    "kill": Spec("docker kill", "docker kill [OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers",
                 values=_flags("-s,--signal:signal")),
    "rm": Spec("docker rm", "docker rm [OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers",
               bools=_flags("-f,--force:force", "-v,--volumes:volumes", "-l,--link:link")),
}
VERSION = Spec("docker version", "docker version [OPTIONS]", "Show the Docker version information",
               values=_flags("-f,--format:format"))
GLOBAL = Spec("docker", "docker [OPTIONS] COMMAND",
              bools=_flags("-D,--debug:debug", "--tls:tls", "--tlsverify:tlsverify", "-v,--version:version"),
              values=_flags("-H,--host:host", "-c,--context:context", "-l,--log-level:log_level", "--config:config",
                            "--tlscacert:tlscacert", "--tlscert:tlscert", "--tlskey:tlskey"))
_CONTAINER_ALIASES = {"ls": "ps", "list": "ps", "ps": "ps", "inspect": "inspect", "logs": "logs",
                      **{k: k for k in _LIFECYCLE}, "remove": "rm"}


# --- templates (the subset the runbooks and operators use) ----------------------------------------

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")
_PATH = re.compile(r"^\.[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*$")


def render_template(template: str, obj: dict, what: str) -> str:
    """A Go template over ``obj``: ``{{.A.B}}``, ``{{json .A}}``, ``{{.Label "k"}}``, plain text."""
    template = template.replace("\\t", "\t").replace("\\n", "\n")
    out, pos = [], 0
    for m in _ACTION.finditer(template):
        out.append(template[pos:m.start()])
        pos = m.end()
        action = m.group(1)
        as_json = action.startswith("json ")
        expr = action[5:].strip() if as_json else action
        label = re.fullmatch(r'\.Label\s+"([^"]*)"', expr)
        if label:
            pairs = (kv.split("=", 1) for kv in str(obj.get("Labels", "")).split(",") if "=" in kv)
            value: Any = dict(pairs).get(label.group(1), "")
        elif _PATH.match(expr):
            value = obj
            seen = ""
            for part in (p for p in expr.split(".") if p):
                if not isinstance(value, dict) or part not in value:
                    col = template.find(expr, m.start()) + len(seen)  # Go points at the failing field
                    where = f'template: :1:{col}: executing "" at <{expr}>'
                    if isinstance(value, dict) and what == "inspect":
                        raise DockerError(f'template parsing error: {where}: map has no entry for key "{part}"')
                    raise DockerError(f"template parsing error: {where}: can't evaluate field {part} in type {what}")
                seen += "." + part
                value = value[part]
        else:
            raise DockerError(f'template parsing error: template: :1: the lab twin\'s docker evaluates only '
                              f'{{{{.Field}}}}, {{{{json .Field}}}} and {{{{.Label "key"}}}}, not {{{{{action}}}}}')
        if as_json:
            out.append(go_json(value))
        elif value is None:
            out.append("<no value>")
        elif isinstance(value, bool):
            out.append("true" if value else "false")
        elif isinstance(value, (dict, list)):
            out.append(_go_print(value))
        else:
            out.append(str(value))
    out.append(template[pos:])
    return "".join(out)


def _go_print(value: Any) -> str:
    """fmt's %v of a map or slice: map[k:v] and [a b]."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_print(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_print(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return "<nil>" if value is None else str(value)


# --- the daemon --------------------------------------------------------------------------------


def _daemon(sh: "Session", method: str, path: str) -> None:
    """Fail the way the CLI does when the daemon is down or the socket is not ours."""
    status = sh.host.get("docker", "up")
    if status == "down":
        raise DockerError(f"Cannot connect to the Docker daemon at {SOCKET}. Is the docker daemon running?")
    if status == "denied":
        url = f"http://%2Fvar%2Frun%2Fdocker.sock/v{API_VERSION}{path}"
        raise DockerError(f"permission denied while trying to connect to the Docker daemon socket at {SOCKET}: "
                          f'{method} "{url}": dial unix /var/run/docker.sock: connect: permission denied')


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
        try:
            _, sub = parse_flags(COMPOSE, rest[1:], interspersed=False)
        except DockerError:
            return False
        return bool(sub) and sub[0] in COMPOSE_WRITES
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

_PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
               "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
               "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
               "LocalVolumes": "LOCAL VOLUMES", "Platform": "PLATFORM", "Name": "NAME", "Service": "SERVICE",
               "Project": "PROJECT", "Health": "HEALTH", "ExitCode": "EXIT CODE", "Publishers": "PUBLISHERS"}
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


async def _render_rows(sh: "Session", rows: list[dict], fmt: str | None, table: str, what: str) -> None:
    if fmt in ("json", "{{json .}}"):
        for row in rows:
            await sh.io.out(go_json(dict(sorted(row.items()))) + "\n")
        return
    template = table if fmt in (None, "", "table") else fmt
    if template.startswith("table"):
        body = template[len("table"):].strip()
        cells = body.replace("\\t", "\t").split("\t")
        header = [_ACTION.sub(lambda m: _PS_HEADERS.get(m.group(1).lstrip("."), m.group(1).lstrip(".").upper()), c)
                  for c in cells]
        lines = [header] + [render_template(body, row, what).split("\t") for row in rows]
        await sh.io.out(tabwriter(lines))
        return
    for row in rows:
        await sh.io.out(render_template(template, row, what) + "\n")


async def _ps(command: str, args: list[str], sh: "Session") -> int:
    opts, rest = parse_flags(PS, args)
    if rest:
        raise DockerError(f'"docker ps" accepts no arguments.\nSee \'docker ps --help\'.\n\n'
                          f"Usage:  {PS.use}\n\n{PS.short}")
    _daemon(sh, "Get", "/containers/json" + ("?all=1" if opts.get("all") else ""))
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
    await _render_rows(sh, [c.ps_fields(now, trunc) for c in found], opts.get("format"), _PS_TABLE,
                       "*formatter.ContainerContext")
    return 0


# --- inspect -------------------------------------------------------------------------------------


async def _inspect(command: str, args: list[str], sh: "Session") -> int:
    opts, names = parse_flags(INSPECT, args)
    _need_args(INSPECT, names, at_least=1)
    _daemon(sh, "Get", f"/containers/{quote(names[0], safe='')}/json")
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

_GO_DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_since(value: str, now: float) -> int:
    """docker's timetypes.GetTimestamp: a Go duration back from now, RFC 3339, a date or Unix seconds.

    Returns Unix nanoseconds. Raises ValueError with docker's message.
    """
    if value != "0" and _GO_DURATION.match(value):
        sign = -1 if value.startswith("-") else 1
        seconds = sum(float(num) * _GO_UNITS[unit] for num, unit in _GO_DURATION_PART.findall(value))
        return int(now - sign * seconds) * NS  # the CLI sends whole seconds
    if re.fullmatch(r"\d+(\.\d{1,9})?", value):
        secs, _, frac = value.partition(".")
        return int(secs) * NS + int((frac or "0").ljust(9, "0"))
    text = value.replace("z", "Z")
    if "T" not in text and re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        text += "T00:00:00"
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        if "-" in value:
            raise ValueError(f'parsing time "{value}" as "2006-01-02T15:04:05Z07:00": cannot parse "{value}" '
                             'as "2006"') from None
        raise ValueError(f'failed to parse value as time or duration: "{value}"') from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)  # the hosts run in UTC
    frac_ns = 0
    m = re.search(r"\.(\d+)", value)
    if m:
        frac_ns = int(m.group(1)[:9].ljust(9, "0"))
    return int(parsed.replace(microsecond=0).timestamp()) * NS + frac_ns


def _tail(value: str | None) -> int | None:
    if value is None or value == "all":
        return None
    try:
        n = int(value)
    except ValueError:
        return None  # the daemon treats an unparsable tail as "all"
    return n if n >= 0 else None


def _log_window(log: ContainerLog, opts: dict, now: float) -> range:
    bounds = {}
    for key in ("since", "until"):
        if opts.get(key):
            try:
                bounds[key] = parse_since(opts[key], now)
            except ValueError as exc:
                raise DockerError(f'invalid value for "{key}": {exc}') from None
    return log.window(tail=_tail(opts.get("tail")), since_ns=bounds.get("since"), until_ns=bounds.get("until"))


def _no_follow(what: str) -> DockerError:
    return DockerError(f"{what}: the lab twin does not follow logs (--follow never ends); "
                       "read them with --tail or --since instead")


async def _logs(command: str, args: list[str], sh: "Session") -> int:
    opts, names = parse_flags(LOGS, args)
    _need_args(LOGS, names, exactly=1)
    if opts.get("follow"):
        raise _no_follow("docker logs")
    query = {"stderr": "1", "stdout": "1", "tail": opts.get("tail") or "all"}
    _daemon(sh, "Get", f"/containers/{quote(names[0], safe='')}/logs?" + "&".join(f"{k}={v}" for k, v in query.items()))
    c = find(sh, names[0])
    if c is None:
        raise DockerError(f"Error response from daemon: No such container: {names[0]}")
    log = c.log()
    window = _log_window(log, opts, time.time())
    stamp = bool(opts.get("timestamps"))
    for line in log.lines(window):
        text = f"{rfc3339_nano_fixed(line.ts_ns)} {line.text}\n" if stamp else line.text + "\n"
        await sh.io.write(line.stream, text)
    return 0


# --- lifecycle -----------------------------------------------------------------------------------


async def _lifecycle(command: str, args: list[str], sh: "Session") -> int:
    spec = _LIFECYCLE[command]
    opts, names = parse_flags(spec, args)
    _need_args(spec, names, at_least=1)
    _daemon(sh, "Post", f"/containers/{quote(names[0], safe='')}/{'kill' if command == 'kill' else command}")
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
        _daemon(sh, "Get", "/version")
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


# --- compose ---------------------------------------------------------------------------------------

COMPOSE = Spec("docker compose", "docker compose [OPTIONS] COMMAND",
               bools=_flags("--compatibility:compatibility", "--dry-run:dry_run", "--all-resources:all_resources"),
               values=_flags("-f,--file:file", "-p,--project-name:project", "--project-directory:project_directory",
                             "--env-file:env_file", "--profile:profile", "--ansi:ansi", "--progress:progress",
                             "--parallel:parallel"),
               lists={"file", "env_file", "profile"})
COMPOSE_PS = Spec("docker compose ps", "docker compose ps [OPTIONS] [SERVICE...]", "List containers",
                  bools=_flags("-a,--all:all", "-q,--quiet:quiet", "--services:services", "--no-trunc:no_trunc",
                               "--orphans:orphans"),
                  values=_flags("--format:format", "--status:status", "--filter:filter"), lists={"status"})
COMPOSE_LOGS = Spec("docker compose logs", "docker compose logs [OPTIONS] [SERVICE...]", "View output from containers",
                    bools=_flags("--no-color:no_color", "--no-log-prefix:no_prefix", "-t,--timestamps:timestamps",
                                 "-f,--follow:follow"),
                    values=_flags("-n,--tail:tail", "--since:since", "--until:until", "--index:index"))
_COMPOSE_ACTIONS = {
    "up": Spec("docker compose up", "docker compose up [OPTIONS] [SERVICE...]", "Create and start containers",
               bools=_flags("-d,--detach:detach", "--no-start:no_start", "--force-recreate:force_recreate",
                            "--no-recreate:no_recreate", "--remove-orphans:remove_orphans", "--wait:wait",
                            "--build:build", "--no-build:no_build", "--quiet-pull:quiet_pull", "--no-deps:no_deps"),
               values=_flags("--pull:pull", "-t,--timeout:timeout", "--wait-timeout:wait_timeout")),
    "down": Spec("docker compose down", "docker compose down [OPTIONS] [SERVICES]",
                 "Stop and remove containers, networks",
                 bools=_flags("-v,--volumes:volumes", "--remove-orphans:remove_orphans"),
                 values=_flags("--rmi:rmi", "-t,--timeout:timeout")),
    "restart": Spec("docker compose restart", "docker compose restart [OPTIONS] [SERVICE...]",
                    "Restart service containers", bools=_flags("--no-deps:no_deps"),
                    values=_flags("-t,--timeout:timeout")),
    "stop": Spec("docker compose stop", "docker compose stop [OPTIONS] [SERVICE...]", "Stop services",
                 values=_flags("-t,--timeout:timeout")),
    "start": Spec("docker compose start", "docker compose start [SERVICE...]", "Start services"),
}


@dataclass
class Project:
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
    abspath = lambda p: posixpath.normpath(posixpath.join(sh.cwd, p))  # noqa: E731
    if opts.get("project") and not opts["file"] and not opts.get("project_directory"):
        mine = [c for c in members if c.compose.get("project") == opts["project"]]
        wd = mine[0].compose.get("working_dir", sh.cwd) if mine else sh.cwd
        return Project(opts["project"], wd, mine)
    if opts.get("project_directory"):
        wd = abspath(opts["project_directory"])
    elif opts["file"]:
        wd = posixpath.dirname(abspath(opts["file"][0]))
    else:
        wd = sh.cwd
    mine = [c for c in members if posixpath.normpath(str(c.compose.get("working_dir", ""))) == wd]
    has_file = any(posixpath.join(wd, f) in files for f in COMPOSE_FILES)
    if opts["file"]:
        path = abspath(opts["file"][0])
        if path not in files and not (mine and posixpath.basename(path) in COMPOSE_FILES):
            raise DockerError(f"open {path}: no such file or directory")
    elif not mine and not has_file:
        raise DockerError("no configuration file provided: not found")
    name = opts.get("project") or (mine[0].compose.get("project") if mine else posixpath.basename(wd))
    return Project(str(name), wd, mine)


def _compose_name(c: Container) -> str:
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


def _compose_row(c: Container, now: float, trunc: bool) -> dict:
    base = c.ps_fields(now, trunc)
    return {
        "Command": base["Command"], "CreatedAt": base["CreatedAt"], "ExitCode": c.exit_code,
        "Health": c.health or "", "ID": base["ID"], "Image": c.image, "Labels": base["Labels"],
        "LocalVolumes": base["LocalVolumes"], "Mounts": base["Mounts"], "Name": c.name, "Names": c.name,
        "Networks": base["Networks"], "Ports": base["Ports"], "Project": c.compose.get("project", ""),
        "Publishers": _publishers(c.ports), "RunningFor": base["RunningFor"], "Service": c.compose.get("service", ""),
        "Size": base["Size"], "State": c.state, "Status": base["Status"],
    }


_COMPOSE_PS_TABLE = "table {{.Name}}\t{{.Image}}\t{{.Command}}\t{{.Service}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}"


async def _compose_ps(project: Project, args: list[str], sh: "Session") -> int:
    opts, services = parse_flags(COMPOSE_PS, args)
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
        await _render_rows(sh, [_compose_row(c, now, trunc) for c in chosen], opts.get("format"),
                           _COMPOSE_PS_TABLE, "formatter.ContainerContext")
    return 0


async def _compose_logs(project: Project, args: list[str], sh: "Session") -> int:
    opts, services = parse_flags(COMPOSE_LOGS, args)
    if opts.get("follow"):
        raise _no_follow("docker compose logs")
    chosen = sorted((c for c in project.select(services) if c.exists), key=lambda c: c.name)
    names = {c.name: _compose_name(c) for c in chosen}
    width = max((len(n) for n in names.values()), default=0) + 1
    now = time.time()
    def tagged(c: Container) -> Iterator[tuple[LogLine, str]]:
        prefix = "" if opts.get("no_prefix") else f"{names[c.name]:<{width}} | "
        log = c.log()
        for line in log.lines(_log_window(log, opts, now)):
            yield line, prefix

    streams = [tagged(c) for c in chosen]
    stamp = bool(opts.get("timestamps"))
    for line, prefix in heapq.merge(*streams, key=lambda item: item[0].ts_ns):
        text = f"{rfc3339_nano_fixed(line.ts_ns)} {line.text}" if stamp else line.text
        await sh.io.write(line.stream, f"{prefix}{text}\n")
    return 0


async def _compose_action(action: str, project: Project, args: list[str], sh: "Session") -> int:
    spec = _COMPOSE_ACTIONS[action]
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


async def _compose(command: str, args: list[str], sh: "Session") -> int:
    opts, rest = parse_flags(COMPOSE, args, interspersed=False)
    if not rest:
        await sh.io.out("Usage:  docker compose [OPTIONS] COMMAND\n\n"
                        "Define and run multi-container applications with Docker\n")
        return 0
    sub, sub_args = rest[0], rest[1:]
    if sub == "version":
        await sh.io.out(f"Docker Compose version v{COMPOSE_VERSION}\n")
        return 0
    if sub not in ("ps", "logs", *_COMPOSE_ACTIONS):
        raise DockerError(f"unknown docker command: \"compose {sub}\"")
    spec = {"ps": COMPOSE_PS, "logs": COMPOSE_LOGS}.get(sub) or _COMPOSE_ACTIONS[sub]
    parse_flags(spec, sub_args)  # a bad flag is reported before the project is looked for
    project = _project(sh, opts)
    filters = quote(json.dumps({"label": {f"com.docker.compose.project={project.name}": True}}, separators=(",", ":")))
    _daemon(sh, "Get", f"/containers/json?all=1&filters={filters}")
    if sub == "ps":
        return await _compose_ps(project, sub_args, sh)
    if sub == "logs":
        return await _compose_logs(project, sub_args, sh)
    return await _compose_action(sub, project, sub_args, sh)


_COMMANDS = {"ps": _ps, "inspect": _inspect, "logs": _logs, "version": _version, "compose": _compose,
             **{k: _lifecycle for k in _LIFECYCLE}}
