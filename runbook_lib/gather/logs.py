"""Log collection (guide: "Log Locations"): every component's log for a time window, bounded.

What is read, in parallel:

* on the Omni host: ``docker compose logs`` of Omni and of its Tailscale sidecar;
* on the provider host: ``docker logs`` of the provider's container;
* from Omni: ``omnictl machine-logs`` of each machine it knows (at most ``machine_limit``), where
  Omni serves them.

Each log is streamed through a :class:`LogDigest`, so memory and the record stay bounded whatever
the log's size: it keeps the last ``keep_lines`` lines (redacted, long lines cut), counts lines and
bytes, counts lines by level, and counts error lines by message (numbers, ids and addresses
folded, so one recurring error is one row).

Evidence: ``logs`` maps a component (``omni``, ``omni-tailscale``, ``provider``,
``machine <id>``) to its digest summary; a component that could not be read is kept as the
evidence error ``log:<component>`` with the reason.
"""

from __future__ import annotations

import json
import re
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from .. import redact
from ..calls import CallLog
from ..errors import RunbookError
from ..evidence import Evidence
from ..site import Site
from ..sources import docker
from ..sources.omni import Omnictl
from ..sources.ssh import SSHHost
from . import in_parallel
from .provider import find_container

MAX_SHOWN = 400  # characters of one kept line
ERROR_LEVELS = {"error", "fatal", "panic", "dpanic", "crit", "critical"}
_LEVEL = re.compile(r'"(?:level|L)"\s*:\s*"([A-Za-z]+)"')
_PLAIN_ERROR = re.compile(r"\b(error|fatal|panic|failed)\b", re.IGNORECASE)
_PREFIX_TIME = re.compile(r"^\s*(\d{4}[-/]\d\d[-/]\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)\s*")
_FOLD = [
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<uuid>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<addr>"),
    (re.compile(r"\b[0-9a-f]{12,}\b", re.I), "<hex>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
]


@dataclass
class Options:
    since: str | None = "1h"  # docker --since: a duration (10m, 2h) or an RFC 3339 time
    until: str | None = None  # docker --until (None: now)
    max_lines: int = 20000  # lines read per container at most (docker --tail)
    keep_lines: int = 200  # lines kept in the record per component (the last ones)
    machine_logs: bool = True  # ask Omni for each machine's log
    machine_limit: int = 10
    machine_tail: int = 500  # omnictl machine-logs --tail
    timeout: float = 60.0  # seconds per log


def fold(message: str) -> str:
    """An error message with its variable parts replaced, so repeats count as one."""
    out = message
    for rx, repl in _FOLD:
        out = rx.sub(repl, out)
    return out[:200]


class LogDigest:
    """A bounded summary of one log: last lines, counts, error lines by message."""

    def __init__(self, keep: int = 200):
        self.kept: deque[str] = deque(maxlen=keep)
        self.lines = 0
        self.bytes = 0
        self.levels: Counter = Counter()
        self.errors: Counter = Counter()

    def feed_lines(self, stream: str, lines: list[str]) -> None:
        for line in lines:
            self.feed(stream, line)

    def feed(self, stream: str, line: str) -> None:
        self.lines += 1
        self.bytes += len(line) + 1
        self.kept.append(line)
        message = self._error_message(line)
        if message is not None:
            self.errors[fold(message)] += 1

    def _error_message(self, line: str) -> str | None:
        """The message of an error line, or None when the line is not an error."""
        m = _LEVEL.search(line) if line.startswith("{") else None
        if m:
            level = m.group(1).lower()
            self.levels[level] += 1
            if level not in ERROR_LEVELS:
                return None
            try:
                obj = json.loads(line)
            except ValueError:
                return line
            msg = str(obj.get("msg") or obj.get("M") or line)
            err = obj.get("error")
            return f"{msg}: {err}" if err else msg
        if line.startswith("Error:"):
            return line
        if _PLAIN_ERROR.search(line):
            return _PREFIX_TIME.sub("", line)
        return None

    def summary(self) -> dict:
        """Counts, error messages and kept lines, with every known secret masked."""
        redactor = redact.default()
        shown = [redactor.text(line) for line in self.kept]
        return {
            "lines": self.lines,
            "bytes": self.bytes,
            "kept": [s if len(s) <= MAX_SHOWN else s[:MAX_SHOWN - 1] + "…" for s in shown],
            "truncated": self.lines > len(self.kept),
            "levels": dict(self.levels.most_common()),
            "errors": {redactor.text(m): n for m, n in self.errors.most_common(30)},
            "error_lines": sum(self.errors.values()),
        }


def gather(site: Site, calls: CallLog, options: Options | None = None,
           progress: Callable[[str], None] | None = None) -> Evidence:
    opts = options or Options()
    ev = Evidence()
    ev.put("window", {"since": opts.since, "until": opts.until, "max_lines": opts.max_lines, "keep": opts.keep_lines})
    logs: dict[str, dict] = {}
    groups = {
        "omni host": lambda e: _omni_host(e, site, calls, opts, logs),
        "provider host": lambda e: _provider_host(e, site, calls, opts, logs),
    }
    if opts.machine_logs:
        groups["machine logs"] = lambda e: _machines(e, site, calls, opts, logs)
    in_parallel(ev, groups, progress)
    ev.put("logs", dict(sorted(logs.items())))
    return ev


def component_rows(ev: Evidence) -> list[dict]:
    """One row per component: lines read, kept and erroneous, and where they came from (or why not)."""
    rows = [{"component": name, "lines": d["lines"], "kept": len(d["kept"]), "error lines": d["error_lines"],
             "source": d["source"]} for name, d in (ev.optional("logs") or {}).items()]
    rows += [{"component": name[4:], "lines": None, "kept": None, "error lines": None, "source": f"unavailable: {why}"}
             for name, why in ev.errors.items() if name.startswith("log:")]
    return rows


def _read(ev: Evidence, logs: dict, component: str, source: str, read: Callable[[LogDigest], object],
          keep: int) -> None:
    digest = LogDigest(keep)
    try:
        read(digest)
    except RunbookError as exc:
        ev.fail(f"log:{component}", str(exc))
        return
    logs[component] = {"source": source, **digest.summary()}


def _window(opts: Options) -> str:
    return " ".join(x for x in (f"--since {opts.since}" if opts.since else "",
                                f"--until {opts.until}" if opts.until else "", f"--tail {opts.max_lines}") if x)


def _omni_host(ev: Evidence, site: Site, calls: CallLog, opts: Options, logs: dict) -> None:
    spec = site.hosts.omni
    host = SSHHost(spec, calls)
    try:
        for component in (spec.omni_service, spec.tailscale_service):
            _read(ev, logs, component, f"docker compose logs {component} ({_window(opts)}) on {spec.label}",
                  lambda d, c=component: docker.compose_logs(
                      host, spec.compose_dir, c, tail=opts.max_lines, since=opts.since, until=opts.until,
                      timeout=opts.timeout, on_lines=d.feed_lines), opts.keep_lines)
    finally:
        host.close()


def _provider_host(ev: Evidence, site: Site, calls: CallLog, opts: Options, logs: dict) -> None:
    spec = site.hosts.provider
    host = SSHHost(spec, calls)
    try:
        try:
            name = find_container(docker.ps(host), spec.container, spec.image)
        except RunbookError as exc:
            ev.fail("log:provider", str(exc))
            return
        if name is None:
            ev.fail("log:provider", "no provider container on the provider host")
            return
        _read(ev, logs, "provider", f"docker logs {name} ({_window(opts)}) on {spec.label}",
              lambda d: docker.logs(host, name, tail=opts.max_lines, since=opts.since, until=opts.until,
                                    timeout=opts.timeout, on_lines=d.feed_lines), opts.keep_lines)
    finally:
        host.close()


def _machines(ev: Evidence, site: Site, calls: CallLog, opts: Options, logs: dict) -> None:
    omni = Omnictl(site.omni, calls)
    try:
        ids = sorted(m["metadata"]["id"] for m in omni.get("machinestatuses"))
    except RunbookError as exc:
        ev.fail("log:machines", str(exc))
        return
    ev.put("machines", {"known": len(ids), "asked": min(len(ids), opts.machine_limit)})

    def one(mid: str) -> None:
        def read(d: LogDigest) -> None:
            result = omni.run(["machine-logs", mid, "--tail", str(opts.machine_tail)], timeout=opts.timeout)
            d.feed_lines("stdout", result.stdout.splitlines())

        _read(ev, logs, f"machine {mid}", f"omnictl machine-logs {mid} --tail {opts.machine_tail}", read, opts.keep_lines)

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="machine-logs") as pool:
        list(pool.map(one, ids[:opts.machine_limit]))
