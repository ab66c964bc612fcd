"""The docker CLI's command line: pflag's parsing and messages, and the log flags.

:func:`parse_flags` follows pflag's rules (``--flag=value``, ``-abc``, ``-nVALUE``, ``--``, flags
after arguments unless a command stops at its first argument) and fails with cobra's lines and
exit status 125. ``--tail``, ``--since``, ``--until`` and ``--follow`` mean the same to ``docker
logs`` and ``docker compose logs``: :func:`log_window` and :func:`no_follow` read them for both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .docker_daemon import DockerError
from .logs import NS, ContainerLog


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
    """A usage error: cobra's message, the usage line, exit status 125."""
    return DockerError(f"{message}\n\nUsage:  {spec.use}\n\nRun '{spec.path} --help' for more information", 125)


def parse_flags(spec: Spec, args: list[str], *, interspersed: bool = True) -> tuple[dict, list[str]]:
    """(options by key, positional arguments); ``interspersed=False`` stops at the first argument."""
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


def need_args(spec: Spec, args: list[str], exactly: int | None = None, at_least: int | None = None) -> None:
    """Fail as the CLI does when a command gets the wrong number of arguments."""
    if exactly is not None and len(args) != exactly:
        what = f"exactly {exactly} argument{'s' if exactly != 1 else ''}"
    elif at_least is not None and len(args) < at_least:
        what = f"at least {at_least} argument{'s' if at_least != 1 else ''}"
    else:
        return
    raise DockerError(f'"{spec.path}" requires {what}.\nSee \'{spec.path} --help\'.\n\n'
                      f"Usage:  {spec.use}\n\n{spec.short}")


def flags(*pairs: str) -> dict:
    """``flags("-a,--all:all", "--no-trunc:no_trunc")`` -> {"-a": "all", "--all": "all", ...}."""
    out = {}
    for pair in pairs:
        names, _, key = pair.partition(":")
        out.update({n: key for n in names.split(",")})
    return out


# --- the log flags -------------------------------------------------------------------------------

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


def log_window(log: ContainerLog, opts: dict, now: float) -> range:
    """The lines of ``log`` that ``--tail``, ``--since`` and ``--until`` select."""
    bounds = {}
    for key in ("since", "until"):
        if opts.get(key):
            try:
                bounds[key] = parse_since(opts[key], now)
            except ValueError as exc:
                raise DockerError(f'invalid value for "{key}": {exc}') from None
    return log.window(tail=_tail(opts.get("tail")), since_ns=bounds.get("since"), until_ns=bounds.get("until"))


def no_follow(what: str) -> DockerError:
    """The refusal of ``--follow``, which never ends."""
    return DockerError(f"{what}: the lab twin does not follow logs (--follow never ends); "
                       "read them with --tail or --since instead")

