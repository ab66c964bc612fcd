"""How the docker CLI and its compose plugin write what the daemon tells them.

go-units durations ("Up 3 days", "2 hours ago"), moby's status text, the fields of ``ps``
(truncated the CLI's way), the Go templates of ``--format`` (the subset the runbooks and operators
use) and the three shapes a list of rows takes: a table, JSON lines or one template per row.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any

from .docker_daemon import Container, DockerError
from .go_format import go_json, go_quote, go_sprint, tabwriter
from .logs import NS


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


# --- containers as ps shows them ---------------------------------------------------------------


def status(c: Container, now: float) -> str:
    """moby's State.String(): the STATUS column."""
    state = c.state
    if state in ("running", "paused"):
        up = human_duration(now - c.started_ns / NS)
        if state == "paused":
            return f"Up {up} (Paused)"
        if c.health:
            return f"Up {up} ({'health: starting' if c.health == 'starting' else c.health})"
        return f"Up {up}"
    if state == "restarting":
        return f"Restarting ({c.exit_code}) {human_duration(now - c.finished_ns / NS)} ago"
    if state == "dead":
        return "Dead"
    if state == "removing":
        return "Removal In Progress"
    if state == "created":
        return "Created"
    return f"Exited ({c.exit_code}) {human_duration(now - c.finished_ns / NS)} ago"


def ps_fields(c: Container, now: float, trunc: bool = True) -> dict[str, Any]:
    """The fields of `docker ps --format` (all display strings, as the CLI has them)."""
    mounts = [m.get("Name") or m["Source"] for m in c.mounts()]
    return {
        "Command": go_quote(ellipsis(c.command, 20) if trunc else c.command),
        "CreatedAt": datetime.fromtimestamp(c.created_ns // NS, timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S +0000 UTC"),  # Go's time.Time.String() in the host's zone, UTC
        "ID": c.id[:12] if trunc else c.id,
        "Image": c.image,
        "Labels": ",".join(sorted(f"{k}={v}" for k, v in c.labels().items())),  # the CLI sorts k=v
        "LocalVolumes": str(sum(1 for m in c.mounts() if m["Type"] == "volume")),
        "Mounts": ",".join(ellipsis(m, 15) if trunc else m for m in mounts),
        "Names": c.name,
        "Networks": c.network,
        "Platform": None,
        "Ports": ", ".join(c.ports),
        "RunningFor": human_duration(now - c.created_ns / NS) + " ago",
        "Size": "0B",
        "State": c.state,
        "Status": status(c, now),
    }


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
            out.append(go_sprint(value))
        else:
            out.append(str(value))
    out.append(template[pos:])
    return "".join(out)


# --- lists of rows -------------------------------------------------------------------------------

_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
            "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
            "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
            "LocalVolumes": "LOCAL VOLUMES", "Platform": "PLATFORM", "Name": "NAME", "Service": "SERVICE",
            "Project": "PROJECT", "Health": "HEALTH", "ExitCode": "EXIT CODE", "Publishers": "PUBLISHERS"}


def render_rows(rows: list[dict], fmt: str | None, table: str, what: str) -> str:
    """Rows as ``--format`` asks: JSON lines (``json``), a ``table ...`` template with its header
    line (``table`` alone or no format: the command's default ``table``), or a template a line."""
    if fmt in ("json", "{{json .}}"):
        return "".join(go_json(dict(sorted(row.items()))) + "\n" for row in rows)
    template = table if fmt in (None, "", "table") else fmt
    if template.startswith("table"):
        body = template[len("table"):].strip()
        cells = body.replace("\\t", "\t").split("\t")
        header = [_ACTION.sub(lambda m: _HEADERS.get(m.group(1).lstrip("."), m.group(1).lstrip(".").upper()), c)
                  for c in cells]
        lines = [header] + [render_template(body, row, what).split("\t") for row in rows]
        return tabwriter(lines, minwidth=10)
    return "".join(render_template(template, row, what) + "\n" for row in rows)
