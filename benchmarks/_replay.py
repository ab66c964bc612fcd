"""The calls a triage made, made again one after another, as an operator's shell script would.

:func:`plan` turns a triage's :class:`CallLog` into its distinct calls (target, action), each with a
function that makes it again through the same sources (one SSH connection per host, one client per
Proxmox endpoint and Kubernetes cluster, one omnictl process per call). A call that cannot be made
again faithfully (the Proxmox calls made with the provider's own credentials, which live in its
config on the LXC) is kept as the duration the triage recorded for it.

SSH commands are recorded under the host's label (``ssh root@127.0.0.1``), the same for both lab
hosts, so which host ran a command is read from the twin's request log (its ``kind: ssh`` lines).
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from runbook_lib.calls import Call, CallLog
from runbook_lib.site import Site
from runbook_lib.sources import http
from runbook_lib.sources.kube import KINDS, KubeCluster
from runbook_lib.sources.net import connect, resolve
from runbook_lib.sources.omni import Omnictl
from runbook_lib.sources.proxmox import ProxmoxCluster
from runbook_lib.sources.ssh import SSHHost

TIMEOUT = 10.0  # every replayed call is bounded, as the sources' own are


@dataclass
class Step:
    target: str
    action: str
    make: Callable[[], Any] | None = None  # None: not replayed, ``recorded`` seconds are added instead
    recorded: float = 0.0


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)

    @property
    def replayed(self) -> list[Step]:
        return [s for s in self.steps if s.make is not None]

    @property
    def kept(self) -> list[Step]:
        return [s for s in self.steps if s.make is None]

    def run(self) -> float:
        """Make every call in order; the wall time, plus the recorded time of the calls not made."""
        t0 = time.perf_counter()
        for step in self.replayed:
            try:
                step.make()
            except Exception:  # noqa: BLE001 - a failing call still took its time; the script goes on
                continue
        return time.perf_counter() - t0 + sum(s.recorded for s in self.kept)


# ----------------------------------------------------------------------------------- which host


def _strip_timeout(argv: list[str]) -> list[str]:
    """The command under the SSH source's ``timeout -k N SECS`` wrapper."""
    if argv[:1] != ["timeout"]:
        return argv
    rest = argv[1:]
    while rest and rest[0].startswith("-"):
        rest = rest[2:] if rest[0] in ("-k", "-s") else rest[1:]
    return rest[1:]


def ssh_roles(request_log: Path, offset: int = 0) -> dict[tuple[str, ...], set[str]]:
    """Command argv -> the lab hosts (``provider``, ``omni``) that received it, from the twin's log."""
    import json

    roles: dict[tuple[str, ...], set[str]] = {}
    with open(request_log, encoding="utf-8") as fh:
        fh.seek(offset)
        for line in fh:
            entry = json.loads(line)
            if entry.get("kind") == "ssh":
                argv = tuple(_strip_timeout(shlex.split(entry["action"])))
                roles.setdefault(argv, set()).add(entry["target"])
    return roles


# ----------------------------------------------------------------------------------- the sources


class Sources:
    """One client per system, made on first use, as a script's would be."""

    def __init__(self, site: Site):
        self.site = site
        self.calls = CallLog()  # no sharing: every call is made
        self._ssh: dict[str, SSHHost] = {}
        self._pve: dict[tuple[str, str], ProxmoxCluster] = {}
        self._kube: dict[str, KubeCluster] = {}
        self.omnictl = Omnictl(site.omni, self.calls)

    def ssh(self, role: str) -> SSHHost:
        if role not in self._ssh:
            self._ssh[role] = SSHHost(getattr(self.site.hosts, role), self.calls)
        return self._ssh[role]

    def proxmox(self, name: str, address: str) -> ProxmoxCluster:
        """The cluster reached through the one endpoint at ``address`` (host:port)."""
        if (name, address) not in self._pve:
            spec = self.site.proxmox[name]
            url = next(u for u in spec.endpoints if urlsplit(str(u)).netloc == address)
            self._pve[name, address] = ProxmoxCluster(name, spec.model_copy(update={"endpoints": [url]}),
                                                      self.calls)
        return self._pve[name, address]

    def kube(self, name: str) -> KubeCluster:
        if name not in self._kube:
            self._kube[name] = KubeCluster(name, self.site.kubernetes[name], self.calls)
        return self._kube[name]

    def close(self) -> None:
        for host in self._ssh.values():
            host.close()
        for cluster in self._kube.values():
            cluster.close()


# ----------------------------------------------------------------------------------- the plan


def _kube_read(cluster: KubeCluster, action: str) -> Any:
    """``GET <path>[?query]`` as the Kubernetes source asked it: version, list, get or pod log."""
    path, _, query = action.split(" ", 1)[1].partition("?")
    q = dict(parse_qsl(query))
    if path == "/version":
        return cluster.version()
    parts = path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    kind = next(k for k in KINDS.values() if k.group == group and k.plural == rest[0])
    if rest[2:] == ["log"]:
        return cluster.pod_log(rest[1], namespace, container=q.get("container"),
                               tail_lines=int(q["tailLines"]) if "tailLines" in q else None)
    if len(rest) == 2:
        return cluster.get(kind, rest[1], namespace)
    return cluster.list(kind, namespace, label_selector=q.get("labelSelector"),
                        field_selector=q.get("fieldSelector"))


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def _steps_for(call: Call, src: Sources, roles: dict) -> list[Step]:
    """How to make ``call`` again (several steps when several hosts ran the same command)."""
    target, action = call.target, call.action
    words = target.split()
    if target == "omnictl":
        args = shlex.split(action)[1:]
        return [Step(target, action, lambda: src.omnictl.run(args, timeout=TIMEOUT, check=False))]
    if words[0] == "ssh":
        if action.startswith("connect "):
            return []  # the script opens one connection per host, on its first command
        argv = shlex.split(action)
        return [Step(f"ssh {role}", action, lambda r=role: src.ssh(r).run(argv, timeout=TIMEOUT))
                for role in sorted(roles.get(tuple(argv), ()))] or [Step(target, action, None, call.seconds)]
    if words[0] == "proxmox" and words[1] in src.site.proxmox:
        path, _, query = action.split(" ", 1)[1].partition("?")
        params = dict(parse_qsl(query))
        return [Step(target, action, lambda: src.proxmox(words[1], words[2]).get(path, **params))]
    if words[0] == "kubernetes":
        return [Step(target, action, lambda: _kube_read(src.kube(words[1]), action))]
    if target.startswith(("https://", "http://")):
        return [Step(target, action, lambda: http.probe(target, src.calls, ca_file=src.site.omni.ca_file,
                                                        timeout=TIMEOUT))]
    if words[0] == "dns":
        host, port = _host_port(action.split()[-1])
        return [Step(target, action, lambda: resolve(host, port, src.calls, TIMEOUT))]
    if words[0] == "tcp":
        host, port = _host_port(words[1])
        return [Step(target, action, lambda: connect(host, port, src.calls, TIMEOUT))]
    return [Step(target, action, None, call.seconds)]  # e.g. Proxmox with the provider's own credentials


def plan(calls: CallLog, src: Sources, roles: dict) -> Plan:
    """The distinct calls of ``calls`` (by target and action), in the order the log has them."""
    seen: set[tuple[str, str]] = set()
    out = Plan()
    for call in list(calls.calls):
        key = (call.target, call.action)
        if key in seen:
            continue
        seen.add(key)
        out.steps += _steps_for(call, src, roles)
    return out
