"""The docker CLI on a remote host, over :class:`~runbook_lib.sources.ssh.SSHHost`.

Only structured output is read: ``docker ps --format '{{json .}}'`` (one object per line),
``docker inspect`` (a JSON array) and ``docker compose ps --format json`` (a JSON array before
compose v2.21, JSON lines since). Logs are streamed line by line, never collected whole.

Failures keep docker's own words as the reason: a daemon that does not answer is
``Unreachable``, a user outside the ``docker`` group is ``PermissionDenied``, a missing container
is ``NotFound``, anything else that exits non-zero is ``CommandFailed``. The SSH layer records
every command in the call log; nothing here records a second time.
"""

from __future__ import annotations

import json
import re
from typing import Callable

from .. import redact
from ..errors import CommandFailed, Malformed, NotFound, PermissionDenied, SourceError, Unreachable
from . import CommandResult
from .ssh import SSHHost

__all__ = [
    "ps", "inspect", "logs", "compose_ps", "compose_logs", "read_file",
    "parse_ps", "parse_inspect", "parse_compose_ps", "error_for",
]

_DAEMON_DOWN = re.compile(r"Cannot connect to the Docker daemon[^\n]*")
_SOCKET_DENIED = re.compile(r"permission denied while trying to connect to the Docker daemon[^\n]*")
_NO_SUCH = re.compile(r"No such (object|container|image|volume|network)[^\n]*")


def _target(host: SSHHost) -> str:
    return f"docker on {host.label}"


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def error_for(target: str, result: CommandResult) -> SourceError:
    """The error a failed docker command stands for, with docker's own message as the reason."""
    err = redact.default().text(result.stderr)
    if m := _DAEMON_DOWN.search(err):
        return Unreachable(target, m.group(0).strip())
    if m := _SOCKET_DENIED.search(err):
        return PermissionDenied(target, m.group(0).strip())
    if m := _NO_SUCH.search(err):
        return NotFound(target, m.group(0).strip())
    if result.rc == 127:
        return NotFound(target, f"{result.argv[0]} is not installed on the host ({_first_line(err)})")
    if "is not a docker command" in err:
        return CommandFailed(
            target, f"the docker compose v2 plugin is not installed ({_first_line(err)})",
            rc=result.rc, stderr=err,
        )
    reason = _first_line(err) or f"exit code {result.rc}"
    return CommandFailed(target, f"{' '.join(result.argv[:3])}: {reason}", rc=result.rc, stderr=err)


def _name(host: SSHHost, name: str) -> str:
    """A container or service name; one starting with '-' would be read as an option."""
    if not name or name.startswith("-"):
        raise NotFound(_target(host), f"{name!r} is not a container or service name")
    return name


def _checked(host: SSHHost, result: CommandResult) -> CommandResult:
    if result.rc != 0:
        raise error_for(_target(host), result)
    return result


