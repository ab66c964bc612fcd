"""Typed notebook parameters: the ``parameters`` cell is the one declaration.

Each runbook declares its parameters in its cell tagged ``parameters``, one per line, as papermill
reads them (:func:`papermill.inspect_notebook`)::

    log_tail = 5000                       # an integer: the default's type
    try_provider_login = True             # a boolean: only true or false
    probe_timeout = 5.0                   # a number
    log_since: "duration" = ""            # a duration: 30s, 30m, 24h, 2d, 1h30m (empty allowed when the default is)
    since: "since" = "1h"                 # a duration or an RFC 3339 time
    stuck_after: "seconds" = 900          # seconds: a number, or a duration (15m) converted to seconds
    mode: "choice[ok, problem]" = "ok"    # one of the listed words

An unannotated parameter takes its default's type (``bool``, ``int``, ``float``, ``str``). The
runner converts every ``-p NAME VALUE`` with :func:`convert` before the kernel starts or any
system is contacted; a value that does not fit is refused with the parameter's name and what it
expects (:class:`ParameterError`, exit 3).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import RunbookError

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_INT = re.compile(r"^[+-]?\d+$")


class ParameterError(RunbookError):
    """A ``-p`` value does not fit the type its notebook declares."""


@dataclass(frozen=True)
class Param:
    """One declared parameter: its name, type, default and the help of its ``#`` comment."""

    name: str
    type: str  # bool | int | float | str | duration | since | seconds | choice
    default: Any
    help: str = ""
    choices: tuple[str, ...] = ()

    def expects(self) -> str:
        """What a value must look like, for the error message."""
        return {
            "bool": "true or false",
            "int": "an integer (e.g. 5000)",
            "float": "a number (e.g. 2.5)",
            "str": "a string",
            "duration": "a duration such as 30s, 30m, 24h, 2d or 1h30m" + (" (or empty)" if self.default == "" else ""),
            "since": "a duration such as 30m or 24h, or an RFC 3339 time (2026-11-27T10:00:00Z)"
                     + (" (or empty)" if self.default == "" else ""),
            "seconds": "a number of seconds, or a duration such as 90s, 15m or 2h",
            "choice": "one of " + ", ".join(self.choices),
        }[self.type]


def declared(nb_path: str | Path) -> dict[str, Param]:
    """The parameters a notebook declares, read without a kernel."""
    import papermill

    out = {}
    for name, spec in papermill.inspect_notebook(str(nb_path)).items():
        try:
            default = ast.literal_eval(spec.get("default") or "None")
        except (ValueError, SyntaxError):
            default = spec.get("default")
        annotation = (spec.get("inferred_type_name") or "None").strip()
        out[name] = _param(name, annotation, default, spec.get("help") or "")
    return out


def names(nb_path: str | Path) -> list[str]:
    """The names a notebook's ``parameters`` cell declares, in order, read without papermill (a
    kernel asks at the start of every run; :func:`declared` gives their types and help)."""
    nb = json.loads(Path(nb_path).read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code" and "parameters" in (cell.get("metadata") or {}).get("tags", []):
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            out: list[str] = []
            for node in ast.parse(source).body:
                if isinstance(node, ast.AnnAssign):
                    targets = [node.target]
                elif isinstance(node, ast.Assign):
                    targets = node.targets
                else:
                    continue
                out += [t.id for t in targets if isinstance(t, ast.Name) and t.id not in out]
            return out
    return []


def _param(name: str, annotation: str, default: Any, help: str) -> Param:
    m = re.fullmatch(r"choice\[(.*)\]", annotation)
    if m:
        return Param(name, "choice", default, help, tuple(c.strip() for c in m.group(1).split(",") if c.strip()))
    if annotation in ("duration", "since", "seconds", "bool", "int", "float", "str"):
        return Param(name, annotation, default, help)
    if isinstance(default, bool):
        return Param(name, "bool", default, help)
    if isinstance(default, int):
        return Param(name, "int", default, help)
    if isinstance(default, float):
        return Param(name, "float", default, help)
    return Param(name, "str", default, help)


def convert(values: dict[str, Any], params: dict[str, Param]) -> dict[str, Any]:
    """``values`` converted to their declared types; names not declared are passed through (the
    runner refuses them before)."""
    return {name: (coerce(params[name], value) if name in params else value) for name, value in values.items()}


def coerce(p: Param, value: Any) -> Any:
    """One value converted to ``p``'s type, or :class:`ParameterError`. Strings (from ``-p``) and
    values of the right Python type (from a caller in Python) are both accepted."""
    if value is None:
        if p.default is None:
            return None
        _refuse(p, value)
    if p.type == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        _refuse(p, value)
    if p.type == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and _INT.match(value.strip()):
            return int(value.strip())
        _refuse(p, value)
    if p.type == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        _refuse(p, value)
    if p.type == "seconds":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            text = value.strip()
            try:
                number = float(text) if not _INT.match(text) else int(text)
            except ValueError:
                number = duration_seconds(text) if _DURATION.match(text) else None
            if number is not None:
                return int(number) if isinstance(p.default, int) and float(number).is_integer() else number
        _refuse(p, value)
    if p.type == "choice":
        if isinstance(value, str) and value.strip() in p.choices:
            return value.strip()
        _refuse(p, value)
    if not isinstance(value, str):
        if p.type == "str" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        _refuse(p, value)
    text = value.strip()
    if p.type == "duration":
        if (text == "" and p.default == "") or _DURATION.match(text):
            return _go_duration(text)
        _refuse(p, value)
    if p.type == "since":
        if (text == "" and p.default == "") or _DURATION.match(text):
            return _go_duration(text)
        if _is_time(text):
            return text
        _refuse(p, value)
    return value


def duration_seconds(text: str) -> float:
    """``1h30m`` -> 5400.0"""
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


def _go_duration(text: str) -> str:
    """A duration as docker and Go read it: days become hours (``2d`` -> ``48h``)."""
    if "d" not in text:
        return text
    return "".join(f"{float(n) * 24:g}h" if u == "d" else f"{n}{u}" for n, u in _DURATION_PART.findall(text))


def _is_time(text: str) -> bool:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return parsed.tzinfo is not None or "T" in text


def _refuse(p: Param, value: Any) -> None:
    from .redact import looks_secret

    if looks_secret(p.name):  # never echo what may be a secret
        raise ParameterError(f"parameter '{p.name}' expects {p.expects()}")
    shown = repr(value) if isinstance(value, str) else str(value)
    raise ParameterError(f"parameter '{p.name}' expects {p.expects()}, got {shown}")
