"""The docker daemon of a lab host, as the CLI reaches it: its containers and its refusals.

The host model says whether the daemon is ``up``, ``down`` or ``denied`` (user not in the docker
group) and holds the containers, by name::

    image, state (running|exited|restarting|created|paused|absent), health, exit_code,
    restart_count, started_ago, created_ago, finished_ago, compose {project, service, working_dir},
    args, env, mounts [{source, destination, type, name, read_only}], ports ["0.0.0.0:443->443/tcp"],
    entrypoint, labels, restart_policy, oom_killed, error, logs (see :mod:`.logs`)

``*_ago`` are seconds before the twin started. ``absent`` means the container does not exist (a
compose service that was never created or was removed). :class:`Container` derives from a model
entry what the daemon derives from a real container (IDs, labels, mounts, ``inspect``'s object)
and applies the state changes of start, stop and create to the model.
"""

from __future__ import annotations

import hashlib
import posixpath
import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .logs import NS, ContainerLog

if TYPE_CHECKING:
    from .shell import Session

DOCKER_VERSION = "28.2.2"
API_VERSION = "1.50"
COMPOSE_VERSION = "2.36.2"
SOCKET = "unix:///var/run/docker.sock"
ZERO_TIME = "0001-01-01T00:00:00Z"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LISTED_STATES = {"running", "restarting", "paused"}  # what `docker ps` shows without -a
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


def connect(sh: "Session", method: str, path: str) -> None:
    """Fail the way the CLI does when the daemon is down or the socket is not ours."""
    status = sh.host.get("docker", "up")
    if status == "down":
        raise DockerError(f"Cannot connect to the Docker daemon at {SOCKET}. Is the docker daemon running?")
    if status == "denied":
        url = f"http://%2Fvar%2Frun%2Fdocker.sock/v{API_VERSION}{path}"
        raise DockerError(f"permission denied while trying to connect to the Docker daemon socket at {SOCKET}: "
                          f'{method} "{url}": dial unix /var/run/docker.sock: connect: permission denied')


def rfc3339_nano(ts_ns: int) -> str:
    """Go's RFC3339Nano in UTC: trailing zeros of the fraction dropped."""
    secs, frac = divmod(ts_ns, NS)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return text + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"


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