# --- parsing (pure; the tests feed them real CLI output) ----------------------------------------
def _json(target: str, text: str, what: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise Malformed(target, f"{what} is not JSON ({exc.msg} at line {exc.lineno})") from None


def _json_lines(target: str, text: str, what: str) -> list[dict]:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise Malformed(target, f"{what} line {n} is not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise Malformed(target, f"{what} line {n} is not a JSON object")
        rows.append(row)
    return rows


def parse_ps(text: str, target: str = "docker ps") -> list[dict]:
    """``docker ps --format '{{json .}}'``: one object per line, every value a display string."""
    return _json_lines(target, text, "docker ps output")


def parse_inspect(text: str, target: str = "docker inspect") -> list[dict]:
    """``docker inspect``: a JSON array of objects (``[]`` when nothing matched)."""
    data = _json(target, text, "docker inspect output")
    if not isinstance(data, list) or not all(isinstance(o, dict) for o in data):
        raise Malformed(target, "docker inspect output is not a JSON array of objects")
    return data


def parse_compose_ps(text: str, target: str = "docker compose ps") -> list[dict]:
    """``docker compose ps --format json``: an array before compose v2.21, JSON lines since."""
    body = text.strip()
    if not body:
        return []
    if body.startswith("["):
        data = _json(target, body, "docker compose ps output")
        if not isinstance(data, list) or not all(isinstance(o, dict) for o in data):
            raise Malformed(target, "docker compose ps output is not a JSON array of objects")
        return data
    return _json_lines(target, body, "docker compose ps output")


# --- commands ----------------------------------------------------------------------------------
def ps(host: SSHHost, *, timeout: float | None = None) -> list[dict]:
    """Every container (``-a``), untruncated, one dict per container as the CLI prints it."""
    argv = ["docker", "ps", "-a", "--no-trunc", "--format", "{{json .}}"]
    result = _checked(host, host.run(argv, timeout=timeout))
    return parse_ps(result.stdout, _target(host))


def inspect(host: SSHHost, name: str, *, timeout: float | None = None) -> dict:
    """``docker inspect NAME``; NotFound when there is no such container (or object)."""
    result = _checked(host, host.run(["docker", "inspect", _name(host, name)], timeout=timeout))
    objects = parse_inspect(result.stdout, _target(host))
    if not objects:
        raise NotFound(_target(host), f"No such object: {name}")
    return objects[0]


def _log_options(tail: int | str | None, since: str | None, timestamps: bool,
                 until: str | None = None) -> list[str]:
    argv = []
    if tail is not None:
        argv += ["--tail", str(tail)]
    if since is not None:
        argv += ["--since", str(since)]
    if until is not None:
        argv += ["--until", str(until)]
    if timestamps:
        argv.append("--timestamps")
    return argv


def _stream_checked(host: SSHHost, argv: list[str], on_line, timeout, on_lines=None) -> CommandResult:
    """Stream a log command; a failure is read from the stderr tail the stream kept."""
    result = host.stream(argv, on_line, timeout=timeout, on_lines=on_lines)
    return _checked(host, result)


def logs(host: SSHHost, name: str, on_line: Callable[[str, str], None] | None = None,
         tail: int | str | None = None, since: str | None = None, timeout: float | None = None, *,
         timestamps: bool = False, on_lines: Callable[[str, list[str]], None] | None = None,
         until: str | None = None) -> CommandResult:
    """Stream ``docker logs``: the container's stdout arrives as "stdout", its stderr as "stderr".

    Give ``on_line(stream, line)``, or ``on_lines(stream, lines)`` for batches (see SSHHost.stream).

    ``tail`` is a line count (or ``"all"``), ``since`` and ``until`` anything docker accepts
    (``10m``, an RFC 3339 time). ``timestamps`` prefixes each line with docker's RFC 3339
    nanosecond time.
    """
    argv = ["docker", "logs", *_log_options(tail, since, timestamps, until), _name(host, name)]
    return _stream_checked(host, argv, on_line, timeout, on_lines)


def _compose(project_dir: str, *args: str) -> list[str]:
    return ["docker", "compose", "--project-directory", project_dir, *args]


def compose_ps(host: SSHHost, project_dir: str, *, timeout: float | None = None) -> list[dict]:
    """The project's containers, stopped ones included, as compose prints them."""
    result = _checked(host, host.run(_compose(project_dir, "ps", "--all", "--format", "json"), timeout=timeout))
    return parse_compose_ps(result.stdout, _target(host))


def compose_logs(host: SSHHost, project_dir: str, service: str,
                 on_line: Callable[[str, str], None] | None = None,
                 tail: int | str | None = None, since: str | None = None,
                 timeout: float | None = None, *, timestamps: bool = False,
                 on_lines: Callable[[str, list[str]], None] | None = None,
                 until: str | None = None) -> CommandResult:
    """Stream one service's logs without compose's ``name | `` prefix or colours."""
    argv = _compose(project_dir, "logs", "--no-color", "--no-log-prefix",
                    *_log_options(tail, since, timestamps, until), _name(host, service))
    return _stream_checked(host, argv, on_line, timeout, on_lines)


def read_file(host: SSHHost, path: str, max_bytes: int = 1 << 20, *, timeout: float | None = None) -> str:
    """A file on the host (``cat``), at most ``max_bytes`` of it (the call is marked truncated).

    Whoever reads a file holding credentials registers them with ``redact.register()`` first.
    """
    safe = f"./{path}" if path.startswith("-") else path  # never read as an option
    result = host.run(["cat", safe], timeout=timeout, max_bytes=max_bytes)
    if result.rc != 0:
        target = f"file {path} on {host.label}"
        reason = _first_line(result.stderr) or f"cat exited {result.rc}"
        if "No such file or directory" in result.stderr:
            raise NotFound(target, reason)
        if "Permission denied" in result.stderr:
            raise PermissionDenied(target, reason)
        raise CommandFailed(target, reason, rc=result.rc, stderr=result.stderr)
    return result.stdout
